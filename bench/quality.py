"""Quality benchmark: every model on one snapshot, one split, one table (the protocol of EVALUATION.md).

The dataset is loaded into a private Neo4j (.kgrec/neo4j-quality, ports 26687/26474), exported once
(``graph.export``), turned into a snapshot and split per user (``gnn.evaluation``); every model — the
references (most-popular, item-kNN cosine, implicit ALS and BPR, EASE^R, PyG's LightGCN trained as its
example does) and ours (``gnn``'s LightGCN, the blend of :mod:`gnn.blend` and, on request, the inductive
GraphSAGE) — sees exactly that data. Hyper-parameters are chosen on the validation split by a coordinate search whose grids grow at an
edge until the best value is inside, then each model is retrained on all of train and measured once on
test. Reference models rank the items that appear in train; ours ranks every item in the graph. The blend
fits its ranker weights on validation itself (components on ``split.fit``, weights on ``split.val``) and is
refitted on train once; EASE^R's λ and ALS's factors, regularisation and alpha are chosen on validation by
the blend's own component search (``gnn.blend.search.search_components``), the rest are ``RankerConfig``'s defaults.

Cold-start slices of the test fold, per model: *short-history users* (test users with at most 5, and at most
10, train positives — users with fewer than 5 positives in all never reach test, so "1–5" starts at 4 in
practice), and *cold items* (targets restricted to test items without any train positive; users without such
an item are left out of that slice).

    .venv/bin/python -m bench.quality [--dataset ml-latest-small|lastfm] [--models ...] [--quick]
                                      [--with-graphsage] [--no-blend] [--skip-load] [--keep-server]
                                      [--snapshot bench/out/snapshot-ml-latest-small]

Prints the table, writes bench/out/quality-<dataset>.json and quality-<dataset>.png.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor
from torch.profiler import record_function

from bench.common import OUT, private_server, require_dataset
from bench.quality_recall import recall_rankings, restore_pending, without_test_interactions
from gnn.blend.config import RankerConfig
from gnn.blend.evaluate import blend_score_fn, ranked_lists
from gnn.blend.fit import fit_ranker
from gnn.blend.model import RankerModel, directory_size
from gnn.config import MODEL_DEFAULTS, TrainConfig
from gnn.data import GraphSnapshot, build_graph_snapshot
from gnn.evaluation import Fold, ScoreFn, Split, embedding_score_fn, evaluate, split_interactions
from gnn.train import PHASES, fit_graphsage, fit_lightgcn
from graph.recall import STRATEGIES
from graph.settings import Neo4jSettings

console = Console(width=220)

SEED = 42
SAGE_DEFAULTS = MODEL_DEFAULTS["graphsage"]
VAL_METRIC = "ndcg@20"
THREADS = 2  # implicit's and BLAS threads
TORCH_THREADS = 1  # both LightGCNs: their ops are small, and a second OpenMP thread on a busy 2-core machine
# waits far more than it helps (measured: 35 ms vs 500+ ms per step under load)


def quality_settings() -> Neo4jSettings:
    """The quality benchmark's own server: .kgrec/neo4j-quality on 26687/26474."""
    return private_server("quality", 26687, 26474, heap="2g", pagecache="512m")


# --- models --------------------------------------------------------------------------------------------


@dataclass
class Fitted:
    """A fitted model: its score function, wall seconds of fitting, and what the fit learned (epochs)."""

    score_fn: ScoreFn
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


FitFn = Callable[[Fold, dict[str, Any], Fold | None], Fitted]


def _matrix(fold: Fold) -> sp.csr_matrix:
    ones = np.ones(fold.train.size(1), dtype=np.float32)
    return sp.csr_matrix((ones, (fold.train[0].numpy(), fold.train[1].numpy())), shape=(fold.num_users, fold.num_items))


def _dense_rows(matrix: np.ndarray | sp.spmatrix) -> ScoreFn:
    def score(users: Tensor) -> Tensor:
        rows = matrix[users.numpy()]
        rows = rows.toarray() if sp.issparse(rows) else rows
        return torch.from_numpy(np.asarray(rows, dtype=np.float32))

    return score


def _factors(users: np.ndarray, items: np.ndarray) -> ScoreFn:
    u, v = torch.from_numpy(np.ascontiguousarray(users)), torch.from_numpy(np.ascontiguousarray(items))
    return lambda batch: u[batch] @ v.T


def fit_most_popular(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    started = time.perf_counter()
    popularity = fold.item_popularity().float()
    # Ties broken towards the lower item_idx, so the list does not depend on topk's internals.
    popularity = popularity - torch.arange(fold.num_items, dtype=torch.float32) * 1e-7
    return Fitted(lambda users: popularity.expand(users.numel(), -1), time.perf_counter() - started)


def fit_item_knn(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    from implicit.nearest_neighbours import CosineRecommender

    started = time.perf_counter()
    matrix = _matrix(fold)
    model = CosineRecommender(K=int(params["K"]), num_threads=THREADS)
    model.fit(matrix, show_progress=False)
    scores = (matrix @ model.similarity).tocsr()
    return Fitted(_dense_rows(scores), time.perf_counter() - started)


def fit_als(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    from implicit.cpu.als import AlternatingLeastSquares

    started = time.perf_counter()
    model = AlternatingLeastSquares(
        factors=int(params["factors"]), regularization=float(params["regularization"]), alpha=float(params["alpha"]),
        iterations=int(params["iterations"]), random_state=SEED, num_threads=THREADS,
    )
    model.fit(_matrix(fold), show_progress=False)
    return Fitted(_factors(model.user_factors, model.item_factors), time.perf_counter() - started)


def fit_bpr(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    started = time.perf_counter()
    model = BayesianPersonalizedRanking(
        factors=int(params["factors"]), learning_rate=float(params["learning_rate"]),
        regularization=float(params["regularization"]), iterations=int(params["iterations"]),
        random_state=SEED, num_threads=THREADS,
    )
    model.fit(_matrix(fold), show_progress=False)
    return Fitted(_factors(model.user_factors, model.item_factors), time.perf_counter() - started)


def fit_ease(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    """EASE^R (Steck 2019): B = I − P·diagMat(1/diag(P)), P = (XᵀX + λI)⁻¹, over the items seen in train."""
    started = time.perf_counter()
    scores = np.zeros((fold.num_users, fold.num_items), dtype=np.float32)
    seen = np.flatnonzero(fold.train_item_mask().numpy())
    scores[:, seen] = ease_scores(_matrix(fold)[:, seen], float(params["lambda"])).astype(np.float32)
    return Fitted(_dense_rows(scores), time.perf_counter() - started)


def ease_scores(x: sp.csr_matrix, lam: float) -> np.ndarray:
    """``X·B`` of EASE^R for the user × item matrix ``x``, exactly, in whichever space is smaller.

    With fewer users than items (Last.fm: 1.9k users, 15k items) the item-space inverse is replaced by the
    Woodbury identity P = (I − XᵀKX)/λ, K = (λI + XXᵀ)⁻¹, so that XP = KX and diag(P) = (1 − colsum(X∘KX))/λ:
    X·B = X − XP·diagMat(1/diag(P)), the same matrix for a user-space inverse (U³ instead of I³ flops).
    """
    num_users, num_items = x.shape
    if num_users < num_items:
        gram = (x @ x.T).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += lam
        kx = np.asarray(x.T @ np.linalg.inv(gram).T).T  # K·X, K symmetric: (Xᵀ·Kᵀ)ᵀ with a sparse Xᵀ
        diag = (1.0 - np.asarray(x.multiply(kx).sum(axis=0)).ravel()) / lam
        return x.toarray() - kx / diag
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(x @ b)


def fit_pyg_lightgcn(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    """torch_geometric.nn.models.LightGCN as examples/lightgcn.py trains it (homogeneous graph, batches of
    positive edges, one uniform negative item each, recommendation_loss, Adam), with early stopping on
    validation NDCG@20 every ``eval_every`` epochs when ``val`` is given (never stopping before ``min_epochs``:
    at small learning rates validation NDCG sits on a plateau before it climbs), else ``epochs`` epochs."""
    from torch_geometric.nn.models import LightGCN

    torch.manual_seed(int(params.get("seed", SEED)))
    started = time.perf_counter()
    num_users, num_items = fold.num_users, fold.num_items
    users, items = fold.train[0], fold.train[1] + num_users
    edge_index = torch.cat([torch.stack([users, items]), torch.stack([items, users])], dim=1)
    edge_label_index = torch.stack([users, items])
    loader = torch.utils.data.DataLoader(range(edge_label_index.size(1)), shuffle=True,
                                         batch_size=int(params["batch_size"]))
    model = LightGCN(num_nodes=num_users + num_items, embedding_dim=int(params["embedding_dim"]),
                     num_layers=int(params["num_layers"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))

    def score_fn() -> ScoreFn:
        with torch.no_grad():
            emb = model.get_embedding(edge_index)
        u, v = emb[:num_users], emb[num_users:]
        return lambda batch: u[batch] @ v.T

    max_epochs = int(params["epochs"]) if val is None else int(params["max_epochs"])
    best, best_epoch, best_state, stale, epoch_seconds = -1.0, 0, None, 0, []
    for epoch in range(1, max_epochs + 1):
        t = time.perf_counter()
        model.train()
        for index in loader:
            with record_function(PHASES["negatives"]):
                pos = edge_label_index[:, index]
                neg = torch.stack([pos[0], torch.randint(num_users, num_users + num_items, (index.numel(),))])
                label_index = torch.cat([pos, neg], dim=1)
            optimizer.zero_grad()
            with record_function(PHASES["propagate"]):  # propagation and the pairs' dot products
                pos_rank, neg_rank = model(edge_index, label_index).chunk(2)
            with record_function(PHASES["loss"]):
                loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique())
            with record_function(PHASES["backward"]):
                loss.backward()
            with record_function(PHASES["optimizer"]):
                optimizer.step()
        epoch_seconds.append(time.perf_counter() - t)
        if val is not None and epoch % int(params["eval_every"]) == 0:
            ndcg = evaluate(score_fn(), val, ks=(20,))[VAL_METRIC]
            if ndcg > best:
                best, best_epoch, stale = ndcg, epoch, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= int(params["patience"]) and epoch >= int(params.get("min_epochs", 0)):
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    info = {"epochs": best_epoch if val is not None else max_epochs, "epochs_run": len(epoch_seconds),
            "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0}
    return Fitted(score_fn(), time.perf_counter() - started, info)


#: ``Fitted.info`` key of gnn's early-stopped fits: the best window's mean validation NDCG@20 (``val_window``
#: rounds around the chosen epoch; ranks every item in the graph, as their test does). Their trials are scored by
#: it rather than by one more evaluation of the chosen epoch, which is a single noisy round.
WINDOW_VAL = "val_window_mean"


def fit_ours(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    """gnn's LightGCN (gnn.train.fit_lightgcn): early stopping on validation, or ``epochs`` epochs."""
    fields = {k: v for k, v in params.items() if k in TrainConfig.model_fields}
    config = TrainConfig(**{"seed": SEED, **fields}, device="cpu", num_threads=TORCH_THREADS, progress=False)
    result = fit_lightgcn(fold.train, fold.num_users, fold.num_items, config, val_fold=val,
                          epochs=None if val is not None else int(params["epochs"]))
    info = {"epochs": result.best_epoch, "epochs_run": len(result.history),
            "seconds_per_epoch": float(np.mean([h.seconds for h in result.history])),
            WINDOW_VAL: result.best_val}
    return Fitted(embedding_score_fn(result.user_emb, result.item_emb), result.seconds, info)


def sage_fitter(snapshot: GraphSnapshot) -> FitFn:
    """gnn's inductive GraphSAGE over the knowledge graph of ``snapshot`` (gnn.train.fit_graphsage)."""

    def fit(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
        fields = {k: v for k, v in params.items() if k in TrainConfig.model_fields}
        config = TrainConfig(**fields, model="graphsage", seed=SEED, device="cpu", num_threads=TORCH_THREADS,
                             progress=False)
        result = fit_graphsage(snapshot, fold.train, config, val_fold=val,
                               epochs=None if val is not None else int(params["epochs"]))
        info = {"epochs": result.best_epoch, "epochs_run": len(result.history),
                "seconds_per_epoch": float(np.mean([h.seconds for h in result.history])),
                WINDOW_VAL: result.best_val}
        return Fitted(embedding_score_fn(result.user_emb, result.item_emb), result.seconds, info)

    return fit


# --- hyper-parameter search ----------------------------------------------------------------------------


@dataclass
class Axis:
    """One hyper-parameter: its grid, and how to extend it past an edge (``log``/``lin``; None = fixed)."""

    values: list[Any]
    scale: str | None = "log"
    integer: bool = False
    low: float = 0.0
    high: float = math.inf

    def extend(self, at_high: bool) -> Any | None:
        ordered = sorted(self.values)
        if self.scale is None or len(ordered) < 2:
            return None
        a, b = (ordered[-2], ordered[-1]) if at_high else (ordered[1], ordered[0])
        new = b * (b / a) if self.scale == "log" else b + (b - a)
        new = round(new) if self.integer else float(f"{new:.3g}")
        if not self.low <= new <= self.high or new in self.values:
            return None
        self.values.append(new)
        return new


@dataclass
class ModelSpec:
    name: str
    fit: FitFn
    axes: dict[str, Axis]
    start: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)
    reference: bool = True  # ranks only items seen in train
    early_stopping: bool = False  # the validation fit chooses the epoch count


@dataclass
class Trial:
    params: dict[str, Any]
    val: float
    seconds: float
    info: dict[str, Any]


def _run_trial(fit: FitFn, params: dict[str, Any], val_fold: Fold, early_stopping: bool,
               candidates: Tensor | None) -> tuple[float, float, dict[str, Any]]:
    """One trial: fit on ``val_fold``'s train, score on its targets → (validation NDCG@20, fit seconds, info)."""
    fitted = fit(val_fold, params, val_fold if early_stopping else None)
    score = fitted.info.get(WINDOW_VAL)  # what chose the epoch chooses the parameters too
    if score is None:
        score = evaluate(fitted.score_fn, val_fold, ks=(20,), candidates=candidates)[VAL_METRIC]
    return float(score), fitted.seconds, fitted.info


def _worker_init(blas_threads: int) -> None:  # a spawned trial process: the thread limits its parent runs under
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(TORCH_THREADS)
    threadpool_limits(limits=blas_threads, user_api="blas")


def _blas_threads() -> int:
    """The BLAS thread limit in force here (``main`` sets one per model), for the trial processes to inherit."""
    from threadpoolctl import threadpool_info

    return min((int(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"), default=THREADS)


class TrialCache:
    """Trials measured before, in a JSON-lines file, so that a search stopped part-way resumes (``--resume``).

    A trial is reused only for the same model, full parameters, snapshot, split and code: the key holds a hash
    of the source of the fit function, of ``gnn/`` (training and evaluation) and the library versions.
    Every finished trial is appended at once, so a run that is killed keeps all the trials it finished.
    """

    def __init__(self, path: Path, scope: dict[str, Any], reuse: bool) -> None:
        self.path, self.scope, self.reuse = path, scope, reuse
        self.entries: dict[str, dict[str, Any]] = {}
        if reuse and path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.entries[entry["key"]] = entry

    def key(self, spec: ModelSpec, params: dict[str, Any]) -> str:
        import hashlib

        blob = json.dumps({"model": spec.name, "params": params, "scope": self.scope, "code": _code_id(spec.fit)},
                          sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def get(self, spec: ModelSpec, params: dict[str, Any]) -> dict[str, Any] | None:
        return self.entries.get(self.key(spec, params)) if self.reuse else None

    def put(self, spec: ModelSpec, params: dict[str, Any], trial: Trial) -> None:
        entry = {"key": self.key(spec, params), "model": spec.name, "params": params, "val": trial.val,
                 "seconds": trial.seconds, "info": trial.info, "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.entries[entry["key"]] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps(entry, default=str) + "\n")


@functools.cache
def _code_id(fit: FitFn) -> str:
    """What a trial's figure depends on besides its inputs: the fit function's source, ``gnn/`` (training and
    evaluation) and the library versions. Computed once per fit function and run."""
    import hashlib
    import inspect
    from importlib.metadata import PackageNotFoundError, version

    code = hashlib.sha256(inspect.getsource(fit).encode())
    for path in sorted((Path(__file__).resolve().parents[1] / "gnn").glob("*.py")):
        code.update(path.read_bytes())
    for name in ("torch", "torch_geometric", "implicit", "numpy", "scipy"):
        try:
            code.update(f"{name}={version(name)}".encode())
        except PackageNotFoundError:
            code.update(f"{name} absent".encode())
    return code.hexdigest()


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def _picklable(value: Any) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:  # closures (sage_fitter's) cannot go to another process
        return False
    return True


def coordinate_search(spec: ModelSpec, val_fold: Fold, candidates: Tensor | None, max_rounds: int = 4,
                      jobs: int = 1, cache: TrialCache | None = None) -> list[Trial]:
    """Coordinate search on validation NDCG@20; a grid grows past an edge while its best value lies there.

    With ``jobs`` > 1 the values of one axis are fitted in that many processes at once, and a grid at its edge
    grows by ``jobs`` values at a time (the further ones speculatively, so both cores stay busy on the slow
    fits). A trial scores the same in any process (each fit is seeded) and the values are compared in the same
    order, so the search chooses what one process would, unless a speculative value that one process would not
    have tried wins. ``cache`` reuses and records trials (``TrialCache``).
    """
    trials: dict[tuple, Trial] = {}
    parallel = jobs > 1 and _picklable(spec.fit)
    pool = None
    if parallel:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        # spawn, not fork: the parent's OpenMP and BLAS thread pools do not survive a fork
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                   initargs=(_blas_threads(),))

    def record(params: dict[str, Any], trial: Trial, note: str = "") -> None:
        trials[_key(params)] = trial
        console.print(f"  {spec.name} {params} → val {VAL_METRIC} {trial.val:.4f} ({trial.seconds:.1f}s){note}",
                      highlight=False)

    def run_all(param_sets: list[dict[str, Any]]) -> None:
        todo: dict[tuple, dict[str, Any]] = {}
        for params in param_sets:
            if _key(params) in trials or _key(params) in todo:
                continue
            hit = cache.get(spec, {**spec.fixed, **params}) if cache is not None else None
            if hit is not None:
                record(params, Trial(dict(params), hit["val"], hit["seconds"], hit["info"]),
                       f" [measured {hit['measured']}, --resume]")
                continue
            todo[_key(params)] = params

        def done(params: dict[str, Any], result: tuple[float, float, dict[str, Any]]) -> None:
            trial = Trial(dict(params), *result)
            if cache is not None:
                cache.put(spec, {**spec.fixed, **params}, trial)
            record(params, trial)

        if pool is not None and len(todo) > 1:
            from concurrent.futures import as_completed

            futures = {pool.submit(_run_trial, spec.fit, {**spec.fixed, **p}, val_fold, spec.early_stopping,
                                   candidates): p for p in todo.values()}
            for future in as_completed(futures):
                done(futures[future], future.result())
        else:
            for params in todo.values():
                done(params, _run_trial(spec.fit, {**spec.fixed, **params}, val_fold, spec.early_stopping,
                                        candidates))

    try:
        first = next(iter(spec.axes), None)  # the start and the first sweep at once: the same fits either way
        run_all([dict(spec.start)] + ([{**spec.start, first: v} for v in sorted(spec.axes[first].values)]
                                      if first is not None and parallel else []))
        best = trials[_key(spec.start)]
        for _ in range(max_rounds):
            changed = False
            for name, axis in spec.axes.items():
                while True:
                    ordered = sorted(axis.values)
                    run_all([{**best.params, name: value} for value in ordered])
                    for value in ordered:
                        trial = trials[_key({**best.params, name: value})]
                        if trial.val > best.val:
                            best, changed = trial, True
                    ordered = sorted(axis.values)
                    position = ordered.index(best.params[name])
                    if position not in (0, len(ordered) - 1):
                        break
                    grown = [axis.extend(at_high=position > 0) for _ in range(jobs if parallel else 1)]
                    if grown[0] is None:
                        break
            if not changed:
                break
    finally:
        if pool is not None:
            pool.shutdown()
    return sorted(trials.values(), key=lambda t: -t.val)


def at_edge(spec: ModelSpec, params: dict[str, Any]) -> list[str]:
    """Names of the tuned axes whose chosen value is still the smallest or largest tried."""
    edges = []
    for name, axis in spec.axes.items():
        ordered = sorted(axis.values)
        if len(ordered) > 1 and params[name] in (ordered[0], ordered[-1]):
            edges.append(name)
    return edges


#: ``--lean``: axes held at a value instead of tuned (model → axis → value), to fit a large catalogue's run in time.
LEAN_FIXED: dict[str, dict[str, Any]] = {
    "PyG LightGCN": {"num_layers": 2},  # the value of PyG's example
    "kgrec LightGCN": {k: TrainConfig.model_fields[k].default for k in ("lr_decay", "num_layers")},  # gnn.config's
    "kgrec GraphSAGE": {"id_dropout": 0.1},
}


def model_specs(quick: bool, snapshot: GraphSnapshot, with_graphsage: bool = False,
                lean: bool = False) -> list[ModelSpec]:
    specs = _model_specs(quick, snapshot, with_graphsage)
    if lean:
        for spec in specs:
            for name, value in LEAN_FIXED.get(spec.name, {}).items():
                del spec.axes[name]
                spec.start.pop(name, None)
                spec.fixed[name] = value
    return specs


def _model_specs(quick: bool, snapshot: GraphSnapshot, with_graphsage: bool = False) -> list[ModelSpec]:
    def grid(full: list[Any], small: list[Any]) -> list[Any]:
        return list(small if quick else full)

    return [
        ModelSpec("most-popular", fit_most_popular, {}, {}),
        ModelSpec("item-kNN (cosine)", fit_item_knn,
                  {"K": Axis(grid([20, 50, 100, 200, 400], [50, 200, 400]), integer=True, low=1)}, {"K": 100}),
        ModelSpec("implicit ALS", fit_als, {
            "factors": Axis(grid([32, 64, 128], [32, 64, 128]), integer=True, low=2, high=512),
            "regularization": Axis(grid([1.0, 5.0, 10.0, 20.0, 50.0], [1.0, 10.0, 50.0])),
            "alpha": Axis(grid([0.5, 1.0, 2.0, 5.0], [0.5, 1.0, 2.0])),
        }, {"factors": 64, "regularization": 10.0, "alpha": 1.0}, fixed={"iterations": 15}),
        ModelSpec("implicit BPR", fit_bpr, {
            "factors": Axis(grid([32, 64, 128], [32, 64, 128]), integer=True, low=2, high=2048),
            "learning_rate": Axis(grid([0.005, 0.01, 0.02, 0.05], [0.005, 0.01, 0.05])),
            "regularization": Axis(grid([0.001, 0.01, 0.1], [0.001, 0.01, 0.1])),
            "iterations": Axis(grid([50, 100, 200, 400], [50, 100, 200]), integer=True, low=1, high=3200),
        }, {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100}),
        ModelSpec("EASE^R", fit_ease, {"lambda": Axis(grid([50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0],
                                                             [100.0, 500.0, 2000.0]))}, {"lambda": 500.0}),
        # The example's lr 0.001 needs ~1,300 epochs here (validation NDCG sits on a plateau for 150-300 of
        # them); Adam's lr is tuned like any other axis instead, everything else as the example trains it.
        ModelSpec("PyG LightGCN", fit_pyg_lightgcn, {
            "lr": Axis(grid([0.005, 0.01, 0.02], [0.005, 0.01, 0.02]), high=0.5),
            "num_layers": Axis(grid([1, 2, 3], [1, 2, 3]), scale="lin", integer=True, low=1, high=6),
        }, {"lr": 0.01, "num_layers": 2}, fixed={"embedding_dim": 64, "batch_size": 8192, "max_epochs": 1500,
                                                 "eval_every": 10, "patience": 10, "min_epochs": 150},
                  early_stopping=True),
        # Patience 50 epochs (PyG's gets 100 after 150): at the slower learning rates validation NDCG@20 sits on a
        # plateau for 40-50 epochs before it climbs again, and a window of 5 rounds (TrainConfig.val_window) judges
        # each epoch, so a lucky single round does not win.
        ModelSpec("kgrec LightGCN", fit_ours, {
            "lr": Axis(grid([0.02, 0.04, 0.08], [0.02, 0.04, 0.08]), high=0.5),
            "lr_decay": Axis(grid([0.95, 0.97, 0.99], [0.95, 0.97, 0.99]), scale="lin", low=0.5, high=1.0),
            "reg": Axis(grid([1e-5, 1e-4, 1e-3], [1e-5, 1e-4, 1e-3]), high=1.0),
            "num_layers": Axis(grid([2, 3, 4], [2, 3, 4]), scale="lin", integer=True, low=1, high=6),
        }, {"lr": 0.04, "lr_decay": 0.97, "reg": 1e-4, "num_layers": 3},
                  fixed={"embedding_dim": 64, "batch_size": 4096, "max_epochs": 300, "patience": 50},
                  reference=False, early_stopping=True),
    ] + ([
        # A full-graph pass per step: 4,096 pairs with 4 negatives each (the extra negatives cost nothing next to
        # the pass) need 9 passes per epoch and converge in ~20-40 epochs, ~1-2 s each on a busy 2-core machine.
        ModelSpec("kgrec GraphSAGE", sage_fitter(snapshot), {
            "lr": Axis(grid([0.005, 0.01, 0.02], [0.005, 0.01, 0.02]), high=0.1),
            "id_dropout": Axis(grid([0.0, 0.1, 0.3], [0.0, 0.1, 0.3]), scale="lin", low=0.0, high=0.9),
        }, {"lr": SAGE_DEFAULTS["lr"], "id_dropout": 0.1},
                  fixed={"embedding_dim": 64, "batch_size": 4096, "reg": 1e-4,
                         **{k: v for k, v in SAGE_DEFAULTS.items() if k != "lr"}},  # what kgrec train uses
                  reference=False, early_stopping=True),
    ] if with_graphsage else [])


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class ModelResult:
    name: str
    params: dict[str, Any]
    at_edge: list[str]
    val: float
    test: dict[str, Any]
    train_seconds: float
    score_seconds: float
    tuning_seconds: float
    trials: int
    info: dict[str, Any]
    ranks: str
    slices: dict[str, dict[str, float]] = field(default_factory=dict)


def run_model(spec: ModelSpec, split: Split, genres: Tensor, jobs: int = 1,
              cache: TrialCache | None = None) -> ModelResult:
    """Tune ``spec`` on validation (``coordinate_search``), refit on all of train, measure once on test."""
    val_fold, test_fold = split.validation(), split.testing()
    val_candidates = val_fold.train_item_mask() if spec.reference else None
    started = time.perf_counter()
    trials = coordinate_search(spec, val_fold, val_candidates, jobs=jobs, cache=cache) if spec.axes else [
        Trial({}, evaluate(spec.fit(val_fold, spec.fixed, None).score_fn, val_fold, ks=(20,),
                           candidates=val_candidates)[VAL_METRIC], 0.0, {})
    ]
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
    console.print(f"[bold]{spec.name}[/]: test {VAL_METRIC} {test[VAL_METRIC]:.4f}, recall@20 {test['recall@20']:.4f} "
                  f"(train {fitted.seconds:.1f}s, score {score_seconds:.2f}s, tuning {tuning:.0f}s)", highlight=False)
    return ModelResult(
        name=spec.name, params=params, at_edge=at_edge(spec, best.params), val=best.val, test=test,
        train_seconds=fitted.seconds, score_seconds=score_seconds, tuning_seconds=tuning, trials=len(trials),
        info={**best.info, **{f"final_{k}": v for k, v in fitted.info.items()}},
        ranks="items seen in train" if spec.reference else "every item in the graph", slices=slices,
    )


BLEND = "kgrec blend"


def run_blend(snapshot: GraphSnapshot, split: Split, genres: Tensor, artifact_dir: Path,
              overrides: dict[str, Any] | None = None, name: str = "") -> ModelResult:
    """The blend of gnn.blend: components on fit, ranker weights on validation, refit on train, test once.

    Its test lists are :func:`gnn.blend.evaluate.ranked_lists` (what the API shows: score order, then the reserved
    new-arrival positions for cold items, ``RankerConfig.cold_slots``).

    Also measures the per-request latency of :meth:`RankerModel.score` and the size of the saved model.
    ``overrides`` (RankerConfig fields) and ``name`` describe a variant (``--blend-variant``).
    """
    config = RankerConfig(**{**(overrides or {}), "seed": SEED, "device": "cpu", "num_threads": TORCH_THREADS,
                             "progress": False})
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
        model.score(items, times, user)
        latencies.append(time.perf_counter() - t)
    model.save(artifact_dir)
    reloaded = RankerModel.load(artifact_dir)
    probe = test_fold.eval_users[:5]
    if not torch.equal(blend_score_fn(model)(probe), blend_score_fn(reloaded)(probe)):
        raise RuntimeError("the saved blend does not score like the fitted one")
    report = model.meta["validation"]
    search = report.get("component_search") or {}
    info = {
        "ranker": report["chosen"], "cross_fit_ndcg20": report["cross_fit_ndcg20"], "weights": report["weights"],
        "lightgcn_epochs": model.meta["lightgcn_epochs"], "timings": timings,
        "score_ms_median": 1000 * float(np.median(latencies)), "score_ms_p95": 1000 * float(np.quantile(latencies, 0.95)),
        "artifact_bytes": directory_size(artifact_dir), "config": model.config.model_dump(mode="json"),
        "component_search": search,  # the candidates' validation NDCG@20 and the choice
    }
    label = f"{BLEND} ({name})" if name else BLEND
    console.print(f"[bold]{label}[/]: test {VAL_METRIC} {test[VAL_METRIC]:.4f}, recall@20 {test['recall@20']:.4f} "
                  f"(fit {timings['total']:.1f}s, score {score_seconds:.2f}s, {info['score_ms_median']:.1f} ms/user, "
                  f"{info['artifact_bytes'] / 1e6:.1f} MB on disk)", highlight=False)
    return ModelResult(
        name=label, params={**(overrides or {}), **search.get("chosen", {})}, at_edge=search.get("grid_edges", []),
        val=report["val_ndcg20"], test=test, train_seconds=timings["refit"],
        score_seconds=score_seconds, tuning_seconds=timings["fit_components"] + timings["fit_ranker"], trials=1,
        info=info, ranks="every item in the graph", slices=slices,
    )


RECALL_PREFIX = "recall: "


def run_recall_rows(driver: Any, database: str, snapshot: GraphSnapshot, split: Split, genres: Tensor,
                    ledger: Path, k: int = 20) -> tuple[list[ModelResult], dict[str, float]]:
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
        console.print(f"recall rows: {removed:,} test interactions removed from the graph; "
                      f"{len(STRATEGIES)} strategies × {users.numel()} test users, k={k} …")
        rankings = recall_rankings(driver, database, snapshot, users, k=k)
        restore_started = time.perf_counter()
    timings["recall_restore_seconds"] = time.perf_counter() - restore_started
    check = build_graph_snapshot(export_graph(driver, database))
    if check.snapshot_id != snapshot.snapshot_id:
        raise RuntimeError(f"after restoring the test interactions the graph exports as {check.snapshot_id}, "
                           f"not {snapshot.snapshot_id}: the quality server's graph is not the one measured")
    timings["recall_rows_seconds"] = time.perf_counter() - started
    results = []
    for ranking in rankings:
        t = time.perf_counter()
        test = evaluate(ranking.topk, test_fold, item_features=genres, per_user=True)
        score_seconds = ranking.seconds + time.perf_counter() - t
        slices = cold_start_slices(ranking.topk, test_fold, test, None)
        info = {**ranking.info, "query_seconds": ranking.query_seconds, "k": k}
        note = "" if info["users_with_candidates"] else " — NO candidates for any test user"
        console.print(f"[bold]{RECALL_PREFIX}{ranking.name}[/]: test {VAL_METRIC} {test[VAL_METRIC]:.4f}, "
                      f"recall@20 {test['recall@20']:.4f} (score {score_seconds:.1f}s, {info['ms_per_user']:.0f} ms/user, "
                      f"{info['users_with_candidates']}/{users.numel()} users with candidates, "
                      f"{info['users_with_k']} with {k}){note}", highlight=False)
        results.append(ModelResult(
            name=RECALL_PREFIX + ranking.name, params={}, at_edge=[], val=math.nan, test=test, train_seconds=0.0,
            score_seconds=score_seconds, tuning_seconds=0.0, trials=0, info=info,
            ranks=f"what the Cypher query returns (top {k}), on the graph without the test fold", slices=slices,
        ))
    return results, timings


def cold_start_slices(
    ranking: ScoreFn | Tensor, fold: Fold, test: dict[str, Any], candidates: Tensor | None
) -> dict[str, dict[str, float]]:
    """NDCG@20 / Recall@20 on the short-history users and on the cold items of the test fold (module docstring).

    ``ranking`` is a score function or, as for :func:`evaluate`, top-k lists aligned with ``fold.eval_users``.
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
        out["cold_items"] = {"users": sliced["users"], "targets": sliced["targets"], "ndcg@20": sliced["ndcg@20"],
                             "recall@20": sliced["recall@20"]}
    return out


def removal_ledger(settings: Neo4jSettings) -> Path:
    """Where the recall rows park the test interactions they removed from ``settings``' graph."""
    return OUT / f"removed-interactions-{settings.home.name if settings.home else 'server'}.json"


def load_snapshot(driver: Any, settings: Neo4jSettings, dataset: str, skip_load: bool
                  ) -> tuple[GraphSnapshot, dict[str, float]]:
    """Load the dataset into the running private server (unless told not to), export, build the snapshot.

    First puts back any test interactions an interrupted earlier run removed (bench.quality_recall).
    """
    from etl.load import load_dataset
    from etl.sources import lastfm_variables, movielens_variables, read_mapping_dataset, shipped_mapping_path
    from graph.export import export_graph

    timings: dict[str, float] = {}
    restored = restore_pending(driver, settings.database, removal_ledger(settings))
    if restored:
        console.print(f"[yellow]restored {restored:,} interactions an interrupted run had removed[/]")
    if not skip_load:
        started = time.perf_counter()
        if dataset == "lastfm":
            mapping, variables = "lastfm", lastfm_variables(require_dataset("hetrec2011-lastfm-2k"))
        else:
            # With its knowledge sources, as the product loads it (bench/api_load.py): actors and
            # directors, HetRec tags. The split depends on interactions only, so references do not change.
            mapping, variables = "movielens", movielens_variables(
                require_dataset(dataset), require_dataset("ml-small-actors-tomasonjo") / "movies.csv",
                require_dataset("hetrec2011-movielens-2k"),
            )
        data, _ = read_mapping_dataset(shipped_mapping_path(mapping), variables)
        load_dataset(driver, data, replace=True, reject_dir=OUT / "rejects")
        timings["load_seconds"] = time.perf_counter() - started
    export = export_graph(driver, settings.database)
    timings["export_seconds"] = export.seconds
    started = time.perf_counter()
    snapshot = build_graph_snapshot(export)
    timings["snapshot_seconds"] = time.perf_counter() - started
    return snapshot, timings


def print_table(dataset: str, split: Split, results: list[ModelResult]) -> Table:
    table = Table(title=f"{dataset} — split {split.method} per user (test 20%, val 10% of train, seed {split.seed}, "
                        f"positives rating >= {split.min_rating}), snapshot {split.snapshot_id}", show_edge=False)
    columns = ["model", "NDCG@20", "Recall@20", "NDCG@10", "Recall@10", "Prec@20", "MAP@20", "HR@20",
               "Cov@20", "Div@20", "Nov@20", "val NDCG@20", "train s", "score s", "chosen (grid edge!)"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "chosen (grid edge!)") else "right")
    for r in results:
        t = r.test
        chosen = ", ".join(f"{k}={v}" for k, v in r.params.items() if k in _tuned_or_epochs(r))
        if r.at_edge:
            chosen += f" (edge: {', '.join(r.at_edge)})"
        table.add_row(r.name, *(f"{t[m]:.4f}" for m in ("ndcg@20", "recall@20", "ndcg@10", "recall@10",
                                                          "precision@20", "map@20", "hit_rate@20", "coverage@20",
                                                          "diversity@20")),
                      f"{t['novelty@20']:.2f}", f"{r.val:.4f}", f"{r.train_seconds:.1f}", f"{r.score_seconds:.2f}",
                      chosen)
    console.print(table, soft_wrap=False)
    return table


def print_slices(results: list[ModelResult]) -> Table:
    table = Table(title="cold-start slices of the test fold (NDCG@20 / Recall@20; users in the slice)",
                  show_edge=False)
    names = sorted({name for r in results for name in r.slices})
    table.add_column("model", justify="left")
    for name in names:
        table.add_column(name, justify="right")
    for r in results:
        cells = []
        for name in names:
            c = r.slices.get(name)
            cells.append("—" if c is None else f"{c['ndcg@20']:.4f} / {c['recall@20']:.4f} ({c['users']})")
        table.add_row(r.name, *cells)
    console.print(table, soft_wrap=False)
    return table


def _tuned_or_epochs(r: ModelResult) -> set[str]:
    keys = {"K", "factors", "regularization", "alpha", "learning_rate", "iterations", "lambda", "num_layers", "lr",
            "lr_decay", "reg", "epochs", "id_dropout"}
    return keys & set(r.params)


def paired_comparison(results: list[ModelResult], ours: str) -> dict[str, dict[str, float]]:
    """Per-user paired bootstrap of NDCG@20: ours minus each other model (mean, 95% interval)."""
    base = next((r for r in results if r.name == ours), None)
    if base is None:
        return {}
    mine = np.array(base.test["per_user"]["ndcg@20"])
    return {r.name: paired_bootstrap(mine - np.array(r.test["per_user"]["ndcg@20"])) for r in results
            if r.name != ours}


def paired_bootstrap(diff: np.ndarray, draws: int = 2000) -> dict[str, float]:
    """Mean of per-user differences with a 95% percentile bootstrap over users (seeded)."""
    rows = np.random.default_rng(SEED).integers(0, len(diff), size=(draws, len(diff)))
    boot = diff[rows].mean(axis=1)
    return {"mean_diff": float(diff.mean()), "low": float(np.quantile(boot, 0.025)),
            "high": float(np.quantile(boot, 0.975))}


def write_chart(path: Path, dataset: str, results: list[ModelResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in results]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    for offset, metric in ((-0.2, "ndcg@20"), (0.2, "recall@20")):
        values = [r.test[metric] for r in results]
        bars = ax.bar(x + offset, values, width=0.4, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("test score")
    ax.set_title(f"{dataset}: full ranking, per-user temporal split (EVALUATION.md)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


DATASETS = ("ml-latest-small", "lastfm")


def resolve_dataset(parser: argparse.ArgumentParser, dataset: str | None, snapshot: Path | None) -> str:
    """The dataset that names a run's outputs: ``--dataset``, else the one a ``--snapshot`` directory is named
    after (``snapshot-<dataset>``), else ml-latest-small; a ``--dataset`` contradicting the snapshot's name is
    an error (the table, JSON and saved blend would be filed under the wrong dataset)."""
    named = snapshot.name.removeprefix("snapshot-") if snapshot is not None else None
    named = named if named in DATASETS else None
    if dataset is not None and named is not None and dataset != named:
        parser.error(f"--dataset {dataset} with --snapshot {snapshot}, a snapshot of {named}")
    if dataset is None and snapshot is not None and named is None:
        parser.error(f"--snapshot {snapshot}: cannot tell its dataset from the name; give --dataset")
    return dataset or named or "ml-latest-small"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS,
                        help="default: ml-latest-small, or with --snapshot the dataset its directory is named after "
                             "(snapshot-<dataset>, as this benchmark saves it); names the outputs")
    parser.add_argument("--models", nargs="*", help="subset of model names (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller grids")
    parser.add_argument("--with-graphsage", action="store_true",
                        help="also tune and measure gnn's GraphSAGE (slow: minutes per fit on CPU)")
    parser.add_argument("--no-blend", action="store_true", help="leave out the kgrec blend (gnn.blend)")
    parser.add_argument("--lean", action="store_true",
                        help="hold a few axes instead of tuning them, for a large catalogue in bounded time "
                             "(Last.fm): PyG LightGCN num_layers=2 (its example's), kgrec LightGCN lr_decay and num_layers "
                             "at gnn.config's defaults (0.99, 3), GraphSAGE id_dropout=0.1; every other axis is searched as usual. "
                             "Also runs the blend right after the references, then kgrec LightGCN, GraphSAGE and PyG LightGCN "
                             "(the slowest fits last)")
    parser.add_argument("--no-recall", action="store_true",
                        help="leave out the rows of the Cypher recall strategies (graph.recall.STRATEGIES)")
    parser.add_argument("--skip-load", action="store_true", help="use the graph already in the quality server")
    parser.add_argument("--keep-server", action="store_true", help="leave the quality Neo4j running")
    parser.add_argument("--snapshot", type=Path,
                        help="use a saved snapshot directory (GraphSnapshot.save) instead of Neo4j")
    parser.add_argument("--blend-variant", action="append", default=[], metavar="NAME=JSON",
                        help="also measure a blend variant: RankerConfig overrides as JSON, e.g. "
                             "'nofresh={\"ranker_features\": [...]}' (repeatable)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="fit N trials of a search at once, each in its own process (default 1). The LightGCNs "
                             "train on one thread each, so 2 keeps both cores busy; a grid at its edge then grows by "
                             "N values at a time. Trial seconds are measured while the others run")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the validation trials recorded in bench/out/trials-<dataset>.jsonl (every "
                             "finished trial is recorded there) for the same model, parameters, snapshot, split "
                             "and code, so that a search stopped part-way goes on where it stopped")
    args = parser.parse_args()
    args.dataset = resolve_dataset(parser, args.dataset, args.snapshot)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    from threadpoolctl import threadpool_limits

    from graph.neo4j_local import launcher

    torch.set_num_threads(TORCH_THREADS)
    started = time.perf_counter()
    recall_results: list[ModelResult] = []
    if args.snapshot is not None:
        snapshot = GraphSnapshot.load(args.snapshot)
        timings = {"export_seconds": 0.0, "snapshot_load_seconds": time.perf_counter() - started}
        console.print(f"snapshot read from {args.snapshot} (no Neo4j)")
    else:
        from graph.driver import create_driver

        settings = quality_settings()
        console.print(f"starting the quality Neo4j in {settings.home} …")
        launcher.start(settings)
        try:
            with create_driver(settings) as driver:
                snapshot, timings = load_snapshot(driver, settings, args.dataset, args.skip_load)
                timings["server_and_data_seconds"] = time.perf_counter() - started
                split = split_interactions(snapshot, seed=SEED)
                genres = snapshot.item_genre_matrix()
                if not args.no_recall and (not args.models or any(m.startswith(RECALL_PREFIX) for m in args.models)):
                    recall_results, recall_timings = run_recall_rows(
                        driver, settings.database, snapshot, split, genres, removal_ledger(settings))
                    timings.update(recall_timings)
        finally:
            if not args.keep_server:
                launcher.stop(settings)
    if args.snapshot is not None:
        split = split_interactions(snapshot, seed=SEED)
        genres = snapshot.item_genre_matrix()
        console.print("[yellow]no Neo4j (--snapshot): the Cypher recall rows are left out[/]")
    console.print(f"snapshot {snapshot.snapshot_id}: {snapshot.counts()} (export {timings['export_seconds']:.2f}s)")
    console.print(f"split: {split.describe()}")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.snapshot is None:
        snapshot.save(OUT / f"snapshot-{args.dataset}")

    specs = [
        s for s in model_specs(args.quick, snapshot, args.with_graphsage, args.lean)
        if not args.models or s.name in args.models
    ]
    partial_path = OUT / f"quality-{args.dataset}.partial.json"
    cache = TrialCache(OUT / f"trials-{args.dataset}.jsonl",
                       {"snapshot_id": snapshot.snapshot_id, "split": split.describe(), "seed": SEED}, args.resume)

    def checkpoint() -> None:  # what is measured so far survives a run stopped before the end
        results[-1].info["loadavg_after"] = list(os.getloadavg())
        partial_path.write_text(json.dumps({"dataset": args.dataset, "snapshot_id": snapshot.snapshot_id,
                                            "timings": timings, "models": _model_rows(results)},
                                           indent=2, default=str))

    results: list[ModelResult] = []
    with_blend = not args.no_blend and (not args.models or BLEND in args.models)
    jobs: list[ModelSpec | None] = [*specs, *([None] if with_blend else [])]  # None: the blend
    if args.lean:  # the slowest fits last, so that a run stopped at a deadline still has the blend
        slow = ("kgrec LightGCN", "kgrec GraphSAGE", "PyG LightGCN")
        jobs = [j for j in jobs if j is None or j.name not in slow] + sorted(
            (j for j in jobs if j is not None and j.name in slow), key=lambda j: slow.index(j.name))
    for spec in jobs:
        if spec is None:
            console.print(f"[bold]{BLEND}[/]: components on fit, ranker on validation, refit on train …")
            with threadpool_limits(limits=1, user_api="blas"):
                results.append(run_blend(snapshot, split, genres, OUT / f"blend-{args.dataset}"))
                checkpoint()
                for variant in args.blend_variant:
                    name, _, overrides = variant.partition("=")
                    console.print(f"[bold]{BLEND} ({name})[/]: {overrides}", markup=True, highlight=False)
                    results.append(run_blend(snapshot, split, genres, OUT / f"blend-{args.dataset}-{name}",
                                             json.loads(overrides), name))
                    checkpoint()
            continue
        if spec.name == "most-popular" and recall_results:  # the table: most-popular, then the recall rows
            with threadpool_limits(limits=THREADS, user_api="blas"):
                results.append(run_model(spec, split, genres))
            results.extend(recall_results)
            recall_results = []
            checkpoint()
            continue
        console.print(f"[bold]{spec.name}[/]: tuning on validation …")
        # implicit's own threads do the work; BLAS threads on top of them only oversubscribe two cores.
        with threadpool_limits(limits=1 if spec.name.startswith(("implicit", "item-kNN")) else THREADS,
                               user_api="blas"):
            results.append(run_model(spec, split, genres, args.jobs, cache))
        checkpoint()

    results.extend(recall_results)  # when most-popular was not asked for
    print_table(args.dataset, split, results)
    print_slices(results)
    comparisons = {ours: paired_comparison(results, ours) for ours in (BLEND, "kgrec LightGCN")}
    for ours, comparison in comparisons.items():
        for name, c in comparison.items():
            console.print(f"{ours} − {name}: NDCG@20 {c['mean_diff']:+.4f} (95% bootstrap "
                          f"[{c['low']:+.4f}, {c['high']:+.4f}], paired per user)", highlight=False)
    references = [r for r in results if r.ranks == "items seen in train"]
    best_reference = max(references, key=lambda r: r.test[VAL_METRIC]).name if references else None
    if best_reference and best_reference in comparisons[BLEND]:
        c = comparisons[BLEND][best_reference]
        console.print(f"[bold]{BLEND} vs the best reference ({best_reference})[/]: NDCG@20 {c['mean_diff']:+.4f} "
                      f"[{c['low']:+.4f}, {c['high']:+.4f}]", highlight=False)
    report = {
        "best_reference": best_reference,
        "dataset": args.dataset,
        "snapshot_id": snapshot.snapshot_id,
        "snapshot": snapshot.counts(),
        "split": split.describe(),
        "seed": SEED,
        "protocol": "EVALUATION.md: per-user split, full ranking without the user's train items, K=10/20",
        "machine": {"cpus": os.cpu_count(), "torch_threads": TORCH_THREADS, "implicit_threads": THREADS,
                    "platform": platform.platform(), "torch": torch.__version__},
        "timings": timings,
        "paired_ndcg20_vs_ours": comparisons["kgrec LightGCN"],
        "paired_ndcg20_vs_blend": comparisons[BLEND],
        "lean": args.lean,
        "loadavg_end": list(os.getloadavg()),
        "models": _model_rows(results),
    }
    json_path = OUT / f"quality-{args.dataset}.json"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    png_path = OUT / f"quality-{args.dataset}.png"
    write_chart(png_path, args.dataset, results)
    partial_path.unlink(missing_ok=True)
    console.print(f"written: {json_path}, {png_path}")


def _model_rows(results: list[ModelResult]) -> list[dict[str, Any]]:
    return [{**{k: v for k, v in asdict(r).items() if k != "test"},
             "test": {k: v for k, v in r.test.items() if k != "per_user"}} for r in results]


if __name__ == "__main__":
    main()
