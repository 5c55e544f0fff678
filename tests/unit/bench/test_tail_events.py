"""bench/tail_events.py: the timelines parsed from the API's log and the JVM's gc.log, slow requests merged into
stalls, which stalls meet an event, events shifted around the window, and the lift of an event kind that holds the
stalls against one that does not."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from bench.tail_events import api_events, jvm_events, meets, shifted, stalls, tail_figures


def test_the_apis_timeline_lines_become_intervals_by_kind() -> None:
    text = (
        "2026-12-06 09:40:01,123 INFO api.timeline: impressions start=1796550001.1000 ms=12.50 cpu_ms=3.00 lists=50 users=40 "
        "items=300\n"
        "2026-12-06 09:40:01,200 INFO api.service: answer cache warmed for 610 users\n"
        "2026-12-06 09:40:02,000 INFO api.timeline: gc gen=2 start=1796550002.0000 ms=40.00 cpu_ms=30.00 collected=7\n"
    )
    events = api_events(text)
    assert events["impressions"] == [pytest.approx((1796550001.1, 1796550001.1125, 3.0))]
    assert events["api gc 2"] == [pytest.approx((1796550002.0, 1796550002.04, 30.0))]
    assert set(events) == {"impressions", "api gc 2"}


def test_the_jvm_log_gives_collection_pauses_and_other_safepoints_ending_at_the_lines_time() -> None:
    text = (
        "[2026-12-06T09:40:01.500+0000][1000ms][gc] Using G1\n"
        "[2026-12-06T09:40:02.000+0000][2000ms][gc] GC(3) Pause Young (Normal) (G1 Evacuation Pause) 120M->30M(256M) "
        "5.000ms\n"
        "[2026-12-06T09:40:02.000+0000][2000ms][gc,cpu   ] GC(3) User=0.01s Sys=0.00s Real=0.01s\n"
        '[2026-12-06T09:40:02.000+0000][2000ms][safepoint] Safepoint "G1CollectForAllocation", Time since last: 1 ns, '
        "Reaching safepoint: 1 ns, At safepoint: 5000000 ns, Total: 5000001 ns\n"
        '[2026-12-06T09:40:03.000+0000][3000ms][safepoint] Safepoint "Cleanup", Time since last: 1 ns, Reaching '
        "safepoint: 1000 ns, At safepoint: 1000 ns, Total: 2000000 ns\n"
    )
    events = jvm_events(text)
    end = datetime.fromisoformat("2026-12-06T09:40:02+00:00").timestamp()
    assert events["neo4j gc"] == [pytest.approx((end - 0.005, end, 10.0))]
    (safepoint,) = events["neo4j safepoint"]  # the collection's own safepoint is not counted twice
    assert safepoint[:2] == pytest.approx((end + 1 - 0.002, end + 1))


def test_a_request_meets_an_event_it_overlaps_within_the_margin_even_behind_a_long_earlier_one() -> None:
    events = [(0.0, 10.0, 1.0), (2.0, 2.1, 1.0), (20.0, 20.5, 1.0)]
    requests = np.array([[5.0, 5.1], [10.05, 10.2], [10.3, 10.4], [19.0, 19.95], [21.0, 22.0]])
    assert meets(requests, events, margin=0.1).tolist() == [True, True, False, True, False]
    assert not meets(requests, [], margin=0.1).any()


def test_overlapping_requests_merge_into_one_stall_and_shifted_events_wrap_around_the_window() -> None:
    requests = np.array([[5.0, 5.2], [1.0, 2.0], [1.5, 3.0], [3.0, 3.5], [4.0, 4.1]])
    assert stalls(requests).tolist() == [[1.0, 3.5], [4.0, 4.1], [5.0, 5.2]]
    assert shifted([(2.0, 2.5, 1.0), (8.0, 9.0, 2.0)], 3.0, (0.0, 10.0)) == [(5.0, 5.5, 1.0), (1.0, 2.0, 2.0)]


def test_the_kind_holding_the_stalls_has_a_high_lift_and_a_bystander_none() -> None:
    start = 1000.0
    at = start + 1 + np.arange(1000) * 0.01  # 100 requests a second for 10 s, after the first second
    latency = np.full(1000, 3.0)
    latency[50::100] = 50.0  # ten slow requests, each at a write
    run = {"started_at": start, "timeline": np.column_stack([at, latency]).tolist()}
    writes = [(a - 0.005, a + 0.02, 4.0) for a in at[50::100]]
    bystander = [(a, a + 0.02, float("nan")) for a in at[25::50]]  # between the slow requests
    figures = {f["kind"]: f for f in tail_figures([(run, {"writes": writes, "other": bystander})], margin_ms=0)}
    assert figures["writes"]["slow_requests"] == figures["writes"]["stalls"] == 10
    assert figures["writes"]["share"] == 1.0
    assert figures["writes"]["events_met"] == 10
    assert figures["writes"]["cpu_ms"] == 40.0
    assert figures["other"]["cpu_ms"] is None  # no CPU known
    assert figures["writes"]["lift"] > 3  # ten writes of 25 ms over 10 s: chance meets about a third of the stalls
    assert figures["other"]["share"] == 0.0
    assert figures["other"]["events"] == 20
    assert figures["other"]["events_met"] == 0
    assert 0.1 < figures["other"]["chance"] < 0.3  # a 50 ms stall meets a 20 ms event 70 ms wide: 20 × 0.07 / 10 s
