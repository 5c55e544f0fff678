"""One resolver, one typed config per model: TrainConfig for lightgcn/graphsage, RankerConfig for the blend."""

from __future__ import annotations

from pathlib import Path

import pytest

from gnn.blend.config import RankerConfig
from gnn.config import MODEL_DEFAULTS, TrainConfig, load_train_config, resolve_config
from schema.errors import ConfigError


def test_embedding_models_resolve_to_their_train_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "train.yaml"
    file.write_text("model: lightgcn\nlr: 0.01\nbatch_size: 128\nnum_layers: 2\n")
    monkeypatch.setenv("KGREC_TRAIN_NUM_LAYERS", "4")
    config = resolve_config("graphsage", file, {"embedding_dim": 16, "seed": None, "progress": False})
    assert isinstance(config, TrainConfig)
    assert config.model == "graphsage"  # the model asked for beats the file's
    assert config.negatives == MODEL_DEFAULTS["graphsage"]["negatives"]  # the model's defaults
    assert config.lr == 0.01 and config.batch_size == 128  # file beats the model's defaults
    assert config.num_layers == 4  # environment beats file
    assert config.embedding_dim == 16 and config.seed == 42 and config.progress is False  # flags; None = not given
    assert config == load_train_config(file, {"model": "graphsage", "embedding_dim": 16, "progress": False})
    assert resolve_config("lightgcn") == load_train_config(None, {"model": "lightgcn"})


def test_blend_flags_go_to_its_lightgcn_component_or_to_the_blend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KGREC_TRAIN_SEED", "7")  # a TrainConfig field: not read into the blend's
    default = resolve_config("blend")
    assert isinstance(default, RankerConfig) and default == RankerConfig()
    flags = {
        "model": "blend",
        "max_epochs": 3,
        "embedding_dim": 8,
        "lr": 0.5,
        "patience": 2,
        "seed": 3,
        "device": "cpu",
        "progress": False,
        "num_threads": 2,
        "cold_slots": 0,
        "batch_size": 9,
    }
    config = resolve_config("blend", None, flags)
    assert config.lightgcn == {**RankerConfig().lightgcn, "max_epochs": 3, "embedding_dim": 8, "lr": 0.5, "patience": 2}
    assert (config.seed, config.device, config.progress, config.num_threads, config.cold_slots) == (
        3,
        "cpu",
        False,
        2,
        0,
    )
    file = tmp_path / "blend.yaml"  # a lightgcn mapping in the file replaces the component's defaults whole
    file.write_text("component_search: false\ncold_slots: 2\nseed: 5\nlightgcn: {lr: 0.01, num_layers: 2}\n")
    config = resolve_config("blend", file, {"max_epochs": 4, "cold_slots": 1})
    assert config.component_search is False and config.seed == 5 and config.cold_slots == 1  # the flag wins
    assert config.lightgcn == {"lr": 0.01, "num_layers": 2, "max_epochs": 4}


def test_unknown_fields_models_and_values_are_config_errors(tmp_path: Path) -> None:
    file = tmp_path / "blend.yaml"
    file.write_text("als_factorz: 8\n")
    with pytest.raises(ConfigError, match="(?s)invalid blend config .*als_factorz"):
        resolve_config("blend", file)
    with pytest.raises(ConfigError, match="invalid training config"):
        resolve_config("lightgcn", file)
    with pytest.raises(ConfigError, match="invalid blend settings"):
        resolve_config("blend", None, {"device": "gpu"})
    with pytest.raises(ConfigError, match="unknown model"):
        resolve_config("transformer")
