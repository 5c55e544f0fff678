"""Exposure fatigue and rotation (api/ranking.py), the feedback table (api/feedback.py), the report's statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from api.feedback import FeedbackConfig, UnknownFeedbackTypeError
from api.ranking import Exposure, blend
from gnn.serving import ItemRows
from graph.reads import VariantFigures
from graph.recall import Candidate
from kgrec.report import build_report, difference, wilson
from schema.errors import ConfigError
from schema.kinds import CombineRule, Outcome
from schema.model import Polarity


class _Model:
    item_ids = ["a", "b", "c", "d"]
    item_index = {i: n for n, i in enumerate(item_ids)}
    item_rows = ItemRows(item_index)


def test_fatigue_halves_a_score_per_half_life_of_ignored_impressions() -> None:
    exposure = Exposure.of({"a": (2, 2), "c": (4, 1), "zz": (9, 1)}, lists_shown=2, half_life=2.0, rotation=0)
    assert exposure.factors == {"a": 0.5, "c": 0.25, "zz": 0.5**4.5} and not exposure.rotated
    scores = np.array([4.0, 3.0, -2.0, 1.0], dtype=np.float32)
    assert exposure.fatigue(_Model(), scores).tolist() == [2.0, 3.0, -3.5, 1.0]  # a negative score sinks too
    assert scores.tolist() == [4.0, 3.0, -2.0, 1.0]  # the caller's array is left alone


def test_no_exposure_or_fatigue_off_leaves_scores_as_they_are() -> None:
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    assert Exposure.of({}, 0, 5.0, 0).fatigue(_Model(), scores) is scores
    assert Exposure.of({"a": (10, 3)}, 3, 0.0, 0).factors == {}


def test_rotation_takes_the_items_of_the_last_n_lists() -> None:
    shown = {"a": (1, 5), "b": (3, 4), "c": (2, 2)}
    assert Exposure.of(shown, lists_shown=5, half_life=0.0, rotation=1).rotated == {"a"}
    assert Exposure.of(shown, lists_shown=5, half_life=0.0, rotation=2).rotated == {"a", "b"}


def test_the_graph_blend_applies_fatigue_and_rotation_before_the_cut() -> None:
    found = [
        Candidate(item_id=i, score=s, source="collaborative")
        for i, s in (("a", 1.0), ("b", 0.9), ("c", 0.8), ("d", 0.7))
    ]
    plain = [i.item_id for i in blend({"collaborative": found}, {}, 3)]
    assert plain == ["a", "b", "c"]
    tired = Exposure(factors={"a": 0.5}, rotated=frozenset({"b"}))
    assert [i.item_id for i in blend({"collaborative": found}, {}, 3, exposure=tired)] == ["c", "d", "a"]


def test_feedback_table_defaults_and_file(tmp_path: Path) -> None:
    config = FeedbackConfig.load(None)
    assert (
        config.kind("dislike").polarity is Polarity.NEGATIVE and config.kind("purchase").outcome is Outcome.CONVERSION
    )
    assert set(config.kinds) == {"view", "click", "like", "purchase", "dislike", "skip"}
    with pytest.raises(UnknownFeedbackTypeError, match="configured: click"):
        config.kind("wink")
    good = tmp_path / "kinds.yaml"
    good.write_text("combine: latest\nkinds:\n  play: {weight: 2, outcome: click}\n  ban: {polarity: negative}\n")
    loaded = FeedbackConfig.load(good)
    assert loaded.rule is CombineRule.LATEST and loaded.kind("play").weight == 2.0 and loaded.kind("ban").weight == 1.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("kinds:\n  play: {weight: -1}\n")
    with pytest.raises(ConfigError, match="kinds.play.weight"):
        FeedbackConfig.load(bad)
    with pytest.raises(ConfigError, match="missing.yaml"):
        FeedbackConfig.load(tmp_path / "missing.yaml")


def test_wilson_and_newcombe_intervals() -> None:
    low, high = wilson(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775  # the Wilson interval of 0/10
    assert wilson(0, 0) == (0.0, 1.0)
    d, lo, hi = difference(56, 70, 48, 80)  # Newcombe (1998), method 10: -0.2 [-0.3339, -0.0524]
    assert (round(d, 4), round(lo, 4), round(hi, 4)) == (-0.2, -0.3339, -0.0524)


def test_report_puts_the_baseline_first_and_compares_the_others() -> None:
    figures = [VariantFigures("b", 50, 500, 75, 10), VariantFigures("default", 50, 500, 50, 5)]
    rows = build_report(figures)
    assert [r.variant for r in rows] == ["default", "b"] and rows[0].ctr_diff is None
    assert rows[1].ctr == 0.15 and round(rows[1].ctr_diff, 4) == 0.05 and 0 < rows[1].ctr_diff_low < 0.05
    assert build_report(figures, baseline="b")[1].ctr_diff == pytest.approx(-0.05)
    with pytest.raises(ValueError, match="no lists of variant 'c'"):
        build_report(figures, baseline="c")
