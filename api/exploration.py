"""Exploration: a share of a list's positions given to items just below the cut, chosen by Thompson sampling.

A recommender that only shows what it already ranks highest never learns about the rest: a new item, or one the
model underrates, is never shown, so it is never clicked, so it stays underrated. Exploration buys that knowledge
with a few positions. For each candidate below the cut (the next items of the ranking, which the user has not
interacted with and the filters allow) it draws a click-through rate from its Beta posterior — the prior centred on
the catalogue's overall CTR, updated with the item's own impressions and clicks — and the best draws take the
explored positions. An item never shown has a wide posterior and is drawn high often; an item shown many times
without a click is drawn low. Each explored item is flagged and keeps its explanation paths.

:class:`ItemStats` holds the impressions and clicks per item that the draws read: counted in process as lists are
shown and clicks arrive, and replaced from Neo4j's totals on a refresh (so several API processes learn from each
other's traffic).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Strength of the prior in pseudo-impressions: an item's own figures outweigh the catalogue's after this many.
PRIOR_IMPRESSIONS = 20.0


@dataclass(frozen=True)
class Explored:
    """A list after exploration: the items in order and, for each, whether exploration put it there."""

    items: list[str]
    explored: list[bool]


class ItemStats:
    """Impressions and clicks per item, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._impressions = 0
        self._clicks = 0

    def record_impressions(self, items: Iterable[str]) -> None:
        """Count one impression of each of ``items``."""
        with self._lock:
            for item in items:
                self._counts.setdefault(item, [0, 0])[0] += 1
                self._impressions += 1

    def record_click(self, item: str) -> None:
        """Count one click (or other positive reaction to a shown item) on ``item``."""
        with self._lock:
            self._counts.setdefault(item, [0, 0])[1] += 1
            self._clicks += 1

    def replace(self, totals: Mapping[str, tuple[int, int]]) -> None:
        """Replace every count by ``totals`` (item → impressions, clicks; clicks capped at impressions), e.g. Neo4j's
        after a refresh."""
        with self._lock:
            self._counts = {item: [int(i), min(int(c), int(i))] for item, (i, c) in totals.items()}
            self._impressions = sum(v[0] for v in self._counts.values())
            self._clicks = sum(v[1] for v in self._counts.values())

    def get(self, items: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """Impressions and clicks of ``items`` (two arrays) and the catalogue's CTR."""
        with self._lock:
            rows = [self._counts.get(item, (0, 0)) for item in items]
            ctr = self._clicks / self._impressions if self._impressions else 0.05
        ctr = min(max(ctr, 0.001), 0.999)
        shown = np.array([r[0] for r in rows], dtype=np.float64)
        clicked = np.array([r[1] for r in rows], dtype=np.float64)
        return shown, np.minimum(clicked, shown), ctr


def draw(items: Sequence[str], stats: ItemStats, rng: np.random.Generator) -> np.ndarray:
    """One click-through rate per item drawn from its Beta posterior: the catalogue's CTR as a prior worth
    :data:`PRIOR_IMPRESSIONS` impressions, plus the item's own impressions and clicks."""
    shown, clicked, ctr = stats.get(items)
    alpha = PRIOR_IMPRESSIONS * ctr + clicked
    beta = PRIOR_IMPRESSIONS * (1.0 - ctr) + (shown - clicked)
    return rng.beta(np.maximum(alpha, 1e-3), np.maximum(beta, 1e-3))


def explore_positions(k: int, share: float) -> list[int]:
    """The positions (0-based) exploration fills in a list of ``k``: every ``1/share``-th position (the last of each
    run of ``1/share``), never the first. Every prefix of the list holds its share of explored positions, so a
    client asking for fewer items than were computed still sees its share (``share`` 0.1: positions 9, 19, ...)."""
    if share <= 0 or k < 2:
        return []
    out: set[int] = set()
    j = 0
    while True:
        position = max(1, int((j + 1) / share + 1e-9) - 1)
        if position >= k:
            return sorted(out)
        out.add(position)
        j += 1


def sample_order(
    candidates: Sequence[str], ranked: Sequence[str], stats: ItemStats, rng: np.random.Generator
) -> list[str]:
    """``candidates`` not in ``ranked`` (duplicates once), ordered by one Thompson draw each, best first."""
    taken = set(ranked)
    pool = [c for c in dict.fromkeys(candidates) if c not in taken]
    if not pool:
        return []
    return [pool[i] for i in np.argsort(-draw(pool, stats, rng), kind="stable")]


def place(ranked: Sequence[str], chosen: Sequence[str], share: float) -> Explored:
    """``ranked`` with its explored positions (:func:`explore_positions`) given to ``chosen`` in order; the items
    they displace drop off its end, so the ranker's items keep their relative order."""
    k = len(ranked)
    positions = explore_positions(k, share)[: len(chosen)]
    explored_at = dict(zip(positions, chosen[: len(positions)], strict=True))
    kept = iter(ranked[: k - len(explored_at)])
    items, flags = [], []
    for p in range(k):
        if p in explored_at:
            items.append(explored_at[p])
            flags.append(True)
        else:
            items.append(next(kept))
            flags.append(False)
    return Explored(items, flags)


def thompson(
    ranked: Sequence[str],
    candidates: Sequence[str],
    stats: ItemStats,
    share: float,
    rng: np.random.Generator,
) -> Explored:
    """Give ``share`` of ``ranked``'s positions to ``candidates`` picked by Thompson sampling
    (:func:`sample_order`, then :func:`place`).

    Args:
        ranked: The list as the ranker made it, best first (its length is the list's length).
        candidates: Items below the cut, best first (unseen, allowed, not in ``ranked``).
        stats: Impressions and clicks per item.
        share: Share of positions to explore, in [0, 1).
        rng: The random source of the draws.
    """
    if not explore_positions(len(ranked), share):
        return Explored(list(ranked), [False] * len(ranked))
    return place(ranked, sample_order(candidates, ranked, stats, rng), share)


__all__ = [
    "PRIOR_IMPRESSIONS",
    "Explored",
    "ItemStats",
    "draw",
    "explore_positions",
    "place",
    "sample_order",
    "thompson",
]
