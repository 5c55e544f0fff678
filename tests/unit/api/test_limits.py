"""The token buckets of the read rate limit and the bound on uncached work (:class:`api.limits.MissGate`), on a clock
the tests move."""

from __future__ import annotations

import threading
import time

import pytest

from api.errors import RefusedError
from api.limits import MAX_MATCHED_PATH, MissGate, ReadRateLimit, TokenBuckets, miss_cost


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


def test_a_take_of_several_tokens_waits_for_all_of_them_and_takes_none_when_refused() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=10, clock=clock)
    assert buckets.take("a", 8) == 0.0
    assert buckets.take("a", 5) == pytest.approx(1.5)  # 2 left: 3 more come in 1.5 s
    assert buckets.take("a", 2) == 0.0  # the refused take took nothing
    assert buckets.take("a", 50) == pytest.approx(5.0)  # capped at a full bucket


def test_miss_cost_weighs_k_and_explanations() -> None:
    assert miss_cost(5, True) == miss_cost(20, True) == 1.0
    assert miss_cost(100, True) == 5.0
    assert miss_cost(100, False) == 2.5


def test_the_miss_gate_refuses_a_client_over_its_budget_with_429() -> None:
    clock = Clock()
    gate = MissGate(concurrency=4, queue=0, wait=0.0, cost_rate=1.0, cost_burst=6, clock=clock)
    with gate.admit("greedy", 5.0):
        pass
    with pytest.raises(RefusedError) as refused:
        with gate.admit("greedy", 5.0):
            pass
    assert refused.value.status == 429 and refused.value.retry_after == 4 and refused.value.reason == "client_budget"
    with gate.admit("modest", 1.0), gate.admit(None, 100.0):  # another client, and the service's own work
        pass
    clock.now += 4
    with gate.admit("greedy", 5.0):
        pass


def test_the_miss_gate_bounds_the_work_and_its_queue() -> None:
    gate = MissGate(concurrency=2, queue=1, wait=5.0)
    entered = threading.Barrier(3)
    release = threading.Event()
    outcomes: list[str] = []

    def hold() -> None:
        with gate.admit("a", 1.0):
            entered.wait()
            release.wait()
        outcomes.append("done")

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    entered.wait()  # both slots are taken
    assert gate.busy == 2
    waiter_started = threading.Event()

    def wait_for_slot() -> None:
        waiter_started.set()
        with gate.admit("b", 1.0):
            outcomes.append("waited")

    waiter = threading.Thread(target=wait_for_slot)
    waiter.start()
    waiter_started.wait()
    while gate._waiting == 0:  # noqa: SLF001 - the waiter is queued
        time.sleep(0.001)
    with pytest.raises(RefusedError) as refused:  # the queue (1) is full: refused at once
        with gate.admit("c", 1.0):
            pass
    assert refused.value.status == 503 and refused.value.retry_after == 1 and refused.value.reason == "queue_full"
    release.set()
    for thread in [*holders, waiter]:
        thread.join()
    assert sorted(outcomes) == ["done", "done", "waited"]
    assert gate.busy == 0


def test_the_miss_gate_refuses_after_its_longest_wait() -> None:
    gate = MissGate(concurrency=1, queue=4, wait=0.0)
    with gate.admit("a", 1.0):
        with pytest.raises(RefusedError) as refused:
            with gate.admit("b", 1.0):
                pass
    assert refused.value.status == 503 and refused.value.reason == "wait_too_long"
    with gate.admit("b", 1.0):  # the slot is free again
        pass


def test_the_read_limiter_remembers_the_route_of_a_path_but_not_of_a_long_one() -> None:
    """The limited route of a request is matched once per method and path; a path longer than MAX_MATCHED_PATH is
    matched every time and not kept; a path of no limited route is remembered as None."""
    from fastapi import APIRouter
    from starlette.routing import Match

    reads = APIRouter()

    @reads.get("/users/{user_id}/recommendations")
    def recommendations(user_id: str) -> str:
        return user_id

    limiter = ReadRateLimit(lambda *_: None, reads.routes, rate=0, burst=1, max_inflight=1)  # type: ignore[arg-type]

    def scope(path: str, method: str = "GET") -> dict:
        return {"type": "http", "method": method, "path": path, "root_path": ""}

    route = limiter._route(scope("/users/7/recommendations"))
    assert route is not None and route.matches(scope("/users/7/recommendations"))[0] is Match.FULL
    assert limiter._route(scope("/users/7/recommendations")) is route
    assert limiter._route(scope("/users/7/recommendations", "POST")) is None
    assert limiter._route(scope("/health")) is None
    assert len(limiter._matches) == 3
    long = f"/users/{'x' * MAX_MATCHED_PATH}/recommendations"
    assert limiter._route(scope(long)) is route
    assert len(limiter._matches) == 3
