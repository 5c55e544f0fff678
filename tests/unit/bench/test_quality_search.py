"""bench.search's coordinate search: trials in parallel processes, and trials recorded for --resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench.baselines import Fitted, fit_pyg_lightgcn
from bench.search import Axis, ModelSpec, TrialCache, coordinate_search
from gnn.evaluation import Fold
from tests.unit.bench.folds import tiny_fold


def _pyg_spec() -> ModelSpec:
    return ModelSpec(
        "PyG LightGCN",
        fit_pyg_lightgcn,
        {"lr": Axis([0.01, 0.05, 0.2], high=0.5)},
        {"lr": 0.05},
        fixed={"embedding_dim": 8, "batch_size": 32, "num_layers": 2, "epochs": 3},
    )


def test_trials_fitted_in_two_processes_are_the_trials_of_one() -> None:
    fold = tiny_fold(name="val")
    one = coordinate_search(_pyg_spec(), fold, None, jobs=1)
    two = coordinate_search(_pyg_spec(), fold, None, jobs=2)
    by_lr = {t.params["lr"]: t.val for t in one}
    assert len(by_lr) >= 3
    for trial in two:  # every trial both searches made scores the same (seeded fits)
        if trial.params["lr"] in by_lr:
            assert trial.val == by_lr[trial.params["lr"]]
    assert two[0].params == one[0].params  # and they choose the same


CALLS: list[dict[str, Any]] = []


def _counting_fit(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    CALLS.append(params)
    peak = 3.0  # validation NDCG peaks at x = 3: the grid has to grow to reach it
    score = 1.0 / (1.0 + (params["x"] - peak) ** 2)
    return Fitted(
        lambda users: torch.zeros(users.numel(), fold.num_items), 0.01, {"val_window_mean": score, "epochs": 1}
    )


def test_a_resumed_search_reuses_every_recorded_trial_and_fits_none(tmp_path: Path) -> None:
    fold = tiny_fold(name="val")
    scope = {"snapshot_id": "s", "split": {"train": 1}}
    path = tmp_path / "trials.jsonl"
    CALLS.clear()
    first = coordinate_search(_toy_spec(), fold, None, cache=TrialCache(path, scope, reuse=False))
    assert first[0].params == {"x": 3.0}
    fitted = len(CALLS)
    assert fitted == len(first) and len(path.read_text().splitlines()) == fitted

    again = coordinate_search(_toy_spec(), fold, None, cache=TrialCache(path, scope, reuse=True))
    assert len(CALLS) == fitted  # nothing fitted twice
    assert [(t.params, t.val) for t in again] == [(t.params, t.val) for t in first]

    elsewhere = TrialCache(path, {**scope, "snapshot_id": "t"}, reuse=True)
    other = coordinate_search(_toy_spec(), fold, None, cache=elsewhere)
    assert len(CALLS) == 2 * fitted  # another snapshot: its trials are its own
    assert [t.val for t in other] == [t.val for t in first]


def _toy_spec() -> ModelSpec:
    return ModelSpec(
        "toy", _counting_fit, {"x": Axis([0.5, 1.0], scale="lin", low=0.0, high=10.0)}, {"x": 1.0}, early_stopping=True
    )


def test_two_processes_grow_a_grid_at_its_edge_by_two_values_at_a_time() -> None:
    fold = tiny_fold(name="val")
    one = coordinate_search(_toy_spec(), fold, None, jobs=1)
    two = coordinate_search(_toy_spec(), fold, None, jobs=2)
    assert sorted(t.params["x"] for t in one) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert sorted(t.params["x"] for t in two) == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert one[0].params == two[0].params == {"x": 3.0}


def _two_peaks(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    """A low peak at (1, 1) and a higher one at (8, 8), each too narrow for a sweep of one axis from the
    other's coordinates to feel (the shape of ALS's regularisation × alpha on Last.fm)."""
    x, y = params["x"], params["y"]
    near = 0.5 / (1.0 + 4 * ((x - 1.0) ** 2 + (y - 1.0) ** 2))
    far = 1.0 / (1.0 + 4 * ((x - 8.0) ** 2 + (y - 8.0) ** 2))
    return Fitted(
        lambda users: torch.zeros(users.numel(), fold.num_items), 0.01, {"val_window_mean": near + far, "epochs": 1}
    )


def test_a_second_start_reaches_an_optimum_one_axis_at_a_time_cannot() -> None:
    fold = tiny_fold(name="val")

    def spec(starts: list[dict[str, Any]]) -> ModelSpec:
        axes = {"x": Axis([0.5, 1.0, 2.0, 4.0], high=10.0), "y": Axis([0.5, 1.0, 2.0, 4.0], high=10.0)}
        return ModelSpec("two peaks", _two_peaks, axes, {"x": 1.0, "y": 1.0}, early_stopping=True, starts=starts)

    one = coordinate_search(spec([]), fold, None)
    assert one[0].params == {"x": 1.0, "y": 1.0}  # stuck on the low peak: no sweep of one axis leaves it
    two = coordinate_search(spec([{"x": 8.0, "y": 8.0}]), fold, None)
    assert two[0].params == {"x": 8.0, "y": 8.0} and two[0].val > one[0].val
    assert {_key(t.params) for t in one} <= {_key(t.params) for t in two}  # the first climb is the same


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))
