"""The hyper-parameter search of the quality benchmark: coordinate search on validation NDCG@20.

A :class:`ModelSpec` names a fit function (:mod:`bench.baselines`), its tuned axes and fixed parameters.
:func:`coordinate_search` sweeps one axis at a time from the start, growing a grid past an edge while its best
value lies there (:meth:`Axis.extend`); with ``jobs`` > 1 the trials of a sweep are fitted in that many spawned
processes. :class:`TrialCache` records every finished trial in a JSON-lines file and, with ``--resume``, reuses
those of the same model, parameters, snapshot, split and code. :func:`at_edge` tells which chosen values are
still at the edge of what was tried.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench.baselines import THREADS, TORCH_THREADS, VAL_METRIC, WINDOW_VAL, FitFn
from bench.report import console
from gnn.blend.search import grid_step
from gnn.evaluation import Fold, evaluate


@dataclass
class Axis:
    """One hyper-parameter: its grid, and how to extend it past an edge (``log``/``lin``; None = fixed)."""

    values: list[Any]
    scale: str | None = "log"
    integer: bool = False
    low: float = 0.0
    high: float = math.inf

    def extend(self, at_high: bool) -> Any | None:
        """Grow the grid by one value past an edge (log scale: the product's rule, ``grid_step``)."""
        ordered = sorted(self.values)
        if self.scale is None or len(ordered) < 2:
            return None
        if self.scale == "log":
            new = grid_step(ordered, at_high, self.integer, max(self.low, 0.0), self.high)
        else:
            a, b = (ordered[-2], ordered[-1]) if at_high else (ordered[1], ordered[0])
            new = b + (b - a)
            new = round(new) if self.integer else float(f"{new:.3g}")
            if not self.low <= new <= self.high or new in self.values:
                new = None
        if new is not None:
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
    #: Further starting points of the coordinate search (each climbed like ``start``; the best of all wins):
    #: for axes that interact, where one axis at a time from one start stops in a local optimum.
    starts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Trial:
    params: dict[str, Any]
    val: float
    seconds: float
    info: dict[str, Any]


def _run_trial(
    fit: FitFn, params: dict[str, Any], val_fold: Fold, early_stopping: bool, candidates: Tensor | None
) -> tuple[float, float, dict[str, Any]]:
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

        blob = json.dumps(
            {"model": spec.name, "params": params, "scope": self.scope, "code": _code_id(spec.fit)},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def get(self, spec: ModelSpec, params: dict[str, Any]) -> dict[str, Any] | None:
        return self.entries.get(self.key(spec, params)) if self.reuse else None

    def put(self, spec: ModelSpec, params: dict[str, Any], trial: Trial) -> None:
        entry = {
            "key": self.key(spec, params),
            "model": spec.name,
            "params": params,
            "val": trial.val,
            "seconds": trial.seconds,
            "info": trial.info,
            "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
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


def coordinate_search(
    spec: ModelSpec,
    val_fold: Fold,
    candidates: Tensor | None,
    max_rounds: int = 4,
    jobs: int = 1,
    cache: TrialCache | None = None,
) -> list[Trial]:
    """Coordinate search on validation NDCG@20; a grid grows past an edge while its best value lies there. It climbs
    from ``spec.start`` and then from each of ``spec.starts`` (trials shared); the best trial of all comes first.

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
        pool = ProcessPoolExecutor(
            max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(_blas_threads(),)
        )

    def record(params: dict[str, Any], trial: Trial, note: str = "") -> None:
        trials[_key(params)] = trial
        console.print(
            f"  {spec.name} {params} → val {VAL_METRIC} {trial.val:.4f} ({trial.seconds:.1f}s){note}", highlight=False
        )

    def run_all(param_sets: list[dict[str, Any]]) -> None:
        todo: dict[tuple, dict[str, Any]] = {}
        for params in param_sets:
            if _key(params) in trials or _key(params) in todo:
                continue
            hit = cache.get(spec, {**spec.fixed, **params}) if cache is not None else None
            if hit is not None:
                record(
                    params,
                    Trial(dict(params), hit["val"], hit["seconds"], hit["info"]),
                    f" [measured {hit['measured']}, --resume]",
                )
                continue
            todo[_key(params)] = params

        def done(params: dict[str, Any], result: tuple[float, float, dict[str, Any]]) -> None:
            trial = Trial(dict(params), *result)
            if cache is not None:
                cache.put(spec, {**spec.fixed, **params}, trial)
            record(params, trial)

        if pool is not None and len(todo) > 1:
            from concurrent.futures import as_completed

            futures = {
                pool.submit(_run_trial, spec.fit, {**spec.fixed, **p}, val_fold, spec.early_stopping, candidates): p
                for p in todo.values()
            }
            for future in as_completed(futures):
                done(futures[future], future.result())
        else:
            for params in todo.values():
                done(params, _run_trial(spec.fit, {**spec.fixed, **params}, val_fold, spec.early_stopping, candidates))

    try:
        first = next(iter(spec.axes), None)  # the start and the first sweep at once: the same fits either way
        run_all(
            [dict(spec.start)]
            + (
                [{**spec.start, first: v} for v in sorted(spec.axes[first].values)]
                if first is not None and parallel
                else []
            )
        )
        extras = ({**spec.start, **{k: v for k, v in extra.items() if k in spec.axes}} for extra in spec.starts)
        for start in [dict(spec.start), *extras]:
            for name, axis in spec.axes.items():
                if start[name] not in axis.values:  # a start off the grid joins it
                    axis.values.append(start[name])
            run_all([start])
            best = trials[_key(start)]
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
