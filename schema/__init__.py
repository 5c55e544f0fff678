"""The graph contract: vocabulary, row models and DDL. Imports nothing else from kgrec."""

from schema.ddl import apply_schema, describe_model
from schema.errors import ConfigError, DatabaseUnavailableError, DataError, KgrecError
from schema.model import Label, RelType, Role

__all__ = [
    "ConfigError",
    "DataError",
    "DatabaseUnavailableError",
    "KgrecError",
    "Label",
    "RelType",
    "Role",
    "apply_schema",
    "describe_model",
]
