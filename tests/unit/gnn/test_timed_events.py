"""Time-local popularity (gnn.blend.scorers.TimedEvents): the window's counts at fractional bounds."""

from __future__ import annotations

import numpy as np

from gnn.blend.scorers import UNKNOWN_TIME, TimedEvents


def test_window_counts_are_the_events_in_the_half_open_window_whatever_the_bounds_fraction() -> None:
    rng = np.random.default_rng(3)
    items = rng.integers(0, 40, 2_000)
    times = rng.integers(0, 500, 2_000)
    times[::17] = UNKNOWN_TIME  # untimed events count for global popularity only
    events = TimedEvents(items, times, 40)
    assert events.checkpoints[0] < 100  # windows of more events than a block: the running counts' difference
    for end in (0, 1, 137, 250, 499, 600):
        for window in (0.5, 1.0, 36.25, 99.99, 100.0, 1_000.0):
            inside = (times >= 0) & (times > end - window) & (times <= end)
            expected = np.bincount(items[inside], minlength=40).astype(np.float64)
            np.testing.assert_array_equal(events.window_counts(end, window), expected, err_msg=f"{end=} {window=}")
            np.testing.assert_array_equal(events.window_counts(np.int64(end), window), expected)
