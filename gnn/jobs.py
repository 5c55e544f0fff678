"""The training jobs behind ``kgrec train``, ``kgrec evaluate`` and ``kgrec retrain``.

Each job receives its settings and the typed config of its model (:func:`gnn.config.resolve_config`), opens
what it needs and returns a result the CLI prints:

* :func:`export_job` — Neo4j → snapshot directory (``<snapshots_dir>/<snapshot_id>``);
* :func:`train_job` — export → split → train → evaluate → write a new artifact version;
* :func:`evaluate_job` — measure an existing artifact on a fresh export's test split;
* :func:`retrain_job` — train, then promote the new version only if its validation NDCG@20 is not worse
  than the current model's; keep the last N versions; switch atomically.

The jobs mark their steps as :mod:`gnn.phases` (``export``, ``split``, ``fit``, …): the CLI prints one line per
phase when its output is not a terminal, and ``bench.scaling`` times them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gnn.artifacts import (
    CATALOG_FILE,
    Artifact,
    fsync_path,
    list_versions,
    load_artifact,
    remove_stale_staging,
    staging_prefix,
    write_artifact,
)
from gnn.config import GnnSettings, TrainConfig
from gnn.data import GraphSnapshot, IdMap, build_graph_snapshot
from gnn.evaluation import Fold, ScoreFn, Split, embedding_score_fn, evaluate, split_interactions
from gnn.phases import phase
from gnn.serving import BY_SIZE, CURRENT_FILE, current_version
from gnn.train import save_artifact, train
from graph.driver import open_driver
from graph.embeddings import write_embeddings
from graph.export import export_graph
from graph.settings import Neo4jSettings
from schema.errors import DataError

if TYPE_CHECKING:
    from gnn.blend.config import RankerConfig
    from gnn.config import ModelConfig

log = logging.getLogger(__name__)

GATE_METRIC = "ndcg@20"
#: Below this share of the current version's items still in the graph, the current version was trained on another
#: catalogue (a load with ``--replace`` of other data): it can no longer rank the graph, so the new version is
#: promoted whatever the two validation figures, which then measure different data sets.
MIN_ITEMS_KEPT = 0.5


@contextmanager
def timed_phase(name: str, timings: dict[str, float] | None = None, **data: Any) -> Iterator[dict[str, Any]]:  # noqa: ANN401 - data is free-form
    """:func:`gnn.phases.phase` ``name`` whose wall seconds also go to ``timings[name]`` when it ends."""
    started = time.perf_counter()
    with phase(name, **data) as published:
        yield published
    if timings is not None:
        timings[name] = time.perf_counter() - started


def export_job(neo4j: Neo4jSettings, settings: GnnSettings) -> tuple[GraphSnapshot, Path]:
    """Export the graph and save the snapshot (reused when the same content was saved before).

    Returns:
        The snapshot and its directory.

    Raises:
        DatabaseUnavailableError: Neo4j is not reachable.
    """
    with open_driver(neo4j) as driver:
        export = export_graph(driver, neo4j.database)
    snapshot = build_graph_snapshot(export)
    directory = settings.snapshots_dir / snapshot.snapshot_id
    if not (directory / "snapshot.json").is_file():
        snapshot.save(directory)
    return snapshot, directory


def model_name(config: ModelConfig) -> str:
    """The model a config trains: ``lightgcn`` or ``graphsage`` (a :class:`TrainConfig`), else ``blend``."""
    return config.model if isinstance(config, TrainConfig) else "blend"


def serving_split(snapshot: GraphSnapshot) -> Split:
    """The split of a version meant for serving (``kgrec retrain``): the protocol's validation carved out of every
    positive, no test part. Such a version reports no test figures and is refitted on every positive, so a test
    part would only take data from the fits that choose its settings: with it, the component search and the ranker
    weights would see 72% of the positives instead of the 90% that ``bench.quality`` gives them on its train part,
    and would choose differently (docs/evaluation.md). On a graph that holds a protocol split's train part (as in
    ``bench.acceptance``) the fit and validation parts are the benchmark's own (temporal split) or drawn the same
    way (seeded random split)."""
    return split_interactions(snapshot, test_fraction=0.0)


def export_and_split(
    neo4j: Neo4jSettings, settings: GnnSettings, timings: dict[str, float] | None = None, *, serving: bool = False
) -> tuple[GraphSnapshot, Split]:
    """Phases ``export`` (:func:`export_job`) and ``split`` (the protocol's split, seed 42, or with ``serving``
    :func:`serving_split`), the latter publishing ``snapshot`` and ``split`` in its data; their seconds go to
    ``timings`` when given."""
    with timed_phase("export", timings):
        snapshot, _ = export_job(neo4j, settings)
    with timed_phase("split", timings, snapshot=snapshot) as data:
        data["split"] = split = serving_split(snapshot) if serving else split_interactions(snapshot)
    return snapshot, split


def train_job(neo4j: Neo4jSettings, settings: GnnSettings, config: ModelConfig) -> Artifact:
    """``kgrec train``: export, split (protocol seed 42), train, evaluate, write a new artifact version.

    Phases: ``export``, ``split``, ``fit`` (for the blend, also its test figures and the artifact's files) and,
    for the embedding models, ``save``. A RankerConfig trains the two-stage ranker of :mod:`gnn.blend` instead
    of one embedding model. The new version is not promoted (see :func:`retrain_job`, or :func:`promote`).

    Args:
        neo4j: Where the graph is.
        settings: Where snapshots and artifacts go.
        config: The model's config (:func:`gnn.config.resolve_config`).
    """
    snapshot, split = export_and_split(neo4j, settings)
    if not isinstance(config, TrainConfig):
        with phase("fit"):
            return train_blend(snapshot, split, settings, config, final="train")
    with phase("fit"):
        artifact = train(snapshot, split, config)
    with phase("save"):
        save_artifact(artifact, settings.artifacts_dir, snapshot.item_catalog())
    return artifact


def train_blend(
    snapshot: GraphSnapshot, split: Split, settings: GnnSettings, config: RankerConfig, final: str
) -> Artifact:
    """Fit the blend (:func:`gnn.blend.fit.fit_ranker`) and write it as an artifact of model ``blend``.

    The artifact holds the ranker's files (``ranker.npz``, ``ranker.json``) beside the usual embeddings and
    id maps (its LightGCN component's embeddings), so that listing, the promotion gate and publishing the
    embeddings to Neo4j work as for any model; and, when the API would score the blend's candidate set by default
    (:data:`gnn.serving.BY_SIZE`: 50,000 items or more, or a fitted ``serve_candidates``), its candidate index's HNSW
    graphs, which every API process then reads instead of building (phase ``candidate_graphs``). Test figures are
    measured only when ``final == "train"``.

    Args:
        snapshot: The exported graph.
        split: Its protocol split.
        settings: Where artifacts go (the promoted blend's component search may be reused).
        config: The blend's config (:func:`gnn.config.resolve_config` of ``blend``).
        final: What the components are refitted on: ``train`` or ``all``.
    """
    from gnn.artifacts import code_version
    from gnn.blend.evaluate import ranked_lists
    from gnn.blend.fit import fit_ranker
    from gnn.blend.search import reusable_search

    # the promoted blend's component search stands in for a new one while the data has barely changed
    reuse = reusable_search(current_version(settings.artifacts_dir, "blend"), config, int(split.fit.size(1)))
    model = fit_ranker(snapshot, split, config, final=final, reuse=reuse)  # type: ignore[arg-type]
    report = model.meta.get("validation", {})
    metrics: dict[str, Any] = {
        "validation": {
            GATE_METRIC: float(report.get("val_ndcg20", 0.0)),
            **{k: v for k, v in report.items() if isinstance(v, (int, float, str))},
        },
        "test": None,
        "best_epoch": model.meta.get("lightgcn_epochs"),
        "split": split.describe(),
    }
    search = report.get("component_search")
    if search:  # what the CLI shows: the components' settings and whether they were searched on this data
        metrics["component_search"] = {
            **search["chosen"],
            "reused": bool(search.get("reused")),
            "seconds": search.get("seconds"),
            "extra_fits": search.get("extra_fits", 0),
            "grid_edges": search.get("grid_edges", []),
        }
    if final == "train":
        started = time.perf_counter()
        # the lists the API shows (score order with the reserved new-arrival positions), as bench.quality measures
        metrics["test"] = evaluate(
            ranked_lists(model, split.testing()), split.testing(), item_features=snapshot.item_genre_matrix()
        )
        model.meta.setdefault("timings", {})["test_scoring"] = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as staging:
        graphs = BY_SIZE.resolve(model.config.serve_candidates, model.num_items) is not None
        model.save(Path(staging), candidate_graphs=graphs)
        files = {p.name: p.read_bytes() for p in Path(staging).iterdir() if p.is_file()}
    files[CATALOG_FILE] = snapshot.item_catalog().to_bytes()
    artifact = Artifact(
        model="blend",
        user_ids=model.user_ids,
        item_ids=model.item_ids,
        user_embeddings=torch.from_numpy(np.ascontiguousarray(model.components.user_emb, dtype=np.float32)),
        item_embeddings=torch.from_numpy(np.ascontiguousarray(model.components.item_emb, dtype=np.float32)),
        config={**config.model_dump(mode="json"), "final_fit": final},
        seed=config.seed,
        snapshot_id=snapshot.snapshot_id,
        code_version=code_version(),
        metrics=metrics,
        timings={k: float(v) for k, v in model.meta.get("timings", {}).items()},
    )
    write_artifact(artifact, settings.artifacts_dir, files=files)
    return artifact


def artifact_score_fn(artifact: Artifact, users: IdMap, items: IdMap) -> ScoreFn:
    """Scores of an artifact in the index space of another snapshot (ids matched through both maps).

    Users the artifact does not know score 0 everywhere; items it does not know score ``-inf``.
    """
    user_rows = torch.from_numpy(IdMap(artifact.user_ids).to_index(users.ids, strict=False))
    item_rows = torch.from_numpy(IdMap(artifact.item_ids).to_index(items.ids, strict=False))
    dim = artifact.user_embeddings.size(1)
    user_emb = torch.cat([artifact.user_embeddings, torch.zeros(1, dim)])[user_rows]  # -1 -> zero row
    item_emb = torch.cat([artifact.item_embeddings, torch.zeros(1, dim)])[item_rows]
    return embedding_score_fn(user_emb, item_emb, unknown_items=item_rows < 0)


def evaluate_artifact(artifact: Artifact, snapshot: GraphSnapshot, fold: Fold) -> dict[str, Any]:
    """The protocol's figures of ``artifact`` on ``fold`` of ``snapshot``.

    Raises:
        DataError: A blend evaluated on another snapshot than its own (its scores use the histories it was
            fitted on).
    """
    if artifact.model == "blend":
        from gnn.blend.evaluate import ranked_lists
        from gnn.blend.model import RankerModel

        if artifact.snapshot_id != snapshot.snapshot_id or artifact.path is None:
            raise DataError(
                f"a blend is evaluated on its own snapshot {artifact.snapshot_id}; the graph is now "
                f"{snapshot.snapshot_id} (run kgrec train --model blend)"
            )
        # the lists the API shows: score order with the reserved new-arrival positions
        return evaluate(
            ranked_lists(RankerModel.load(artifact.path), fold), fold, item_features=snapshot.item_genre_matrix()
        )
    return evaluate(
        artifact_score_fn(artifact, snapshot.users, snapshot.items), fold, item_features=snapshot.item_genre_matrix()
    )


def evaluate_job(
    neo4j: Neo4jSettings, settings: GnnSettings, artifact_path: Path | None = None, model: str = "lightgcn"
) -> dict[str, Any]:
    """``kgrec evaluate``: the test figures of an artifact (default: the current one) on a fresh export.

    Note that an artifact trained on an older snapshot may have seen some of today's test interactions;
    the figures are exact for an artifact trained on the same snapshot (its ``snapshot_id`` is reported).
    Phases: ``export``, ``split``, ``evaluate``.

    Raises:
        DataError: No artifact given and none is current.
    """
    path = artifact_path or current_version(settings.artifacts_dir, model)
    if path is None:
        raise DataError(f"no {model} artifact to evaluate under {settings.artifacts_dir} (run kgrec train)")
    artifact = load_artifact(path)
    snapshot, split = export_and_split(neo4j, settings)
    started = time.perf_counter()
    with phase("evaluate"):
        metrics = evaluate_artifact(artifact, snapshot, split.testing())
    return {
        "artifact": str(path),
        "artifact_snapshot_id": artifact.snapshot_id,
        "snapshot_id": snapshot.snapshot_id,
        "split": split.describe(),
        "scoring_seconds": time.perf_counter() - started,
        "test": metrics,
    }


# --- promotion -------------------------------------------------------------------------------------------


def promote(artifact_dir: Path, reason: dict[str, Any] | None = None) -> None:
    """Make ``artifact_dir`` the current version of its model, atomically and durably.

    The pointer is written to a temporary file, fsynced, renamed over ``current.json``, and the directory is fsynced;
    temporary pointer files of killed promotions are removed first.
    """
    parent = artifact_dir.parent
    record = {
        "version": artifact_dir.name,
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **(reason or {}),
    }
    remove_stale_staging(parent, (".current-",))
    handle, temp = tempfile.mkstemp(prefix=staging_prefix(".current-"), dir=parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(record, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, parent / CURRENT_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_path(parent)


def prune_versions(root: Path, model: str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` versions, never the current one; returns what was deleted."""
    current = current_version(root, model)
    versions = list_versions(root, model)
    doomed = [v for v in versions[: max(len(versions) - keep, 0)] if v != current]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


@dataclass
class RetrainReport:
    """What a retrain did: the new version, both validation figures (on the same snapshot or not), whether the
    new version was promoted, and which old versions were deleted. ``items_kept``: the share of the current
    version's items still in the graph (None without a current version)."""

    artifact: Artifact
    new_val: float
    current_val: float | None
    promoted: bool
    same_data: bool
    items_kept: float | None
    pruned: list[Path]
    seconds: float
    embeddings: dict[str, int] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (export, split, fit, …)


def publish_embeddings(neo4j: Neo4jSettings, artifact: Artifact) -> dict[str, int]:
    """Write an artifact's embeddings to Neo4j (node properties + the ``item_embedding`` vector index)."""
    with open_driver(neo4j) as driver:
        return write_embeddings(
            driver,
            artifact.user_ids,
            artifact.user_embeddings.numpy(),
            artifact.item_ids,
            artifact.item_embeddings.numpy(),
            artifact.version or "unversioned",
            neo4j.database,
        )


def retrain_job(
    neo4j: Neo4jSettings, settings: GnnSettings, config: ModelConfig, keep: int = 5, publish: bool = True
) -> RetrainReport:
    """``kgrec retrain``: export → train → evaluate → promote if not worse → keep the last ``keep`` versions.

    The gate compares the validation NDCG@20 recorded in each artifact: each was measured by a model fitted
    without its validation interactions. Re-scoring the current model on the new validation fold would not
    be fair — it was retrained on all of its train, validation included. When the snapshot changed, the two
    figures come from different (each honest) validation data; the report says whether it did. When fewer than
    :data:`MIN_ITEMS_KEPT` of the current version's items are still in the graph, the current version cannot rank
    it and the new one is promoted.

    Phases (and the report's ``timings``): ``export``, ``split`` (publishing ``snapshot`` and ``split``),
    ``fit``, ``promote`` (gate, save, prune) and ``publish`` (embeddings to Neo4j).

    Args:
        neo4j: Where the graph is (and where promoted embeddings are written).
        settings: Where snapshots and artifacts go.
        config: The model's config (:func:`gnn.config.resolve_config`). The final fit learns from every
            positive whatever the config's ``final_fit``: the version is meant for serving.
        keep: Versions kept per model (the current one is never deleted).
        publish: Write the promoted version's embeddings to Neo4j.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    snapshot, split = export_and_split(neo4j, settings, timings, serving=True)
    kind = model_name(config)
    with timed_phase("fit", timings):
        if isinstance(config, TrainConfig):
            # Serving models learn from every positive (each user's latest too); validation still picks the epochs.
            artifact = train(snapshot, split, config.model_copy(update={"final_fit": "all"}))
            path = None
        else:
            artifact = train_blend(snapshot, split, settings, config, final="all")
            path = artifact.path
    with timed_phase("promote", timings) as data:
        new_val = float(artifact.metrics["validation"][GATE_METRIC])
        current_path = current_version(settings.artifacts_dir, kind)
        current_val = items_kept = None
        same_data = False
        if current_path is not None:
            current = load_artifact(current_path)
            current_val = float(current.metrics["validation"][GATE_METRIC])
            same_data = current.snapshot_id == snapshot.snapshot_id
            graph_items = set(snapshot.items.ids)
            items_kept = sum(i in graph_items for i in current.item_ids) / max(len(current.item_ids), 1)
        path = path or save_artifact(artifact, settings.artifacts_dir, snapshot.item_catalog())
        promoted = current_val is None or items_kept < MIN_ITEMS_KEPT or new_val >= current_val
        if promoted:
            promote(
                path,
                {
                    "metric": GATE_METRIC,
                    "validation": new_val,
                    "previous": current_val,
                    "previous_version": current_path.name if current_path else None,
                },
            )
        else:
            log.warning("not promoted: validation %s %.4f < current %.4f", GATE_METRIC, new_val, current_val)
        pruned = prune_versions(settings.artifacts_dir, kind, keep)
        data.update(promoted=promoted, validation=new_val, previous=current_val)
    with timed_phase("publish", timings):
        has_vectors = artifact.item_embeddings.ndim == 2 and artifact.item_embeddings.size(1) > 0
        embeddings = publish_embeddings(neo4j, artifact) if promoted and publish and has_vectors else None
    return RetrainReport(
        artifact,
        new_val,
        current_val,
        promoted,
        same_data,
        items_kept,
        pruned,
        time.perf_counter() - started,
        embeddings,
        timings,
    )
