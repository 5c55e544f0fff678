"""api.ranking's MMR: the trade-off among the best items does not depend on how deep the pool reaches."""

from __future__ import annotations

import numpy as np

from api.ranking import MMR_CHOICE, mmr


def _unit(*rows: tuple[float, float, float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


# The shop of docs/walkthrough.md, customer c001 (scores and cosines of the trained blend): Quiet Planter 1 first;
# Quiet Puzzle 1 nearly as relevant (3.454) and somewhat like it (cosine 0.427); Happy Puzzle 1 far weaker (0.554)
# and unlike it (-0.328); then the pool's weaker items.
RELEVANCE = np.array([3.605, 3.454, 0.554, -1.437])
VECTORS = _unit((1.0, 0.0, 0.0), (0.427, 0.904, 0.0), (-0.328, 0.0, 0.945), (0.3, -0.954, 0.0))


def test_weaker_items_added_below_its_choice_do_not_reorder_mmr_picks() -> None:
    """Two picks from a pool of 2k = 4: the runner-up follows the first. The same pool with one weaker item added
    (what the explain fallback's further batch did) must give the same picks: scaled between the best and the
    worst, the added -2.47 squeezed the gap between 3.454 and 0.554 until the unlike, weak item came second."""
    assert len(RELEVANCE) == MMR_CHOICE * 2
    assert mmr(RELEVANCE, VECTORS, 2, lam=0.6) == [0, 1]
    deeper = np.append(RELEVANCE, [-2.47, -3.0])
    vectors = np.vstack([VECTORS, _unit((0.3, 0.0, -0.954), (0.0, 0.6, -0.8))])
    assert mmr(deeper, vectors, 2, lam=0.6) == [0, 1]
    assert mmr(deeper[::-1].copy(), vectors[::-1].copy(), 2, lam=0.6) == [5, 4]  # positions follow the pool's order


def test_diversity_still_wins_among_the_best() -> None:
    """Within the pool's best 2k, an item unlike the first pick still overtakes a slightly more relevant copy."""
    relevance = np.array([1.0, 0.99, 0.95, 0.2, 0.1, 0.0])
    vectors = _unit(
        (1.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.0, 1.0), (0.0, 1.0, 1.0)
    )
    assert mmr(relevance, vectors, 2, lam=0.6) == [0, 2]
    assert mmr(relevance, vectors, 2, lam=1.0) == [0, 1]
