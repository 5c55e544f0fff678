"""The project's one root exception.

Every error kgrec raises on purpose derives from :class:`KgrecError`, so a caller (the CLI, the API)
can tell "kgrec refused this, with a reason" apart from a bug.
"""

from __future__ import annotations


class KgrecError(Exception):
    """Root of all errors raised deliberately by kgrec."""


class ConfigError(KgrecError):
    """A setting is missing or invalid."""


class DatabaseUnavailableError(KgrecError):
    """Neo4j cannot be reached (not started, wrong address, wrong credentials)."""


class DataError(KgrecError):
    """Input data cannot be read at all (missing file, unknown format); single bad rows are rejects instead."""
