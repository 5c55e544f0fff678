"""bench.lightgcn: the seeded refits, the per-phase profile and the paired bootstrap it reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.baselines import fit_ours, fit_pyg_lightgcn
from bench.lightgcn import PHASE_ORDER, phase_profile
from bench.stats import paired_bootstrap
from tests.unit.bench.folds import tiny_fold

OURS = {"embedding_dim": 8, "batch_size": 32, "lr": 0.04, "lr_decay": 0.97, "reg": 1e-4, "num_layers": 2, "epochs": 2}
PYG = {"embedding_dim": 8, "batch_size": 32, "lr": 0.01, "num_layers": 2, "epochs": 2}


@pytest.mark.parametrize(("fit", "params"), [(fit_ours, OURS), (fit_pyg_lightgcn, PYG)])
def test_the_seed_decides_the_fit(fit, params) -> None:  # type: ignore[no-untyped-def]
    fold = tiny_fold()
    users = torch.arange(fold.num_users)
    a = fit(fold, {**params, "seed": 1}, None).score_fn(users)
    b = fit(fold, {**params, "seed": 1}, None).score_fn(users)
    c = fit(fold, {**params, "seed": 2}, None).score_fn(users)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize(("fit", "params"), [(fit_ours, OURS), (fit_pyg_lightgcn, PYG)])
def test_the_profile_finds_every_phase_of_both_training_loops(fit, params) -> None:  # type: ignore[no-untyped-def]
    shares = phase_profile(fit, tiny_fold(), {**params, "seed": 1}, epochs=2)
    assert set(shares) == {*PHASE_ORDER, "other"}
    assert sum(shares.values()) == pytest.approx(1.0)
    for phase in PHASE_ORDER:  # each labelled phase was seen by the profiler
        assert shares[phase] > 0, phase


def test_bootstrap_interval_brackets_the_mean_and_excludes_zero_for_a_clear_gain() -> None:
    rng = np.random.default_rng(0)
    theirs = rng.random(500)
    result = paired_bootstrap(theirs + 0.05 + rng.normal(0, 0.01, 500) - theirs)
    assert result["low"] < result["mean_diff"] < result["high"]
    assert result["low"] > 0
    noise = paired_bootstrap(theirs + rng.normal(0, 0.1, 500) - theirs)
    assert noise["low"] < 0 < noise["high"]


def test_trials_of_early_stopped_fits_are_scored_by_their_window_mean() -> None:
    from bench.baselines import WINDOW_VAL
    from bench.search import Axis, ModelSpec, coordinate_search

    fold = tiny_fold()
    spec = ModelSpec(
        "kgrec LightGCN",
        fit_ours,
        {"lr": Axis([0.02, 0.08], scale=None)},
        {"lr": 0.02},
        fixed={**{k: v for k, v in OURS.items() if k != "epochs"}, "max_epochs": 6, "patience": 2, "val_window": 3},
        reference=False,
        early_stopping=True,
    )
    trials = coordinate_search(spec, fold, None)
    assert {t.params["lr"] for t in trials} == {0.02, 0.08}
    for trial in trials:
        refit = fit_ours(fold, {**spec.fixed, **trial.params}, fold)
        assert trial.val == refit.info[WINDOW_VAL]  # the fit is deterministic: the same mean again
    assert trials[0].val >= trials[1].val
