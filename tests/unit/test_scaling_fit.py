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


def test_recorder_gives_each_call_its_cpu_seconds_and_the_curve_uses_them(tmp_path) -> None:  # noqa: ANN001
    import json

    from bench.scaling import Recorder
    from bench.scaling_report import cpu_series, first_pass
    from gnn.phases import listening, phase

    rec = Recorder(tmp_path / "size.json", {"pid": 1})
    with listening(rec), phase("fit"):
        with phase("fit_components"), phase("lightgcn"):
            sum(i * i for i in range(200_000))  # some CPU of its own
        with phase("component_search"), phase("als"):
            pass
    record = json.loads((tmp_path / "size.json").read_text())
    calls = {c["component"]: c for c in record["calls"]}
    assert all(isinstance(c["cpu_seconds"], float) and c["cpu_seconds"] >= 0 for c in record["calls"])
    assert calls["fit_components"]["cpu_seconds"] >= calls["lightgcn"]["cpu_seconds"] > 0  # nested within
    assert record["cpu_phases"]["fit"] >= calls["fit_components"]["cpu_seconds"]
    cpu = cpu_series(record)
    assert cpu["   lightgcn"] == first_pass(record, "cpu_seconds")["lightgcn"] == calls["lightgcn"]["cpu_seconds"]
    assert cpu["   als"] is None  # the search's trial is not the component's first pass
    assert cpu["   component_search"] == calls["component_search"]["cpu_seconds"]
    assert cpu["fit"] == record["cpu_phases"]["fit"]


def test_cpu_exponents_are_fitted_beside_the_wall_ones() -> None:
    from bench.scaling_report import power_law_fits

    def size(n: int) -> dict:
        calls = [{"component": "lightgcn", "seconds": 50.0, "cpu_seconds": 1e-4 * n, "path": ["fit", "fit_components"]}]
        return {"counts": {"interactions": n}, "ok": True, "phases": {"fit": 10.0 * n**0.5}, "calls": calls}

    fits = power_law_fits([size(10**5), size(10**6), size(10**7)])
    assert fits["fit"]["b"] == pytest.approx(0.5)  # wall seconds
    assert fits["cpu"]["   lightgcn"]["b"] == pytest.approx(1.0)  # CPU seconds
    assert fits["   lightgcn"]["b"] == pytest.approx(0.0)  # its wall seconds, constant here


def test_existing_worlds_and_merged_runs(tmp_path) -> None:  # noqa: ANN001
    import json

    from bench.scaling import main, merge_runs, parse_existing, worker_command

    assert parse_existing(["100=bolt://localhost:17600", "3 = neo4j://h:1"]) == {
        100.0: "bolt://localhost:17600",
        3.0: "neo4j://h:1",
    }
    for bad in ("100", "x=bolt://h:1", "100="):
        with pytest.raises(SystemExit, match="SCALE=URI"):
            parse_existing([bad])
    with pytest.raises(SystemExit, match="not in --sizes: 100"):
        main(["--sizes", "1", "--existing", "100=bolt://localhost:1"])
    command = worker_command(0, 0, 0, 42, tmp_path / "o.json", 12.0, "bolt://h:1", tmp_path / "art")
    assert command[command.index("--worker-existing") + 1] == "bolt://h:1"
    assert command[command.index("--artifacts") + 1] == str(tmp_path / "art")
    plain = worker_command(1, 2, 3, 42, tmp_path / "o.json", 12.0)
    assert "--worker-existing" not in plain and "--artifacts" not in plain and "--keep-snapshots" not in plain
    assert "--keep-snapshots" in worker_command(1, 2, 3, 42, tmp_path / "o.json", 12.0, keep_snapshot=True)

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"command": "a", "sizes": [{"scale": 1, "v": "a"}, {"scale": 10, "v": "a"}]}))
    b.write_text(json.dumps({"command": "b", "sizes": [{"scale": 100, "v": "b"}, {"scale": 10, "v": "b"}]}))
    merged = merge_runs([a, b])
    assert [(r["scale"], r["v"]) for r in merged["sizes"]] == [(1, "a"), (10, "b"), (100, "b")]
    assert merged["command"] == "a" and merged["merged_from"] == [str(a), str(b)]
