"""The blend (gnn.blend): components, live histories, persistence, and ranker weights on planted worlds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from etl.synthetic import generate_world
from gnn.blend.config import FEATURES, SCORE_DECIMALS, RankerConfig
from gnn.blend.evaluate import blend_score_fn, ranked_lists
from gnn.blend.fit import all_positives, fit_components, fit_ranker, pair_times
from gnn.blend.knowledge import knowledge_matrix
from gnn.blend.linear import fit_ease, fit_transitions
from gnn.blend.model import RankerModel
from gnn.blend.scorers import (
    GATHER_IN_SCIPY,
    NEGLIGIBLE_WEIGHT,
    als_vector,
    distinct,
    ease_scores,
    mean_and_deviation,
    recency_weights,
    recent_part,
    weighted_rows,
)
from gnn.blend.weights import (
    CANDIDATE_FEATURES,
    ValidationData,
    fit_weights,
    head_columns,
    learn_weights,
    sample_fold_users,
    search_linear_weights,
)
from gnn.data import GraphSnapshot, build_graph_snapshot
from gnn.evaluation import evaluate, split_interactions
from schema.errors import DataError
from tests.unit.gnn.worlds import export_from_dataset, make_export

FAST = RankerConfig(
    ease_lambda=1.0,
    device="cpu",
    progress=False,
    sequence_window=3,
    lightgcn={"embedding_dim": 8, "num_layers": 2, "lr": 0.05, "batch_size": 256, "max_epochs": 4, "patience": 2},
)
DAY = 86_400


def _weights(**values: float) -> np.ndarray:
    out = np.zeros(len(FEATURES), dtype=np.float32)
    for name, value in values.items():
        out[FEATURES.index(name)] = value
    return out


def _genre_world() -> GraphSnapshot:
    """Two tastes: users u1..u6 like action films a1..a4, u7..u12 comedies c1..c4; a5 (action) and c5 (comedy)
    have no interactions at all; b1 (action) and b2 are liked only by u13, on the action side late."""
    rows: list[tuple[str, str, float | None, int | None]] = []
    for u in range(1, 13):
        prefix = "a" if u <= 6 else "c"
        for k in range(1, 5):
            rows.append((f"u{u}", f"{prefix}{k}", 5.0, 1000 * u + k))
    rows += [("u13", "a1", 5.0, 50_000), ("u13", "b1", 5.0, 50_001), ("u13", "b2", 5.0, 50_002)]
    genres = [(f"a{k}", "Action") for k in range(1, 6)] + [(f"c{k}", "Comedy") for k in range(1, 6)]
    genres += [("b1", "Action"), ("b2", "Drama")]
    tags = [("a5", "explosions", 1.0), ("a1", "explosions", 2.0)]
    return build_graph_snapshot(make_export(rows, item_genres=genres, item_tags=tags))


def _model(snapshot: GraphSnapshot, weights: np.ndarray, config: RankerConfig = FAST) -> RankerModel:
    components = fit_components(snapshot, all_positives(snapshot), config.model_copy(update={"use_lightgcn": False}))
    return RankerModel(config, snapshot.users.ids, snapshot.items.ids, components, weights)


def _rank(scores: np.ndarray, item: int) -> int:
    return int((scores > scores[item]).sum())


def test_scores_do_not_depend_on_the_order_the_history_comes_in() -> None:
    """The API reads a history from Neo4j in no particular order; the recency weights count positions, so the
    model orders it itself (by time, ties by item) and serves the features it was fitted on — also when no
    interaction has a time, as on Last.fm."""
    snapshot = _genre_world()
    model = _model(snapshot, _weights(ease=0.5, ease_recent=1.0, sequence=0.7, als=0.8, knowledge=0.3))
    user = snapshot.users.index("u13")
    items, times = model.history(user)
    rng = np.random.default_rng(0)
    for stamps in (times, np.full_like(times, -1), np.zeros_like(times)):  # known, unknown, all tied
        expected = model.score(items, stamps, user)
        for _ in range(5):
            shuffle = rng.permutation(len(items))
            assert np.array_equal(model.score(items[shuffle], stamps[shuffle], user), expected)
    # and the fitted history is already in that order: what validation scored is what is served
    assert list(np.lexsort((items, times))) == list(range(len(items)))


def test_history_sums_read_from_the_csr_arrays_equal_scipys_bit_for_bit() -> None:
    """The serving-time sums over a history's rows (gathered straight from the CSR arrays up to GATHER_IN_SCIPY
    items, or EASE_FROM_ARRAYS non-zeros for EASE^R, by scipy beyond) are scipy's own sums, bit for bit: repeated
    items, empty rows and an empty history included, so that served scores do not move."""
    rng = np.random.default_rng(3)
    dense = (rng.random((60, 40)) < 0.2) * rng.random((60, 40))
    dense[5] = 0  # an empty row
    matrix = sp.csr_matrix(dense.astype(np.float32))
    for n in (0, 1, 2, 17, GATHER_IN_SCIPY, GATHER_IN_SCIPY + 1, 3 * GATHER_IN_SCIPY, 3_000):
        items = np.r_[[5], rng.integers(0, 60, n)][:n].astype(np.int64)
        weights = rng.random(n)
        got = weighted_rows(matrix, items, weights)
        assert got.dtype == np.float64
        assert np.array_equal(got, matrix[items].T @ weights)
        if n:
            times = rng.integers(0, 10**9, n)
            plain, recent = ease_scores(matrix, items, times, 7.0)
            assert plain.dtype == recent.dtype == np.float32
            assert np.array_equal(plain, np.asarray(matrix[items].sum(axis=0)).ravel().astype(np.float32))
            assert np.array_equal(recent, (matrix[items].T @ recency_weights(times, 7.0)).astype(np.float32))


def test_float_noise_in_the_weights_does_not_reorder_a_list() -> None:
    """Served scores sit on a grid of SCORE_DECIMALS decimals, so weights that differ in the seventh digit (what
    another BLAS kernel or thread count gives the same fit) score the same, and near ties break by item_idx."""
    snapshot = _genre_world()
    weights = _weights(ease=0.5, ease_recent=1.0, als=0.8, knowledge=0.3, pop_global=0.2)
    model = _model(snapshot, weights)
    user = snapshot.users.index("u13")
    items, times = model.history(user)
    scores = model.score(items, times, user)
    finite = scores[np.isfinite(scores)]
    assert np.allclose(finite * 10**SCORE_DECIMALS, np.round(finite * 10**SCORE_DECIMALS), atol=1e-2)
    expected = model.recommend(items, times, user, k=10)
    rng = np.random.default_rng(0)
    for _ in range(20):
        model.weights = weights * (1 + rng.normal(0, 1e-7, len(weights))).astype(np.float32)
        noisy = model.score(items, times, user)
        # a score within the noise of a rounding boundary moves one step at most; the others stay bit for bit
        assert np.abs(noisy[np.isfinite(noisy)] - finite).max() <= 1.01 * 10.0**-SCORE_DECIMALS
        assert model.recommend(items, times, user, k=10) == expected
    # exact ties come out by item_idx
    model.weights = np.zeros_like(weights)
    assert model.recommend(items, times, user, k=5) == sorted(set(range(snapshot.num_items)) - set(items.tolist()))[:5]


def test_cold_item_sharing_traits_outranks_unrelated_cold_item() -> None:
    snapshot = _genre_world()
    model = _model(snapshot, _weights(ease_recent=1.0, pop_global=0.2, knowledge_cold=1.0))
    idx = snapshot.items.index
    for user in ("u2", "u3"):
        items, times = model.history(snapshot.users.index(user))
        scores = model.score(items, times, snapshot.users.index(user))
        assert scores[idx("a5")] > scores[idx("c5")]
    items, times = model.history(snapshot.users.index("u8"))
    scores = model.score(items, times, snapshot.users.index("u8"))
    assert scores[idx("c5")] > scores[idx("a5")]


def test_history_passed_to_score_changes_the_ranking_at_once() -> None:
    snapshot = _genre_world()
    model = _model(snapshot, _weights(ease=1.0, ease_recent=1.0, sequence=0.5))
    idx = snapshot.items.index
    before = model.score(np.array([idx("c1")]), np.array([100]), None)
    after = model.score(np.array([idx("c1"), idx("b1")]), np.array([100, 200]), None)
    # b1 was followed by b2 and co-liked with it; a just-posted b1 must lift b2 at once
    assert _rank(after, idx("b2")) < _rank(before, idx("b2"))
    assert after[idx("b1")] == -np.inf and before[idx("b1")] > -np.inf
    # a known user's live history (one more item than fitted) changes the scores too
    user = snapshot.users.index("u13")
    items, times = model.history(user)
    fitted = model.score(items, times, user)
    live = model.score(np.r_[items, idx("c1")], np.r_[times, 60_000], user)
    assert live[idx("c1")] == -np.inf and not np.array_equal(fitted[np.isfinite(live)], live[np.isfinite(live)])


def test_unknown_user_and_empty_history_give_finite_scores() -> None:
    snapshot = _genre_world()
    model = _model(snapshot, _weights(ease_recent=1.0, pop_global=0.5, knowledge_cold=1.0))
    empty = model.score(np.empty(0, np.int64), np.empty(0, np.int64), None)
    assert empty.shape == (snapshot.num_items,) and np.isfinite(empty).all()
    unknown_times = model.score(np.array([0, 1]), np.array([-1, -1]), None)
    assert np.isfinite(np.delete(unknown_times, [0, 1])).all()
    with pytest.raises(DataError):
        model.score(np.array([snapshot.num_items]), np.array([0]), None)
    with pytest.raises(DataError):
        model.score(np.array([0, 1]), np.array([0]), None)


def _played_world() -> GraphSnapshot:
    """Last.fm-like: no times, play counts as weights. u1..u8 listen to artists a1..a6 with distinct counts; the
    items' ids run against their play counts for u1 (a1 the least played)."""
    rows: list[tuple[str, str, float | None, int | None]] = []
    plays: list[float] = []
    for u in range(1, 9):
        for k in range(1, 7):
            if (u + k) % 5 == 0:
                continue
            rows.append((f"u{u}", f"a{k}", None, None))
            plays.append(float(10 * k + u if u % 2 else 100 - 10 * k))
    return build_graph_snapshot(make_export(rows, weights=plays))


def test_play_counts_order_a_history_without_times_in_the_fit_and_when_served(tmp_path: Path) -> None:
    """Without times the most played counts as the most recent: the fitted history is in that order, a served
    history is put in it whatever order it comes in, the recency-weighted features follow the play counts, and
    the weights survive save/load and reach BlendModel.scores."""
    from gnn.serving import BlendModel, Positives

    snapshot = _played_world()
    model = _model(snapshot, _weights(ease=0.5, ease_recent=1.0, sequence=0.7, als=0.8))
    for user in range(snapshot.num_users):
        items, times = model.history(user)
        plays = model.history_weights(user)
        assert (times == -1).all() and len(plays) == len(items)
        assert list(np.lexsort((items, plays))) == list(range(len(items)))  # least played first
    user = snapshot.users.index("u1")
    items, times = model.history(user)
    plays = model.history_weights(user)
    assert list(plays) == sorted(plays) and len(set(plays)) == len(plays) > 2
    expected = model.score(items, times, user, weights=plays)
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffle = rng.permutation(len(items))
        assert np.array_equal(model.score(items[shuffle], times[shuffle], user, weights=plays[shuffle]), expected)
    # the recency-weighted features follow the play counts: reversed counts move ease_recent and the ALS fold-in
    reversed_plays = plays[::-1].copy()
    a = model.features(items, times, user, weights=plays)
    b = model.features(items, times, user, weights=reversed_plays)
    for name in ("ease_recent", "als"):
        assert not np.allclose(a[FEATURES.index(name)], b[FEATURES.index(name)])
    assert np.allclose(a[FEATURES.index("ease")], b[FEATURES.index("ease")])  # the plain sum does not
    model.save(tmp_path / "blend")
    loaded = RankerModel.load(tmp_path / "blend")
    assert np.array_equal(loaded.history_weights(user), plays)
    assert np.array_equal(loaded.score(items, times, user, weights=plays), expected)
    (tmp_path / "blend" / "meta.json").write_text("{}", encoding="utf-8")
    served = BlendModel(tmp_path / "blend")
    pairs = [(snapshot.items.ids[int(i)], None) for i in items]
    assert np.array_equal(served.scores("u1", Positives.of(pairs, list(plays))), expected)
    assert not np.array_equal(served.scores("u1", Positives.of(pairs, list(reversed_plays))), expected)
    # without weights (a model fitted before they were kept, an API that does not pass them): all 1, item order
    assert np.array_equal(served.scores("u1", Positives.of(pairs)), model.score(items, times, user))


def test_save_load_round_trip_gives_identical_scores(tmp_path: Path) -> None:
    world = generate_world(users=40, items=60, seed=3)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    model = fit_ranker(snapshot, split, FAST, final="train")
    model.save(tmp_path / "blend")
    loaded = RankerModel.load(tmp_path / "blend")
    assert loaded.item_ids == model.item_ids and loaded.user_ids == model.user_ids
    assert np.array_equal(loaded.weights, model.weights)
    for user in range(0, snapshot.num_users, 7):
        items, times = model.history(user)
        assert np.array_equal(items, loaded.history(user)[0]) and np.array_equal(times, loaded.history(user)[1])
        assert np.array_equal(model.score(items, times, user), loaded.score(items, times, user))
        assert np.array_equal(model.score(items, times, None), loaded.score(items, times, None))
    with pytest.raises(DataError):
        RankerModel.load(tmp_path / "missing")


def test_fit_ranker_is_deterministic_and_refits_on_all_positives() -> None:
    world = generate_world(users=40, items=60, seed=4)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    a = fit_ranker(snapshot, split, FAST, final="train")
    b = fit_ranker(snapshot, split, FAST, final="train")
    assert np.array_equal(a.weights, b.weights)
    assert np.isfinite(a.weights).all() and a.meta["validation"]["chosen"].startswith(("learned", "linear"))
    assert a.meta["validation"]["ranker_users"] == len(split.validation().eval_users)  # fewer than the cap
    users = split.testing().eval_users[:5]
    assert torch.equal(blend_score_fn(a)(users), blend_score_fn(b)(users))
    metrics = evaluate(blend_score_fn(a), split.testing(), ks=(20,))
    assert 0.0 <= metrics["ndcg@20"] <= 1.0
    # train mode never sees a test positive; production mode holds every positive of each user
    test_user = int(split.test[0, 0])
    test_item = int(split.test[1, 0])
    assert test_item not in a.history(test_user)[0]
    full = fit_ranker(snapshot, split, FAST, final="all")
    assert test_item in full.history(test_user)[0]
    assert sum(len(full.history(u)[0]) for u in range(snapshot.num_users)) == all_positives(snapshot).size(1)


def test_fit_announces_each_component_and_step_as_a_phase() -> None:
    from gnn.phases import PhaseEvent, listening

    events: list[PhaseEvent] = []
    snapshot = _genre_world()  # a5 and c5 have no positives: their LightGCN rows are predicted
    with listening(events.append):
        fit_components(snapshot, all_positives(snapshot), FAST, lightgcn_epochs=2)
    components = ("ease", "knowledge", "sequence", "als", "lightgcn", "cold_embeddings")
    assert [(e.name, e.path) for e in events if e.kind == "start"] == [
        ("fit_components", ()),
        *((name, ("fit_components",)) for name in components),
    ]
    assert {e.kind for e in events} == {"start", "end"}
    events.clear()
    world = generate_world(users=40, items=60, seed=3)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    config = FAST.model_copy(
        update={
            "ease_lambda_grid": [1.0],
            "als_factors_grid": [64],
            "als_regularization_grid": [30.0],
            "als_alpha_grid": [10.0],
        }
    )
    with listening(events.append):
        fit_ranker(snapshot, split_interactions(snapshot, seed=42), config)
    assert [e.name for e in events if e.kind == "end" and not e.path] == [
        "fit_components",
        "val_features",
        "component_search",
        "ranker_weights",
        "refit",
    ]
    assert [e.path for e in events if e.kind == "end" and e.name == "fit_components"] == [(), ("refit",)]


def _planted_data(informative: str, users: int = 60, items: int = 300, seed: int = 0) -> ValidationData:
    """Standard-normal features; each user's targets are the top items of ``informative`` plus a little noise."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((len(FEATURES), users, items)).astype(np.float32)
    signal = features[FEATURES.index(informative)] + 0.3 * rng.standard_normal((users, items))
    target = np.zeros((users, items), dtype=bool)
    np.put_along_axis(target, np.argsort(-signal, axis=1)[:, :5], True, axis=1)
    exclude = np.zeros((users, items), dtype=bool)
    exclude[:, :3] = True
    target &= ~exclude
    return ValidationData(np.arange(users), features, exclude, target)


@pytest.mark.parametrize("informative", ["sequence", "pop_window", "knowledge_cold"])
def test_ranker_weights_favour_the_informative_component(informative: str) -> None:
    data = _planted_data(informative)
    config = FAST.model_copy(update={"ranker_l2": 1e-4})
    learned = learn_weights(data, config)
    assert int(np.argmax(np.abs(learned))) == FEATURES.index(informative) and learned[FEATURES.index(informative)] > 0
    linear = search_linear_weights(data)
    others = np.delete(np.abs(linear), [FEATURES.index(informative), FEATURES.index("ease_recent")])
    assert linear[FEATURES.index(informative)] > 2 * max(float(others.max()), 0.1)
    assert data.ndcg(learned) > data.ndcg(_weights(ease_recent=1.0)) + 0.3


def test_head_columns_keep_each_users_best_candidates_and_their_whole_target_count() -> None:
    data = _planted_data("als", users=30, items=300, seed=4)
    head = head_columns(data, 50)
    chooser = [FEATURES.index(f) for f in CANDIDATE_FEATURES]
    best = data.features[chooser].max(axis=0)
    best[data.exclude] = -np.inf
    assert head.features.shape == (len(FEATURES), 30, 50) and head.items is not None
    for r in range(30):  # every kept column is at least as good as every dropped one, history never kept
        kept = head.items[r]
        dropped = np.setdiff1d(np.arange(300), kept)
        assert not data.exclude[r, kept].any()
        assert best[r, kept].min() >= best[r, dropped].max()
        np.testing.assert_array_equal(head.features[:, r], data.features[:, r, kept])
        assert head.target[r].sum() == data.target[r, kept].sum()
    np.testing.assert_array_equal(head.target_counts, data.target.sum(axis=1))  # misses still count in the ideal
    assert head_columns(data, 300) is data and head_columns(data, None) is data


def test_ranker_weights_are_fitted_on_the_head_above_the_catalogue_bound_only() -> None:
    data = _planted_data("als", users=40, items=300, seed=5)
    config = FAST.model_copy(update={"ranker_fit_candidates": 40, "ranker_l2_grid": [0.1]})
    on_head = fit_weights(data, config.model_copy(update={"ranker_fit_min_items": 100}))[0]
    whole = fit_weights(data, config.model_copy(update={"ranker_fit_min_items": 300}))[0]
    assert not np.allclose(on_head, whole, atol=1e-4)
    np.testing.assert_allclose(whole, fit_weights(data, config.model_copy(update={"ranker_fit_candidates": None}))[0])


def _naive_listwise_loss(data: ValidationData, weights: torch.Tensor, rows: np.ndarray, l2: float) -> torch.Tensor:
    """The listwise loss written out user by user with autograd (the definition learn_weights optimises)."""
    losses = []
    for r in rows:
        if not data.target[r].any():
            continue
        logits = torch.einsum("f,fi->i", weights, torch.from_numpy(data.features[:, r]))
        logp = torch.log_softmax(logits.masked_fill(torch.from_numpy(data.exclude[r]), -math.inf), dim=0)
        losses.append(-logp[torch.from_numpy(np.flatnonzero(data.target[r]))].mean())
    return torch.stack(losses).mean() + l2 * (weights * weights).sum()


def test_learned_weights_are_the_optimum_of_the_naive_listwise_loss() -> None:
    data = _planted_data("als", users=40, items=120, seed=3)
    rows = np.arange(0, 40, 2)  # a fold: the other users must not count
    mask = np.ones(len(FEATURES), dtype=bool)
    mask[FEATURES.index("social")] = False
    config = FAST.model_copy(update={"ranker_iterations": 200})
    learned = learn_weights(data, config, rows, l2=0.05, mask=mask)
    assert learned[FEATURES.index("social")] == 0.0 and learned[FEATURES.index("als")] > 0.5
    w = torch.from_numpy(learned.astype(np.float64)).requires_grad_(True)
    data64 = ValidationData(data.users, data.features.astype(np.float64), data.exclude, data.target)
    _naive_listwise_loss(data64, w, rows, 0.05).backward()
    assert float(w.grad[torch.from_numpy(mask)].abs().max()) < 1e-3  # stationary where allowed to move
    # and the optimum differs from the one over every user (the fold's rows are what counts)
    everyone = learn_weights(data, config, None, l2=0.05, mask=mask)
    assert not np.allclose(everyone, learned, atol=1e-3)


def test_social_feature_scores_what_followees_liked_and_survives_save_load(tmp_path: Path) -> None:
    rows = [
        ("f1", "x1", 5.0, 10),
        ("f1", "x2", 5.0, 11),
        ("f2", "x1", 5.0, 12),
        ("u", "y1", 5.0, 20),
        ("o", "x3", 5.0, 30),
        ("o", "y1", 5.0, 31),
        ("lone", "y1", 5.0, 40),
    ]
    snapshot = build_graph_snapshot(make_export(rows, follows=[("u", "f1"), ("u", "f2"), ("u", "u")]))
    model = _model(snapshot, _weights(social=1.0))
    idx, user = snapshot.items.index, snapshot.users.index
    raw = model.features(*model.history(user("u")), user("u"))[FEATURES.index("social")]
    # x1 liked by both followees (f2 liked one item: weight 1; f1 two: 1/√2 each); x3 by a stranger: 0
    assert raw[idx("x1")] == pytest.approx(1 + 1 / math.sqrt(2)) and raw[idx("x2")] == pytest.approx(1 / math.sqrt(2))
    assert raw[idx("x3")] == 0.0
    scores = model.score(*model.history(user("u")), user("u"))
    assert scores[idx("x1")] > scores[idx("x2")] > scores[idx("x3")]
    # nobody followed, or a user unknown to the model: the feature is 0
    assert not model.features(*model.history(user("lone")), user("lone"))[FEATURES.index("social")].any()
    assert not model.features(*model.history(user("u")), None)[FEATURES.index("social")].any()
    model.save(tmp_path / "m")
    loaded = RankerModel.load(tmp_path / "m")
    assert np.array_equal(loaded.score(*model.history(user("u")), user("u")), scores)


def test_ease_matches_the_dense_closed_form_and_sparsifies_per_row() -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((30, 12)) < 0.3).astype(np.float64)
    dense[:, 11] = 0.0  # an item nobody has
    pairs = torch.from_numpy(np.stack(np.nonzero(dense)).astype(np.int64))
    full = fit_ease(pairs, 30, 12, lam=5.0, top_n=None).toarray()
    seen = dense[:, :11]
    p = np.linalg.inv(seen.T @ seen + 5.0 * np.eye(11))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    assert np.allclose(full[:11, :11], b, atol=1e-5) and not full[11].any() and not full[:, 11].any()
    top = fit_ease(pairs, 30, 12, lam=5.0, top_n=3)
    assert np.diff(top.indptr).max() <= 3
    row = full[0]
    kept = top.toarray()[0]
    assert set(np.flatnonzero(kept)) == set(np.argsort(-np.abs(row))[:3])
    with pytest.raises(DataError):
        fit_ease(pairs, 30, 12, lam=0.0, top_n=None)


def _closed_form_ease(dense: np.ndarray, lam: float) -> np.ndarray:
    """The textbook EASE^R: general inverse of the full Gram matrix."""
    p = np.linalg.inv(dense.T @ dense + lam * np.eye(dense.shape[1]))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def test_ease_cholesky_and_row_blocks_equal_the_closed_form_and_the_cap_keeps_the_most_popular() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((200, 40)) < rng.uniform(0.02, 0.5, size=40)).astype(np.float64)
    dense[:, 7] = 0.0  # an item nobody has
    pairs = torch.from_numpy(np.stack(np.nonzero(dense)).astype(np.int64))
    seen = np.flatnonzero(dense.sum(axis=0) > 0)
    full = fit_ease(pairs, 200, 40, lam=3.0, top_n=None).toarray()
    assert np.abs(full[np.ix_(seen, seen)] - _closed_form_ease(dense[:, seen], 3.0)).max() < 1e-6
    # pruning in row blocks of 4 = pruning all rows at once
    blocks = fit_ease(pairs, 200, 40, lam=3.0, top_n=5, block_rows=4)
    whole = fit_ease(pairs, 200, 40, lam=3.0, top_n=5, block_rows=1000)
    assert (blocks != whole).nnz == 0 and np.diff(blocks.indptr).max() == 5
    # the cap: the 10 items with the most positives, fitted as if they were the only items
    counts = dense.sum(axis=0)
    popular = np.sort(np.argsort(-counts, kind="stable")[:10])
    capped = fit_ease(pairs, 200, 40, lam=3.0, top_n=None, max_items=10).toarray()
    assert set(np.flatnonzero(np.abs(capped).sum(axis=1))) == set(popular)
    assert counts[popular].min() >= np.delete(counts, popular).max()
    assert np.abs(capped[np.ix_(popular, popular)] - _closed_form_ease(dense[:, popular], 3.0)).max() < 1e-6
    others = np.setdiff1d(np.arange(40), popular)
    assert not capped[others].any() and not capped[:, others].any()
    # a cap above the item count changes nothing
    assert (fit_ease(pairs, 200, 40, lam=3.0, top_n=None, max_items=39) != sp.csr_matrix(full)).nnz == 0
    with pytest.raises(DataError):
        fit_ease(pairs, 200, 40, lam=3.0, top_n=None, max_items=0)


def test_ease_with_fewer_users_than_items_takes_the_woodbury_path_to_the_same_weights() -> None:
    rng = np.random.default_rng(2)
    dense = (rng.random((15, 70)) < rng.uniform(0.05, 0.6, size=70)).astype(np.float64)
    dense[:, 3] = 0.0  # an item nobody has
    pairs = torch.from_numpy(np.stack(np.nonzero(dense)).astype(np.int64))
    seen = np.flatnonzero(dense.sum(axis=0) > 0)
    assert len(seen) > 15  # the users × users inverse is the one taken
    full = fit_ease(pairs, 15, 70, lam=2.0, top_n=None).toarray()
    assert np.abs(full[np.ix_(seen, seen)] - _closed_form_ease(dense[:, seen], 2.0)).max() < 1e-6
    assert not full[3].any() and not full[:, 3].any()


def test_ease_solve_bound_keeps_the_most_popular_items_when_users_and_items_both_exceed_it() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((200, 40)) < rng.uniform(0.02, 0.5, size=40)).astype(np.float64)
    pairs = torch.from_numpy(np.stack(np.nonzero(dense)).astype(np.int64))
    bounded = fit_ease(pairs, 200, 40, lam=3.0, top_n=None, max_solve=10)
    assert (bounded != fit_ease(pairs, 200, 40, lam=3.0, top_n=None, max_items=10)).nnz == 0
    assert len(np.flatnonzero(np.abs(bounded).sum(axis=1))) == 10
    # fewer users than the bound: the Woodbury solve is users × users, every item stays
    few = (rng.random((15, 70)) < rng.uniform(0.05, 0.6, size=70)).astype(np.float64)
    few_pairs = torch.from_numpy(np.stack(np.nonzero(few)).astype(np.int64))
    whole = fit_ease(few_pairs, 15, 70, lam=2.0, top_n=None)
    assert (fit_ease(few_pairs, 15, 70, lam=2.0, top_n=None, max_solve=20) != whole).nnz == 0
    assert (fit_ease(few_pairs, 15, 70, lam=2.0, top_n=None, max_solve=14) != whole).nnz > 0  # 15 users > 14
    with pytest.raises(DataError):
        fit_ease(pairs, 200, 40, lam=3.0, top_n=None, max_solve=0)


def test_validation_features_on_candidates_are_the_full_features_on_each_users_best_items() -> None:
    from gnn.blend.weights import CANDIDATE_FEATURES, fit_weights, validation_data

    world = generate_world(users=60, items=80, seed=6)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    config = FAST.model_copy(update={"use_lightgcn": False, "als_factors": 4})
    early = fit_components(snapshot, split.fit, config)
    probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
    fold = sample_fold_users(split.validation(), None, 42)
    full = validation_data(probe, fold)
    same = validation_data(probe, fold, candidates=snapshot.num_items)
    assert same.items is None and np.array_equal(same.features, full.features)
    part = validation_data(probe, fold, candidates=30)
    assert part.features.shape == (full.features.shape[0], len(full.users), 30) and part.items is not None
    chooser = [FEATURES.index(f) for f in CANDIDATE_FEATURES if FEATURES.index(f) < full.features.shape[0]]
    for r in range(len(full.users)):
        cols = part.items[r]
        assert not full.exclude[r, cols].any() and not part.exclude[r].any()  # never a history item
        assert np.array_equal(part.features[:, r], full.features[:, r, cols])
        assert np.array_equal(part.target[r], full.target[r, cols]) and part.target_counts[r] == full.target[r].sum()
        best = full.features[chooser, r].max(axis=0)
        others = np.setdiff1d(np.flatnonzero(~full.exclude[r]), cols)
        assert best[cols].min() >= best[others].max()  # the best items by any one feature
    assert part.ndcg_of(part.columns(np.zeros((len(full.users), snapshot.num_items), np.float32))) >= 0.0
    weights, report = fit_weights(part, config)
    assert weights.shape == (len(FEATURES),) and 0.0 < report["val_ndcg20"] <= 1.0
    # a user's validation items outside the candidates count as misses: NDCG on them is at most the full one's
    perfect = full.target.astype(np.float32)
    assert part.ndcg_of(part.columns(perfect)) <= full.ndcg_of(perfect.copy()) == 1.0


def test_lightgcn_refit_is_skipped_above_its_bound_and_early_stops_on_a_sample_of_validation_users() -> None:
    world = generate_world(users=60, items=80, seed=6)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    lightgcn = {**FAST.lightgcn, "max_epochs": 12, "patience": 2, "val_window": 1}
    config = FAST.model_copy(
        update={
            "component_search": False,
            "als_factors": 4,
            "lightgcn_max_val_users": 10,
            "cold_embeddings": False,
            "lightgcn": lightgcn,
        }
    )
    validation = split.validation()
    assert validation.eval_users.numel() > 10
    early = fit_components(snapshot, split.fit, config, val_fold=sample_fold_users(validation, 10, config.seed))
    other = fit_components(snapshot, split.fit, config, val_fold=validation)
    assert early.lightgcn_epochs != other.lightgcn_epochs  # the sample stops at another epoch here
    kept = fit_ranker(
        snapshot,
        split,
        config.model_copy(update={"lightgcn_large_positives": 0, "lightgcn_large_budget": 10**12}),
        final="train",
    )
    assert np.array_equal(kept.components.user_emb, early.user_emb)  # the early-stopped LightGCN, not refitted
    assert np.array_equal(kept.components.item_emb, early.item_emb)
    assert kept.meta["lightgcn_epochs"] == early.lightgcn_epochs
    refit = fit_ranker(snapshot, split, config, final="train")  # the default bound is far above this world
    assert not np.array_equal(refit.components.user_emb, early.user_emb)
    assert np.array_equal(refit.components.ease.toarray(), kept.components.ease.toarray())  # the others as before


def test_lightgcn_epochs_are_bounded_by_the_work_budget_above_the_large_positives() -> None:
    from gnn.blend.fit import lightgcn_config

    config = RankerConfig(lightgcn_large_positives=1000, lightgcn_large_budget=10**7)
    assert lightgcn_config(config, 1000).max_epochs == 300  # not above the bound: as configured
    # 100k positives: 25 steps of 4096 (within epoch_edge_budget), 2.5M edge-steps an epoch, 4 fit in 10M
    assert lightgcn_config(config, 100_000).max_epochs == 4
    assert lightgcn_config(config, 100_000, fixed=True).max_epochs == 300  # a refit's fixed count is its own
    assert lightgcn_config(config, 10**8).max_epochs == 1  # one step an epoch, and at least one epoch
    assert lightgcn_config(config.model_copy(update={"lightgcn_large_positives": None}), 10**8).max_epochs == 300


def test_sample_fold_users_keeps_whole_users_seeded_and_bounded() -> None:
    world = generate_world(users=150, items=60, seed=5)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    fold = split_interactions(snapshot, seed=42).validation()
    users = fold.eval_users
    assert len(users) > 60
    assert sample_fold_users(fold, None, 0) is fold and sample_fold_users(fold, len(users), 0) is fold
    a, b, c = (sample_fold_users(fold, 60, seed) for seed in (7, 7, 8))
    assert len(a.eval_users) == 60 and torch.equal(a.target, b.target) and not torch.equal(a.target, c.target)
    assert bool(torch.isin(a.eval_users, users).all()) and torch.equal(a.train, fold.train)
    kept = torch.isin(fold.target[0], a.eval_users)
    assert torch.equal(a.target, fold.target[:, kept])  # every target of a sampled user, nothing else


def test_transitions_point_forward_in_time_and_recency_weights_halve() -> None:
    users = np.array([0, 0, 0, 1, 1])
    items = np.array([2, 0, 1, 0, 1])
    times = np.array([30, 10, 20, 5, 6])
    t = fit_transitions(users, items, times, 3, window=1).toarray()
    assert t[0, 1] > 0 and t[1, 2] > 0 and t[1, 0] == 0 and t[2, 1] == 0
    w = recency_weights(np.array([30, 10, 20, -1]), half_life=1.0)
    assert np.allclose(w, [1.0, 0.25, 0.5, 0.125])
    assert np.array_equal(recency_weights(np.array([3, 1]), math.inf), [1.0, 1.0])


def test_knowledge_rows_are_unit_and_idf_weighted() -> None:
    snapshot = _genre_world()
    matrix = knowledge_matrix(snapshot)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    assert np.allclose(norms, 1.0, atol=1e-5)
    sim = (matrix @ matrix.T).toarray()
    idx = snapshot.items.index
    # a5 shares Action and the rare tag "explosions" with a1, only Action with a2
    assert sim[idx("a5"), idx("a1")] > sim[idx("a5"), idx("a2")] > sim[idx("a5"), idx("c1")] == 0
    assert isinstance(matrix, sp.csr_matrix)


def test_pair_times_rejects_unknown_pairs() -> None:
    snapshot = _genre_world()
    pairs = all_positives(snapshot)
    times = pair_times(snapshot, pairs)
    assert (times > 0).all()
    with pytest.raises(DataError):
        pair_times(snapshot, torch.tensor([[0], [snapshot.items.index("c5")]]))


def _year_world() -> GraphSnapshot:
    """u1..u4 like old films o1..o3 (1990s) in 2015; n1 (2015) and n2 (1980) nobody has rated yet."""
    from dataclasses import replace

    import pandas as pd

    t2015 = 1_430_000_000  # 2015-04
    rows = [(f"u{u}", f"o{k}", 5.0, t2015 + 100 * u + k) for u in range(1, 5) for k in range(1, 4)]
    export = make_export(rows, items=["n1", "n2"], item_genres=[("n1", "Drama"), ("n2", "Drama")])
    years = pd.DataFrame({"item_id": ["o1", "o2", "o3", "n1", "n2"], "year": [1991, 1994, 1997, 2015, 1980]})
    return build_graph_snapshot(replace(export, item_years=years))


def test_fresh_features_favour_new_releases_and_survive_save_load(tmp_path: Path) -> None:
    snapshot = _year_world()
    idx = snapshot.items.index
    model = _model(snapshot, _weights(pop_global=0.1, fresh_cold=1.0))
    user = snapshot.users.index("u1")
    items, times = model.history(user)
    raw = model.features(items, times, user)
    fresh, fresh_cold = raw[FEATURES.index("fresh")], raw[FEATURES.index("fresh_cold")]
    assert fresh[idx("n1")] == pytest.approx(1.0, abs=0.05) and fresh[idx("n2")] < 1e-3
    assert fresh[idx("o3")] > fresh[idx("o1")] and fresh_cold[idx("o3")] == 0.0
    scores = model.score(items, times, user)
    assert _rank(scores, idx("n1")) == 0
    # a history without times is placed at the latest event of the fitted data
    untimed = model.features(np.array([idx("o1")]), np.array([-1]), None)
    assert untimed[FEATURES.index("fresh")][idx("n1")] == pytest.approx(1.0, abs=0.05)
    model.save(tmp_path / "m")
    loaded = RankerModel.load(tmp_path / "m")
    assert np.array_equal(loaded.components.item_year, snapshot.item_year.numpy())
    assert np.array_equal(loaded.score(items, times, user), scores)


def test_format_1_model_loads_with_its_weights_and_zero_for_new_features(tmp_path: Path) -> None:
    import json

    snapshot = _year_world()
    model = _model(snapshot, _weights(ease_recent=1.0, pop_global=0.5))
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "ranker.json").read_text())
    old = [f for f in FEATURES if not f.startswith("fresh")]
    meta.update(format=1, features=old, weights=[float(model.weights[FEATURES.index(f)]) for f in old])
    for key in ("fresh_years", "ranker_features", "ranker_l2_grid", "ranker_folds"):
        meta["config"].pop(key)
    (tmp_path / "m" / "ranker.json").write_text(json.dumps(meta))
    arrays = dict(np.load(tmp_path / "m" / "ranker.npz"))
    del arrays["item_year"]
    np.savez(tmp_path / "m" / "ranker.npz", **arrays)
    loaded = RankerModel.load(tmp_path / "m")
    assert np.array_equal(loaded.weights, model.weights) and (loaded.components.item_year == -1).all()
    user = snapshot.users.index("u2")
    items, times = model.history(user)
    assert np.array_equal(loaded.score(items, times, user), model.score(items, times, user))


def test_ranker_features_mask_and_l2_grid_cross_fit() -> None:
    from gnn.blend.weights import feature_mask, fit_weights

    data = _planted_data("sequence")
    allowed = ["ease_recent", "pop_window", "knowledge_cold"]
    config = FAST.model_copy(
        update={"ranker_features": allowed, "ranker": "learned", "ranker_l2_grid": [1e-4, 1e-1], "ranker_folds": 3}
    )
    weights, report = fit_weights(data, config)
    banned = ~np.isin(np.asarray(FEATURES), allowed)
    assert (weights[banned] == 0).all() and set(report["cross_fit_ndcg20"]) == {"learned l2=0.0001", "learned l2=0.1"}
    full, _ = fit_weights(data, FAST.model_copy(update={"ranker": "learned", "ranker_folds": 3}))
    assert full[FEATURES.index("sequence")] > 0 and data.ndcg(full) > data.ndcg(weights)
    linear = search_linear_weights(data, mask=feature_mask(config))
    assert (linear[banned & (np.asarray(FEATURES) != "ease_recent")] == 0).all()
    with pytest.raises(Exception, match="unknown ranker features"):
        feature_mask(FAST.model_copy(update={"ranker_features": ["nope"]}))


def test_content_embeddings_recover_a_planted_feature_map_and_year_basis_is_smooth() -> None:
    from gnn.blend.knowledge import content_embeddings, year_basis

    rng = np.random.default_rng(5)
    features = sp.random(400, 30, density=0.15, random_state=5, format="csr", dtype=np.float64)
    truth = rng.standard_normal((30, 4))
    targets = np.asarray(features @ truth)
    known = np.arange(400) < 300
    predicted = content_embeddings(features, np.where(known[:, None], targets, 0.0), known, lam=1e-3)
    # rows never seen in the fit (and the zeros put there) are predicted from their features alone
    assert np.allclose(predicted[~known], targets[~known], atol=0.05)
    shrunk = content_embeddings(features, targets, known, lam=1e3)
    assert np.abs(shrunk).mean() < 0.5 * np.abs(predicted).mean()
    assert not content_embeddings(sp.csr_matrix((400, 30)), targets, known, lam=1.0).any()
    with pytest.raises(DataError):
        content_embeddings(features, targets, known, lam=0.0)
    basis = year_basis(np.array([1990, 1992, 2010, -1])).toarray()
    assert np.allclose(np.linalg.norm(basis[:3], axis=1), 1.0) and not basis[3].any()
    assert basis[0] @ basis[1] > 0.8 > 0.01 > basis[0] @ basis[2]


def test_items_without_positives_get_lightgcn_embeddings_from_their_knowledge() -> None:
    snapshot = _genre_world()
    config = FAST.model_copy(update={"lightgcn": {**FAST.lightgcn, "max_epochs": 40, "embedding_dim": 8}})
    idx = snapshot.items.index
    fitted = fit_components(snapshot, all_positives(snapshot), config, lightgcn_epochs=40)
    plain = fit_components(
        snapshot, all_positives(snapshot), config.model_copy(update={"cold_embeddings": False}), lightgcn_epochs=40
    )
    emb = fitted.item_emb
    assert not plain.item_emb[[idx("a5"), idx("c5")]].any()  # the old behaviour: cold rows are zero
    warm = fitted.events.global_counts > 0
    assert np.array_equal(emb[warm], plain.item_emb[warm])  # trained rows are untouched
    action = emb[[idx(f"a{k}") for k in range(1, 5)]].mean(axis=0)
    comedy = emb[[idx(f"c{k}") for k in range(1, 5)]].mean(axis=0)
    # a5 (Action, tag "explosions") lands among the action films, c5 (Comedy) among the comedies
    assert emb[idx("a5")] @ action > emb[idx("a5")] @ comedy
    assert emb[idx("c5")] @ comedy > emb[idx("c5")] @ action
    model = RankerModel(config, snapshot.users.ids, snapshot.items.ids, fitted, _weights(lightgcn_cold=1.0))
    user = snapshot.users.index("u2")
    items, times = model.history(user)
    raw = model.features(items, times, user)
    cold_lgn = raw[FEATURES.index("lightgcn_cold")]
    assert cold_lgn[idx("a5")] > cold_lgn[idx("c5")] and cold_lgn[idx("a1")] == 0.0
    scores = model.score(items, times, user)
    assert scores[idx("a5")] > scores[idx("c5")]


def test_cold_prior_is_raw_and_larger_for_users_who_like_what_nobody_else_does() -> None:
    snapshot = _genre_world()
    model = _model(snapshot, _weights(ease_recent=1.0, cold_prior=1.0))
    idx = snapshot.items.index
    f = FEATURES.index("cold_prior")
    # u13 liked b1 and b2, which nobody else liked; u2 only films everybody in its group liked
    loner, crowd = snapshot.users.index("u13"), snapshot.users.index("u2")
    raw_loner = model.features(*model.history(loner), loner)[f]
    raw_crowd = model.features(*model.history(crowd), crowd)[f]
    assert raw_loner[idx("a5")] == pytest.approx(math.log(2.5 / 8.0))
    assert raw_crowd[idx("a5")] == pytest.approx(math.log(0.5 / 9.0)) and raw_loner[idx("a1")] == 0.0
    z = model.standardized(*model.history(loner), loner)
    assert np.array_equal(z[f], raw_loner)  # per-user offsets survive standardisation
    assert "cold_prior" in __import__("gnn.blend.config", fromlist=["RAW_FEATURES"]).RAW_FEATURES


def test_format_2_model_scores_as_before(tmp_path: Path) -> None:
    import json

    snapshot = _year_world()
    model = _model(snapshot, _weights(ease_recent=1.0, pop_global=0.5, fresh_cold=0.7))
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "ranker.json").read_text())
    old = [f for f in FEATURES if f not in ("lightgcn_cold", "cold_prior")]
    meta.update(format=2, features=old, weights=[float(model.weights[FEATURES.index(f)]) for f in old])
    for key in ("cold_embeddings", "cold_map_lambda", "cold_year_weight"):
        meta["config"].pop(key)
    (tmp_path / "m" / "ranker.json").write_text(json.dumps(meta))
    loaded = RankerModel.load(tmp_path / "m")
    assert np.array_equal(loaded.weights, model.weights)
    user = snapshot.users.index("u3")
    items, times = model.history(user)
    assert np.array_equal(loaded.score(items, times, user), model.score(items, times, user))


# --- new arrivals: reserved positions for cold items ----------------------------------------------------


def test_reserved_cold_positions_take_a_cold_item_only_when_it_clears_the_margin() -> None:
    from gnn.blend.cold import reserve_cold_slots

    scores = np.full(30, -np.inf, dtype=np.float32)
    scores[:10] = np.arange(10, 0, -1)  # ranked items 0..9 score 10..1
    scores[20], scores[21], scores[22] = 5.5, 2.2, 0.1  # cold candidates
    ranked, cold = list(range(10)), [20, 21, 22]

    def run(k: int, slots: int, every: int, margin: float | None) -> list[int]:
        return reserve_cold_slots(ranked, cold, scores, k, slots=slots, every=every, margin=margin)

    assert run(8, 0, 3, None) == ranked[:8]  # off: the ranking itself
    # positions 3 and 6 reserved, no bar: the two best cold items there, the ranked items shifted down
    assert run(8, 2, 3, None) == [0, 1, 20, 2, 3, 21, 4, 5]
    # margin 1: at position 3 item 20 (5.5) would displace item 2 (8): 5.5 < 7, the ranked item stays; at
    # position 6 it would displace item 5 (5): 5.5 >= 4, it enters
    assert run(8, 2, 3, 1.0) == [0, 1, 2, 3, 4, 20, 5, 6]
    assert run(10, 2, 3, 0.0) == [0, 1, 2, 3, 4, 20, 5, 6, 7, 8]  # 21 (2.2) never reaches its displaced item
    assert run(20, 1, 3, None).count(20) == 1 and len(run(20, 1, 3, None)) == 11  # one slot; every item once
    full = run(12, 3, 2, None)
    assert all(run(k, 3, 2, None) == full[:k] for k in range(13))  # prefix-stable: a shorter list is a prefix
    assert len(set(full)) == len(full)
    # a cold item the ranking already shows earlier keeps its place and the slot goes to the next one
    assert reserve_cold_slots([20, 0, 1, 2], cold, scores, 4, slots=1, every=3, margin=None) == [20, 0, 21, 1]
    # a cold item the ranking shows later is moved up, not repeated
    assert reserve_cold_slots([0, 1, 2, 20, 3], cold, scores, 5, slots=1, every=2, margin=None) == [0, 20, 1, 2, 3]
    assert reserve_cold_slots([0], [], scores, 3, slots=1, every=1, margin=None) == [0]  # no candidates
    assert reserve_cold_slots([0], cold, scores, 3, slots=2, every=1, margin=None) == [20, 21, 0]


def test_recommend_puts_the_best_unseen_cold_item_in_the_reserved_position() -> None:
    snapshot = _genre_world()
    idx = snapshot.items.index
    weights = _weights(ease_recent=1.0, pop_global=1.0, knowledge=0.3, knowledge_cold=0.2)
    plain = _model(snapshot, weights, FAST.model_copy(update={"cold_slots": 0}))
    policy = FAST.model_copy(update={"cold_slots": 1, "cold_slot_every": 3, "cold_slot_margin": None})
    model = _model(snapshot, weights, policy)
    user = snapshot.users.index("u2")
    items, times = model.history(user)
    before = plain.recommend(items, times, user, k=6)
    assert plain.cold_mask[[idx("a5"), idx("c5")]].all() and plain.cold_mask.sum() == 2
    assert idx("a5") not in before[:3] and idx("c5") not in before
    after = model.recommend(items, times, user, k=6)
    # a5 (the cold action film) is the action fan's best cold item: position 3, the rest shifted down
    assert after[2] == idx("a5") and [i for i in after if i != idx("a5")] == [i for i in before if i != idx("a5")][:5]
    assert not set(after) & set(items.tolist())  # never a seen item
    # excluded (e.g. rated below the positive bar) cold items never come back; the next cold item takes the slot
    excluded = model.recommend(items, times, user, k=6, exclude=[idx("a5")])
    assert idx("a5") not in excluded and excluded[2] == idx("c5")
    scores = model.score(items, times, user)
    displaced = scores[before[2]]
    # a margin below the gap to the displaced item keeps the ranking as it was
    gap = float(displaced - scores[idx("a5")])
    assert gap > 0
    strict = _model(snapshot, weights, policy.model_copy(update={"cold_slot_margin": gap * 0.9}))
    assert strict.recommend(items, times, user, k=6) == before
    loose = _model(snapshot, weights, policy.model_copy(update={"cold_slot_margin": gap * 1.1}))
    assert loose.recommend(items, times, user, k=6) == after
    assert model.recommend(items, times, user, k=2) == before[:2]  # shorter than the first reserved position
    assert _model(snapshot, weights).recommend(items, times, user, k=6) == before  # default: position 20 only


def test_ranked_lists_follow_recommend_and_the_policy_survives_save_load(tmp_path: Path) -> None:
    snapshot = _genre_world()
    config = FAST.model_copy(update={"cold_slots": 1, "cold_slot_every": 2, "cold_slot_margin": 5.0})
    model = _model(snapshot, _weights(ease_recent=1.0, pop_global=0.3, knowledge_cold=0.5), config)
    edges = all_positives(snapshot)
    fold = __import__("gnn.evaluation", fromlist=["Fold"]).Fold(
        "t", snapshot.num_users, snapshot.num_items, edges, edges[:, ::5]
    )
    lists = ranked_lists(model, fold, k=4)
    for row, user in enumerate(fold.eval_users.tolist()):
        items, times = model.history(user)
        expected = model.recommend(items, times, user, k=4)
        assert lists[row, : len(expected)].tolist() == expected and (lists[row, len(expected) :] == -1).all()
    assert evaluate(lists, fold, ks=(4,))["users"] == fold.eval_users.numel()  # no train item in any list
    model.save(tmp_path / "m")
    loaded = RankerModel.load(tmp_path / "m")
    assert (loaded.config.cold_slots, loaded.config.cold_slot_every, loaded.config.cold_slot_margin) == (1, 2, 5.0)
    assert torch.equal(ranked_lists(loaded, fold, k=4), lists)


def test_component_search_picks_the_best_validation_candidates_and_the_served_features_match() -> None:
    from gnn.blend.search import search_components
    from gnn.blend.weights import sample_fold_users, validation_data

    world = generate_world(users=60, items=80, seed=6)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    config = FAST.model_copy(
        update={
            "use_lightgcn": False,
            "ease_lambda_grid": [0.5, 5.0, 50.0],
            "als_factors_grid": [2, 8],
            "als_regularization_grid": [0.3, 3.0],
            "als_alpha_grid": [1.0, 4.0],
            "als_factors": 4,
            "component_search_exhaustive": True,
            "component_search_extra_fits": 0,
        }
    )
    early = fit_components(snapshot, split.fit, config)
    probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
    data = validation_data(probe, sample_fold_users(split.validation(), None, 42))
    before = data.features.copy()
    model, report = search_components(snapshot, split.fit, probe, data)
    chosen = report["chosen"]
    # EASE: the λ whose better feature scored best; ALS: the best candidate tried, each axis' values were tried
    best_lambda = max(report["ease"], key=lambda k: max(report["ease"][k].values()))
    assert chosen["ease_lambda"] == float(best_lambda) == model.config.ease_lambda
    assert set(report["ease"]) == {"0.5", "1", "5", "50"}  # every value, and the start (FAST.ease_lambda)
    als = report["als"]
    best = max(als, key=lambda k: als[k])
    exponent = f" reg_exponent={chosen['als_reg_exponent']:g}" if chosen["als_reg_exponent"] else ""
    assert (
        best == f"factors={chosen['als_factors']} regularization={chosen['als_regularization']:g} "
        f"alpha={chosen['als_alpha']:g}{exponent}"
    )
    assert {
        "factors=2 regularization=30 alpha=10",
        "factors=8 regularization=30 alpha=10",
        "factors=4 regularization=30 alpha=10",
    } <= set(als)  # the start (4) is tried beside the grid
    assert (model.config.als_factors, model.components.als_items.shape[1]) == (chosen["als_factors"],) * 2
    assert len(set(np.round(list(als.values()), 6))) > 1  # the candidates really differ
    # the cube the ranker weights are fitted on now holds exactly what the returned model serves
    searched = [FEATURES.index(f) for f in ("ease", "ease_recent", "als")]
    for r, user in enumerate(data.users.tolist()):
        items, times = model.history(user)
        served = model.standardized(items, times, user)
        assert np.allclose(data.features[searched, r], served[searched], atol=1e-4)
        others = np.setdiff1d(np.arange(data.features.shape[0]), searched)
        assert np.array_equal(data.features[others, r], before[others, r])
    # fit_ranker records the search and refits with its choice
    fitted = fit_ranker(snapshot, split, config, final="train")
    assert fitted.meta["validation"]["component_search"]["chosen"] == chosen
    assert fitted.config.als_factors == chosen["als_factors"] and fitted.config.ease_lambda == chosen["ease_lambda"]
    # a climb that keeps fewer factors than the best-scoring fit (als_factors_min_gain) serves, reports and fits
    # the ranker's features on the point it kept, not on that fit
    frugal = config.model_copy(update={"als_factors_min_gain": 100.0})
    probe = RankerModel(frugal, snapshot.users.ids, snapshot.items.ids, early)
    data = validation_data(probe, sample_fold_users(split.validation(), None, 42))
    kept, kept_report = search_components(snapshot, split.fit, probe, data)
    assert kept_report["chosen"]["als_factors"] == kept.config.als_factors == kept.components.als_items.shape[1] == 2
    for r, user in enumerate(data.users.tolist()):
        items, times = kept.history(user)
        assert np.allclose(
            data.features[FEATURES.index("als"), r],
            kept.standardized(items, times, user)[FEATURES.index("als")],
            atol=1e-4,
        )
    off = fit_ranker(snapshot, split, config.model_copy(update={"component_search": False}), final="train")
    assert "component_search" not in off.meta["validation"] and off.config.als_factors == 4
    # with fits to spend past the edges, a choice at the top edge grows its grid (λ 500 beats 5 and 50 here)
    from gnn.blend.search import grid_step

    for extra in (0, 3):
        grown = config.model_copy(update={"component_search_extra_fits": extra, "ease_lambda_grid": [20.0, 50.0]})
        probe = RankerModel(grown, snapshot.users.ids, snapshot.items.ids, early)
        data = validation_data(probe, sample_fold_users(split.validation(), None, 42))
        _, report = search_components(snapshot, split.fit, probe, data)
        tried = report["tried"]["ease_lambda"]
        assert set(report["ease"]) == {f"{v:g}" for v in tried}  # every value tried is reported
        past = len(tried) - 3  # beyond the grid and the start (λ 1)
        assert past == (report["extra_fits"] if extra else 0) and (past >= 1) == bool(extra)
        for n in range(3, len(tried)):  # each value past the edge continues the grid on its scale
            assert tried[n] == grid_step(tried[:n], at_high=True, integer=False)
        if extra:
            assert report["chosen"]["ease_lambda"] > 50.0
        else:
            assert report["chosen"]["ease_lambda"] == 50.0 and report["grid_edges"][0] == "ease_lambda=50"


def test_component_search_climbs_regularisation_and_alpha_together_after_each_alone() -> None:
    from gnn.blend.search import search_components
    from gnn.blend.weights import sample_fold_users, validation_data

    world = generate_world(users=60, items=80, seed=6)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    base = FAST.model_copy(
        update={
            "use_lightgcn": False,
            "ease_lambda_grid": [5.0],
            "als_factors_grid": [4],
            "als_factors": 4,
            "als_regularization_grid": [1.0, 3.0],
            "als_regularization": 1.0,
            "als_alpha_grid": [1.0, 3.0],
            "als_alpha": 1.0,
            "als_reg_exponent_grid": [0.0],
            "component_search_exhaustive": True,
            "component_search_extra_fits": 0,
        }
    )
    early = fit_components(snapshot, split.fit, base)
    reports = {}
    for name, grid in (("off", [1.0]), ("on", [0.1, 1.0, 10.0, 100.0])):
        config = base.model_copy(update={"als_scale_grid": grid})
        probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
        data = validation_data(probe, sample_fold_users(split.validation(), None, 42))
        model, reports[name] = search_components(snapshot, split.fit, probe, data)
        chosen = reports[name]["chosen"]
        assert (model.config.als_regularization, model.config.als_alpha) == (
            chosen["als_regularization"],
            chosen["als_alpha"],
        )
    off, on = reports["off"], reports["on"]
    assert "als_scale" not in off["tried"] and on["tried"]["als_scale"] == [0.1, 1.0, 10.0, 100.0]
    assert set(off["als"]) < set(on["als"])  # the same axes first, then the diagonal from their choice
    reg, alpha = off["chosen"]["als_regularization"], off["chosen"]["als_alpha"]
    diagonal = {
        c: on["als"][f"factors=4 regularization={reg * c:g} alpha={alpha * c:g}"] for c in (0.1, 1.0, 10.0, 100.0)
    }
    best = max(diagonal, key=lambda c: diagonal[c])  # exhaustive: the best point of the diagonal is chosen
    assert (on["chosen"]["als_regularization"], on["chosen"]["als_alpha"]) == (reg * best, alpha * best)
    assert max(on["als"].values()) == diagonal[best] >= max(off["als"].values())
    assert len(set(np.round(list(diagonal.values()), 6))) > 1  # the diagonal's points really differ


def test_component_search_chooses_the_frequency_scaled_regularisation_on_validation() -> None:
    """als_reg_exponent_grid: the search scores each exponent after factors, regularisation and alpha, keeps the
    best (names of plain ALS unchanged), serves it, and a grid of [0] fits nothing more."""
    from gnn.blend.search import search_components
    from gnn.blend.weights import sample_fold_users, validation_data

    world = generate_world(users=60, items=80, seed=6)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    base = FAST.model_copy(
        update={
            "use_lightgcn": False,
            "ease_lambda_grid": [5.0],
            "als_factors_grid": [4],
            "als_factors": 4,
            "als_regularization_grid": [3.0],
            "als_regularization": 3.0,
            "als_alpha_grid": [3.0],
            "als_alpha": 3.0,
            "component_search_exhaustive": True,
            "component_search_extra_fits": 0,
        }
    )
    early = fit_components(snapshot, split.fit, base)
    reports, models = {}, {}
    for name, grid in (("off", [0.0]), ("on", [0.0, 0.5, 1.0, 2.0])):
        config = base.model_copy(update={"als_reg_exponent_grid": grid})
        probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
        data = validation_data(probe, sample_fold_users(split.validation(), None, 42))
        models[name], reports[name] = search_components(snapshot, split.fit, probe, data)
    off, on = reports["off"], reports["on"]
    assert list(off["als"]) == ["factors=4 regularization=3 alpha=3"] and off["chosen"]["als_reg_exponent"] == 0.0
    scored = {0.0: on["als"]["factors=4 regularization=3 alpha=3"]}
    scored.update({nu: on["als"][f"factors=4 regularization=3 alpha=3 reg_exponent={nu:g}"] for nu in (0.5, 1.0, 2.0)})
    assert len(set(np.round(list(scored.values()), 6))) > 1  # the exponents really differ
    best = max(scored, key=lambda nu: scored[nu])
    assert on["chosen"]["als_reg_exponent"] == best == models["on"].config.als_reg_exponent
    assert on["tried"]["als_reg_exponent"] == [0.0, 0.5, 1.0, 2.0]
    # plain ALS (0) is the axis' own bound, not an edge to look past
    assert not any(e.startswith("als_reg_exponent=0") for e in on["grid_edges"] + off["grid_edges"])


def test_climb_finds_the_peak_of_a_unimodal_curve_with_fewer_fits_than_the_grid() -> None:
    from gnn.blend.search import climb

    grid = [50.0, 100.0, 200.0, 400.0, 800.0]
    for peak in grid:
        calls: list[float] = []

        def score(v: float, peak: float = peak, calls: list[float] = calls) -> float:
            calls.append(v)
            return -abs(np.log(v / peak))

        best, scored = climb(grid, 200.0, score)
        assert best == peak and len(calls) == len(set(calls)) == len(scored)
        # the start and its lower neighbour, then only the steps towards the peak and one past it
        expected = {50.0: 3, 100.0: 3, 200.0: 3, 400.0: 4, 800.0: 4}[peak]
        assert len(calls) == expected, (peak, calls)
        assert climb(grid, 200.0, score, exhaustive=True) == (peak, {v: score(v) for v in grid})
    # a start outside the grid is tried too; a flat curve keeps the start
    assert climb([32, 64], 48, lambda v: 0.0) == (48, {48: 0.0, 32: 0.0, 64: 0.0})


def test_grid_step_continues_a_grid_on_its_own_scale_within_bounds() -> None:
    from gnn.blend.search import grid_step

    assert grid_step([32, 64, 128, 256, 512], at_high=True, integer=True) == 1024
    assert grid_step([32, 64, 128], at_high=False, integer=True) == 16
    assert grid_step([3.0, 10.0, 30.0, 100.0], at_high=True, integer=False) == 333.0  # 3 significant digits
    assert grid_step([50.0, 100.0], at_high=False, integer=False) == 25.0
    assert grid_step([256, 512], at_high=True, integer=True, high=1000) is None  # past the bound
    assert grid_step([1, 2], at_high=False, integer=True) is None  # 0.5 rounds to 0: not positive
    assert grid_step([64], at_high=True, integer=True) is None  # no scale to continue


def test_climb_grows_a_grid_past_its_edge_while_it_helps_and_within_the_budget() -> None:
    from gnn.blend.search import Budget, climb, grid_step

    def extend(values: list[int], at_high: bool) -> int | None:
        return grid_step(values, at_high, integer=True)

    def peak_at(peak: int) -> object:
        return lambda v: -abs(np.log(v / peak))

    grid = [32, 64, 128, 256, 512]
    # the peak lies two steps past the top edge: both steps are taken, and one more to see the curve fall
    budget = Budget(5)
    best, scored = climb(grid, 64, peak_at(2048), extend=extend, budget=budget)
    assert best == 2048 and {1024, 2048, 4096} <= set(scored) and budget.spent == 3
    # the same from below, exhaustively
    budget = Budget(5)
    best, scored = climb(grid, 64, peak_at(8), exhaustive=True, extend=extend, budget=budget)
    assert best == 8 and set(scored) == {4, 8, 16, *grid} and budget.spent == 3
    # the budget bounds the fits past the edges: the search stops at the edge of what it tried
    budget = Budget(1)
    best, scored = climb(grid, 64, peak_at(4096), extend=extend, budget=budget)
    assert best == 1024 and max(scored) == 1024 and budget.spent == 1
    assert climb(grid, 64, peak_at(4096), extend=extend, budget=Budget(0))[0] == 512
    # a peak inside the grid costs nothing extra; without extend the grid is what it was
    budget = Budget(5)
    assert climb(grid, 64, peak_at(256), extend=extend, budget=budget)[0] == 256 and budget.spent == 0
    assert climb(grid, 64, peak_at(4096))[0] == 512


def test_climb_takes_a_larger_value_only_for_more_than_min_gain() -> None:
    """A flat curve (ALS factors on Last.fm: +0.4% from 256 to 512, +0.2% to 1,024) stops the climb upwards, past
    the edge too; smaller values need no margin, and without one the climb goes on up as before."""
    from gnn.blend.search import Budget, climb, grid_step

    def extend(values: list[int], at_high: bool) -> int | None:
        return grid_step(values, at_high, integer=True)

    curve = {16: 0.15, 32: 0.17, 64: 0.178, 128: 0.182, 256: 0.1823, 512: 0.1831, 1024: 0.1834, 2048: 0.1835}
    curve[4096] = 0.1835
    grid = [32, 64, 128, 256, 512]
    for exhaustive in (False, True):
        best, scored = climb(grid, 64, curve.__getitem__, exhaustive, extend=extend, budget=Budget(4), min_gain=0.01)
        assert best == 128, exhaustive
        if not exhaustive:
            assert max(scored) == 256  # one step past the choice, none beyond it
        best, scored = climb(grid, 64, curve.__getitem__, exhaustive, extend=extend, budget=Budget(4))
        assert best == 2048 and max(scored) == 4096, exhaustive  # up the flat curve, as far as the budget lets it
    # downwards any gain counts: a start above a slightly better smaller value moves down
    assert climb(grid, 512, {**curve, 256: 0.18315}.__getitem__, min_gain=0.01)[0] == 256


def test_train_blend_reuses_the_promoted_search_until_the_data_grows(tmp_path: Path) -> None:
    import dataclasses

    import yaml

    from gnn.config import GnnSettings, resolve_config
    from gnn.jobs import promote, train_blend

    world = generate_world(users=60, items=80, seed=8)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    fields = {
        "device": "cpu",
        "progress": False,
        "use_lightgcn": False,
        "sequence_window": 3,
        "ease_lambda_grid": [0.5, 5.0],
        "als_factors_grid": [2, 4],
        "als_regularization_grid": [1.0],
        "als_alpha_grid": [1.0, 3.0],
        "als_factors": 4,
        "als_regularization": 1.0,
    }
    config_file = tmp_path / "blend.yaml"
    config_file.write_text(yaml.safe_dump(fields), encoding="utf-8")
    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts")

    def blend() -> RankerConfig:  # the file is read at each fit (the test rewrites it)
        return resolve_config("blend", config_file)

    def saved_search(artifact_path: Path | None) -> dict:
        assert artifact_path is not None
        return json.loads((artifact_path / "ranker.json").read_text())["meta"]["validation"]["component_search"]

    first = train_blend(snapshot, split, settings, blend(), final="all")
    searched = saved_search(first.path)
    assert "reused" not in searched and searched["fit_positives"] == split.fit.size(1) and searched["als"]
    promote(first.path)
    second = train_blend(snapshot, split, settings, blend(), final="all")
    kept = saved_search(second.path)
    assert kept["reused"] is True and kept["chosen"] == searched["chosen"] and "seconds" not in kept
    chosen = json.loads((second.path / "ranker.json").read_text())["config"]
    assert all(chosen[k] == v for k, v in searched["chosen"].items()) and chosen["component_search"] is True
    # other grids: the earlier choice cannot stand for them
    config_file.write_text(yaml.safe_dump({**fields, "ease_lambda_grid": [0.5, 5.0, 50.0]}), encoding="utf-8")
    assert "reused" not in saved_search(train_blend(snapshot, split, settings, blend(), final="all").path)
    config_file.write_text(yaml.safe_dump(fields), encoding="utf-8")
    # a quarter of the fit positives gone: searched again (the promoted one is still the first)
    keep = torch.arange(split.fit.size(1)) % 4 != 0
    smaller = dataclasses.replace(split, fit=split.fit[:, keep])
    again = saved_search(train_blend(snapshot, smaller, settings, blend(), final="all").path)
    assert "reused" not in again and again["fit_positives"] == int(keep.sum())
    # and reuse switched off searches every time
    config_file.write_text(yaml.safe_dump({**fields, "component_search_reuse": None}), encoding="utf-8")
    assert "reused" not in saved_search(train_blend(snapshot, split, settings, blend(), final="all").path)


def test_user_groups_learn_each_groups_informative_component_and_beat_global_weights() -> None:
    """Users with short histories find their items by sequence, users with long ones by pop_window: one set of
    weights cannot serve both, the two groups' weights can, and the cross-fit keeps them."""
    from gnn.blend.weights import blend_groups, fit_weights, group_edges

    short, long = _planted_data("sequence", users=60, seed=1), _planted_data("pop_window", users=60, seed=2)
    data = ValidationData(
        np.arange(120),
        np.concatenate([short.features, long.features], axis=1),
        np.concatenate([short.exclude, long.exclude]),
        np.concatenate([short.target, long.target]),
        sizes=np.r_[np.full(60, 8), np.full(60, 40)],
    )
    assert group_edges(data.sizes, 2) == [40] and group_edges(data.sizes, 1) == []
    config = FAST.model_copy(update={"ranker": "learned", "ranker_folds": 3, "ranker_user_groups": 2})
    weights, report = fit_weights(data, config)
    groups = report["user_groups"]
    assert groups["edges"] == [40] and groups["users"] == [60, 60]
    assert max(groups["cross_fit_ndcg20"].values()) > groups["global_cross_fit_ndcg20"] + 0.05
    fitted = np.asarray(groups["weights"], dtype=np.float32)
    seq, pop = FEATURES.index("sequence"), FEATURES.index("pop_window")
    assert fitted[0, seq] > fitted[0, pop] and fitted[1, pop] > fitted[1, seq]
    per_group = blend_groups(data, fitted, np.r_[np.zeros(60, int), np.ones(60, int)])
    assert data.ndcg_of(per_group) > data.ndcg(weights) + 0.05
    # one group only: nothing to adapt, the global weights are kept
    _, alone = fit_weights(data, config.model_copy(update={"ranker_user_groups": 1}))
    assert "user_groups" not in alone


def test_user_group_weights_score_by_the_live_history_size_and_survive_save_load(tmp_path: Path) -> None:
    snapshot = _genre_world()
    base = _weights(ease=1.0)
    model = _model(snapshot, base)
    group_weights = np.stack([_weights(ease=1.0), _weights(knowledge=1.0)])
    grouped = RankerModel(model.config, model.user_ids, model.item_ids, model.components, base, {}, group_weights, [4])
    user = snapshot.users.index("u13")  # 3 positives: group 0
    items, times = model.history(user)
    assert np.array_equal(grouped.score(items, times, user), model.score(items, times, user))
    more = np.r_[items, snapshot.items.index("c1")]  # a fourth positive read live: group 1, knowledge alone
    knowledge = RankerModel(model.config, model.user_ids, model.item_ids, model.components, _weights(knowledge=1.0))
    stamps = np.r_[times, times.max() + 1]
    assert np.array_equal(grouped.score(more, stamps, user), knowledge.score(more, stamps, user))
    assert not np.array_equal(grouped.score(more, stamps, user), model.score(more, stamps, user))
    grouped.save(tmp_path / "m")
    loaded = RankerModel.load(tmp_path / "m")
    assert loaded.group_edges == [4] and np.array_equal(loaded.group_weights, group_weights)
    assert np.array_equal(loaded.score(more, stamps, user), grouped.score(more, stamps, user))
    with pytest.raises(DataError, match="group weights"):
        RankerModel(model.config, model.user_ids, model.item_ids, model.components, base, {}, group_weights, [])


def test_lightgcn_at_size_samples_each_steps_pairs_and_waits_less() -> None:
    from gnn.blend.fit import lightgcn_config

    config = RankerConfig(lightgcn_large_positives=1000, lightgcn_large_step_pairs=500, lightgcn_large_patience=2)
    small = lightgcn_config(config, 1000)
    assert small.max_step_pairs is None and small.patience == config.train_config().patience  # below: as configured
    assert small.val_window == config.train_config().val_window
    large = lightgcn_config(config, 100_000)
    assert (large.max_step_pairs, large.patience, large.val_window) == (500, 2, 2)
    assert lightgcn_config(config, 100_000, fixed=True).max_step_pairs is None  # a refit's count is its own
    off = config.model_copy(update={"lightgcn_large_step_pairs": None, "lightgcn_large_patience": None})
    assert lightgcn_config(off, 100_000).max_step_pairs is None
    assert lightgcn_config(off, 100_000).patience == config.train_config().patience
    assert RankerConfig().lightgcn_large_step_pairs == 2**20 and RankerConfig().lightgcn_large_patience == 3


def test_features_that_need_time_leave_the_ranker_when_the_data_has_none() -> None:
    """Decided from the data at fit and recorded: with times, every feature; without times but with play counts,
    sequence is left out; without either, ease_recent too; drop_orderless_features off keeps them."""
    import dataclasses

    from gnn.blend.fit import orderless_features

    timed = _genre_world()
    assert orderless_features(fit_components(timed, all_positives(timed), FAST), FAST) == []
    played = _played_world()
    components = fit_components(played, all_positives(played), FAST)
    assert orderless_features(components, FAST) == ["sequence"]
    components.hist_weights = np.ones_like(components.hist_weights)
    assert orderless_features(components, FAST) == ["sequence", "ease_recent"]
    off = FAST.model_copy(update={"drop_orderless_features": False})
    assert orderless_features(components, off) == []
    world = generate_world(users=40, items=60, seed=3)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    untimed = dataclasses.replace(snapshot, edge_time=torch.full_like(snapshot.edge_time, -1))
    config = FAST.model_copy(update={"component_search": False})
    model = fit_ranker(untimed, split_interactions(untimed, seed=42), config, final="train")
    report = model.meta["validation"]
    assert report["dropped_features"] == ["sequence", "ease_recent"]
    assert model.weights[FEATURES.index("sequence")] == 0 and model.weights[FEATURES.index("ease_recent")] == 0
    assert "sequence" not in model.config.ranker_features and "ease" in model.config.ranker_features
    timed_model = fit_ranker(snapshot, split_interactions(snapshot, seed=42), config, final="train")
    assert timed_model.meta["validation"]["dropped_features"] == [] and timed_model.config.ranker_features is None


def _small_candidate_world(monkeypatch: pytest.MonkeyPatch) -> GraphSnapshot:
    """A world of 300 items whose candidate sets are small enough to test: a uniform sample of 20 items and HNSW
    graphs from one item."""
    import gnn.blend.candidates as blend_candidates
    import gnn.blend.model as blend_model

    monkeypatch.setattr(blend_model, "CANDIDATE_SAMPLE", 20)
    monkeypatch.setattr(blend_candidates, "ANN_MIN_ITEMS", 1)
    return build_graph_snapshot(export_from_dataset(generate_world(users=60, items=300, seed=6).dataset))


def test_a_candidate_set_scores_its_items_as_the_whole_catalogue_does_and_leaves_the_rest_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``serve_candidates``: the best items of each cheap component (LightGCN's and ALS's from their HNSW graphs) and
    the most popular ones are scored; the others get ``-inf``, the uniform sample's too (it gives statistics, not
    candidates). With weights on features whose
    catalogue mean and deviation the candidate path computes exactly (those read for every item, and the LightGCN and
    ALS products by their moments), a candidate scores what it scores over the whole catalogue; a set
    holding half the catalogue or more is every item, bit for bit."""

    snapshot = _small_candidate_world(monkeypatch)
    weights = _weights(ease=0.5, ease_recent=0.4, sequence=0.3, lightgcn=0.7, als=1.0, pop_window=0.2, pop_global=0.6)
    model = _model(snapshot, weights, FAST.model_copy(update={"als_factors": 4}))
    rng = np.random.default_rng(7)  # LightGCN vectors (the fit here leaves it out, for speed)
    model.components.item_emb = rng.normal(size=(snapshot.num_items, 8)).astype(np.float32)
    model.components.user_emb = rng.normal(size=(snapshot.num_users, 8)).astype(np.float32)
    candidates = RankerModel(
        model.config.model_copy(update={"serve_candidates": 15}), model.user_ids, model.item_ids, model.components
    )
    candidates.weights = model.weights
    wide = RankerModel(
        model.config.model_copy(update={"serve_candidates": 200}), model.user_ids, model.item_ids, model.components
    )
    wide.weights = model.weights
    covered = unsampled = 0
    for user in range(0, snapshot.num_users, 3):
        items, times = model.history(user)
        full = model.score(items, times, user)
        part = candidates.score(items, times, user)
        assert np.array_equal(wide.score(items, times, user), full)
        scored = np.flatnonzero(np.isfinite(part))
        assert 0 < len(scored) < snapshot.num_items / 2
        unsampled += not np.isin(np.setdiff1d(candidates.candidate_index.sample, items), scored).all()
        assert np.isin(np.setdiff1d(candidates.candidate_index.popular[:15], items), scored).all()
        assert np.allclose(part[scored], full[scored], atol=2e-4)
        best = np.argsort(-full, kind="stable")[:5]
        if np.isin(best, scored).all():  # the whole top 5 among the candidates: the same list
            covered += 1
            assert np.array_equal(np.argsort(-part, kind="stable")[:5], best)
    assert covered >= 15
    assert unsampled > 0  # the sample alone makes no item a candidate


def test_a_candidate_set_neither_computes_nor_weighs_a_feature_of_weight_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate set computes only the features the ranker weighs (at the candidates, and at the uniform sample
    those whose statistics it gives): a feature of weight 0 is never computed, and the scores are those of the same
    weights where the feature is computed and multiplied by 0 (the whole catalogue's), within one rounding step."""
    import gnn.blend.model as blend_model

    snapshot = _small_candidate_world(monkeypatch)
    weights = _weights(ease=0.5, sequence=0.3, als=1.0, pop_global=0.6, fresh=0.2)
    model = _model(snapshot, weights, FAST.model_copy(update={"als_factors": 4, "serve_candidates": 15}))
    computed: list[int | None] = []
    fresh = blend_model.RankerModel._fresh

    def counted(self: RankerModel, end: int, columns: np.ndarray | None = None) -> np.ndarray:
        computed.append(None if columns is None else len(columns))
        return fresh(self, end, columns)

    monkeypatch.setattr(blend_model.RankerModel, "_fresh", counted)
    sample = len(model.candidate_index.sample)
    users = range(0, snapshot.num_users, 5)
    with_fresh = [model.score(*model.history(user), user) for user in users]
    assert computed and sample in computed  # weighed, with the sample's statistics: computed there too
    computed.clear()
    model.weights = model.weights.copy()
    model.weights[FEATURES.index("fresh")] = 0.0
    whole = RankerModel(
        model.config.model_copy(update={"serve_candidates": None}), model.user_ids, model.item_ids, model.components
    )
    whole.weights = model.weights
    for user, before in zip(users, with_fresh, strict=True):
        items, times = model.history(user)
        part = model.score(items, times, user)
        scored = np.isfinite(part)
        assert np.array_equal(scored, np.isfinite(before))  # the same candidates
        assert np.allclose(part[scored], whole.score(items, times, user)[scored], atol=2e-4)
    assert computed == [None] * len(users)  # only by the whole catalogue's scoring


def test_a_served_blend_switches_to_its_candidate_set_by_size_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``gnn.serving.BlendModel`` of a blend fitted without a candidate set: at or above ``from_items``
    (``KGREC_SCORING_CANDIDATES_FROM_ITEMS``) it scores :data:`~gnn.serving.AUTO_CANDIDATES` per component, its index
    built when it loads and logged; ``KGREC_SCORING_CANDIDATES=0`` keeps every item, as fitted."""
    import gnn.blend.model as blend_model
    import gnn.serving as serving

    monkeypatch.setattr(blend_model, "CANDIDATE_SAMPLE", 20)
    monkeypatch.setattr(serving, "AUTO_CANDIDATES", 15)
    world = generate_world(users=60, items=300, seed=6)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    model = _model(
        snapshot, _weights(ease=0.5, sequence=0.3, als=1.0, pop_global=0.6), FAST.model_copy(update={"als_factors": 4})
    )
    model.save(tmp_path / "blend")
    (tmp_path / "blend" / "meta.json").write_text("{}", encoding="utf-8")
    with caplog.at_level("INFO", logger="gnn.serving"):
        by_size = serving.BlendModel(tmp_path / "blend", serving.ScoringCandidates(None, snapshot.num_items))
    assert f"blend of {snapshot.num_items} items scores 15 candidates per component" in caplog.text
    every = serving.BlendModel(tmp_path / "blend", serving.ScoringCandidates(0, snapshot.num_items))
    below = serving.BlendModel(tmp_path / "blend", serving.ScoringCandidates(None, snapshot.num_items + 1))
    for user in range(0, snapshot.num_users, 10):
        items, _ = model.history(user)
        positives = serving.Positives.of([(snapshot.items.ids[int(i)], None) for i in items])
        part = by_size.scores(snapshot.users.ids[user], positives)
        full = every.scores(snapshot.users.ids[user], positives)
        assert np.array_equal(below.scores(snapshot.users.ids[user], positives), full)
        scored = np.flatnonzero(np.isfinite(part))
        assert 0 < len(scored) < snapshot.num_items / 2 and np.isfinite(full).sum() > snapshot.num_items / 2


def test_a_candidate_sets_floor_leaves_the_sums_as_they_were() -> None:
    """The sums of a candidate set leave out positives of a recency weight below NEGLIGIBLE_WEIGHT (a heavy history's
    old ones): EASE^R's recent sum and the recency-weighted rows come out the same, bit for bit, and the ALS vector
    folded in from the recent positives only the same to float32; a short history is not cut at all."""
    rng = np.random.default_rng(5)
    num_items = 300
    dense = (rng.random((num_items, num_items)) < 0.1) * rng.normal(0, 0.05, (num_items, num_items))
    matrix = sp.csr_matrix(dense.astype(np.float32))
    factors = rng.normal(0, 0.3, (num_items, 8)).astype(np.float32)
    gram = factors.T.astype(np.float64) @ factors + 3.0 * np.eye(8)
    for n in (3, 40, 1_500):
        items = rng.choice(num_items * 10, n, replace=False) % num_items
        times = np.sort(rng.integers(0, 10**9, n))
        weights = recency_weights(times, 5.0)
        kept, kept_weights = recent_part(items, weights, NEGLIGIBLE_WEIGHT)
        assert len(kept) == (n if n < 500 else 501)
        assert np.array_equal(weighted_rows(matrix, kept, kept_weights), weighted_rows(matrix, items, weights))
        for got, want in zip(
            ease_scores(matrix, items, times, 5.0, NEGLIGIBLE_WEIGHT),
            ease_scores(matrix, items, times, 5.0),
            strict=True,
        ):
            assert np.array_equal(got, want)
        cut = als_vector(factors, gram, items, times, 5.0, 10.0, floor=NEGLIGIBLE_WEIGHT)
        assert np.array_equal(cut, als_vector(factors, gram, items, times, 5.0, 10.0))


def test_mean_and_deviation_and_distinct_are_numpys() -> None:
    """The statistics of a candidate set's features are numpy's mean and std bit for bit, and the distinct count of
    a history np.unique's, whatever the dtype and the duplicates."""
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64):
        rows = (rng.normal(0, 3, (5, 50_001)) * (rng.random((5, 50_001)) < 0.05)).astype(dtype)
        mean, std = mean_and_deviation(rows)
        assert np.array_equal(mean, rows.mean(axis=1)) and np.array_equal(std, rows.std(axis=1))
        mean, std = mean_and_deviation(rows[2])
        assert mean == rows[2].mean() and std == rows[2].std()
    for n in (0, 1, 50, 4_000):
        items = rng.integers(0, 3_000, n)
        assert distinct(items, 3_000) == len(np.unique(items))


def test_a_blend_saved_with_its_candidate_graphs_serves_them_read_and_scores_as_when_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``RankerModel.save(candidate_graphs=True)`` writes LightGCN's and ALS's HNSW graphs and their records;
    ``gnn.serving.BlendModel`` then reads them (and says so) and scores every user as a model whose graphs are built;
    a model saved without them (an older artifact) builds them; a damaged file is built again, not an error."""
    import gnn.serving as serving
    from gnn.blend.config import GRAPH_FILES

    snapshot = _small_candidate_world(monkeypatch)
    weights = _weights(ease=0.5, sequence=0.3, lightgcn=0.7, als=1.0, pop_global=0.6)
    model = _model(snapshot, weights, FAST.model_copy(update={"als_factors": 4, "serve_candidates": 15}))
    rng = np.random.default_rng(7)  # LightGCN vectors (the fit here leaves it out, for speed)
    model.components.item_emb = rng.normal(size=(snapshot.num_items, 8)).astype(np.float32)
    model.components.user_emb = rng.normal(size=(snapshot.num_users, 8)).astype(np.float32)
    with caplog.at_level("INFO", logger="gnn.blend.model"):
        model.save(tmp_path / "saved", candidate_graphs=True)
    assert "wrote the HNSW graphs of 300 items (lightgcn, als" in caplog.text
    assert model.meta["timings"]["candidate_graphs"] > 0
    records = json.loads((tmp_path / "saved" / "ranker.json").read_text())["candidate_graphs"]
    assert set(records) == {"lightgcn", "als"} and all((tmp_path / "saved" / f).is_file() for f in GRAPH_FILES.values())
    model.save(tmp_path / "older")
    assert not any((tmp_path / "older" / f).exists() for f in GRAPH_FILES.values())
    for name in ("saved", "older"):
        (tmp_path / name / "meta.json").write_text("{}", encoding="utf-8")
    caplog.clear()
    with caplog.at_level("INFO", logger="gnn.serving"):
        read = serving.BlendModel(tmp_path / "saved")
        assert "its candidate index (HNSW graphs) was read in" in caplog.text
        caplog.clear()
        built = serving.BlendModel(tmp_path / "older")
        assert "its candidate index (HNSW graphs) was built in" in caplog.text
    data = bytearray((tmp_path / "saved" / GRAPH_FILES["als"]).read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "saved" / GRAPH_FILES["als"]).write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level("INFO"):
        damaged = serving.BlendModel(tmp_path / "saved")
    assert "ranker-als.hnsw is not used" in caplog.text and "was built and read in" in caplog.text
    for user in range(0, snapshot.num_users, 4):
        items, _ = model.history(user)
        positives = serving.Positives.of([(snapshot.items.ids[int(i)], None) for i in items])
        scores = read.scores(snapshot.users.ids[user], positives)
        assert np.isfinite(scores).sum() < snapshot.num_items / 2  # a candidate set
        assert np.array_equal(scores, built.scores(snapshot.users.ids[user], positives))
        assert np.array_equal(scores, damaged.scores(snapshot.users.ids[user], positives))
