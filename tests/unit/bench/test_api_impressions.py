"""bench.api_impressions' statistics: the requests it counts, the pooled ratio with its interval over rounds, the API's
CPU ratio, and series pooled from their files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.api_impressions import compare_table, cpu_ratio, keep_run, pool_series, pooled_ratio, summarise
from bench.tail_events import load_run, run_requests


def test_the_requests_counted_leave_out_the_first_second() -> None:
    run = {"started_at": 100.0, "timeline": [[100.2, 9.0], [100.99, 8.0], [101.0, 3.0], [105.5, 4.0]]}
    assert run_requests(run)[1].tolist() == [3.0, 4.0]


def test_pooled_ratio_of_equal_rounds_is_one_with_a_tight_interval() -> None:
    rng = np.random.default_rng(3)
    rounds = [rng.exponential(3.0, 4000) for _ in range(4)]
    ratio, low, high = pooled_ratio(rounds, [r.copy() for r in rounds], 99)
    assert ratio == pytest.approx(1.0) and low == pytest.approx(1.0) and high == pytest.approx(1.0)


def test_pooled_ratio_finds_a_slower_configuration_and_its_interval_holds_it() -> None:
    rng = np.random.default_rng(4)
    off = [rng.exponential(3.0, 4000) for _ in range(6)]
    on = [1.3 * rng.exponential(3.0, 4000) for _ in range(6)]
    ratio, low, high = pooled_ratio(off, on, 99, draws=500)
    assert 1.15 < ratio < 1.45
    assert low < ratio < high and low > 1.0  # six rounds of 4,000 tell 30% apart from nothing


def test_pooled_ratio_interval_widens_with_one_stalled_round() -> None:
    rng = np.random.default_rng(5)
    off = [rng.exponential(3.0, 4000) for _ in range(6)]
    on = [rng.exponential(3.0, 4000) for _ in range(6)]
    _, low, high = pooled_ratio(off, on, 99, draws=500)
    on[2] = on[2] + np.where(rng.random(4000) < 0.03, 40.0, 0.0)  # one round's stalls
    ratio, stalled_low, stalled_high = pooled_ratio(off, on, 99, draws=500)
    assert ratio > 1.1 and stalled_high - stalled_low > 10 * (high - low)  # one round moves the pooled p99


def test_pooled_ratio_needs_paired_rounds() -> None:
    with pytest.raises(ValueError):
        pooled_ratio([np.ones(3)], [], 99)


def test_compare_table_has_a_row_per_round_and_the_pooled_row() -> None:
    figures = {
        name: {"errors": {}, "lists_recorded": 10.0, "p50_ms": 3.0, "p90_ms": 4.0, "p99_ms": 6.0, "p99.9_ms": 9.0}
        for name in ("off", "on")
    }
    result = {
        "rate": 150.0,
        "duration": 30.0,
        "rounds": [figures, figures],
        "pooled": {name: {"p50_ms": 3.0, "p90_ms": 4.0, "p99_ms": 6.0, "p99.9_ms": 9.0} for name in ("off", "on")},
        "ratios": {q: (1.0, 0.9, 1.1) for q in ("p50", "p90", "p99", "p99.9")},
    }
    table = compare_table(result)
    assert table.row_count == 3
    assert "p99 1.000 [0.900, 1.100]" in str(table.caption)
    assert "CPU a request" not in str(table.caption)  # not read: not shown
    result["rounds"] = [{"off": {**figures["off"], "api_cpu_ms": 2.0}, "on": {**figures["on"], "api_cpu_ms": 2.5}}]
    result["cpu_ratio"] = cpu_ratio(result["rounds"])
    assert "The API's CPU a request, on / off: 1.250 [1.250, 1.250]" in str(compare_table(result).caption)


def _round(rng: np.random.Generator, off_cpu: float, on_cpu: float | None) -> dict[str, dict]:
    figures = {}
    for name, cpu in (("off", off_cpu), ("on", on_cpu)):
        figures[name] = {"latencies_ms": rng.exponential(3.0, 500).round(2).tolist(), "errors": {}}
        if cpu is not None:
            figures[name]["api_cpu_ms"] = cpu
    return figures


def test_cpu_ratio_is_the_ratio_of_the_means_and_its_interval_spans_the_rounds() -> None:
    rng = np.random.default_rng(6)
    offs = [2.0, 1.6, 1.8, 2.2, 1.7, 1.9]
    ons = [1.05 * c + d for c, d in zip(offs, (0.3, -0.1, 0.2, 0.0, 0.1, -0.05), strict=True)]
    rounds = [_round(rng, a, b) for a, b in zip(offs, ons, strict=True)]
    ratio, low, high = cpu_ratio(rounds)
    assert ratio == pytest.approx(sum(ons) / sum(offs))
    assert low < ratio < high and low > 0.95 and high < 1.25
    assert cpu_ratio([*rounds, _round(rng, 2.0, None)]) is None  # a round without the figure: none claimed


def test_series_pool_into_one_comparison_of_all_their_rounds(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rounds = [_round(rng, 2.0, 2.0 + 0.1 * n) for n in range(5)]
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(summarise(rounds[:2], 150.0, 30.0)))
    second.write_text(json.dumps(summarise(rounds[2:], 150.0, 30.0)))
    pooled = pool_series([first, second])
    assert len(pooled["rounds"]) == 5
    assert pooled["ratios"] == summarise(rounds, 150.0, 30.0)["ratios"]
    assert pooled["cpu_ratio"][0] == pytest.approx(sum(2.0 + 0.1 * n for n in range(5)) / 10.0)
    second.write_text(json.dumps(summarise(rounds[2:], 100.0, 30.0)))
    with pytest.raises(ValueError, match="different rates"):
        pool_series([first, second])


def test_a_kept_run_is_what_tail_events_reads(tmp_path: Path) -> None:
    run = {"started_at": 100.0, "timeline": [[101.5, 3.0]], "client_gc": [[101.0, 2.0, 0]]}
    log = tmp_path / "api_load_server.log"
    log.write_text("nothing of the timeline\n")
    keep_run(tmp_path / "round1_on", run, [log, tmp_path / "gc.log"])  # no gc.log: left out
    assert sorted(p.name for p in (tmp_path / "round1_on").iterdir()) == ["api_load.json", "api_load_server.log"]
    read, events = load_run(tmp_path / "round1_on")
    assert read == run
    assert [event[:2] for event in events["client gc"]] == [(101.0, pytest.approx(101.002))]
