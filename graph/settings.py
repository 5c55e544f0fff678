"""Settings for reaching Neo4j and for running the project's own local Neo4j server.

Read from the environment (prefix ``NEO4J_``) and an optional ``.env`` file, built once by
:func:`get_neo4j_settings`, never at import time.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PASSWORD = "kgrec-dev-password"


class Neo4jSettings(BaseSettings):
    """Where Neo4j is and how the local development server is run."""

    model_config = SettingsConfigDict(env_prefix="NEO4J_", env_file=".env", extra="ignore")

    uri: str = Field("bolt://127.0.0.1:7687", description="Bolt URI the driver connects to.")
    user: str = Field("neo4j", description="Database user.")
    password: SecretStr = Field(
        SecretStr(DEFAULT_PASSWORD),
        description="Password; the local server sets it for user neo4j on every start (min. 8 chars).",
    )
    database: str = Field("neo4j", description="Database name.")

    # The local server (kgrec neo4j start): ignored when you point `uri` at a server of your own.
    home: Path = Field(Path(".kgrec/neo4j"), description="Directory for the local server's data and logs.")
    bolt_port: int = Field(7687, ge=1, le=65535, description="Bolt port of the local server.")
    http_port: int = Field(7474, ge=1, le=65535, description="HTTP port (Neo4j Browser) of the local server.")
    listen_address: str = Field("127.0.0.1", description="Address the local server binds to.")
    heap: str = Field("1g", description="Max JVM heap of the local server (-Xmx), e.g. 1g or 2g.")
    pagecache: str = Field("512m", description="Page cache size of the local server, e.g. 512m.")
    jars_dir: Path = Field(
        Path.home() / ".cache" / "kgrec" / "neo4j-jars",
        description="Where Maven copies the Neo4j, APOC and Browser jars (resolved once, then reused).",
    )
    start_timeout: float = Field(180.0, gt=0, description="Seconds to wait for the local server to be ready.")

    @field_validator("password")
    @classmethod
    def _password_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("NEO4J_PASSWORD must have at least 8 characters (Neo4j's minimum)")
        return value


@lru_cache(maxsize=1)
def get_neo4j_settings() -> Neo4jSettings:
    """Return the process-wide settings, read from the environment on first use."""
    return Neo4jSettings()
