"""Exploration by Thompson sampling: positions, draws from impressions and clicks, order of the ranker's items."""

import numpy as np
import pytest

from api.exploration import ItemStats, explore_positions, thompson


@pytest.mark.parametrize(
    ("k", "share", "expected"),
    [(20, 0.0, []), (20, 0.1, [9, 19]), (10, 0.2, [4, 9]), (1, 0.5, []), (6, 0.5, [1, 3, 5]), (4, 0.9, [1, 2, 3])],
)
def test_positions_are_spread_and_never_first(k, share, expected):
    assert explore_positions(k, share) == expected


def test_every_prefix_holds_its_share():
    positions = explore_positions(100, 0.1)
    for m in (10, 20, 50, 100):
        assert sum(p < m for p in positions) == m // 10


def test_no_share_or_no_candidates_leaves_the_list_alone():
    ranked = [f"i{n}" for n in range(10)]
    rng = np.random.default_rng(0)
    assert thompson(ranked, ["x"], ItemStats(), 0.0, rng).items == ranked
    out = thompson(ranked, ["i3"], ItemStats(), 0.3, rng)
    assert out.items == ranked and not any(out.explored)


def test_explored_items_replace_the_tail_and_keep_the_rankers_order():
    ranked = [f"i{n}" for n in range(10)]
    out = thompson(ranked, ["a", "b", "c"], ItemStats(), 0.2, np.random.default_rng(1))
    assert len(out.items) == 10 and sum(out.explored) == 2
    kept = [item for item, flag in zip(out.items, out.explored, strict=True) if not flag]
    assert kept == ranked[:8]
    assert {item for item, flag in zip(out.items, out.explored, strict=True) if flag} <= {"a", "b", "c"}


def test_an_item_ignored_many_times_loses_to_an_unshown_one():
    stats = ItemStats()
    for _ in range(200):
        stats.record_impressions(["stale"])
    stats.record_impressions(["other"] * 100)
    for _ in range(10):
        stats.record_click("other")
    rng = np.random.default_rng(7)
    picks = [thompson(["r0", "r1"], ["stale", "fresh"], stats, 0.5, rng).items[1] for _ in range(300)]
    assert picks.count("fresh") > 0.8 * len(picks)


def test_an_item_that_is_clicked_is_explored_more_than_one_that_is_not():
    stats = ItemStats()
    stats.record_impressions(["good"] * 30 + ["bad"] * 30)
    for _ in range(12):
        stats.record_click("good")
    rng = np.random.default_rng(3)
    picks = [thompson(["r0", "r1"], ["bad", "good"], stats, 0.5, rng).items[1] for _ in range(300)]
    assert picks.count("good") > picks.count("bad")


def test_replace_takes_totals_and_clicks_never_exceed_impressions():
    stats = ItemStats()
    stats.record_impressions(["a"])
    stats.replace({"b": (4, 9)})
    shown, clicked, ctr = stats.get(["a", "b"])
    assert shown.tolist() == [0.0, 4.0] and clicked.tolist() == [0.0, 4.0]
    assert ctr == pytest.approx(0.999)
