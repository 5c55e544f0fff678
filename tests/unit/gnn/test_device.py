"""``--device cuda`` without a GPU: choosing the device, and serving on a CPU machine what a CUDA machine trained.

torch.save records each tensor's device; an artifact written by a CUDA fit whose tensors were not moved to the CPU
first would not load where there is no CUDA unless loading maps it (``map_location``). The artifact below is written
by the real save path with every storage tagged ``cuda:0``, byte for byte what a CUDA machine would write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from gnn.artifacts import Artifact, load_artifact, write_artifact
from gnn.config import resolve_device
from gnn.serving import EmbeddingModel, Positives


@contextmanager
def saved_as_if_from_cuda() -> Iterator[None]:
    """While the block runs, torch.save tags CPU storages as ``cuda:0`` (loading is unaffected)."""
    entry = (0, lambda storage: "cuda:0" if storage.device.type == "cpu" else None, lambda obj, location: None)
    registry = torch.serialization._package_registry
    registry.insert(0, entry)
    try:
        yield
    finally:
        registry.remove(entry)


def _artifact() -> Artifact:
    return Artifact(
        model="lightgcn",
        user_ids=["u1", "u2"],
        item_ids=["a", "b", "c"],
        user_embeddings=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        item_embeddings=torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]]),
        config={"device": "cuda"},
        seed=7,
        snapshot_id="abc123",
        code_version="test",
        metrics={},
    )


def test_an_artifact_trained_on_cuda_serves_on_a_cpu_machine(tmp_path: Path) -> None:
    with saved_as_if_from_cuda():
        path = write_artifact(_artifact(), tmp_path)
    if not torch.cuda.is_available():  # the file really names CUDA: a plain load fails here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path / "embeddings.pt", weights_only=True)
    back = load_artifact(path)
    assert back.user_embeddings.device.type == "cpu" and torch.equal(back.item_embeddings, _artifact().item_embeddings)
    model = EmbeddingModel(path)
    assert model.scores("u2", Positives.of([])).tolist() == [0.0, 1.0, 3.0]
    assert np.allclose(np.linalg.norm(model.item_vectors(), axis=1), 1.0)


def test_device_resolution_when_cuda_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
