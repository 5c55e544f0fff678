"""Config precedence, artifacts round trip, serving an embedding artifact, and train() end to end on a small synthetic world."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from etl.synthetic import generate_world
from gnn.artifacts import Artifact, latest_version, list_versions, load_artifact, write_artifact
from gnn.config import load_train_config, resolve_device
from gnn.data import build_graph_snapshot
from gnn.evaluation import split_interactions
from gnn.serving import EmbeddingModel, ItemRows, Positives
from gnn.train import save_artifact, train
from schema.errors import ConfigError, DataError
from tests.unit.gnn.worlds import export_from_dataset


def test_config_precedence_defaults_file_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "train.yaml"
    file.write_text("lr: 0.01\nnum_layers: 2\nbatch_size: 128\n")
    monkeypatch.setenv("KGREC_TRAIN_NUM_LAYERS", "4")
    monkeypatch.setenv("KGREC_TRAIN_EMBEDDING_DIM", "32")
    config = load_train_config(file, {"embedding_dim": 16, "seed": None})
    assert config.reg == 1e-4  # default
    assert config.lr == 0.01 and config.batch_size == 128  # file
    assert config.num_layers == 4  # env beats file
    assert config.embedding_dim == 16  # CLI beats env; None = not given
    assert config.seed == 42


def test_config_model_defaults_sit_under_file_env_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gnn.config import MODEL_DEFAULTS, TrainConfig

    lightgcn = load_train_config(None, {"model": "lightgcn"})
    assert lightgcn.lr == TrainConfig.model_fields["lr"].default and lightgcn.negatives == 1
    sage = load_train_config(None, {"model": "graphsage"})
    for name, value in MODEL_DEFAULTS["graphsage"].items():
        assert getattr(sage, name) == value
    assert sage.lr != lightgcn.lr  # the table changes something
    file = tmp_path / "train.yaml"
    file.write_text("model: graphsage\nnegatives: 2\n")  # the model named in the file picks the defaults
    monkeypatch.setenv("KGREC_TRAIN_PATIENCE", "3")
    config = load_train_config(file, {"lr": 0.05})
    assert config.model == "graphsage" and config.num_layers == MODEL_DEFAULTS["graphsage"]["num_layers"]
    assert config.negatives == 2 and config.patience == 3 and config.lr == 0.05


def test_config_rejects_unknown_and_invalid(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError):
        load_train_config(file)
    with pytest.raises(ConfigError):
        load_train_config(None, {"lr": -1})


def test_every_config_field_is_described() -> None:
    from gnn.config import TrainConfig

    for name, info in TrainConfig.model_fields.items():
        assert info.description and "\n" not in info.description, name


def test_resolve_device() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError):
            resolve_device("cuda")


def _artifact() -> Artifact:
    return Artifact(
        model="lightgcn",
        user_ids=["u1", "u2"],
        item_ids=["a", "b", "c"],
        user_embeddings=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        item_embeddings=torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]]),
        config={"lr": 0.1},
        seed=7,
        snapshot_id="abc123",
        code_version="test",
        metrics={"test": {"ndcg@20": 0.5}},
    )


def test_artifact_round_trip_and_versions(tmp_path: Path) -> None:
    first = write_artifact(_artifact(), tmp_path)
    second = write_artifact(_artifact(), tmp_path, files={"note.txt": b"hi"})
    assert list_versions(tmp_path, "lightgcn") == [first, second]
    assert latest_version(tmp_path, "lightgcn") == second
    assert (second / "note.txt").read_bytes() == b"hi"
    back = load_artifact(second)
    assert back.user_ids == ["u1", "u2"] and back.seed == 7 and back.snapshot_id == "abc123"
    assert torch.equal(back.item_embeddings, _artifact().item_embeddings)
    assert back.metrics == {"test": {"ndcg@20": 0.5}} and back.version == second.name
    assert not [p for p in (tmp_path / "lightgcn").iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(DataError):
        load_artifact(tmp_path / "nope")


def test_embedding_model_scores_by_dot_products(tmp_path: Path) -> None:
    model = EmbeddingModel(write_artifact(_artifact(), tmp_path))
    assert model.kind == "lightgcn" and model.knows_user("u1") and not model.knows_user("nobody")
    scores = model.scores("u1", Positives.of([("zz", None)]))  # a known user: their embedding (positives not needed)
    assert scores.dtype == np.float32 and scores.tolist() == [2.0, 1.0, 0.0]
    assert model.scores("u2", Positives.of([])).tolist() == [0.0, 1.0, 3.0]
    # a user the model does not know: the mean of their known positives' item embeddings, else nothing
    assert model.scores("nobody", Positives.of([("a", 1), ("zz", None)])).tolist() == [4.0, 2.0, 0.0]
    assert model.scores("nobody", Positives.of([("zz", None)])).tolist() == [0.0, 0.0, 0.0]
    vectors = model.item_vectors()
    assert vectors is not None and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    cosine = vectors @ vectors[model.item_index["a"]]
    cosine[model.item_index["a"]] = -np.inf
    assert model.item_ids[int(np.argmax(cosine))] == "b"  # the most similar item to a


def test_serving_imports_no_training_code() -> None:
    import subprocess
    import sys

    training = (
        "gnn.train",
        "gnn.models",
        "gnn.jobs",
        "gnn.evaluation",
        "gnn.blend.fit",
        "gnn.blend.search",
        "gnn.blend.weights",
        "gnn.blend.evaluate",
        "matplotlib",
    )
    code = f"import sys, gnn.serving; print([m for m in {training!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[3]
    )
    assert out.stdout.strip() == "[]"


def test_train_end_to_end_on_synthetic_world(tmp_path: Path) -> None:
    world = generate_world(users=80, items=120, seed=5)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot)
    config = load_train_config(
        None,
        {
            "embedding_dim": 16,
            "num_layers": 2,
            "lr": 0.02,
            "batch_size": 256,
            "max_epochs": 6,
            "patience": 2,
            "progress": False,
            "device": "cpu",
            "num_threads": 1,
        },
    )
    artifact = train(snapshot, split, config)
    assert artifact.snapshot_id == snapshot.snapshot_id and artifact.seed == 42
    assert artifact.user_embeddings.shape == (80, 16) and artifact.item_embeddings.shape == (120, 16)
    assert 1 <= artifact.metrics["best_epoch"] <= 6
    assert 0.0 <= artifact.metrics["test"]["ndcg@20"] <= 1.0
    assert {"loss", "val_ndcg", "epoch", "seconds"} <= set(artifact.history[0])
    path = save_artifact(artifact, tmp_path)
    assert (path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    served = EmbeddingModel(path)
    user = snapshot.users.ids[0]
    assert served.knows_user(user) and served.scores(user, Positives.of([])).shape == (120,)
    other = build_graph_snapshot(export_from_dataset(generate_world(users=20, items=30, seed=1).dataset))
    with pytest.raises(DataError):
        train(other, split, config)  # a split of another snapshot


def test_item_rows_answer_the_models_rows_and_minus_one_for_unknown_ids() -> None:
    """:class:`ItemRows`: the same rows as the model's dict, -1 for unknown ids, in the order asked, whatever the
    container and however many ids."""
    ids = [f"i{k}" for k in range(3_000)]
    rows = ItemRows({item: k for k, item in enumerate(ids)})
    rng = np.random.default_rng(0)
    for n in (0, 1, 17, 999, 1_000, 1_001, 2_000):
        asked = [ids[int(k)] if k % 7 else f"unknown{k}" for k in rng.choice(len(ids), n, replace=False)]
        expected = np.array([int(a[1:]) if a.startswith("i") else -1 for a in asked], dtype=np.int64)
        for container in (asked, np.asarray(asked, dtype=object)):
            got = rows(container)
            assert got.dtype == np.int64 and np.array_equal(got, expected)
