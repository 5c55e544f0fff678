"""Settings of the HTTP service (prefix ``KGREC_``), built by :func:`get_api_settings`, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "xxx"}


class ApiSettings(BaseSettings):
    """How the API serves and protects itself."""

    model_config = SettingsConfigDict(env_prefix="KGREC_", env_file=".env", extra="ignore")

    api_key: SecretStr | None = Field(
        None,
        description="Key required in X-API-Key for writes (and reads if read_requires_key). Unset: writes refused.",
    )
    read_requires_key: bool = Field(False, description="Also require the key for reads.")
    host: str = Field("127.0.0.1", description="Address `kgrec serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `kgrec serve` listens on.")
    default_k: int = Field(10, ge=1, le=100, description="Items returned when the request gives no k.")
    max_k: int = Field(100, ge=1, le=1000, description="Largest k a request may ask for.")
    source_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "collaborative": 1.0,
            "knowledge": 0.6,
            "social": 0.5,
            "popularity": 0.15,
            "embedding": 0.8,
        },
        description="Blend weight of each recall source (scores are max-normalised per source first).",
    )
    recall_workers: int = Field(4, ge=1, le=32, description="Threads that run recall sources in parallel.")
    min_rating: float = Field(
        4.0, description="Ratings at or above this are positives (unrated interactions always are)."
    )
    artifacts_dir: Path = Field(Path(".kgrec/artifacts"), description="Where `kgrec retrain` promotes models.")
    serve_model: str = Field(
        "auto",
        pattern="^(auto|none|blend|lightgcn|graphsage)$",
        description="Model to rank with: auto (blend, else lightgcn, else graphsage), none (graph recall only), or one kind.",
    )
    model_watch_seconds: float = Field(
        30.0, ge=0, description="How often to look for a newly promoted model (0 = only on POST /admin/reload)."
    )
    response_cache_size: int = Field(
        20_000,
        ge=0,
        description="Model-path answers kept (keyed by request and the user's current interactions; 0 = off).",
    )
    response_cache_seconds: float = Field(
        900.0,
        ge=0,
        description="Longest a cached answer is reused (bounds how stale other users' paths can be).",
    )
    response_cache_pool: int = Field(
        20,
        ge=1,
        le=100,
        description="Items computed (and cached) per answer; requests for fewer are slices of it, for more are computed.",
    )
    cache_warm_users: int = Field(
        5000,
        ge=0,
        description="After a model loads (or at start, for graph recall without one), precompute the answers of this "
        "many most active users (0 = off).",
    )
    mmr_lambda: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Maximal marginal relevance trade-off: 1 = relevance only, lower = more diverse. 0.6 is the "
        "smallest λ whose validation NDCG@20 stays within 1% of λ = 1 on ml-latest-small (bench/mmr.py).",
    )

    ingest_max_rows: int = Field(
        10_000, ge=1, le=100_000, description="Most interactions one POST /interactions/batch may carry (more: 413)."
    )
    ingest_max_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest body POST /interactions/batch reads (more: 413)."
    )
    read_rate: float = Field(
        50.0, ge=0, description="Reads per second each client may sustain (by API key, else IP; 0 = no limit)."
    )
    read_burst: int = Field(100, ge=1, description="Reads a client may send at once before KGREC_READ_RATE applies.")

    @field_validator("api_key")
    @classmethod
    def _no_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        secret = value.get_secret_value()
        if secret.lower() in _PLACEHOLDERS or len(secret) < 12:
            raise ValueError("KGREC_API_KEY must be a real secret of at least 12 characters, not a placeholder")
        return value


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    """Return the process-wide API settings."""
    return ApiSettings()
