"""LightGCN and KnowledgeSAGE: shapes, finite loss, determinism under a seed, the known answer on a planted graph."""

from __future__ import annotations

import pytest
import torch

from gnn.config import TrainConfig
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, embedding_score_fn, rank_items
from gnn.models import LightGCN, NormalizedAdjacency, bpr_loss, propagate
from gnn.train import NegativeSampler, fit_lightgcn
from tests.unit.gnn.worlds import two_communities

FAST = {
    "embedding_dim": 16,
    "num_layers": 2,
    "lr": 0.05,
    "batch_size": 64,
    "progress": False,
    "device": "cpu",
    "num_threads": 1,
}


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
    topk = rank_items(embedding_score_fn(result.user_emb, result.item_emb), fold, k=4, users=torch.arange(40))
    user_side = (torch.arange(40) >= 20).view(-1, 1)
    assert torch.equal(topk >= 12, user_side.expand(-1, 4))


def _validation_fold(edges: torch.Tensor) -> Fold:
    seen = set(map(tuple, edges.T.tolist()))
    val = torch.tensor(
        [
            [0, 12],
            [next(i for i in range(24) if (0, i) not in seen), next(i for i in range(12, 24) if (12, i) not in seen)],
        ]
    )
    return Fold("validation", 24, 24, train=edges, target=val)


def test_early_stopping_keeps_best_epoch() -> None:
    edges = _edges()
    fold = _validation_fold(edges)
    config = TrainConfig(**FAST, max_epochs=40, patience=3, seed=0, val_window=1)
    result = fit_lightgcn(edges, 24, 24, config, val_fold=fold)
    measured = [h.val_ndcg for h in result.history]
    assert all(v is not None for v in measured)
    assert result.best_val == max(measured)
    assert result.history[result.best_epoch - 1].val_ndcg == result.best_val
    assert len(result.history) <= 40


def test_early_stopping_on_a_window_keeps_its_middle_epoch() -> None:
    edges = _edges()
    config = TrainConfig(**{**FAST, "lr": 0.2}, max_epochs=30, patience=30, seed=0, val_window=5)
    result = fit_lightgcn(edges, 24, 24, config, val_fold=_validation_fold(edges))
    measured = [h.val_ndcg for h in result.history]
    means = [sum(measured[i : i + 5]) / 5 for i in range(len(measured) - 4)]
    best = max(range(len(means)), key=lambda i: (means[i], -i))  # the first of equal means
    assert result.best_val == pytest.approx(means[best])
    assert result.best_epoch == best + 3  # epochs count from 1; the window of rounds best..best+4 stands for best+2
    assert len(set(measured)) > 1  # the rounds differ, so the window is not a no-op here
    # the weights returned are that epoch's: validation draws no random numbers, so a plain fit of that many
    # epochs lands on the same weights
    plain = fit_lightgcn(edges, 24, 24, config, epochs=result.best_epoch)
    assert torch.equal(plain.user_emb, result.user_emb) and torch.equal(plain.item_emb, result.item_emb)


def _knowledge_world(seed: int = 0) -> GraphSnapshot:
    """Two communities whose items carry genre A or B, plus two cold items (no interactions), one per genre."""
    from gnn.data import build_graph_snapshot
    from tests.unit.gnn.worlds import make_export

    pairs = two_communities(users_per_side=20, items_per_side=12, per_user=6, seed=seed)
    rows = [(f"u{u}", f"i{i}", 5.0, 1000 + k) for k, (u, i) in enumerate(pairs)]
    genres = [(f"i{i}", "A" if i < 12 else "B") for i in range(24)] + [("coldA", "A"), ("coldB", "B")]
    export = make_export(rows, items=["coldA", "coldB"], item_genres=genres)
    return build_graph_snapshot(export)


def _knowledge_edges(snapshot: GraphSnapshot) -> dict[tuple[str, str, str], torch.Tensor]:
    from gnn.data import INTERACTED, REV_INTERACTED

    return {
        INTERACTED: snapshot.edge_index,
        REV_INTERACTED: snapshot.edge_index.flip(0),
        ("item", "in_genre", "genre"): snapshot.item_genre_index,
        ("genre", "rev_in_genre", "item"): snapshot.item_genre_index.flip(0),
    }


def test_graphsage_shapes_and_finite_loss() -> None:
    from gnn.models import KnowledgeSAGE, RelationGraph

    snapshot = _knowledge_world()
    edges = _knowledge_edges(snapshot)
    sizes = {"user": snapshot.num_users, "item": snapshot.num_items, "genre": 2}
    model = KnowledgeSAGE(list(edges), sizes, hidden=8, num_layers=2)
    out = model(RelationGraph(edges, sizes))
    assert out["user"].shape == (40, 8) and out["item"].shape == (26, 8) and out["genre"].shape == (2, 8)
    loss = bpr_loss(
        out["user"],
        out["item"],
        snapshot.edge_index[0],
        snapshot.edge_index[1],
        torch.zeros(snapshot.num_interactions, dtype=torch.long),
    )
    assert torch.isfinite(loss)


def test_aggregate_is_the_mean_of_the_sources_and_its_gradient_the_transpose() -> None:
    from gnn.models import RelationAdjacency, aggregate

    edges = torch.tensor([[0, 1, 2, 2, 3], [0, 0, 1, 1, 2]])  # source → destination; (2 → 1) twice; dst 3: none
    adjacency = RelationAdjacency(edges, num_src=4, num_dst=4)
    dense = torch.zeros(4, 4)
    for s, d in edges.T.tolist():
        dense[d, s] += 1.0
    dense = dense / dense.sum(1, keepdim=True).clamp(min=1)
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.randn(4, 3, requires_grad=True)
    weights = torch.randn(4, 3)
    (aggregate(x, adjacency) * weights).sum().backward()
    ((dense @ y) * weights).sum().backward()
    assert torch.allclose(aggregate(x, adjacency), dense @ x, atol=1e-6)
    assert torch.allclose(aggregate(x, adjacency)[3], torch.zeros(3))
    assert torch.allclose(x.grad, y.grad, atol=1e-6)


def test_aggregate_on_torch_sparse_matches_scipy() -> None:
    """The CUDA path (torch.sparse.mm on CSR tensors), run on CPU: same products as scipy's."""
    from gnn.models import RelationAdjacency, _torch_csr

    edges = torch.tensor([[0, 1, 2, 2, 3, 4], [0, 0, 1, 1, 2, 2]])
    adjacency = RelationAdjacency(edges, num_src=5, num_dst=3)
    x, grad = torch.randn(5, 4), torch.randn(3, 4)
    expected = adjacency.matmul(x), adjacency.rmatmul(grad)
    adjacency._torch = (
        _torch_csr(adjacency._csr, torch.device("cpu")),
        _torch_csr(adjacency._csr_t, torch.device("cpu")),
    )
    assert torch.allclose(adjacency.matmul(x), expected[0], atol=1e-6)
    assert torch.allclose(adjacency.rmatmul(grad), expected[1], atol=1e-6)


def test_graphsage_layers_compute_pyg_heteroconv_of_sageconv() -> None:
    """KnowledgeSAGE's sparse-product layers give what HeteroConv({r: SAGEConv}, aggr="sum") gives with the
    same weights (the root weights of a type on its first relation, identity for an attribute's first layer)."""
    from torch_geometric.nn import HeteroConv, SAGEConv

    from gnn.models import KnowledgeSAGE, RelationGraph

    snapshot = _knowledge_world()
    edges = _knowledge_edges(snapshot)
    edges[("user", "follows", "user")] = torch.tensor([[0, 1, 2, 30], [1, 0, 30, 2]])
    sizes = {"user": snapshot.num_users, "item": snapshot.num_items, "genre": 2}
    torch.manual_seed(3)
    model = KnowledgeSAGE(list(edges), sizes, hidden=6, num_layers=2, id_dropout=1.0)
    for p in model.parameters():
        torch.nn.init.normal_(p)
    graph = RelationGraph(edges, sizes)
    ours = model(graph)

    x = {"genre": model.attributes["genre"].weight}
    for t in ("user", "item"):
        x[t] = model.base[t] + model.degree[t](torch.log1p(graph.degree[t]).unsqueeze(1))
    with torch.no_grad():
        for k in range(2):
            convs = {}
            for et in edges:
                conv = SAGEConv((6, 6), 6)
                first = next(r for r in edges if r[2] == et[2]) == et
                if et in model.layer_relations[k]:
                    conv.lin_l.weight.copy_(model.neighbour[k]["__".join(et)].weight)
                root = model.root[k][et[2]] if et[2] in model.root[k] else None
                conv.lin_l.bias.copy_(root.bias if first and root is not None else torch.zeros(6))
                own = root.weight if root is not None else torch.eye(6)
                conv.lin_r.weight.copy_(own if first else torch.zeros(6, 6))
                convs[et] = conv
            out = HeteroConv(convs, aggr="sum")(x, edges)
            x = {t: out[t] if k == 1 else torch.relu(out[t]) for t in out}
    assert torch.allclose(ours["user"], x["user"], atol=1e-4)
    assert torch.allclose(ours["item"], x["item"], atol=1e-4)


def test_graphsage_embeds_cold_items_from_their_genres() -> None:
    from gnn.train import fit_graphsage

    snapshot = _knowledge_world()
    config = TrainConfig(**{**FAST, "model": "graphsage", "lr": 0.01}, max_epochs=40, seed=0)
    result = fit_graphsage(snapshot, snapshot.edge_index, config)
    a, b = snapshot.items.index("coldA"), snapshot.items.index("coldB")
    scores = result.user_emb @ result.item_emb[[a, b]].T  # [users, 2]
    side_a = torch.tensor(
        [
            snapshot.users.ids[u].startswith("u") and int(snapshot.users.ids[u][1:]) < 20
            for u in range(snapshot.num_users)
        ]
    )
    assert bool((scores[side_a, 0] > scores[side_a, 1]).all())
    assert bool((scores[~side_a, 1] > scores[~side_a, 0]).all())


def test_graphsage_is_deterministic_under_a_seed() -> None:
    from gnn.train import fit_graphsage

    snapshot = _knowledge_world()
    config = TrainConfig(**{**FAST, "model": "graphsage"}, max_epochs=3, seed=5)
    a = fit_graphsage(snapshot, snapshot.edge_index, config)
    b = fit_graphsage(snapshot, snapshot.edge_index, config)
    assert torch.equal(a.item_emb, b.item_emb) and torch.equal(a.user_emb, b.user_emb)


def test_epoch_edge_budget_takes_fewer_larger_batches_with_the_gradients_of_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gnn import train as train_module

    config = TrainConfig(**FAST, max_epochs=3, seed=3)
    budget = config.model_copy(update={"epoch_edge_budget": 4000})
    assert train_module.epoch_batch_size(config, 1000) == 64  # no budget: batch_size
    assert train_module.epoch_batch_size(budget, 1000) == 250  # 16 steps of 64 > 4 allowed: 4 steps of 250
    assert train_module.epoch_batch_size(budget, 100) == 64  # 2 steps, 40 allowed: as it was
    assert train_module.epoch_batch_size(budget, 10**6) == 10**6  # never less than one step
    edges = _edges()
    n = edges.size(1)
    one_step = config.model_copy(update={"epoch_edge_budget": n})  # an epoch is one batch of every edge
    a = fit_lightgcn(edges, 24, 24, one_step)
    b = fit_lightgcn(edges, 24, 24, config.model_copy(update={"batch_size": n}))
    assert torch.equal(a.user_emb, b.user_emb) and torch.equal(a.item_emb, b.item_emb)
    assert not torch.equal(a.user_emb, fit_lightgcn(edges, 24, 24, config).user_emb)
    # a batch larger than LOSS_CHUNK: its loss taken in chunks, one backward pass through the propagation
    monkeypatch.setattr(train_module, "LOSS_CHUNK", 7)
    assert n > 7
    c = fit_lightgcn(edges, 24, 24, one_step)
    assert torch.allclose(c.user_emb, a.user_emb, atol=1e-4) and torch.allclose(c.item_emb, a.item_emb, atol=1e-4)
    assert [round(h.loss, 5) for h in c.history] == [round(h.loss, 5) for h in a.history]


def test_validation_reads_only_its_users_rows_and_scores_as_the_whole_fold() -> None:
    from gnn.evaluation import evaluate
    from gnn.train import evaluated_rows

    edges = _edges()
    fold = _validation_fold(edges)  # targets of users 0 and 12 only
    kept = evaluated_rows(fold)
    assert kept.train.size(1) < fold.train.size(1)
    assert set(kept.train[0].tolist()) == {0, 12} and torch.equal(kept.target, fold.target)
    everyone = Fold("validation", 24, 24, train=edges, target=edges)
    assert evaluated_rows(everyone) is everyone  # every train row is read: the fold as it is
    emb = torch.randn(48, 8, generator=torch.Generator().manual_seed(1))
    score = embedding_score_fn(emb[:24], emb[24:])
    assert evaluate(score, kept, ks=(20,))["ndcg@20"] == evaluate(score, fold, ks=(20,))["ndcg@20"]
    # the early-stopped fit is the one it was with the whole fold: the same rounds, the same epoch
    config = TrainConfig(**FAST, max_epochs=12, patience=3, seed=0, val_window=2)
    a = fit_lightgcn(edges, 24, 24, config, val_fold=fold)
    b = fit_lightgcn(edges, 24, 24, config, val_fold=kept)
    assert [h.val_ndcg for h in a.history] == [h.val_ndcg for h in b.history] and a.best_epoch == b.best_epoch
    assert torch.equal(a.user_emb, b.user_emb)


def test_max_step_pairs_forms_each_step_loss_on_a_share_of_its_batch() -> None:
    edges = _edges()
    n = edges.size(1)
    full = TrainConfig(**{**FAST, "batch_size": n}, max_epochs=4, seed=3)
    same = fit_lightgcn(edges, 24, 24, full.model_copy(update={"max_step_pairs": n}))
    base = fit_lightgcn(edges, 24, 24, full)
    assert torch.equal(same.user_emb, base.user_emb)  # a cap at the batch changes nothing
    capped = fit_lightgcn(edges, 24, 24, full.model_copy(update={"max_step_pairs": n // 4}))
    assert not torch.equal(capped.user_emb, base.user_emb)
    assert len(capped.history) == 4  # still one step an epoch
    assert capped.history[0].loss != base.history[0].loss  # the loss of the sampled pairs only
