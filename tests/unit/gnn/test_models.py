"""LightGCN: shapes, finite loss, determinism under a seed, the known answer on a planted graph."""

from __future__ import annotations

import pytest
import torch

from gnn.config import TrainConfig
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, rank_items
from gnn.models import LightGCN, NormalizedAdjacency, bpr_loss, propagate
from gnn.train import NegativeSampler, fit_lightgcn
from tests.unit.gnn.worlds import two_communities

FAST = {"embedding_dim": 16, "num_layers": 2, "lr": 0.05, "batch_size": 64, "progress": False, "device": "cpu",
        "num_threads": 1}


def _edges() -> torch.Tensor:
    return torch.tensor(two_communities()).T


def test_normalized_adjacency_matches_dense_formula() -> None:
    edges = torch.tensor([[0, 0, 1], [0, 1, 1]])
    adjacency = NormalizedAdjacency(edges, num_users=2, num_items=2)
    dense = torch.zeros(4, 4)
    for u, i in edges.T.tolist():
        dense[u, 2 + i] = dense[2 + i, u] = 1.0
    deg = dense.sum(1)
    expected = dense / torch.sqrt(deg.view(-1, 1) * deg.view(1, -1))
    x = torch.randn(4, 3)
    assert torch.allclose(adjacency.matmul(x), expected @ x, atol=1e-6)


def test_propagate_gradient_matches_autograd_of_dense_product() -> None:
    edges = _edges()
    adjacency = NormalizedAdjacency(edges, 24, 24)
    dense = adjacency.matmul(torch.eye(48))
    x = torch.randn(48, 5, dtype=torch.float32, requires_grad=True)
    (propagate(x, adjacency).pow(2).sum()).backward()
    x2 = x.detach().clone().requires_grad_(True)
    ((dense @ x2).pow(2).sum()).backward()
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)


def test_lightgcn_shapes_and_finite_loss() -> None:
    edges = _edges()
    model = LightGCN(24, 24, embedding_dim=8, num_layers=3)
    users, items = model(NormalizedAdjacency(edges, 24, 24))
    assert users.shape == (24, 8) and items.shape == (24, 8)
    sampler = NegativeSampler(edges, 24, torch.Generator().manual_seed(0))
    neg = sampler.sample(edges[0], 3)
    assert neg.shape == (edges.size(1), 3)
    loss = bpr_loss(users, items, edges[0], edges[1], neg)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(model.embedding.weight.grad).all()


def test_negative_sampler_avoids_positives() -> None:
    edges = _edges()
    sampler = NegativeSampler(edges, 24, torch.Generator().manual_seed(1))
    users = edges[0].repeat(20)
    neg = sampler.sample(users)
    positives = set(map(tuple, edges.T.tolist()))
    assert not any((u, i) in positives for u, i in zip(users.tolist(), neg.tolist(), strict=True))


def test_fit_is_deterministic_under_a_seed() -> None:
    edges = _edges()
    config = TrainConfig(**FAST, max_epochs=5, seed=3)
    a = fit_lightgcn(edges, 24, 24, config)
    b = fit_lightgcn(edges, 24, 24, config)
    assert torch.equal(a.user_emb, b.user_emb) and torch.equal(a.item_emb, b.item_emb)
    assert [h.loss for h in a.history] == [h.loss for h in b.history]
    c = fit_lightgcn(edges, 24, 24, config.model_copy(update={"seed": 4}))
    assert not torch.equal(a.user_emb, c.user_emb)


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_communities_recommend_own_side(seed: int) -> None:
    # 20 users per side, each liking 6 of their side's 12 items; the sides share nothing.
    edges = torch.tensor(two_communities(users_per_side=20, items_per_side=12, per_user=6, seed=seed)).T
    result = fit_lightgcn(edges, 40, 24, TrainConfig(**FAST, max_epochs=30, seed=seed))
    assert result.history[-1].loss < result.history[0].loss
    fold = Fold("test", 40, 24, train=edges, target=edges)  # target only selects the users
    topk = rank_items(result.score_fn(), fold, k=4, users=torch.arange(40))  # own items seen are excluded
    user_side = (torch.arange(40) >= 20).view(-1, 1)
    assert torch.equal(topk >= 12, user_side.expand(-1, 4))


def test_early_stopping_keeps_best_epoch() -> None:
    edges = _edges()
    val = torch.tensor([[0, 12], [int(i) for i in range(24) if (0, i) not in set(map(tuple, edges.T.tolist()))][:1]
                        + [int(i) for i in range(12, 24) if (12, i) not in set(map(tuple, edges.T.tolist()))][:1]])
    fold = Fold("validation", 24, 24, train=edges, target=val)
    config = TrainConfig(**FAST, max_epochs=40, patience=3, seed=0)
    result = fit_lightgcn(edges, 24, 24, config, val_fold=fold)
    measured = [h.val_ndcg for h in result.history]
    assert all(v is not None for v in measured)
    assert result.best_val == max(measured)
    assert result.history[result.best_epoch - 1].val_ndcg == result.best_val
    assert len(result.history) <= 40


def _knowledge_world(seed: int = 0) -> GraphSnapshot:
    """Two communities whose items carry genre A or B, plus two cold items (no interactions), one per genre."""
    from gnn.data import build_graph_snapshot
    from tests.unit.gnn.worlds import make_export

    pairs = two_communities(users_per_side=20, items_per_side=12, per_user=6, seed=seed)
    rows = [(f"u{u}", f"i{i}", 5.0, 1000 + k) for k, (u, i) in enumerate(pairs)]
    genres = [(f"i{i}", "A" if i < 12 else "B") for i in range(24)] + [("coldA", "A"), ("coldB", "B")]
    export = make_export(rows, items=["coldA", "coldB"], item_genres=genres)
    return build_graph_snapshot(export)


def test_graphsage_shapes_and_finite_loss() -> None:
    from gnn.data import INTERACTED, REV_INTERACTED
    from gnn.models import KnowledgeSAGE

    snapshot = _knowledge_world()
    edges = {INTERACTED: snapshot.edge_index, REV_INTERACTED: snapshot.edge_index.flip(0),
             ("item", "in_genre", "genre"): snapshot.item_genre_index,
             ("genre", "rev_in_genre", "item"): snapshot.item_genre_index.flip(0)}
    sizes = {"user": snapshot.num_users, "item": snapshot.num_items, "genre": 2}
    model = KnowledgeSAGE(list(edges), sizes, hidden=8, num_layers=2)
    out = model(edges, sizes)
    assert out["user"].shape == (40, 8) and out["item"].shape == (26, 8) and out["genre"].shape == (2, 8)
    loss = bpr_loss(out["user"], out["item"], snapshot.edge_index[0], snapshot.edge_index[1],
                    torch.zeros(snapshot.num_interactions, dtype=torch.long))
    assert torch.isfinite(loss)


def test_graphsage_embeds_cold_items_from_their_genres() -> None:
    from gnn.train import fit_graphsage

    snapshot = _knowledge_world()
    config = TrainConfig(**{**FAST, "model": "graphsage", "lr": 0.01}, max_epochs=40, seed=0)
    result = fit_graphsage(snapshot, snapshot.edge_index, config)
    a, b = snapshot.items.index("coldA"), snapshot.items.index("coldB")
    scores = result.user_emb @ result.item_emb[[a, b]].T  # [users, 2]
    side_a = torch.tensor([snapshot.users.ids[u].startswith("u") and int(snapshot.users.ids[u][1:]) < 20
                           for u in range(snapshot.num_users)])
    assert bool((scores[side_a, 0] > scores[side_a, 1]).all())
    assert bool((scores[~side_a, 1] > scores[~side_a, 0]).all())


def test_graphsage_is_deterministic_under_a_seed() -> None:
    from gnn.train import fit_graphsage

    snapshot = _knowledge_world()
    config = TrainConfig(**{**FAST, "model": "graphsage"}, max_epochs=3, seed=5)
    a = fit_graphsage(snapshot, snapshot.edge_index, config)
    b = fit_graphsage(snapshot, snapshot.edge_index, config)
    assert torch.equal(a.item_emb, b.item_emb) and torch.equal(a.user_emb, b.user_emb)
