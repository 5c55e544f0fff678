"""The component search: EASE^R's λ and ALS's factors, regularisation and alpha chosen on validation, each
component alone (:func:`search_components`), and when an earlier search may stand for a new one
(:func:`reusable_search`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
from torch import Tensor
from tqdm.auto import tqdm

from gnn.blend.config import FEATURES, META_FILE, RankerConfig
from gnn.blend.linear import fit_als_component, fit_ease
from gnn.blend.model import RankerModel
from gnn.blend.path import EasePath, sample_user_pairs
from gnn.blend.scorers import als_vector, ease_scores, zscore
from gnn.blend.weights import ValidationData
from gnn.config import resolve_device
from gnn.data import GraphSnapshot
from gnn.phases import phase

log = logging.getLogger(__name__)
T = TypeVar("T", int, float)  # a grid value of the component search


#: The ALS settings a component search chooses, in the order of its candidates' tuples.
ALS_AXES = ("als_factors", "als_regularization", "als_alpha", "als_reg_exponent")


def search_grids(config: RankerConfig) -> dict[str, Any]:
    """The grids and starting values a component search explores (a reused choice must come from the same)."""
    return {
        name: getattr(config, name)
        for name in (
            "ease_lambda_grid",
            "als_factors_grid",
            "als_regularization_grid",
            "als_alpha_grid",
            "als_scale_grid",
            "als_reg_exponent_grid",
            "als_reg_exponent",
            "als_factors",
            "als_regularization",
            "als_alpha",
            "ease_top_n",
            "ease_max_items",
            "ease_max_solve",
            "als_iterations",
            "als_cg_steps",
            "ease_lambda",
            "component_search_exhaustive",
            "component_search_extra_fits",
            "als_factors_max",
            "als_factors_min_gain",
            "component_search_large_positives",
            "component_search_max_positives",
        )
    }


def grid_step(values: Sequence[T], at_high: bool, integer: bool, low: float = 0.0, high: float = math.inf) -> T | None:
    """The next value past one end of a grid: the outermost gap repeated on the grid's own scale (geometric:
    ``b · b / a`` for the two outermost values ``a``, ``b``), rounded to an integer or 3 significant digits.
    None when the grid has fewer than two values, or the value would not be positive, would leave
    ``[low, high]`` or is already in the grid.

    The one rule by which a search grows a grid past an edge: the component search's (:func:`climb`) and
    ``bench.search``'s for the reference models."""
    ordered = sorted(values)
    if len(ordered) < 2 or ordered[0] <= 0:
        return None
    a, b = (ordered[-2], ordered[-1]) if at_high else (ordered[1], ordered[0])
    new = b * (b / a)
    value: T = round(new) if integer else float(f"{new:.3g}")  # type: ignore[assignment]
    if value <= 0 or not low <= value <= high or value in ordered:
        return None
    return value


@dataclass
class Budget:
    """Fits a search may spend on values past its grids' edges (shared by all its axes)."""

    fits: int
    spent: int = 0

    def take(self) -> bool:
        if self.spent >= self.fits:
            return False
        self.spent += 1
        return True


def climb(
    grid: Sequence[T],
    start: T,
    score: Callable[[T], float],
    exhaustive: bool = False,
    *,
    extend: Callable[[list[T], bool], T | None] | None = None,
    budget: Budget | None = None,
    min_gain: float = 0.0,
) -> tuple[T, dict[T, float]]:
    """The best value of ``grid ∪ {start}`` by ``score``, found by hill-climbing from ``start``: the lower neighbour
    first, then down while each step is better; if going down did not help, up the same way. With
    ``exhaustive``, every value is scored (and the best chosen as a climb from the smallest would). Ties keep the
    value reached first. A larger value counts as better only when its score beats the best by more than the
    fraction ``min_gain`` (for an axis whose larger values cost more, such as ALS factors: a flat curve stops the
    climb instead of creeping up it); a smaller one, when it beats it at all.

    When the best value so far is the last one in the direction the climb went (or, exhaustive, the grid's
    smallest or largest), the grid grows past that edge by ``extend(values, at_high)`` (:func:`grid_step`), one
    value at a time while each is better and ``budget`` has fits left.

    Returns:
        The chosen value and the score of every value tried (extensions included).
    """
    values = sorted({*grid, start})
    scored: dict[T, float] = {}

    def tried(v: T) -> float:
        if v not in scored:
            scored[v] = score(v)
        return scored[v]

    def beats(v: T, best: T) -> bool:
        return tried(v) > scored[best] * (1.0 + min_gain if v > best else 1.0)

    def grow(best: T) -> T:
        """Past the edge ``best`` sits on while each new value is better (and fits are left)."""
        while extend is not None and len(values) > 1 and best in (values[0], values[-1]):
            at_high = best == values[-1]
            new = extend(values, at_high)
            if new is None or budget is None or not budget.take():
                break
            values.insert(len(values) if at_high else 0, new)
            if not beats(new, best):
                break
            best = new
        return best

    if exhaustive:
        best = values[0]
        for v in values:
            if beats(v, best):
                best = v
        return grow(best), scored
    best, at = start, values.index(start)
    tried(start)
    for step in (-1, 1):
        j = at + step
        while 0 <= j < len(values) and beats(values[j], best):
            best, j = values[j], j + step
        if best != start:
            break
    return grow(best), scored


def at_grid_edge(value: T, tried: Sequence[T]) -> bool:
    """True when ``value`` is the smallest or largest of the values ``tried`` (more than one)."""
    return len(set(tried)) > 1 and value in (min(tried), max(tried))


def reusable_search(directory: Path | None, config: RankerConfig, fit_positives: int) -> dict[str, Any] | None:
    """The component search recorded in the blend saved in ``directory`` (e.g. the promoted one), if it may stand
    for a new search under ``config``: searching is on, ``component_search_reuse`` is set, the grids are the same
    and the fit positives differ by at most that fraction from the ones it was searched on. None otherwise
    (including a missing or unreadable model)."""
    if directory is None or not config.component_search or config.component_search_reuse is None:
        return None
    try:
        saved = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    search = (saved.get("meta") or {}).get("validation", {}).get("component_search")
    if not isinstance(search, dict) or not {"chosen", "fit_positives", "grids"} <= search.keys():
        return None
    if json.loads(json.dumps(search_grids(config))) != search["grids"]:
        return None
    if abs(fit_positives - search["fit_positives"]) > config.component_search_reuse * search["fit_positives"]:
        return None
    return search


def search_components(
    snapshot: GraphSnapshot,
    pairs: Tensor,
    probe: RankerModel,
    data: ValidationData,
) -> tuple[RankerModel, dict[str, Any]]:
    """Choose EASE^R's λ and ALS's factors, regularisation and alpha on validation: each candidate is fitted
    on ``pairs`` (the split's fit part) and its feature alone ranks ``data``'s users (their fitted histories,
    fit items excluded, validation items the targets). EASE^R scores a λ by the better of its two features
    (``ease``, ``ease_recent``); ALS is a coordinate search, factors first, then regularisation, then alpha,
    each from the best so far, then both of these multiplied together by ``als_scale_grid``'s factors (the two
    interact: the diagonal reaches what one axis at a time does not). Every grid is climbed from the config's value (:func:`climb`), or scored whole
    with ``component_search_exhaustive``; a choice at a grid's edge grows that grid past it (:func:`grid_step`)
    while each new value is better, for at most ``component_search_extra_fits`` fits over the whole search (ALS
    factors up to ``als_factors_max``). A choice still at the edge of what was tried is logged and reported.

    The winners replace ``probe``'s components, their z-scored features replace ``data``'s (in place, rows
    ``ease``, ``ease_recent`` and ``als``: z-scores are per feature, so the others stand), so the ranker
    weights are fitted on them and the refit uses them.

    Returns:
        A model like ``probe`` with the chosen config and components, and the search report (NDCG@20 per
        candidate, the choice, seconds).
    """
    config = probe.config
    started = time.perf_counter()
    num_users, num_items = snapshot.num_users, snapshot.num_items
    histories = [probe.history(int(u)) for u in data.users]
    device = resolve_device(config.device)

    def ranked(score_rows: np.ndarray) -> float:
        return data.ndcg_of(data.columns(score_rows).copy())

    def feature_rows(fn: Any) -> np.ndarray:  # noqa: ANN401 - history -> [I] scores
        out = np.zeros((len(histories), num_items), dtype=np.float32)
        for r, (items, times) in enumerate(histories):
            if len(items):
                out[r] = fn(items, times)
        return out

    ease_report: dict[str, dict[str, float]] = {}
    best_ease: tuple[float, float, sp.csr_matrix, np.ndarray, np.ndarray] | None = None  # only the best fit is kept
    ease_bar = tqdm(desc="search: EASE^R λ", disable=not config.progress, leave=False)
    # at size: every λ from one eigendecomposition, ALS candidates on a bounded sample of users (gnn.blend.path)
    large = (
        config.component_search_large_positives is not None and pairs.size(1) > config.component_search_large_positives
    )
    path: EasePath | None = None
    if large:
        with phase("ease_path"):  # the Gram matrix and its eigendecomposition, once
            path = EasePath(
                pairs,
                num_users,
                num_items,
                histories,
                config.ease_half_life,
                config.ease_max_items,
                config.ease_max_solve,
            )

    def fit_scored(lam: float) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """EASE^R fitted at ``lam`` and its two feature rows (``ease``, ``ease_recent``) on ``data``'s users."""
        ease = fit_ease(
            pairs,
            num_users,
            num_items,
            lam,
            config.ease_top_n,
            device,
            max_items=config.ease_max_items,
            max_solve=config.ease_max_solve,
        )
        plain = feature_rows(lambda i, t, e=ease: ease_scores(e, i, t, config.ease_half_life)[0])
        recent = feature_rows(lambda i, t, e=ease: ease_scores(e, i, t, config.ease_half_life)[1])
        return ease, plain, recent

    def try_ease(lam: float) -> float:
        nonlocal best_ease
        if path is not None:  # scored on the path; only the chosen λ is fitted (below)
            ease, (plain, recent) = None, path.scores(lam)
        else:
            ease, plain, recent = fit_scored(lam)
        ease_report[f"{lam:g}"] = {"ease": ranked(plain), "ease_recent": ranked(recent)}
        value = max(ease_report[f"{lam:g}"].values())
        if best_ease is None or value > best_ease[0]:
            best_ease = (value, lam, ease, plain, recent)  # type: ignore[assignment]
        ease_bar.update()
        return value

    budget = Budget(config.component_search_extra_fits)
    with phase("ease_lambdas"):
        _, ease_tried = climb(
            config.ease_lambda_grid,
            config.ease_lambda,
            try_ease,
            config.component_search_exhaustive or large,  # on the path a λ costs O(S·m²): the whole grid
            extend=lambda values, high: grid_step(values, high, integer=False),
            budget=Budget(config.component_search_extra_fits) if large else budget,  # no fits: ALS keeps its own
        )
    ease_bar.close()
    assert best_ease is not None
    _, lam, ease, plain, recent = best_ease  # the climb's choice: both keep the first of equal scores
    if path is not None:
        del path
        with phase("ease_chosen"):
            ease, plain, recent = fit_scored(lam)
    als_pairs = sample_user_pairs(pairs, config.component_search_max_positives, config.seed) if large else pairs

    als_report: dict[str, float] = {}
    als_scores_of: dict[tuple[int, float, float, float], float] = {}
    best_als: tuple[float, tuple[int, float, float, float], np.ndarray, np.ndarray, np.ndarray] | None = None
    point = (config.als_factors, config.als_regularization, config.als_alpha, config.als_reg_exponent)

    bar = tqdm(desc="search: ALS candidates", disable=not config.progress or not config.als_factors, leave=False)

    def try_als(candidate: tuple[int, float, float, float]) -> float:
        nonlocal best_als
        if candidate not in als_scores_of:
            bar.update()
            trial = config.model_copy(update=dict(zip(ALS_AXES, candidate, strict=True)))
            with phase("als_candidate"):  # a fit (on the user sample at size) and its feature's ranking
                items_f, gram = fit_als_component(als_pairs, num_users, num_items, trial)
                rows = feature_rows(
                    lambda i, t: (
                        items_f
                        @ als_vector(
                            items_f, gram, i, t, config.als_half_life, candidate[2], candidate[1], candidate[3]
                        )
                    )
                )
            value = als_scores_of[candidate] = ranked(rows)
            name = f"factors={candidate[0]} regularization={candidate[1]:g} alpha={candidate[2]:g}"
            if candidate[3]:  # frequency-scaled regularisation (named only when on: the names of plain ALS stay)
                name += f" reg_exponent={candidate[3]:g}"
            als_report[name] = value
            log.debug("component search: ALS %s: validation NDCG@20 %.4f", name, value)
            if best_als is None or value > best_als[0]:
                best_als = (value, candidate, items_f, gram, rows)  # only the best fit's arrays are kept
        return als_scores_of[candidate]

    edges: list[str] = []
    tried_values: dict[str, list[float]] = {"ease_lambda": sorted(ease_tried)}
    if len(ease_tried) > 1 and at_grid_edge(lam, list(ease_tried)):
        edges.append(f"ease_lambda={lam:g}")
    if config.als_factors:
        axes = (
            ("als_factors", config.als_factors_grid, True, float(config.als_factors_max)),
            ("als_regularization", config.als_regularization_grid, False, math.inf),
            ("als_alpha", config.als_alpha_grid, False, math.inf),
            ("als_reg_exponent", config.als_reg_exponent_grid, False, 2.0),
        )
        for axis, (name, grid, integer, high) in enumerate(axes):

            def along(value: Any, axis: int = axis, start: tuple = point) -> float:  # noqa: ANN401 - a value of this axis
                return try_als(tuple(value if j == axis else v for j, v in enumerate(start)))  # type: ignore[arg-type]

            # from the current value (always tried: each axis can only improve); past an edge while it helps
            pick, scored = climb(
                grid,
                point[axis],
                along,
                config.component_search_exhaustive,
                extend=lambda values, at_high, integer=integer, high=high: grid_step(values, at_high, integer, 0, high),
                budget=budget,
                min_gain=config.als_factors_min_gain if name == "als_factors" else 0.0,
            )
            point = tuple(pick if j == axis else v for j, v in enumerate(point))  # type: ignore[assignment]
            tried_values[name] = sorted(scored)
            bound = name == "als_reg_exponent" and pick == 0  # plain ALS: an edge there is the axis' own bound
            if len(grid) > 1 and at_grid_edge(pick, list(scored)) and not bound:
                edges.append(f"{name}={pick:g}")
        if len(config.als_scale_grid) > 1:  # regularisation and alpha together, from where the axes left them

            def scaled(c: float, start: tuple = point) -> tuple[int, float, float, float]:
                return (start[0], float(f"{start[1] * c:.4g}"), float(f"{start[2] * c:.4g}"), start[3])

            pick, scored = climb(
                config.als_scale_grid,
                1.0,
                lambda c: try_als(scaled(c)),
                config.component_search_exhaustive,
                extend=lambda values, at_high: grid_step(values, at_high, integer=False),
                budget=budget,
            )
            point = scaled(pick)
            tried_values["als_scale"] = sorted(scored)
            if at_grid_edge(pick, list(scored)):
                edges.append(f"als_scale={pick:g}")
    bar.close()
    if edges:
        log.warning(
            "component search stopped at the edge of what it tried (%s) after %d of %d fits past the grids' edges "
            "(component_search_extra_fits, als_factors_max)",
            ", ".join(edges),
            budget.spent,
            budget.fits,
        )

    chosen = config.model_copy(update={"ease_lambda": lam, **dict(zip(ALS_AXES, point, strict=True))})
    updates: dict[str, Any] = {"ease": ease}
    data.features[FEATURES.index("ease")] = data.columns(zscore(plain))
    data.features[FEATURES.index("ease_recent")] = data.columns(zscore(recent))
    if best_als is not None:
        _, fitted, items_f, gram, rows = best_als
        if fitted != point:  # the climb kept a cheaper point than the best-scoring fit (als_factors_min_gain)
            trial = config.model_copy(update=dict(zip(ALS_AXES, point, strict=True)))
            with phase("als_chosen"):
                items_f, gram = fit_als_component(als_pairs, num_users, num_items, trial)
            rows = feature_rows(
                lambda i, t: (
                    items_f @ als_vector(items_f, gram, i, t, config.als_half_life, point[2], point[1], point[3])
                )
            )
        if als_pairs is not pairs:  # chosen on a sample of users: the ranker weights see it fitted on every user
            if point == (config.als_factors, config.als_regularization, config.als_alpha, config.als_reg_exponent):
                items_f, gram = probe.components.als_items, probe.components.als_gram  # the probe's, on every user
            else:
                trial = config.model_copy(update=dict(zip(ALS_AXES, point, strict=True)))
                with phase("als_chosen"):
                    items_f, gram = fit_als_component(pairs, num_users, num_items, trial, init=items_f)  # warm
            rows = feature_rows(
                lambda i, t: (
                    items_f @ als_vector(items_f, gram, i, t, config.als_half_life, point[2], point[1], point[3])
                )
            )
        updates.update(als_items=items_f, als_gram=gram)
        data.features[FEATURES.index("als")] = data.columns(zscore(rows))
    components = dataclasses.replace(probe.components, **updates)
    report = {
        "ease": ease_report,
        "als": als_report,
        "chosen": {"ease_lambda": lam, **dict(zip(ALS_AXES, point, strict=True))},
        "grid_edges": edges,
        "tried": tried_values,
        "extra_fits": budget.spent,
        "fit_positives": int(pairs.size(1)),
        "ease_path": large,  # λ scored from one eigendecomposition (gnn.blend.path)
        "als_positives": int(als_pairs.size(1)),  # the ALS candidates' fit positives (a sample of users at size)
        "grids": search_grids(config),
        "seconds": time.perf_counter() - started,
    }
    log.info(
        "component search: EASE^R λ %g, ALS factors %d, regularisation %g, alpha %g, reg exponent %g (%.0f s)",
        lam,
        *point,
        report["seconds"],
    )
    return RankerModel(chosen, probe.user_ids, probe.item_ids, components, probe.weights, probe.meta), report
