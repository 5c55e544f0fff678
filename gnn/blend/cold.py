"""How a list is cut from scores, and the new-arrival policy: positions reserved for items without positives.

The ranker rightly keeps items nobody has liked yet out of the top 20 (they hit less often than the warm items
they would displace), so a list reserves ``cold_slots`` positions (every ``cold_slot_every``-th) for the
best-scoring such items whose score is within ``cold_slot_margin`` of the item they displace
(:func:`reserve_cold_slots`): exposure for new items bought with a little accuracy. One implementation serves the
API (:meth:`gnn.blend.model.RankerModel.place_cold`) and the benchmark's lists
(:func:`gnn.blend.evaluate.ranked_lists`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def top_items(scores: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best of ``items`` by ``scores``, best first, ties by lower item_idx (so the best ``k`` are a
    prefix of the best ``k + 1``)."""
    if k <= 0 or len(items) == 0:
        return items[:0]
    if len(items) > k:
        kth = np.partition(scores[items], len(items) - k)[len(items) - k]
        items = items[scores[items] >= kth]  # every item tied with the k-th stays in the running
    return items[np.lexsort((items, -scores[items]))][:k]


def reserve_cold_slots(
    ranked: Sequence[int],
    cold: Sequence[int],
    scores: np.ndarray,
    k: int,
    *,
    slots: int,
    every: int,
    margin: float | None,
) -> list[int]:
    """A list of at most ``k`` distinct items: ``ranked`` in order, except that the 1-based positions
    ``every, 2·every, …`` (at most ``slots`` of them) go to the first item of ``cold`` not yet in the list —
    when its score is at least ``scores`` of the item it displaces (the next of ``ranked``) minus ``margin``
    (``None``: always; nothing to displace: always). A reserved position whose candidate fails keeps the
    ranked item; a cold item that ``ranked`` puts earlier stays there (it does not use up a slot). Position by
    position, so the list for ``k`` is a prefix of the list for any larger ``k``.

    Args:
        ranked: item_idx best first, as they would be shown (seen and filtered-out items already left out).
        cold: Candidate cold item_idx, best first (likewise already unseen and allowed).
        scores: ``[num_items]`` ranking scores.
        k: List length.
        slots, every, margin: The policy (:class:`gnn.blend.config.RankerConfig` ``cold_slots``, ``cold_slot_every``,
            ``cold_slot_margin``).
    """
    out: list[int] = []
    taken: set[int] = set()
    w = c = 0
    while len(out) < k:
        while w < len(ranked) and ranked[w] in taken:
            w += 1
        position = len(out) + 1
        if slots > 0 and position % every == 0 and position // every <= slots:
            while c < len(cold) and cold[c] in taken:
                c += 1
            if c < len(cold):
                displaced = float(scores[ranked[w]]) if w < len(ranked) else -math.inf
                if margin is None or float(scores[cold[c]]) >= displaced - margin:
                    out.append(int(cold[c]))
                    taken.add(int(cold[c]))
                    c += 1
                    continue
        if w >= len(ranked):
            break
        out.append(int(ranked[w]))
        taken.add(int(ranked[w]))
        w += 1
    return out
