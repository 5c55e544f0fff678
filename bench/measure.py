"""Measuring one row of the quality table: a model tuned on validation, the blend, or a Cypher recall strategy.

- :func:`run_model`: a model of :mod:`bench.models` tuned by :func:`bench.search.coordinate_search` on the
  validation split, refitted on all of train with the chosen parameters (and epoch count), measured once on test.
- :func:`run_blend`: the blend of :mod:`gnn.blend` (components on ``split.fit``, ranker weights on
  ``split.val``, refitted on train), measured on the lists the API shows; also its latency and size on disk.
- :func:`run_recall_rows`: each Cypher recall strategy alone, on the graph without the test fold.

Every row also gets its cold-start slices of the test fold (:func:`cold_start_slices`): *short-history users*
(test users with at most 5, and at most 10, train positives) and *cold items* (targets restricted to test items
without any train positive; users without such an item are left out of that slice).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.baselines import SEED, TORCH_THREADS, VAL_METRIC
from bench.quality_recall import recall_rankings, without_test_interactions
from bench.report import ModelResult, console
from bench.search import ModelSpec, Trial, TrialCache, at_edge, coordinate_search
from gnn.blend.config import RankerConfig
from gnn.blend.evaluate import blend_score_fn, ranked_lists
from gnn.blend.fit import fit_ranker
from gnn.blend.model import RankerModel, directory_size
from gnn.data import GraphSnapshot, build_graph_snapshot
from gnn.evaluation import Fold, ScoreFn, Split, evaluate
from graph.recall import STRATEGIES


def run_model(
    spec: ModelSpec, split: Split, genres: Tensor, jobs: int = 1, cache: TrialCache | None = None
) -> ModelResult:
    """Tune ``spec`` on validation (``coordinate_search``), refit on all of train, measure once on test."""
    val_fold, test_fold = split.validation(), split.testing()
    val_candidates = val_fold.train_item_mask() if spec.reference else None
    started = time.perf_counter()
    trials = (
        coordinate_search(spec, val_fold, val_candidates, jobs=jobs, cache=cache)
        if spec.axes
        else [
            Trial(
                {},
                evaluate(spec.fit(val_fold, spec.fixed, None).score_fn, val_fold, ks=(20,), candidates=val_candidates)[
                    VAL_METRIC
                ],
                0.0,
                {},
            )
        ]
    )
    tuning = time.perf_counter() - started
    best = trials[0]
    params = {**spec.fixed, **best.params}
    if spec.early_stopping:
        params["epochs"] = max(int(best.info["epochs"]), 1)
    fitted = spec.fit(test_fold, params, None)
    started = time.perf_counter()
    candidates = test_fold.train_item_mask() if spec.reference else None
    test = evaluate(fitted.score_fn, test_fold, candidates=candidates, item_features=genres, per_user=True)
    score_seconds = time.perf_counter() - started
    slices = cold_start_slices(fitted.score_fn, test_fold, test, candidates)
    console.print(
        f"[bold]{spec.name}[/]: test {VAL_METRIC} {test[VAL_METRIC]:.4f}, recall@20 {test['recall@20']:.4f} "
        f"(train {fitted.seconds:.1f}s, score {score_seconds:.2f}s, tuning {tuning:.0f}s)",
        highlight=False,
    )
    return ModelResult(
        name=spec.name,
        params=params,
        at_edge=at_edge(spec, best.params),
        val=best.val,
        test=test,
        train_seconds=fitted.seconds,
        score_seconds=score_seconds,
        tuning_seconds=tuning,
        trials=len(trials),
        info={**best.info, **{f"final_{k}": v for k, v in fitted.info.items()}},
        ranks="items seen in train" if spec.reference else "every item in the graph",
        slices=slices,
    )


BLEND = "kgrec blend"


def run_blend(
    snapshot: GraphSnapshot,
    split: Split,
    genres: Tensor,
    artifact_dir: Path,
    overrides: dict[str, Any] | None = None,
    name: str = "",
) -> ModelResult:
    """The blend of gnn.blend: components on fit, ranker weights on validation, refit on train, test once.

    Its test lists are :func:`gnn.blend.evaluate.ranked_lists` (what the API shows: score order, then the reserved
    new-arrival positions for cold items, ``RankerConfig.cold_slots``).

    Also measures the per-request latency of :meth:`RankerModel.score` and the size of the saved model.
    ``overrides`` (RankerConfig fields) and ``name`` describe a variant (``--blend-variant``).
    """
    config = RankerConfig(
        **{**(overrides or {}), "seed": SEED, "device": "cpu", "num_threads": TORCH_THREADS, "progress": False}
    )
    model = fit_ranker(snapshot, split, config, final="train")
    timings = model.meta["timings"]
    test_fold = split.testing()
    started = time.perf_counter()
    # the lists the API shows: score order with the new-arrival positions of RankerConfig.cold_slots
    lists = ranked_lists(model, test_fold, k=20)
    test = evaluate(lists, test_fold, item_features=genres, per_user=True)
    score_seconds = time.perf_counter() - started
    slices = cold_start_slices(lists, test_fold, test, None)
    latencies = []
    for user in test_fold.eval_users[:200].tolist():
        items, times = model.history(user)
        t = time.perf_counter()
        model.score(items, times, user, weights=model.history_weights(user))
        latencies.append(time.perf_counter() - t)
    model.save(artifact_dir)
    reloaded = RankerModel.load(artifact_dir)
    probe = test_fold.eval_users[:5]
    if not torch.equal(blend_score_fn(model)(probe), blend_score_fn(reloaded)(probe)):
        raise RuntimeError("the saved blend does not score like the fitted one")
    report = model.meta["validation"]
    search = report.get("component_search") or {}
    info = {
        "ranker": report["chosen"],
        "cross_fit_ndcg20": report["cross_fit_ndcg20"],
        "weights": report["weights"],
        "lightgcn_epochs": model.meta["lightgcn_epochs"],
        "timings": timings,
        "score_ms_median": 1000 * float(np.median(latencies)),
        "score_ms_p95": 1000 * float(np.quantile(latencies, 0.95)),
        "artifact_bytes": directory_size(artifact_dir),
        "config": model.config.model_dump(mode="json"),
        "component_search": search,  # the candidates' validation NDCG@20 and the choice
    }
    label = f"{BLEND} ({name})" if name else BLEND
    console.print(
        f"[bold]{label}[/]: test {VAL_METRIC} {test[VAL_METRIC]:.4f}, recall@20 {test['recall@20']:.4f} "
        f"(fit {timings['total']:.1f}s, score {score_seconds:.2f}s, {info['score_ms_median']:.1f} ms/user, "
        f"{info['artifact_bytes'] / 1e6:.1f} MB on disk)",
        highlight=False,
    )
    return ModelResult(
        name=label,
        params={**(overrides or {}), **search.get("chosen", {})},
        at_edge=search.get("grid_edges", []),
        val=report["val_ndcg20"],
        test=test,
        train_seconds=timings["refit"],
        score_seconds=score_seconds,
        tuning_seconds=timings["fit_components"] + timings["fit_ranker"],
        trials=1,
        info=info,
        ranks="every item in the graph",
        slices=slices,
    )


RECALL_PREFIX = "recall: "


def run_recall_rows(
    driver: Any, database: str, snapshot: GraphSnapshot, split: Split, genres: Tensor, ledger: Path, k: int = 20
) -> tuple[list[ModelResult], dict[str, float]]:
    """Each Cypher recall strategy alone (graph.recall.STRATEGIES), k items per test user, on the graph without
    the test fold (removed for the duration, then restored: bench.quality_recall), scored like every model.

    After the restore the graph is exported again and must give the same snapshot id, else this raises.
    """
    from graph.export import export_graph

    test_fold = split.testing()
    users = test_fold.eval_users
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with without_test_interactions(driver, database, snapshot, split, ledger) as removed:
        timings["recall_remove_test_seconds"] = time.perf_counter() - started
        console.print(
            f"recall rows: {removed:,} test interactions removed from the graph; "
            f"{len(STRATEGIES)} strategies × {users.numel()} test users, k={k} …"
        )
        rankings = recall_rankings(driver, database, snapshot, users, k=k)
        restore_started = time.perf_counter()
    timings["recall_restore_seconds"] = time.perf_counter() - restore_started
    check = build_graph_snapshot(export_graph(driver, database))
    if check.snapshot_id != snapshot.snapshot_id:
        raise RuntimeError(
            f"after restoring the test interactions the graph exports as {check.snapshot_id}, "
            f"not {snapshot.snapshot_id}: the quality server's graph is not the one measured"
        )
    timings["recall_rows_seconds"] = time.perf_counter() - started
    results = []
    for ranking in rankings:
        t = time.perf_counter()
        test = evaluate(ranking.topk, test_fold, item_features=genres, per_user=True)
        score_seconds = ranking.seconds + time.perf_counter() - t
        slices = cold_start_slices(ranking.topk, test_fold, test, None)
        info = {**ranking.info, "query_seconds": ranking.query_seconds, "k": k}
        note = "" if info["users_with_candidates"] else " — NO candidates for any test user"
        console.print(
            f"[bold]{RECALL_PREFIX}{ranking.name}[/]: test {VAL_METRIC} {test[VAL_METRIC]:.4f}, "
            f"recall@20 {test['recall@20']:.4f} (score {score_seconds:.1f}s, {info['ms_per_user']:.0f} ms/user, "
            f"{info['users_with_candidates']}/{users.numel()} users with candidates, "
            f"{info['users_with_k']} with {k}){note}",
            highlight=False,
        )
        results.append(
            ModelResult(
                name=RECALL_PREFIX + ranking.name,
                params={},
                at_edge=[],
                val=math.nan,
                test=test,
                train_seconds=0.0,
                score_seconds=score_seconds,
                tuning_seconds=0.0,
                trials=0,
                info=info,
                ranks=f"what the Cypher query returns (top {k}), on the graph without the test fold",
                slices=slices,
            )
        )
    return results, timings


def cold_start_slices(
    ranking: ScoreFn | Tensor, fold: Fold, test: dict[str, Any], candidates: Tensor | None
) -> dict[str, dict[str, float]]:
    """NDCG@20 / Recall@20 on the short-history users and on the cold items of the test fold.

    Args:
        ranking: A score function or, as for :func:`evaluate`, top-k lists aligned with ``fold.eval_users``.
        fold: The test fold.
        test: The test figures of ``ranking`` on ``fold``, with their per-user lists.
        candidates: The items the model may rank (None: every item).

    Returns:
        ``users_train<=5`` and ``users_train<=10``: test users with at most that many train positives (users
        with fewer than 5 positives in all never reach test, so "1–5" starts at 4 in practice); ``cold_items``
        (when the fold has any): the targets without a train positive.
    """
    users = fold.eval_users
    train_counts = torch.bincount(fold.train[0], minlength=fold.num_users)[users]
    per_user = test["per_user"]
    out: dict[str, dict[str, float]] = {}
    for limit in (5, 10):
        rows = torch.nonzero(train_counts <= limit).view(-1).tolist()
        out[f"users_train<={limit}"] = {
            "users": len(rows),
            "ndcg@20": float(np.mean([per_user["ndcg@20"][r] for r in rows])) if rows else math.nan,
            "recall@20": float(np.mean([per_user["recall@20"][r] for r in rows])) if rows else math.nan,
        }
    cold = ~fold.train_item_mask()
    keep = cold[fold.target[1]]
    cold_fold = Fold("test-cold-items", fold.num_users, fold.num_items, fold.train, fold.target[:, keep])
    if cold_fold.target.size(1):
        if isinstance(ranking, Tensor):  # the rows of the users left in the slice
            ranking = ranking[torch.searchsorted(users, cold_fold.eval_users)]
        sliced = evaluate(ranking, cold_fold, ks=(20,), candidates=candidates)
        out["cold_items"] = {
            "users": sliced["users"],
            "targets": sliced["targets"],
            "ndcg@20": sliced["ndcg@20"],
            "recall@20": sliced["recall@20"],
        }
    return out
