"""The token buckets of the read rate limit, on a clock the tests move."""

from __future__ import annotations

import threading

import pytest

from api.limits import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # empty: the next token comes in 1/rate s
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 100
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # refilled up to the burst, not beyond
    assert buckets.take("a") > 0


def test_idle_clients_are_forgotten_and_the_number_kept_is_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=10.0, burst=5, max_clients=50, clock=clock)
    for n in range(40):
        buckets.take(f"c{n}")
    assert len(buckets) == 40
    clock.now += 0.5  # = burst / rate: every bucket is full again
    buckets.take("late")
    assert len(buckets) == 1
    for n in range(500):
        buckets.take(f"d{n}")
    assert len(buckets) == 50


def test_concurrent_takes_grant_exactly_the_burst() -> None:
    buckets = TokenBuckets(rate=1e-6, burst=100, clock=lambda: 0.0)
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = sum(1 for _ in range(50) if buckets.take("shared") == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 100


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
