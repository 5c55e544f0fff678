"""The scaling benchmark's arithmetic: the power-law fit and the world sizes."""

from __future__ import annotations

import pytest

from bench.scaling import world_size
from bench.scaling_report import fit_power_law


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
    from bench.scaling import world_interactions

    users, items = world_size(1.0)
    assert (users, items, world_interactions(1.0)) == (1_000, 9_742, 100_836)
    users10, items10 = world_size(10.0)
    assert users10 == 10 * users and items10 == round(9_742 * 10**0.36)
    users100, items100 = world_size(100.0)
    assert users100 == 100_000 and 50_000 < items100 < 52_000  # about `kgrec load world`'s 10M world
    assert world_interactions(100.0) == 10_083_600
    assert world_size(10.0, item_exponent=1.0)[1] == 97_420


def test_pauses_of_the_worker_are_taken_out_of_the_phases_they_fall_in(tmp_path) -> None:  # noqa: ANN001
    from datetime import UTC, datetime

    from bench.scaling_report import subtract_pauses

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    t0 = 1_800_000_000.0
    log = tmp_path / "pauses.log"
    log.write_text(
        f"{iso(t0 + 10)} PAUSE start pids: 11 4242\n{iso(t0 + 40)} PAUSE end\n"  # 30 s inside "fit" (a call)
        f"{iso(t0 + 50)} PAUSE start pids: 11 99\n{iso(t0 + 60)} PAUSE end\n"  # another process: ignored
        f"{iso(t0 + 95)} PAUSE start pids: 4242\n{iso(t0 + 105)} PAUSE end\n"  # 5 s in fit, 5 s in publish
    )
    record = {
        "pid": 4242,
        "phases": {"load": 5.0, "fit": 90.0, "publish": 20.0},
        "spans": {"load": [t0, t0 + 5], "fit": [t0 + 10, t0 + 100], "publish": [t0 + 100, t0 + 120]},
        "calls": [{"component": "ease", "seconds": 40.0, "span": [t0 + 5, t0 + 45]}],
        "fit_phases": {"fit_components": 50.0, "fit_ranker": 20.0, "refit": 20.0},
        "retrain_seconds": 110.0,
    }
    subtract_pauses(record, log)
    assert record["phases"] == {"load": 5.0, "fit": 55.0, "publish": 15.0}
    assert record["raw_phases"]["fit"] == 90.0 and record["paused_seconds"] == 40.0
    assert record["calls"][0]["seconds"] == 10.0 and record["calls"][0]["raw_seconds"] == 40.0
    assert record["fit_phases"] == {"fit_components": 20.0, "fit_ranker": 20.0, "refit": 15.0}
    assert record["retrain_seconds"] == 70.0
    subtract_pauses(record, log)  # idempotent
    assert record["phases"]["fit"] == 55.0


def test_recorder_follows_the_phases_of_a_size(tmp_path) -> None:  # noqa: ANN001
    """Phases, spans, peak RSS, component calls and the dense sizes come from listening, no module patched."""
    import json

    from bench.scaling import Recorder
    from bench.scaling_report import first_pass
    from etl.synthetic import generate_world
    from gnn.data import build_graph_snapshot
    from gnn.evaluation import split_interactions
    from gnn.phases import listening, phase
    from tests.unit.gnn.worlds import export_from_dataset

    snapshot = build_graph_snapshot(export_from_dataset(generate_world(users=30, items=40, seed=3).dataset))
    rec = Recorder(tmp_path / "size.json", {"pid": 1})
    with listening(rec):
        with phase("load") as data:
            data["wipe_seconds"] = 0.0
        with phase("split", snapshot=snapshot) as data:
            data["split"] = split_interactions(snapshot)
        with pytest.raises(MemoryError), phase("fit"):
            with phase("component_search"), phase("ease"):
                pass
            with phase("fit_components"), phase("ease"):
                pass
            with phase("refit"), phase("als"):
                raise MemoryError
    record = json.loads((tmp_path / "size.json").read_text())
    assert list(record["phases"]) == ["load", "split"] and list(record["spans"]) == ["load", "split"]
    assert set(record["rss_after_mb"]) == {"load", "split"}
    assert record["dense"]["ease_items_all"] > 0 and record["snapshot"]["users"] == 30
    assert [c["component"] for c in record["calls"]] == ["ease", "component_search", "ease", "fit_components"]
    assert record["calls"][2]["path"] == ["fit", "fit_components"]
    assert first_pass(record)["ease"] == record["calls"][2]["seconds"]  # not the search's trial
    assert record["failed_call"]["component"] == "als" and record["running"] == "als"
