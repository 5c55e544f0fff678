"""Promotion bookkeeping without a database: current pointer, atomic switch, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gnn.artifacts import Artifact, list_versions, write_artifact
from gnn.data import IdMap
from gnn.jobs import artifact_score_fn, promote, prune_versions
from gnn.serving import current_version


def _write(root: Path, val: float) -> Path:
    artifact = Artifact(
        model="lightgcn",
        user_ids=["u1"],
        item_ids=["a", "b"],
        user_embeddings=torch.ones(1, 2),
        item_embeddings=torch.eye(2),
        config={},
        seed=1,
        snapshot_id="s1",
        code_version="t",
        metrics={"validation": {"ndcg@20": val}},
    )
    return write_artifact(artifact, root)


def test_promote_switches_current_atomically(tmp_path: Path) -> None:
    assert current_version(tmp_path, "lightgcn") is None
    first, second = _write(tmp_path, 0.1), _write(tmp_path, 0.2)
    promote(first)
    assert current_version(tmp_path, "lightgcn") == first
    promote(second, {"validation": 0.2})
    assert current_version(tmp_path, "lightgcn") == second
    record = json.loads((tmp_path / "lightgcn" / "current.json").read_text())
    assert record["version"] == second.name and record["validation"] == 0.2
    assert not [p for p in (tmp_path / "lightgcn").iterdir() if p.name.startswith(".current-")]


def test_prune_keeps_newest_and_current(tmp_path: Path) -> None:
    versions = [_write(tmp_path, 0.1 * k) for k in range(5)]
    promote(versions[0])
    deleted = prune_versions(tmp_path, "lightgcn", keep=2)
    assert deleted == versions[1:3]
    assert list_versions(tmp_path, "lightgcn") == [versions[0], *versions[3:]]


def test_artifact_scores_map_ids_between_snapshots(tmp_path: Path) -> None:
    artifact = Artifact(
        model="lightgcn",
        user_ids=["u1", "u2"],
        item_ids=["a", "b"],
        user_embeddings=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        item_embeddings=torch.tensor([[3.0, 0.0], [0.0, 5.0]]),
        config={},
        seed=1,
        snapshot_id="s",
        code_version="t",
    )
    # The new snapshot orders things differently and has a new user and a new item.
    score = artifact_score_fn(artifact, IdMap(["u2", "u3", "u1"]), IdMap(["b", "c", "a"]))
    out = score(torch.tensor([0, 1, 2]))
    assert out[0].tolist() == [5.0, float("-inf"), 0.0]
    assert out[1].tolist() == [0.0, float("-inf"), 0.0]
    assert out[2].tolist() == [0.0, float("-inf"), 3.0]


def test_write_removes_staging_left_by_killed_writes_but_never_one_in_use(tmp_path: Path) -> None:
    import os
    import subprocess
    import time

    from gnn.artifacts import staging_prefix

    parent = tmp_path / "lightgcn"
    parent.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "60"])
    hour_ago = time.time() - 7200

    def staging(name: str, old: bool = False) -> Path:
        path = parent / name
        path.mkdir()
        (path / "embeddings.pt").write_bytes(b"\0" * (1 << 20))
        if old:
            for p in (path / "embeddings.pt", path):
                os.utime(p, (hour_ago, hour_ago))
        return path

    try:
        host = staging_prefix("").split("-")[0]
        killed = staging(f".tmp-{host}-{dead.pid}-a1")
        running = staging(f".tmp-{host}-{alive.pid}-b2", old=True)  # old but its process runs: in use
        mine = staging(staging_prefix(".tmp-") + "c3", old=True)
        legacy_old, legacy_fresh = staging(".tmp-k9x2ab7q", old=True), staging(".tmp-fresh123")
        old_pointer = parent / ".current-zz81pq0a"
        old_pointer.write_text('{"version": ', encoding="utf-8")
        os.utime(old_pointer, (hour_ago, hour_ago))

        written = _write(tmp_path, 0.1)
        promote(written)
    finally:
        alive.kill()
        alive.wait()
    left = {p.name for p in parent.iterdir()}
    assert killed.name not in left and legacy_old.name not in left and old_pointer.name not in left
    assert {running.name, mine.name, legacy_fresh.name, written.name, "current.json"} == left


def test_written_artifact_and_pointer_are_complete_and_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    from gnn.artifacts import load_artifact

    first = _write(tmp_path, 0.3)
    promote(first, {"validation": 0.3})
    loaded = load_artifact(current_version(tmp_path, "lightgcn") or tmp_path)
    assert torch.equal(loaded.item_embeddings, torch.eye(2)) and loaded.metrics["validation"]["ndcg@20"] == 0.3
    assert json.loads((tmp_path / "lightgcn" / "current.json").read_text())["version"] == first.name

    artifact = load_artifact(first)
    with pytest.raises(FileNotFoundError):
        write_artifact(artifact, tmp_path, files={"missing-folder/curves.png": b"png"})
    assert sorted(p.name for p in (tmp_path / "lightgcn").iterdir()) == sorted([first.name, "current.json"])
