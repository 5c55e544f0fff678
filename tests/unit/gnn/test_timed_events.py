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


def test_window_counts_from_the_checkpoints_are_the_windows_events_at_any_bounds() -> None:
    """Windows of more events than a checkpoint block are the running counts' difference corrected at both ends
    (each bound before or past its nearest checkpoint): the same integers as counting the window's events."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        n, num_items = int(rng.integers(1, 5_000)), int(rng.integers(1, 300))
        items, times = rng.integers(0, num_items, n), rng.integers(-1, 1_000, n)
        events = TimedEvents(items, times, num_items)
        for _ in range(20):
            end, window = int(rng.integers(-50, 1_100)), float(rng.uniform(0, 1_200))
            inside = (times >= 0) & (times > end - window) & (times <= end)
            expected = np.bincount(items[inside], minlength=num_items).astype(np.float64)
            np.testing.assert_array_equal(events.window_counts(end, window), expected)
