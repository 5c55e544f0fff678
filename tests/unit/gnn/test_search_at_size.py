"""The blend at size: the component search's EASE^R λ path from one eigendecomposition and ALS
candidates' bounded sample of users (gnn.blend.path), and transitions counted one offset at a time."""

from __future__ import annotations

import numpy as np
import torch

from etl.synthetic import generate_world
from gnn.blend.config import FEATURES, RankerConfig
from gnn.blend.fit import fit_components
from gnn.blend.linear import fit_ease
from gnn.blend.model import RankerModel
from gnn.blend.path import EasePath, ease_kept_items, sample_user_pairs
from gnn.blend.scorers import ease_scores
from gnn.blend.search import search_components
from gnn.blend.weights import sample_fold_users, validation_data
from gnn.data import build_graph_snapshot
from gnn.evaluation import split_interactions
from tests.unit.gnn.worlds import export_from_dataset

CONFIG = RankerConfig(
    ease_lambda=1.0,
    device="cpu",
    progress=False,
    use_lightgcn=False,
    sequence_window=3,
    ease_lambda_grid=[0.5, 5.0, 50.0],
    als_factors_grid=[2, 8],
    als_regularization_grid=[0.3, 3.0],
    als_alpha_grid=[1.0, 4.0],
    als_factors=4,
    component_search_exhaustive=True,
    component_search_extra_fits=0,
)


def _random_pairs(users: int, items: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    dense = rng.random((users, items)) < rng.uniform(0.02, 0.5, size=items)
    dense[:, 5] = False  # an item nobody has
    return torch.from_numpy(np.stack(np.nonzero(dense)).astype(np.int64))


def test_the_lambda_path_scores_every_lambda_as_an_unpruned_fit_does() -> None:
    pairs = _random_pairs(120, 30, seed=3)
    rng = np.random.default_rng(4)
    histories = [(rng.choice(30, size=k, replace=False), rng.integers(0, 10_000, size=k)) for k in (0, 1, 4, 9)]
    for max_items in (None, 12):  # the cap keeps the same items as fit_ease's
        path = EasePath(pairs, 120, 30, histories, half_life=2.0, max_items=max_items, max_solve=None)
        for lam in (0.5, 7.0, 300.0):
            ease = fit_ease(pairs, 120, 30, lam, top_n=None, max_items=max_items)
            plain, recent = path.scores(lam)
            for r, (items, times) in enumerate(histories):
                if not len(items):
                    assert not plain[r].any() and not recent[r].any()
                    continue
                want_plain, want_recent = ease_scores(ease, items, times, 2.0)
                assert np.allclose(plain[r], want_plain, atol=1e-4)
                assert np.allclose(recent[r], want_recent, atol=1e-4)
        kept = set(np.flatnonzero(np.abs(fit_ease(pairs, 120, 30, 1.0, top_n=None, max_items=max_items)).sum(1)))
        assert set(path.seen.tolist()) == kept


def test_kept_items_follow_the_caps_of_fit_ease() -> None:
    counts = np.array([0, 5, 3, 3, 9, 1])
    assert ease_kept_items(counts, 100, None, None).tolist() == [1, 2, 3, 4, 5]
    assert ease_kept_items(counts, 100, 3, None).tolist() == [1, 2, 4]  # ties to the lower item_idx
    assert ease_kept_items(counts, 100, None, 2).tolist() == [1, 4]  # users and items above the solve bound
    assert ease_kept_items(counts, 2, None, 2).tolist() == [1, 2, 3, 4, 5]  # 2 users: Woodbury, no bound


def test_sample_user_pairs_keeps_whole_users_within_the_bound_and_is_seeded() -> None:
    pairs = _random_pairs(200, 40, seed=5)
    n = pairs.size(1)
    assert sample_user_pairs(pairs, n, seed=1) is pairs
    sample = sample_user_pairs(pairs, n // 3, seed=1)
    assert 0 < sample.size(1) <= n // 3
    users = set(sample[0].tolist())
    whole = pairs[:, torch.from_numpy(np.isin(pairs[0].numpy(), list(users)))]
    assert torch.equal(sample, whole)  # every positive of a sampled user, nothing of the others
    assert torch.equal(sample_user_pairs(pairs, n // 3, seed=1), sample)
    assert not torch.equal(sample_user_pairs(pairs, n // 3, seed=2), sample)


def test_search_at_size_chooses_from_the_path_and_serves_what_the_weights_saw() -> None:
    world = generate_world(users=80, items=90, seed=7)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    early = fit_components(snapshot, split.fit, CONFIG)

    def search(config: RankerConfig) -> tuple[RankerModel, dict, np.ndarray, np.ndarray]:
        probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
        data = validation_data(probe, sample_fold_users(split.validation(), None, 42))
        model, report = search_components(snapshot, split.fit, probe, data)
        return model, report, data.features, data.users

    unpruned = CONFIG.model_copy(update={"ease_top_n": None})
    bound = split.fit.size(1) // 2
    at_size = unpruned.model_copy(
        update={"component_search_large_positives": 0, "component_search_max_positives": bound}
    )
    _, small_report, _, _ = search(unpruned)
    model, report, features, users = search(at_size)
    assert report["ease_path"] and not small_report["ease_path"]
    # unpruned weights: the path's scores are the fits' scores, so the same λ and the same figures
    assert report["chosen"]["ease_lambda"] == small_report["chosen"]["ease_lambda"]
    for lam, figures in small_report["ease"].items():
        assert np.allclose(list(report["ease"][lam].values()), list(figures.values()), atol=1e-4)
    # ALS candidates on a sample of users, the served ALS fitted on every one of them
    assert 0 < report["als_positives"] <= bound < small_report["als_positives"] == split.fit.size(1)
    start = "factors=4 regularization=30 alpha=10"  # the config's point, tried by both on different data
    assert report["als"][start] != small_report["als"][start]
    searched = [FEATURES.index(f) for f in ("ease", "ease_recent", "als")]
    for r, user in enumerate(users.tolist()):
        items, times = model.history(user)
        assert np.allclose(features[searched, r], model.standardized(items, times, user)[searched], atol=1e-4)
    # the path scores every value of the grid even when the config climbs
    _, climbing, _, _ = search(at_size.model_copy(update={"component_search_exhaustive": False}))
    assert set(climbing["ease"]) == {"0.5", "1", "5", "50"}


def test_transitions_summed_one_offset_at_a_time_equal_the_one_pass_sum(monkeypatch) -> None:  # noqa: ANN001
    import gnn.blend.linear as linear

    rng = np.random.default_rng(8)
    n = 3_000
    users = np.sort(rng.integers(0, 60, size=n))
    items = rng.integers(0, 50, size=n)
    times = rng.integers(0, 1_000, size=n)
    once = linear.fit_transitions(users, items, times, 50, window=4, top_n=6)
    monkeypatch.setattr(linear, "TRANSITIONS_CHUNKED_PAIRS", 0)
    chunked = linear.fit_transitions(users, items, times, 50, window=4, top_n=6)
    assert once.nnz > 0 and np.diff(once.indptr).max() == 6
    assert np.allclose(chunked.toarray(), once.toarray(), rtol=1e-6, atol=0)
    # one positive per user: no transitions either way
    lone = linear.fit_transitions(np.arange(5), np.arange(5), np.zeros(5, dtype=np.int64), 50, window=4)
    assert lone.nnz == 0 and lone.shape == (50, 50)


def test_search_at_size_keeps_the_probes_als_when_the_sample_chooses_the_configs_point() -> None:
    world = generate_world(users=60, items=70, seed=9)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    config = CONFIG.model_copy(
        update={
            "component_search_large_positives": 0,
            "component_search_max_positives": split.fit.size(1) // 2,
            "als_factors_grid": [4],  # one point per axis: the config's own is chosen
            "als_regularization_grid": [30.0],
            "als_alpha_grid": [10.0],
            "als_reg_exponent_grid": [0.0],
        }
    )
    early = fit_components(snapshot, split.fit, config)
    probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
    data = validation_data(probe, sample_fold_users(split.validation(), None, 42))
    model, report = search_components(snapshot, split.fit, probe, data)
    assert report["als_positives"] < split.fit.size(1) and len(report["als"]) == 1
    assert model.components.als_items is early.als_items  # fitted on every user already: not fitted again
