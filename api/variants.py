"""A/B variants: named alternatives of the service's behaviour, each served to a stable share of the users.

The variants are configuration, a YAML file named by ``KGREC_VARIANTS``::

    salt: spring-2026            # change it to reshuffle every user
    variants:
      - name: control
        share: 0.8               # shares sum to 1
      - name: new-model
        share: 0.2
        model_version: "20260401T120000Z"   # an artifact version under KGREC_ARTIFACTS_DIR
        mmr_lambda: 0.8          # this variant's MMR λ (default KGREC_MMR_LAMBDA)
        exploration_share: 0.1   # this variant's share of explored positions (default KGREC_EXPLORATION_SHARE)

Without a file there is one variant, ``default``, with the service's own settings (answers as before).

A user is assigned by :func:`bucket`: the first 8 bytes of ``sha256(salt + ":" + user id)`` read as a number in
[0, 1), then the variant whose cumulative share first exceeds it. The hash depends on nothing but the salt and the
id, so every process, restart and machine assigns a user the same variant; changing a share moves only the users
whose bucket lies between the old and the new boundary.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schema.errors import ConfigError

#: The one variant of a service without a variants file.
DEFAULT_VARIANT = "default"
#: How far the shares' sum may be from 1.
SHARE_TOLERANCE = 1e-6
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Variant(BaseModel):
    """One variant: a name, its share of users, and what it changes (unset: the service's setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN, description="Letters, digits, '_', '.', '-'; at most 64 characters.")
    share: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="Share of users (all shares sum to 1).")
    model_version: str | None = Field(
        None, min_length=1, description="Artifact version (a directory under KGREC_ARTIFACTS_DIR/<kind>/) to serve."
    )
    mmr_lambda: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False, description="MMR λ of this variant.")
    exploration_share: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="Share of positions explored (api/exploration.py); None: KGREC_EXPLORATION_SHARE.",
    )


class Variants(BaseModel):
    """The variants of a service and the salt of the assignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    salt: str = Field("", description="Mixed into every user's hash; a new salt reshuffles all users.")
    variants: tuple[Variant, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Variants:
        names = [v.name for v in self.variants]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"variant names must be distinct: {', '.join(doubled)} appear more than once")
        total = math.fsum(v.share for v in self.variants)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise ValueError(f"variant shares must sum to 1, not {total:g}")
        return self

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def model_versions(self) -> list[str]:
        """The artifact versions the variants name (each once, in order)."""
        return list(dict.fromkeys(v.model_version for v in self.variants if v.model_version))

    def get(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def assign(self, key: str) -> Variant:
        """The variant of the user (or group) ``key``: the one whose cumulative share first exceeds its bucket."""
        point = bucket(self.salt, key)
        edge = 0.0
        for variant in self.variants:
            edge += variant.share
            if point < edge:
                return variant
        return next(v for v in reversed(self.variants) if v.share > 0)  # rounding left the bucket past the last edge


def bucket(salt: str, key: str) -> float:
    """``key``'s place in [0, 1): the first 8 bytes of ``sha256(salt + ":" + key)`` over 2^64 (the same in every
    process, unlike Python's ``hash``)."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def group_key(user_ids: list[str]) -> str:
    """The key a group is assigned by: its sorted member ids (the same group, the same variant, in any order)."""
    return "\x1f".join(sorted(user_ids))


def default_variants() -> Variants:
    """One variant, ``default``, with the service's own settings."""
    return Variants(variants=(Variant(name=DEFAULT_VARIANT, share=1.0),))


def load_variants(path: Path | None) -> Variants:
    """The variants of ``path`` (``KGREC_VARIANTS``), or :func:`default_variants` when None.

    Raises:
        ConfigError: The file is missing, not YAML, or not a valid variants file (the message says why).
    """
    if path is None:
        return default_variants()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"KGREC_VARIANTS: cannot read {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"KGREC_VARIANTS: {path} is not YAML: {exc}") from exc
    try:
        return Variants.model_validate(raw)
    except ValidationError as exc:
        faults = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"KGREC_VARIANTS: {path} is not a valid variants file: {faults}") from exc


__all__ = ["DEFAULT_VARIANT", "Variant", "Variants", "bucket", "default_variants", "group_key", "load_variants"]
