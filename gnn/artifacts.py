"""Versioned model artifacts: embeddings, id maps, resolved config, seed, snapshot id, code version, metrics.

Layout of one artifact (``<root>/<model>/<version>/``)::

    embeddings.pt   {"users": [U, d] float32, "items": [I, d] float32}  (torch.save, loads with weights_only)
    id_maps.json    {"users": [user_id by user_idx], "items": [item_id by item_idx]}
    meta.json       model, version, created_at, seed, snapshot_id, code_version, config, metrics, history, timings
    curves.png      training curves (when the trainer drew them)
    catalog.json    each item's genres and year (:class:`ItemCatalog`): the API's filters when Neo4j is away
    ranker.npz, ranker.json   a blend's model (:meth:`gnn.blend.model.RankerModel.save`)
    ranker-*.hnsw   a blend's candidate index graphs (faiss), when the API scores its candidate set by default

A version directory is written under a temporary name (``.tmp-<host>-<pid>-…``), its files and the directory are
flushed to disk, and it is renamed into place, so a reader never sees a half-written artifact, even after a power
loss. Staging directories left by killed writes are removed by the next write (:func:`remove_stale_staging`). This
module imports no training code: the API loads artifacts through it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from schema.errors import DataError

EMBEDDINGS_FILE = "embeddings.pt"
MAPS_FILE = "id_maps.json"
META_FILE = "meta.json"
CATALOG_FILE = "catalog.json"
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
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
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
    """Write ``artifact`` as a new version under ``root/<model>/`` (atomically, durably) and return its directory.

    Stale staging directories of killed writes are removed first (:func:`remove_stale_staging`). The files and the
    staging directory are fsynced before the rename, and the model's directory after it.

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
    remove_stale_staging(parent)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(STAGING_PREFIX), dir=parent))
    try:
        torch.save(
            {
                "users": artifact.user_embeddings.detach().cpu().float().contiguous(),
                "items": artifact.item_embeddings.detach().cpu().float().contiguous(),
            },
            staging / EMBEDDINGS_FILE,
        )
        maps = {"users": artifact.user_ids, "items": artifact.item_ids}
        (staging / MAPS_FILE).write_text(json.dumps(maps), encoding="utf-8")
        (staging / META_FILE).write_text(json.dumps(artifact.meta(), indent=2, default=_json_default), encoding="utf-8")
        for name, data in (files or {}).items():
            (staging / name).write_bytes(data)
        for path in staging.rglob("*"):
            if path.is_file():
                fsync_path(path)
        fsync_path(staging)
        target = parent / artifact.version
        os.replace(staging, target)
        fsync_path(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    artifact.path = target
    return target


#: Name prefix of a version directory being written; the pointer's temporary file starts with ``.current-``.
STAGING_PREFIX = ".tmp-"
#: A staging entry whose owner cannot be checked is stale once nothing in it has changed for this long.
STALE_SECONDS = 3600.0


def staging_prefix(prefix: str) -> str:
    """``prefix`` plus this host and process (``.tmp-<host>-<pid>-``), so a later write can tell if its owner lives."""
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
    return f"{prefix}{host}-{os.getpid()}-"


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_staging(parent: Path, prefixes: tuple[str, ...] = (STAGING_PREFIX, ".current-")) -> list[Path]:
    """Remove the staging directories and temporary pointer files that killed writes left in ``parent``.

    An entry named by :func:`staging_prefix` on this host is stale when its process no longer runs, so a write in
    progress (its process alive) is never removed, however long it takes. An entry of another host, or one named
    without a process, is stale once nothing in it has changed for :data:`STALE_SECONDS`.

    Returns:
        What was removed.
    """
    host = staging_prefix("").split("-", 1)[0]
    removed: list[Path] = []
    for entry in parent.iterdir() if parent.is_dir() else ():
        prefix = next((p for p in prefixes if entry.name.startswith(p)), None)
        if prefix is None:
            continue
        owner = re.match(r"^([A-Za-z0-9_]+)-(\d+)-", entry.name[len(prefix) :])
        if owner is not None and owner.group(1) == host:
            stale = not _process_alive(int(owner.group(2)))
        else:
            stale = time.time() - _last_change(entry) > STALE_SECONDS
        if stale:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _last_change(entry: Path) -> float:
    """The newest modification time of ``entry`` and everything under it (0 when it vanished meanwhile)."""
    try:
        stamps = [entry.lstat().st_mtime]
        if entry.is_dir():
            stamps.extend(p.lstat().st_mtime for p in entry.rglob("*"))
    except OSError:
        return 0.0
    return max(stamps)


@dataclass(frozen=True)
class ItemCatalog:
    """Each item's genres and release year, saved beside a model so that the API can apply its business filters
    (the ``include_genres``/``exclude_genres``/``year_min``/``year_max`` of ``graph.recall.RecallFilters``) to a
    degraded answer while Neo4j is unreachable, with the semantics of the recall queries: a genre filter
    matches genre names exactly; a year bound keeps only items whose year is known.

    Attributes:
        item_ids: External ids by item_idx (the model's order).
        genres: Genre names by genre_idx.
        item_genres: ``[2, G]`` int64 (item_idx, genre_idx) pairs.
        item_year: ``[I]`` int64 years, ``-1`` unknown.
    """

    item_ids: list[str]
    genres: list[str]
    item_genres: np.ndarray
    item_year: np.ndarray

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": 1,
                "items": list(self.item_ids),
                "genres": list(self.genres),
                "item_genres": np.asarray(self.item_genres, dtype=np.int64).tolist(),
                "item_year": np.asarray(self.item_year, dtype=np.int64).tolist(),
            }
        ).encode("utf-8")

    @classmethod
    def read(cls, directory: Path) -> ItemCatalog | None:
        """The catalog saved in an artifact directory, or None (artifacts written before catalogs existed).

        Raises:
            DataError: The file exists but is unreadable.
        """
        path = directory / CATALOG_FILE
        if not path.is_file():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            pairs = np.asarray(raw["item_genres"], dtype=np.int64).reshape(2, -1)
            return cls(list(raw["items"]), list(raw["genres"]), pairs, np.asarray(raw["item_year"], dtype=np.int64))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"unreadable item catalog {path}: {exc}") from exc

    def aligned(self, item_ids: list[str]) -> ItemCatalog:
        """The same catalog in the item order ``item_ids`` (a model's order); items it lacks get no genres and an
        unknown year."""
        if list(item_ids) == self.item_ids:
            return self
        row = {i: k for k, i in enumerate(item_ids)}
        old_to_new = np.array([row.get(i, -1) for i in self.item_ids], dtype=np.int64)
        keep = old_to_new[self.item_genres[0]] >= 0
        pairs = np.stack([old_to_new[self.item_genres[0][keep]], self.item_genres[1][keep]])
        years = np.full(len(item_ids), -1, dtype=np.int64)
        present = old_to_new >= 0
        years[old_to_new[present]] = self.item_year[present]
        return ItemCatalog(list(item_ids), self.genres, pairs, years)

    def mask(
        self,
        *,
        include_genres: list[str] | None = None,
        exclude_genres: list[str] | None = None,
        year_min: int | None = None,
        year_max: int | None = None,
    ) -> np.ndarray:
        """``[I]`` bool in this catalog's item order: which items pass the filters (all when none is set)."""
        index = {g: k for k, g in enumerate(self.genres)}
        passes = np.ones(len(self.item_ids), dtype=bool)

        def having(names: list[str]) -> np.ndarray:
            wanted = np.array([index[g] for g in names if g in index], dtype=np.int64)
            out = np.zeros(len(self.item_ids), dtype=bool)
            out[self.item_genres[0][np.isin(self.item_genres[1], wanted)]] = True
            return out

        if include_genres:
            passes &= having(include_genres)
        if exclude_genres:
            passes &= ~having(exclude_genres)
        known = self.item_year >= 0
        if year_min is not None:
            passes &= known & (self.item_year >= year_min)
        if year_max is not None:
            passes &= known & (self.item_year <= year_max)
        return passes


def read_files(directory: Path, kind: str, *names: str) -> list[Any]:
    """The files ``names`` of a saved directory, in order: ``.json`` parsed, ``.pt`` loaded by ``torch.load``
    (tensors only, onto the CPU whatever device they were saved from: a model trained with ``--device cuda`` is
    served on a machine without one), ``.npz`` as a dict of arrays.

    Args:
        directory: The directory.
        kind: What it should be, for the error (``model artifact``, ``snapshot directory`` …).
        *names: File names.

    Raises:
        DataError: A file is missing.
    """
    out: list[Any] = []
    try:
        for name in names:
            file = directory / name
            if name.endswith(".pt"):
                out.append(torch.load(file, map_location="cpu", weights_only=True))
            elif name.endswith(".npz"):
                out.append(dict(np.load(file)))
            else:
                out.append(json.loads(file.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise DataError(f"not a {kind}: {directory} ({exc.filename} missing)") from exc
    return out


def load_artifact(path: Path) -> Artifact:
    """Read an artifact directory written by :func:`write_artifact`.

    Raises:
        DataError: Files are missing or inconsistent.
    """
    meta, maps, embeddings = read_files(path, "model artifact", META_FILE, MAPS_FILE, EMBEDDINGS_FILE)
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
