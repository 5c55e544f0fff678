"""Group aggregation (:mod:`api.groups`): normalisation, the three aggregations, and whom an item serves."""

from __future__ import annotations

import numpy as np
import pytest

from api.groups import aggregate, normalise, served


def test_normalise_is_a_z_score_per_member_over_the_candidates() -> None:
    raw = np.array([[1.0, 2.0, 3.0, 100.0], [10.0, 10.0, 10.0, 0.0]])
    candidates = np.array([True, True, True, False])
    z = normalise(raw, candidates)
    assert z[0, :3] == pytest.approx([-1.224745, 0.0, 1.224745], abs=1e-6)  # the excluded 100 does not count
    assert list(z[1, :3]) == [0.0, 0.0, 0.0]  # scores that do not vary are all average
    assert np.isneginf(z[:, 3]).all()


def test_least_misery_sinks_an_item_one_member_hates() -> None:
    """Item 0 is loved by member A and hated by member B (their lowest score): on average it is second, under least
    misery last, under most pleasure first."""
    raw = np.array(
        [
            [10.0, 3.0, 2.0, 1.0, 1.0, 1.0],  # member A loves item 0
            [0.0, 3.0, 2.0, 2.0, 2.0, 2.0],  # member B hates item 0
        ]
    )
    z = normalise(raw, np.ones(6, dtype=bool))
    average, misery, pleasure = (aggregate(z, how) for how in ("average", "least_misery", "most_pleasure"))

    def rank(scores: np.ndarray, item: int) -> int:
        return list(np.argsort(-scores, kind="stable")).index(item)

    assert rank(average, 0) == 1
    assert rank(misery, 0) == 5 > rank(average, 0)  # the hated item falls to the bottom
    assert rank(pleasure, 0) == 0
    assert misery == pytest.approx(z.min(axis=0)) and pleasure == pytest.approx(z.max(axis=0))
    assert average == pytest.approx(z.mean(axis=0))


def test_an_unknown_aggregation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(np.zeros((2, 3)), "median")


def test_an_item_serves_the_members_at_or_above_their_mean() -> None:
    assert served(np.array([0.5, -0.2, 0.0])) == [0, 2]
    assert served(np.array([-0.5, -0.2, -1.0])) == [1]  # nobody above their mean: the one who likes it most
