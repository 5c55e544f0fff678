"""Settings of the loaders (prefix ``KGREC_``), built by :func:`get_etl_settings`, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class EtlSettings(BaseSettings):
    """How loads write and where rejects go."""

    model_config = SettingsConfigDict(env_prefix="KGREC_", env_file=".env", extra="ignore")

    batch_size: int = Field(10_000, ge=1, le=1_000_000, description="Rows per write transaction.")
    reject_dir: Path = Field(Path(".kgrec/rejects"), description="Folder for <dataset>.rejects.csv files.")
    max_line_bytes: int = Field(
        1 << 20, ge=64, description="Longest line a loaded file may hold, unless its mapping sets max_line_bytes."
    )


@lru_cache(maxsize=1)
def get_etl_settings() -> EtlSettings:
    """Return the process-wide loader settings."""
    return EtlSettings()
