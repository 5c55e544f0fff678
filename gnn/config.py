"""Typed hyper-parameters of training and the settings of the training jobs.

One config schema per model, resolved by :func:`resolve_config`:

* ``lightgcn`` and ``graphsage``: :class:`TrainConfig`, from defaults < the model's own defaults
  (:data:`MODEL_DEFAULTS`) < YAML file < environment (``KGREC_TRAIN_<FIELD>``) < flags (CLI options);
* ``blend``: :class:`gnn.blend.config.RankerConfig`, from its defaults < YAML file < flags, where the flags
  ``max_epochs``, ``embedding_dim``, ``lr`` and ``patience`` go to its LightGCN component (its ``lightgcn``
  mapping) and ``seed``, ``device``, ``progress``, ``num_threads`` and ``cold_slots`` to the blend itself
  (the environment's ``KGREC_TRAIN_*`` values are not read into the blend's fields; its LightGCN component, a
  TrainConfig, still reads those its ``lightgcn`` mapping does not set).

Built on demand, never at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import torch
import yaml
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from schema.errors import ConfigError

Device = Literal["auto", "cpu", "cuda"]
#: The models ``kgrec train`` / ``retrain`` fit, each with its own config schema (see :func:`resolve_config`).
MODELS = ("blend", "lightgcn", "graphsage")
#: CLI flags of the blend that set its LightGCN component's TrainConfig fields; the others set RankerConfig's.
BLEND_LIGHTGCN_FLAGS = ("max_epochs", "embedding_dim", "lr", "patience")
BLEND_FLAGS = ("seed", "device", "progress", "num_threads", "cold_slots")


class TrainConfig(BaseSettings):
    """Hyper-parameters of one training run (LightGCN or GraphSAGE, with BPR)."""

    model_config = SettingsConfigDict(env_prefix="KGREC_TRAIN_", extra="forbid", validate_default=True)

    model: Literal["lightgcn", "graphsage"] = Field("lightgcn", description="Which model to train.")
    embedding_dim: int = Field(64, ge=1, le=4096, description="Size of user and item embeddings.")
    num_layers: int = Field(3, ge=0, le=10, description="LightGCN propagation steps, or GraphSAGE layers.")
    init_std: float = Field(0.1, gt=0, description="LightGCN: standard deviation of the initial embeddings.")
    lr: float = Field(0.02, gt=0, le=1, description="Adam learning rate (at the first epoch).")
    lr_decay: float = Field(0.99, gt=0, le=1, description="Learning rate multiplier applied after every epoch.")
    reg: float = Field(1e-4, ge=0, description="L2 penalty on the batch's layer-0 embeddings.")
    batch_size: int = Field(4096, ge=1, description="Positive pairs per optimiser step.")
    negatives: int = Field(1, ge=1, le=100, description="Negative items sampled per positive pair.")
    epoch_edge_budget: int | None = Field(
        None,
        ge=1,
        description="LightGCN: bound on an epoch's message passing, in optimiser steps × training positives "
        "(every step propagates over every edge): with more, an epoch takes fewer, larger batches (at least one), "
        "so its cost grows linearly with the positives instead of quadratically. None: batches of batch_size.",
    )
    max_step_pairs: int | None = Field(
        None,
        ge=1,
        description="LightGCN: at most this many of a step's positive pairs (the first of its shuffled batch, so a "
        "fresh random share every step) form its BPR loss; the propagation still runs over every edge. With "
        "full-batch steps at size the loss, its backward pass and the negatives then cost this many pairs, not "
        "every positive. None: the whole batch.",
    )
    max_epochs: int = Field(300, ge=1, description="Upper bound on epochs when early stopping does not stop.")
    patience: int = Field(
        50,
        ge=1,
        description="Validation rounds without a better NDCG@20 before stopping (at lr 0.02 validation "
        "sits on plateaus of 40-50 epochs before it climbs again).",
    )
    min_epochs: int = Field(
        0,
        ge=0,
        description="Never stop early before this epoch (at small learning rates validation NDCG@20 sits on a "
        "popularity-like plateau before it climbs).",
    )
    eval_every: int = Field(1, ge=1, description="Epochs between validation rounds.")
    val_window: int = Field(
        5,
        ge=1,
        description="Early stopping compares the mean validation NDCG@20 of this many consecutive rounds "
        "(the window stands for its middle round; 1 = each round alone). A single round is noisy, and the best of "
        "noisy rounds favours schedules that oscillate most, not those that rank best.",
    )
    supervision_ratio: float = Field(
        0.3, gt=0, lt=1, description="GraphSAGE: share of train edges that supervise while hidden from message passing."
    )
    id_dropout: float = Field(
        0.1, ge=0, le=1, description="GraphSAGE: chance of dropping a node's id embedding per step (1 = no ids)."
    )
    user_ids: bool = Field(
        False,
        description="GraphSAGE: users get id embeddings too (by default only items; a user is its neighbourhood).",
    )
    retrain: bool = Field(True, description="Refit from scratch for the best epoch count after early stopping.")
    final_fit: Literal["train", "all"] = Field(
        "train",
        description="What the refit learns from: 'train' (the protocol's train part; test figures are honest) or "
        "'all' (every positive, each user's latest included; for serving: no test figures).",
    )
    seed: int = Field(42, description="Seed of initialisation, shuffling and negative sampling.")
    device: Device = Field("auto", description="auto (CUDA when available), cpu or cuda.")
    num_threads: int = Field(
        1, ge=1, le=256, description="Torch CPU threads (ops are small: 1 beats 2 on a busy 2-core machine)."
    )
    progress: bool = Field(True, description="Show tqdm progress bars.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


#: Where a model trains best away from :class:`TrainConfig`'s (LightGCN's) defaults. LightGCN's (lr 0.02, decay
#: 0.99, patience 50) are ``bench.lightgcn``'s choice on ml-latest-small's validation: test NDCG@20 0.1065 over
#: five seeds, against 0.1001 for the former lr 0.04 that patience 20 stopped at epoch 38; ~200 epochs, not ~40.
#: GraphSAGE: chosen on validation by ``bench.quality --with-graphsage`` on ml-latest-small (a full-graph pass per
#: step makes extra negatives nearly free; a smaller learning rate keeps the deeper model stable; it converges in
#: 20-40 epochs), with the learning-rate decay it was tuned with.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "graphsage": {"lr": 0.01, "lr_decay": 0.97, "num_layers": 2, "negatives": 4, "max_epochs": 150, "patience": 15},
}


def read_config_file(file: Path) -> dict[str, Any]:
    """A YAML mapping of config field names to values (an empty file is an empty mapping).

    Raises:
        ConfigError: The file cannot be read or is not a mapping.
    """
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read training config {file}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"training config {file} must be a mapping of field: value")
    return loaded


if TYPE_CHECKING:  # gnn.blend imports this module: its config class is imported where it is used
    from gnn.blend.config import RankerConfig

    #: The typed config of one model: :class:`TrainConfig` (lightgcn, graphsage) or RankerConfig (blend).
    ModelConfig: TypeAlias = TrainConfig | RankerConfig


def resolve_config(model: str, file: Path | None = None, flags: Mapping[str, Any] | None = None) -> ModelConfig:
    """The typed config of ``model``: defaults < the model's defaults < ``file`` (YAML) < environment < ``flags``.

    ``lightgcn`` and ``graphsage`` resolve to a :class:`TrainConfig` (its ``model`` field set to ``model``);
    ``blend`` resolves to a :class:`gnn.blend.config.RankerConfig`: the file holds RankerConfig fields (a
    ``lightgcn`` mapping of TrainConfig fields replaces its LightGCN component's defaults as a whole), the
    flags in :data:`BLEND_LIGHTGCN_FLAGS` update that mapping, those in :data:`BLEND_FLAGS` the blend, and
    the environment is not read into the blend's fields.

    Args:
        model: ``blend``, ``lightgcn`` or ``graphsage``.
        file: Optional YAML mapping of the model's config fields to values.
        flags: Values given explicitly (CLI options); ``None`` values are ignored. For the blend, only the
            names in :data:`BLEND_LIGHTGCN_FLAGS` and :data:`BLEND_FLAGS` are read.

    Returns:
        The validated config of the model.

    Raises:
        ConfigError: Unknown model, the file cannot be read, names unknown fields, or a value is invalid.
    """
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if model == "blend":
        from gnn.blend.config import RankerConfig

        try:
            base = RankerConfig(**(read_config_file(file) if file is not None else {}))
        except ValidationError as exc:
            raise ConfigError(f"invalid blend config {file}: {exc}") from exc
        lightgcn = {**base.lightgcn, **{k: given[k] for k in BLEND_LIGHTGCN_FLAGS if k in given}}
        direct = {k: given[k] for k in BLEND_FLAGS if k in given}
        try:
            return RankerConfig(**{**base.model_dump(), **direct, "lightgcn": lightgcn})
        except ValidationError as exc:
            raise ConfigError(f"invalid blend settings: {exc}") from exc
    if model not in MODELS:
        raise ConfigError(f"unknown model {model!r}: use {', '.join(MODELS)}")
    return load_train_config(file, {**given, "model": model})


def load_train_config(file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Resolve a :class:`TrainConfig`: defaults < the model's :data:`MODEL_DEFAULTS` < ``file`` (YAML) <
    environment < ``overrides``.

    Args:
        file: Optional YAML mapping of field names to values.
        overrides: Values given explicitly (e.g. CLI flags); ``None`` values are ignored.

    Returns:
        The validated config.

    Raises:
        ConfigError: The file cannot be read, names unknown fields, or a value is invalid.
    """
    values: dict[str, Any] = read_config_file(file) if file is not None else {}
    values.update(EnvSettingsSource(TrainConfig)())
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    model = values.get("model", TrainConfig.model_fields["model"].default)
    values = {**MODEL_DEFAULTS.get(str(model), {}), **values}
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise ConfigError(f"invalid training config: {exc}") from exc


def resolve_device(device: Device) -> torch.device:
    """``auto`` → CUDA when available, else CPU.

    Raises:
        ConfigError: ``cuda`` was asked for but is not available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(device)


class GnnSettings(BaseSettings):
    """Where the training jobs keep snapshots and artifacts (prefix ``KGREC_``)."""

    model_config = SettingsConfigDict(env_prefix="KGREC_", env_file=".env", extra="ignore")

    artifacts_dir: Path = Field(Path(".kgrec/artifacts"), description="Root of versioned model artifacts.")
    snapshots_dir: Path = Field(Path(".kgrec/snapshots"), description="Where exported graph snapshots are kept.")
    train_config: Path | None = Field(
        None,
        description="The YAML file of hyper-parameters kgrec train/retrain use without --config (the chosen "
        "model's config fields, see resolve_config).",
    )


@lru_cache(maxsize=1)
def get_gnn_settings() -> GnnSettings:
    """Return the process-wide training-job settings."""
    return GnnSettings()
