"""User attributes (age band, country, occupation) as features of the trained models: the synthetic world's
optional attributes, the snapshot's multi-hot, GraphSAGE's user_attribute nodes and the blend's ``peers`` feature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from etl.synthetic import COUNTRIES, generate_world
from gnn.blend.config import FEATURES, SCORE_DECIMALS, RankerConfig
from gnn.blend.evaluate import component_score_fn
from gnn.blend.fit import fit_components, fit_ranker
from gnn.blend.model import RankerModel
from gnn.blend.scorers import attribute_shares
from gnn.config import TrainConfig
from gnn.data import HAS_USER_ATTRIBUTE, GraphSnapshot, build_graph_snapshot
from gnn.evaluation import evaluate, split_interactions
from gnn.serving import BlendModel
from tests.unit.gnn.worlds import export_from_dataset

CONFIG = RankerConfig(
    device="cpu", progress=False, use_lightgcn=False, component_search=False, als_factors=8, ranker_l2_grid=[0.1]
)
PEERS = FEATURES.index("peers")


@pytest.fixture(scope="module")
def world_snapshot() -> tuple[object, GraphSnapshot]:
    world = generate_world(users=240, items=300, seed=11, user_attributes=True)
    return world, build_graph_snapshot(export_from_dataset(world.dataset))


def test_synthetic_attributes_are_optional_and_follow_the_communities() -> None:
    plain = generate_world(users=80, items=100, seed=3).dataset
    rich = generate_world(users=80, items=100, seed=3, user_attributes=True, attribute_noise=0.2)
    # the option changes nothing else in the world
    assert plain.user_attributes == [] and rich.dataset.interactions == plain.interactions
    assert rich.dataset.follows == plain.follows and rich.dataset.genres == plain.genres
    rows = rich.dataset.user_attributes
    assert {r.kind for r in rows} == {"country", "occupation", "age"} and len(rows) == 3 * 80
    countries = {r.owner_id: r.value for r in rows if r.kind == "country"}
    agree = np.mean([countries[u] == COUNTRIES[c] for u, c in rich.user_community.items()])
    assert 0.7 < agree < 1.0  # the community's country, up to noise
    with pytest.raises(ValueError, match="probability"):
        generate_world(users=10, items=20, user_attributes=True, attribute_noise=1.5)


def test_snapshot_multi_hot_and_id(world_snapshot: tuple[object, GraphSnapshot], tmp_path: Path) -> None:
    world, snapshot = world_snapshot
    assert len(snapshot.user_attributes) == len({(r.kind, r.value) for r in world.dataset.user_attributes})
    multi_hot = snapshot.user_attribute_matrix()
    assert multi_hot.shape == (240, len(snapshot.user_attributes)) and bool((multi_hot.sum(1) == 3).all())
    u = snapshot.users.index("u5")
    own = {f"{r.kind}:{r.value}" for r in world.dataset.user_attributes if r.owner_id == "u5"}
    assert set(snapshot.user_attributes.to_ids(torch.nonzero(multi_hot[u]).view(-1))) == own
    assert HAS_USER_ATTRIBUTE in snapshot.hetero_data().edge_types
    # attributes count in the snapshot id; without them the id is the one of a snapshot before they existed
    plain = build_graph_snapshot(export_from_dataset(generate_world(users=240, items=300, seed=11).dataset))
    assert plain.snapshot_id != snapshot.snapshot_id and HAS_USER_ATTRIBUTE not in plain.hetero_data().edge_types
    snapshot.save(tmp_path / "s")
    back = GraphSnapshot.load(tmp_path / "s")
    assert back.snapshot_id == snapshot.snapshot_id and back.user_attributes == snapshot.user_attributes
    plain.save(tmp_path / "p")
    assert len(GraphSnapshot.load(tmp_path / "p").user_attributes) == 0


def test_attribute_shares_count_the_groups_likes_smoothed_toward_global() -> None:
    import scipy.sparse as sp

    # users 0, 1 have attribute 0; user 2 attribute 1; user 3 both; user 4 attribute 1 but no positive
    has = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1], [1, 1], [0, 1]], dtype=np.float32))
    users = np.array([0, 1, 2, 3, 3])
    items = np.array([0, 0, 1, 0, 2])
    shares = attribute_shares(has, users, items, 3, prior=0.0)
    assert np.allclose(shares, [[1.0, 0.0, 1 / 3], [0.5, 0.5, 0.5]])  # user 4 has no positive: not in its group
    smoothed = attribute_shares(has, users, items, 3, prior=4.0)
    overall = np.array([3, 1, 1]) / 4
    assert np.allclose(smoothed[1], (np.array([1, 1, 1]) + 4 * overall) / (2 + 4))


def test_peers_beats_popularity_for_users_with_few_interactions(world_snapshot: tuple[object, GraphSnapshot]) -> None:
    _, snapshot = world_snapshot
    split = split_interactions(snapshot)
    model = fit_ranker(snapshot, split, CONFIG, final="train")
    assert model.active == len(FEATURES) and model.weights[PEERS] > 0  # learned on validation, and used
    fold = split.testing()
    train = torch.bincount(split.train[0], minlength=snapshot.num_users)
    few = (train[fold.eval_users] <= 5).numpy()
    assert few.sum() >= 5

    def ndcg(feature: str) -> tuple[float, float]:
        per_user = np.asarray(
            evaluate(component_score_fn(model, feature), fold, ks=(20,), per_user=True)["per_user"]["ndcg@20"]
        )
        return float(per_user.mean()), float(per_user[few].mean())

    peers, popularity = ndcg("peers"), ndcg("pop_global")
    assert peers[0] > 1.5 * popularity[0] and peers[1] > 1.2 * popularity[1]


def test_served_peers_follow_the_live_attributes(world_snapshot: tuple[object, GraphSnapshot], tmp_path: Path) -> None:
    _, snapshot = world_snapshot
    split = split_interactions(snapshot)
    model = fit_ranker(snapshot, split, CONFIG, final="train")
    model.save(tmp_path / "m")
    served = BlendModel(tmp_path / "m")
    loaded = RankerModel.load(tmp_path / "m")
    shares = model.components.attribute_shares
    assert np.array_equal(loaded.components.attribute_shares, shares)
    assert loaded.components.attribute_ids == model.components.attribute_ids
    u = snapshot.users.index("u5")
    items, times = model.history(u)
    # a known user: as fitted, or from the attributes read live
    fitted = model.features(items, times, u)[PEERS]
    assert np.allclose(fitted, shares[model.user_attributes(u)].mean(axis=0))
    france = model.attribute_index(["country:FR", "no:such"])
    assert len(france) == 1
    assert np.allclose(model.features(items, times, u, france)[PEERS], shares[france[0]])
    # a new user (unknown to the model) with attributes and no history: the feature comes from the attributes alone
    cold = loaded.features(np.empty(0, np.int64), np.empty(0, np.int64), None, france)[PEERS]
    assert np.allclose(cold, shares[france[0]])
    assert not loaded.features(np.empty(0, np.int64), np.empty(0, np.int64), None)[PEERS].any()
    positives = [(snapshot.items.ids[int(i)], int(t)) for i, t in zip(items, times, strict=True)]
    with_fr = served.scores("someone-new", positives, ["country:FR"])
    with_jp = served.scores("someone-new", positives, ["country:JP"])
    assert not np.allclose(with_fr, with_jp)
    assert np.array_equal(
        served.scores(snapshot.users.ids[u], positives), served.scores(snapshot.users.ids[u], positives, None)
    )


def test_without_user_attributes_peers_is_absent() -> None:
    snapshot = build_graph_snapshot(export_from_dataset(generate_world(users=60, items=80, seed=6).dataset))
    split = split_interactions(snapshot)
    components = fit_components(snapshot, split.fit, CONFIG)
    assert components.attribute_shares is None
    model = fit_ranker(snapshot, split, CONFIG, final="train")
    assert model.active == PEERS and model.weights[PEERS] == 0.0
    u = 0
    items, times = model.history(u)
    z = model.standardized(items, times, u)
    assert not z[PEERS].any()
    # the score is the product over the features the model can have, nothing else (on the served grid)
    expected = np.round(model.weights[:PEERS] @ z[:PEERS], SCORE_DECIMALS)
    expected[items] = -np.inf
    assert np.array_equal(model.score(items, times, u), expected.astype(np.float32))


def test_graphsage_embeds_users_without_interactions_from_their_attributes(
    world_snapshot: tuple[object, GraphSnapshot],
) -> None:
    import dataclasses

    from gnn.train import fit_graphsage

    world, snapshot = world_snapshot
    # no follows, and every sixth user without any training interaction: only attributes can tell those apart
    snapshot = dataclasses.replace(snapshot, follow_index=torch.empty(2, 0, dtype=torch.long), snapshot_id="")
    cold = torch.arange(snapshot.num_users) % 6 == 0
    positive = torch.isnan(snapshot.edge_rating) | (snapshot.edge_rating >= 4.0)
    edges = snapshot.edge_index[:, ~cold[snapshot.edge_index[0]] & positive]
    config = TrainConfig(
        model="graphsage",
        embedding_dim=16,
        num_layers=2,
        lr=0.02,
        batch_size=256,
        max_epochs=15,
        seed=0,
        progress=False,
        device="cpu",
    )
    genres: dict[str, set[str]] = {}
    for row in world.dataset.genres:
        genres.setdefault(row.item_id, set()).add(row.genre)

    def agreement(snap: GraphSnapshot) -> float:
        """Share of the cold users whose embedding scores their community's genres above the others."""
        result = fit_graphsage(snap, edges, config)
        scores = result.user_emb[cold] @ result.item_emb.T
        agree = []
        for r, u in enumerate(torch.nonzero(cold).view(-1).tolist()):
            taste = set(world.community_genres[world.user_community[snap.users.ids[u]]])
            in_taste = torch.tensor([bool(taste & genres.get(i, set())) for i in snap.items.ids])
            agree.append(float(scores[r, in_taste].mean() > scores[r, ~in_taste].mean()))
        return float(np.mean(agree))

    blind = dataclasses.replace(snapshot, user_attributes=None, user_attribute_index=None, snapshot_id="")
    with_attributes, without = agreement(snapshot), agreement(blind)
    assert with_attributes >= 0.8 and without <= 0.6, (with_attributes, without)
