"""Versioned model artifacts: embeddings, id maps, resolved config, seed, snapshot id, code version, metrics.

Layout of one artifact (``<root>/<model>/<version>/``)::

    embeddings.pt   {"users": [U, d] float32, "items": [I, d] float32}  (torch.save, loads with weights_only)
    id_maps.json    {"users": [user_id by user_idx], "items": [item_id by item_idx]}
    meta.json       model, version, created_at, seed, snapshot_id, code_version, config, metrics, history, timings
    curves.png      training curves (when the trainer drew them)

A version directory is written under a temporary name and renamed into place, so a reader never sees a
half-written artifact. This module imports no training code: the API loads artifacts through it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from schema.errors import DataError

EMBEDDINGS_FILE = "embeddings.pt"
MAPS_FILE = "id_maps.json"
META_FILE = "meta.json"
FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^\d{8}T\d{6}\d*Z-[^./]+$")


@dataclass
class Artifact:
    """A trained model as the serving side needs it, plus its provenance.

    Attributes:
        model: Model name (``lightgcn``).
        user_ids, item_ids: External ids by index (row ``k`` of an embedding belongs to ``ids[k]``).
        user_embeddings: ``[U, d]`` float32; item_embeddings: ``[I, d]`` float32. Score = dot product.
        config: The resolved hyper-parameters.
        seed: Seed of the run.
        snapshot_id: Id of the data snapshot it was trained on.
        code_version: ``git describe`` of the code (or the package version).
        metrics: ``{"validation": {...}, "test": {...}}`` figures of the evaluation protocol.
        history: Per-epoch records (loss, validation NDCG@20, seconds).
        timings: Seconds per phase.
        version: Directory name once written; path: where it lies.
    """

    model: str
    user_ids: list[str]
    item_ids: list[str]
    user_embeddings: Tensor
    item_embeddings: Tensor
    config: dict[str, Any]
    seed: int
    snapshot_id: str
    code_version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    created_at: str = ""
    version: str | None = None
    path: Path | None = None

    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "model": self.model,
            "version": self.version,
            "created_at": self.created_at,
            "seed": self.seed,
            "snapshot_id": self.snapshot_id,
            "code_version": self.code_version,
            "embedding_dim": int(self.user_embeddings.size(1)),
            "num_users": len(self.user_ids),
            "num_items": len(self.item_ids),
            "config": self.config,
            "metrics": self.metrics,
            "history": self.history,
            "timings": self.timings,
        }


def code_version(cwd: Path | None = None) -> str:
    """``git describe --always --dirty`` of the source tree, else the installed package version."""
    here = cwd or Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here, capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"kgrec-{version('kgrec')}"
        except PackageNotFoundError:
            return "unknown"


def new_version(snapshot_id: str, now: datetime | None = None) -> str:
    """A sortable version name: UTC time to the microsecond plus the snapshot id."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{snapshot_id[:12] or '0'}"


def write_artifact(artifact: Artifact, root: Path, files: dict[str, bytes] | None = None) -> Path:
    """Write ``artifact`` as a new version under ``root/<model>/`` (atomically) and return its directory.

    Args:
        artifact: What to write; ``version``, ``created_at`` and ``path`` are set here.
        root: Artifacts root.
        files: Extra files to put in the directory (e.g. ``{"curves.png": png_bytes}``).
    """
    now = datetime.now(UTC)
    artifact.created_at = artifact.created_at or now.isoformat(timespec="seconds")
    artifact.version = new_version(artifact.snapshot_id, now)
    parent = root / artifact.model
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        torch.save(
            {"users": artifact.user_embeddings.detach().cpu().float().contiguous(),
             "items": artifact.item_embeddings.detach().cpu().float().contiguous()},
            staging / EMBEDDINGS_FILE,
        )
        maps = {"users": artifact.user_ids, "items": artifact.item_ids}
        (staging / MAPS_FILE).write_text(json.dumps(maps), encoding="utf-8")
        (staging / META_FILE).write_text(json.dumps(artifact.meta(), indent=2, default=_json_default), encoding="utf-8")
        for name, data in (files or {}).items():
            (staging / name).write_bytes(data)
        target = parent / artifact.version
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    artifact.path = target
    return target


def load_artifact(path: Path) -> Artifact:
    """Read an artifact directory written by :func:`write_artifact`.

    Raises:
        DataError: Files are missing or inconsistent.
    """
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        maps = json.loads((path / MAPS_FILE).read_text(encoding="utf-8"))
        embeddings = torch.load(path / EMBEDDINGS_FILE, weights_only=True)
    except FileNotFoundError as exc:
        raise DataError(f"not a model artifact: {path} ({exc.filename} missing)") from exc
    if meta.get("format") != FORMAT_VERSION:
        raise DataError(f"artifact {path} has format {meta.get('format')}, expected {FORMAT_VERSION}")
    users, items = embeddings["users"], embeddings["items"]
    if users.size(0) != len(maps["users"]) or items.size(0) != len(maps["items"]):
        raise DataError(f"artifact {path}: embeddings do not match the id maps")
    return Artifact(
        model=meta["model"],
        user_ids=list(maps["users"]),
        item_ids=list(maps["items"]),
        user_embeddings=users,
        item_embeddings=items,
        config=meta["config"],
        seed=int(meta["seed"]),
        snapshot_id=meta["snapshot_id"],
        code_version=meta["code_version"],
        metrics=meta.get("metrics", {}),
        history=meta.get("history", []),
        timings=meta.get("timings", {}),
        created_at=meta.get("created_at", ""),
        version=meta.get("version"),
        path=path,
    )


def list_versions(root: Path, model: str) -> list[Path]:
    """Artifact directories of ``model``, oldest first (temporary directories are skipped)."""
    parent = root / model
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and _VERSION_RE.match(p.name))


def latest_version(root: Path, model: str) -> Path | None:
    """The newest artifact directory of ``model``, if any."""
    versions = list_versions(root, model)
    return versions[-1] if versions else None


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Tensor):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
