"""Turning scores into ranked lists of :class:`~api.schemas.RecommendedItem`, for the three paths of
:mod:`api.service`.

* The graph path blends its recall sources (:func:`blend`).
* The model path and the degraded path share their tail: the model's best unseen items (:func:`unseen_ranking`),
  its new-arrival candidates (:func:`cold_unseen`), maximal marginal relevance over a pool (:func:`mmr`) with the
  new arrivals placed in the positions the model reserves for them (:func:`pick`), and the items with the model's
  score scaled by the first item's as their one source (:func:`scored_items`).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from api.model import ServingModel
from api.schemas import RecommendedItem
from graph.explain import ExplainedItem
from graph.paths import Explanation, constructed
from graph.recall import Candidate

#: Explanation paths kept per recommended item.
MAX_EXPLANATIONS = 3
#: MMR chooses ``k`` items among about ``MMR_CHOICE * k``: the API's pool holds that many of the best unseen items
#: (:meth:`api.service.Recommender._explain_want`), and :func:`mmr` scales relevance down to the score at that depth.
MMR_CHOICE = 2


@dataclass
class _Blended:
    item_id: str
    title: str | None = None
    score: float = 0.0
    sources: dict[str, float] = field(default_factory=dict)
    explanations: list[tuple[float, Explanation]] = field(default_factory=list)


@dataclass(frozen=True)
class Exposure:
    """What a user's recorded impressions do to their next list (``KGREC_FATIGUE_HALF_LIFE``,
    ``KGREC_ROTATION_LISTS``).

    Attributes:
        factors: Score factor of each item shown and not interacted with: ``0.5 ** (times shown / half-life)``.
        rotated: Items shown in the user's last N lists, left out.
    """

    factors: dict[str, float] = field(default_factory=dict)
    rotated: frozenset[str] = frozenset()

    @classmethod
    def of(cls, shown: Mapping[str, tuple[int, int]], lists_shown: int, half_life: float, rotation: int) -> Exposure:
        """The exposure from ``shown`` (``{item: (times shown, the user's list number when last shown)}``)."""
        factors = {}
        if half_life > 0:
            power = _fatigue_factors(half_life)  # times shown are small integers: each factor computed once
            factors = {i: power[n] for i, (n, _) in shown.items() if n > 0}
        rotated = (
            frozenset(i for i, (_, last) in shown.items() if last > lists_shown - rotation) if rotation else frozenset()
        )
        return cls(factors, rotated)

    def fatigue(self, model: ServingModel, scores: np.ndarray) -> np.ndarray:
        """``scores`` with each shown item's score lowered by its factor (multiplied by it; a negative score
        loses the same share of its magnitude), before the ranking and the cut; ``scores`` itself when none."""
        index = model.item_rows(list(self.factors))  # one lookup of every shown item, -1 for those the model lacks
        known = index >= 0
        if not known.any():
            return scores
        out = scores.copy()
        factor = np.fromiter(self.factors.values(), dtype=np.float64, count=len(self.factors))
        index, factor = index[known], factor[known].astype(out.dtype)
        out[index] = out[index] - (1.0 - factor) * np.abs(out[index])
        return out


class _FatigueFactors(dict):
    """``0.5 ** (n / half_life)`` by ``n``, each computed on first use (the same float as computing it each time)."""

    def __init__(self, half_life: float) -> None:
        super().__init__()
        self.half_life = half_life

    def __missing__(self, n: int) -> float:
        value = self[n] = 0.5 ** (n / self.half_life)
        return value


@functools.lru_cache(maxsize=8)
def _fatigue_factors(half_life: float) -> _FatigueFactors:
    return _FatigueFactors(half_life)


def blend(
    results: dict[str, list[Candidate]],
    weights: dict[str, float],
    k: int,
    explain: bool = True,
    exposure: Exposure | None = None,
) -> list[RecommendedItem]:
    """Combine per-source candidate lists into one ranked list.

    Args:
        results: Candidates per source name, each list best first.
        weights: Blend weight per source (missing = 1.0).
        k: Items to return.
        explain: Keep explanation paths.
        exposure: The user's exposure: blended scores times the fatigue factors, rotated items left out (before
            the cut).

    Returns:
        At most ``k`` items, by blended score, ties by item id.
    """
    merged: dict[str, _Blended] = {}
    for source, candidates in results.items():
        if not candidates:
            continue
        top = max(c.score for c in candidates) or 1.0
        weight = weights.get(source, 1.0)
        for c in candidates:
            norm = c.score / top if top > 0 else 0.0
            entry = merged.setdefault(c.item_id, _Blended(c.item_id))
            entry.title = entry.title or c.title
            entry.score += weight * norm
            entry.sources[source] = round(norm, 4)
            if explain:
                entry.explanations.extend((weight * norm, e) for e in c.explanations)
    if exposure is not None:
        for item_id in exposure.rotated:
            merged.pop(item_id, None)
        for item_id, factor in exposure.factors.items():
            if item_id in merged:
                merged[item_id].score *= factor
    ranked = sorted(merged.values(), key=lambda b: (-b.score, b.item_id))[:k]
    return [
        RecommendedItem(
            item_id=b.item_id,
            title=b.title,
            score=round(b.score, 6),
            sources=b.sources,
            explanations=[e for _, e in sorted(b.explanations, key=lambda p: -p[0])[:MAX_EXPLANATIONS]],
        )
        for b in ranked
    ]


def mmr(relevance: np.ndarray, vectors: np.ndarray | None, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: pick ``k`` positions greedily by ``λ·rel − (1−λ)·max cos(to picked)``.

    ``rel`` is the score scaled so that the pool's best is 1 and its ``MMR_CHOICE · k``-th best is 0 (its last when
    it holds fewer; the items below score below 0), not between the pool's best and worst: how deep the pool
    reaches must not change the trade-off among its best items. Scaled to the worst, a pool extended with weaker
    items (the explain fallback's further batches, the degraded path's wider pool) squeezed the relevance gaps at the
    top, and an item far less relevant but unlike the first pick jumped to position 2.

    Args:
        relevance: ``[n]`` scores of the pool, best first or not.
        vectors: ``[n, d]`` unit vectors of the pool (None, or ``lam >= 1``: plain relevance order).
        k: Items to pick.
        lam: Trade-off in [0, 1]; 1 = relevance only.

    Returns:
        Positions into the pool, in pick order.
    """
    n = len(relevance)
    order = [int(i) for i in np.argsort(-relevance, kind="stable")]
    if vectors is None or lam >= 1.0 or n <= 1:
        return order[:k]
    floor = float(relevance[order[min(n, max(MMR_CHOICE * k, 2)) - 1]])
    rel = (relevance - floor) / (float(relevance[order[0]] - floor) or 1.0)
    picked = [order[0]]
    closest = vectors @ vectors[order[0]]
    available = np.ones(n, dtype=bool)
    available[order[0]] = False
    while len(picked) < min(k, n):
        gain = np.where(available, lam * rel - (1.0 - lam) * closest, -np.inf)
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        closest = np.maximum(closest, vectors @ vectors[best])
    return picked


def unseen_ranking(
    model: ServingModel, scores: np.ndarray, seen: set[str], limit: int = 600, masked: np.ndarray | None = None
) -> list[int]:
    """Rows of the ``limit`` best-scored items not in ``seen`` (nor scored ``-inf``), best first (ties by row).
    ``masked``: :func:`unseen_scores` of the same arguments, when the caller has it."""
    masked = unseen_scores(model, scores, seen) if masked is None else masked
    limit = min(limit, len(masked))
    top = np.argpartition(-masked, limit - 1)[:limit] if limit < len(masked) else np.arange(len(masked))
    top = top[np.isfinite(masked[top])]
    return top[np.lexsort((top, -masked[top]))].tolist()


def cold_unseen(
    model: ServingModel, scores: np.ndarray, seen: set[str], k: int, masked: np.ndarray | None = None
) -> list[int]:
    """Rows of the unseen cold items a blend may put in its reserved new-arrival positions, best first (a few more
    than it has positions, for the ones the filters drop); none for other models. ``masked``: as for
    :func:`unseen_ranking`."""
    slots = getattr(model, "cold_slots", 0)
    if not slots:
        return []
    return model.cold_candidates(unseen_scores(model, scores, seen) if masked is None else masked, 3 * slots + k)


def diversify(model: ServingModel, scores: np.ndarray, rows: np.ndarray, k: int, lam: float) -> list[int]:
    """Positions into ``rows`` that :func:`mmr` picks with the model's item vectors (relevance order without)."""
    if len(rows) == 0:
        return []
    vectors = model.item_vectors()
    return mmr(scores[rows].astype(np.float64), None if vectors is None else vectors[rows], k, lam)


def pick(
    model: ServingModel, scores: np.ndarray, pool: Sequence[int], k: int, lam: float, cold: Sequence[int] | None
) -> list[int]:
    """The rows to show: :func:`diversify` over ``pool``, then the model's reserved new-arrival positions filled
    from ``cold`` (the policy bench.quality measures, :func:`gnn.blend.cold.reserve_cold_slots`).

    Args:
        model: The serving model.
        scores: ``[len(item_ids)]`` its scores for the user.
        pool: Rows to pick from, best first.
        k: Items to pick.
        lam: MMR trade-off (1 = relevance only).
        cold: New-arrival candidates, best first; None when the model has none to place.
    """
    rows = np.array(pool, dtype=np.int64)
    picked = [int(rows[p]) for p in diversify(model, scores, rows, k, lam)]
    if cold is not None:
        picked = model.place_cold(picked, scores, k, cold)
    return picked


def scored_items(
    model: ServingModel,
    scores: np.ndarray,
    picked: Sequence[int],
    explained: Mapping[str, ExplainedItem] | None = None,
    explain: bool = True,
) -> list[RecommendedItem]:
    """The picked rows as items: the model's score, and as its one source that score divided by the first item's.

    Args:
        model: The serving model (its kind names the source).
        scores: Its scores for the user.
        picked: Rows, in the order shown.
        explained: Titles and paths by item id (every picked item); None: no titles nor paths (Neo4j is away).
        explain: Keep the paths.
    """
    top = float(scores[picked[0]]) if picked else 1.0
    items = []
    for row in picked:
        entry = explained[model.item_ids[row]] if explained is not None else None
        score = float(scores[row])
        items.append(
            constructed(  # the values are right by construction: no validation per item
                RecommendedItem,
                {
                    "item_id": model.item_ids[row],
                    "title": entry.title if entry is not None else None,
                    "score": round(score, 6),
                    "sources": {model.kind: round(score / top, 4) if top > 0 else 0.0},
                    "explanations": list(entry.explanations) if entry is not None and explain else [],
                },
            )
        )
    return items


def place_arrivals(
    items: Sequence[RecommendedItem], arrivals: Sequence[Candidate], k: int, every: int, explain: bool = True
) -> list[RecommendedItem]:
    """``items`` with ``arrivals`` (items no model knows yet, from knowledge recall, best first) put at the model's
    reserved new-arrival positions ``every, 2·every, …`` (1-based), the items there and after moving down one place
    each, cut to ``k``. An arrival shows the score of the item it displaces (the model has none for it) and its
    recall score over the best arrival's as its ``knowledge`` source; its paths say it is new.

    Args:
        items: The model's list, in order.
        arrivals: At most as many as the model reserves positions.
        k: Length of the list.
        every: The reserved positions' spacing (0: none).
        explain: Keep the arrivals' paths.
    """
    out = list(items)
    if every <= 0 or not arrivals:
        return out[:k]
    top = max(c.score for c in arrivals) or 1.0
    for n, c in enumerate(arrivals, start=1):
        position = n * every - 1
        if position > len(out) or position >= k:
            break
        displaced = out[position].score if position < len(out) else (out[-1].score if out else 0.0)
        out.insert(
            position,
            RecommendedItem(
                item_id=c.item_id,
                title=c.title,
                score=displaced,
                sources={"knowledge": round(c.score / top, 4) if top > 0 else 0.0},
                explanations=list(c.explanations[:MAX_EXPLANATIONS]) if explain else [],
            ),
        )
    return out[:k]


def unseen_scores(
    model: ServingModel, scores: np.ndarray, seen: Collection[str], rows: np.ndarray | None = None
) -> np.ndarray:
    """A copy of ``scores`` with the items of ``seen`` at ``-inf``, and those at ``rows`` (the model's rows of seen
    items that the caller has looked up already, -1 for unknown ids: a heavy user's thousands of interactions are
    looked up once per answer, for the model's positives and here)."""
    masked = scores.copy()
    if rows is not None:
        masked[rows[rows >= 0]] = -np.inf
    found = model.item_rows(list(seen))  # a heavy user has seen thousands: one lookup of them all
    masked[found[found >= 0]] = -np.inf
    return masked


__all__ = [
    "MAX_EXPLANATIONS",
    "Exposure",
    "blend",
    "cold_unseen",
    "diversify",
    "mmr",
    "pick",
    "place_arrivals",
    "scored_items",
    "unseen_ranking",
    "unseen_scores",
]
