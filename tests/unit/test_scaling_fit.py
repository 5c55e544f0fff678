"""The scaling benchmark's arithmetic: the power-law fit and the world sizes."""

from __future__ import annotations

import math

import pytest

from bench.scaling import fit_power_law, world_size


def test_power_law_recovers_exponent_and_constant() -> None:
    xs = [1e4, 3e4, 1e5, 3e5, 1e6]
    fit = fit_power_law(xs, [0.5 * x**1.7 for x in xs])
    assert fit is not None
    assert fit["b"] == pytest.approx(1.7, abs=1e-9) and fit["a"] == pytest.approx(0.5, rel=1e-6)
    assert fit["r2"] == pytest.approx(1.0) and fit["points"] == 5


def test_power_law_skips_missing_and_non_positive_points() -> None:
    fit = fit_power_law([10, 100, 1000, 10000], [2.0, 20.0, None, 0.0])
    assert fit is not None and fit["points"] == 2 and fit["b"] == pytest.approx(1.0)
    noisy = fit_power_law([10, 100, 1000], [1.0, 30.0, 50.0])
    assert noisy is not None and 0 < noisy["r2"] < 1
    assert fit_power_law([10, 100], [5.0, None]) is None  # one usable point
    assert fit_power_law([10, 10], [1.0, 2.0]) is None  # one distinct x


def test_world_size_scales_users_with_interactions_and_items_by_the_exponent() -> None:
    users, items = world_size(1.0)
    assert users == round(100_836 / 23.8) and items == 9_742
    users10, items10 = world_size(10.0)
    assert users10 == round(10 * 100_836 / 23.8) and abs(users10 - 10 * users) <= 10
    assert items10 == round(9_742 * math.sqrt(10))
    assert world_size(10.0, item_exponent=1.0)[1] == 97_420
