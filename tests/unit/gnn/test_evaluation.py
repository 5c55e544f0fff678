"""The evaluation protocol: split on hand-made data with exact answers; metrics vs a hand-worked case,
a naive Python loop and PyG's link-prediction metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gnn.data import GraphSnapshot, build_graph_snapshot
from gnn.evaluation import Fold, evaluate, holdout_last, rank_items, split_interactions
from gnn.metrics import accuracy_metrics, hit_matrix, intra_list_diversity
from schema.errors import DataError
from tests.unit.gnn.worlds import make_export


def _split_world() -> GraphSnapshot:
    """Users with 5, 6 (tie at the cut), 4 and 11 positives, plus negatives and an unrated positive."""
    rows = [
        # u1: five positives -> ceil(0.2*5) = 1 test (the latest); one negative ignored.
        ("u1", "10", 4.0, 100),
        ("u1", "11", 5.0, 200),
        ("u1", "12", 4.5, 200),
        ("u1", "13", 4.0, 300),
        ("u1", "14", 4.0, 400),
        ("u1", "15", 2.0, 500),
        # u2: six positives -> ceil(1.2) = 2 test; three share time 4: ties by item id (natural order: 9 < 10).
        ("u2", "1", 4.0, 1),
        ("u2", "2", 4.0, 2),
        ("u2", "3", 4.0, 3),
        ("u2", "10", 4.0, 4),
        ("u2", "9", 4.0, 4),
        ("u2", "11", 4.0, 4),
        # u3: four positives -> fewer than five: all train.
        ("u3", "1", 5.0, 10),
        ("u3", "2", 5.0, 20),
        ("u3", "3", 5.0, 30),
        ("u3", "4", 5.0, 40),
        # u4: eleven positives (one of them unrated) -> ceil(2.2) = 3 test; 8 train -> ceil(0.8) = 1 validation.
        *[("u4", str(20 + k), 4.0 if k != 5 else None, 1000 + k) for k in range(11)],
        ("u4", "99", 1.0, 5000),
    ]
    return build_graph_snapshot(make_export(rows))


def _pairs(snapshot: GraphSnapshot, edges: torch.Tensor) -> set[tuple[str, str]]:
    return set(zip(snapshot.users.to_ids(edges[0]), snapshot.items.to_ids(edges[1]), strict=True))


def test_split_temporal_exact_answer() -> None:
    snapshot = _split_world()
    split = split_interactions(snapshot)
    assert split.method == "temporal"
    assert _pairs(snapshot, split.test) == {
        ("u1", "14"),
        ("u2", "10"),
        ("u2", "11"),
        ("u4", "28"),
        ("u4", "29"),
        ("u4", "30"),
    }
    assert _pairs(snapshot, split.val) == {("u4", "27")}
    train = _pairs(snapshot, split.train)
    assert ("u1", "15") not in train and ("u4", "99") not in train  # negatives are never positives
    assert ("u4", "25") in train  # unrated counts as positive
    assert {("u3", str(k)) for k in range(1, 5)} <= train
    assert len(train) == 4 + 4 + 4 + 8
    assert _pairs(snapshot, split.fit) == train - {("u4", "27")}
    # test_rows point at the test interactions of the snapshot
    rows = split.test_rows
    assert _pairs(snapshot, snapshot.edge_index[:, rows]) == _pairs(snapshot, split.test)
    assert int(split.interaction_mask(snapshot).sum()) == snapshot.num_interactions - 6


def test_split_random_is_seeded_and_sized_by_ceil() -> None:
    rows = [(f"u{u}", str(i), None, None) for u, n in ((1, 5), (2, 9), (3, 4)) for i in range(n)]
    snapshot = build_graph_snapshot(make_export(rows))
    a, b = split_interactions(snapshot, seed=42), split_interactions(snapshot, seed=42)
    assert a.method == "random" and torch.equal(a.test, b.test)
    per_user = torch.bincount(a.test[0], minlength=3).tolist()
    assert per_user == [1, 2, 0]  # ceil(1.0), ceil(1.8), fewer than 5 -> none
    others = [split_interactions(snapshot, seed=s).test for s in range(1, 8)]
    assert any(not torch.equal(o, a.test) for o in others)


def test_split_temporal_without_timestamps_is_refused() -> None:
    snapshot = build_graph_snapshot(make_export([("u1", "1", None, None)]))
    with pytest.raises(DataError):
        split_interactions(snapshot, method="temporal")


def test_holdout_last_rounds_up_without_float_error() -> None:
    n = 30
    held = holdout_last(np.zeros(n, dtype=np.int64), np.arange(n), np.arange(n), 0.1)
    assert held.sum() == 3  # 0.1 * 30 = 3.0000000000000004 in floating point
    assert held[-3:].all()


# --- metrics -------------------------------------------------------------------------------------------


def test_metrics_hand_worked() -> None:
    # user 0: targets {1, 3}, list [1, 2, 3] -> hits 1 0 1; user 1: target {5}, list [4, 6, 5] -> hits 0 0 1
    hits = torch.tensor([[True, False, True], [False, False, True]])
    m = accuracy_metrics(hits, torch.tensor([2, 1]), ks=(1, 3))
    assert m["recall@3"].tolist() == [1.0, 1.0]
    assert m["precision@3"].tolist() == pytest.approx([2 / 3, 1 / 3])
    assert m["ndcg@3"].tolist() == pytest.approx([(1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)), 0.5])
    assert m["map@3"].tolist() == pytest.approx([(1 + 2 / 3) / 2, 1 / 3])
    assert m["hit_rate@3"].tolist() == [1.0, 1.0]
    assert m["recall@1"].tolist() == [0.5, 0.0]
    assert m["ndcg@1"].tolist() == [1.0, 0.0]
    assert m["map@1"].tolist() == [1.0, 0.0]


def _naive(topk: list[list[int]], targets: list[set[int]], k: int) -> dict[str, float]:
    sums = {"recall": 0.0, "ndcg": 0.0, "precision": 0.0, "map": 0.0, "hit_rate": 0.0}
    for ranked, truth in zip(topk, targets, strict=True):
        dcg = idcg = ap = 0.0
        found = 0
        for rank, item in enumerate(ranked[:k]):
            if item in truth:
                found += 1
                dcg += 1 / math.log2(rank + 2)
                ap += found / (rank + 1)
        for rank in range(min(k, len(truth))):
            idcg += 1 / math.log2(rank + 2)
        sums["recall"] += found / len(truth)
        sums["ndcg"] += dcg / idcg
        sums["precision"] += found / k
        sums["map"] += ap / min(k, len(truth))
        sums["hit_rate"] += float(found > 0)
    return {f"{name}@{k}": value / len(topk) for name, value in sums.items()}


def _random_case(
    seed: int, users: int = 40, items: int = 60, k: int = 20
) -> tuple[list[list[int]], list[set[int]], torch.Tensor]:
    rng = np.random.default_rng(seed)
    topk = [list(rng.choice(items, size=k, replace=False)) for _ in range(users)]
    targets = [set(rng.choice(items, size=int(rng.integers(1, 30)), replace=False).tolist()) for _ in range(users)]
    target = torch.tensor([(u, i) for u, t in enumerate(targets) for i in sorted(t)]).T
    return topk, targets, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_naive_loop(seed: int) -> None:
    topk, targets, target = _random_case(seed)
    users = torch.arange(len(topk))
    hits = hit_matrix(torch.tensor(topk), users, target, 60)
    got = accuracy_metrics(hits, torch.tensor([len(t) for t in targets]), ks=(5, 10, 20))
    for k in (5, 10, 20):
        for name, value in _naive(topk, targets, k).items():
            assert float(got[name].mean()) == pytest.approx(value, abs=1e-12), name


def test_metrics_match_pyg_link_pred_metrics() -> None:
    from torch_geometric.metrics import LinkPredMAP, LinkPredNDCG, LinkPredPrecision, LinkPredRecall

    topk, targets, target = _random_case(7)
    hits = hit_matrix(torch.tensor(topk), torch.arange(len(topk)), target, 60)
    ours = accuracy_metrics(hits, torch.tensor([len(t) for t in targets]), ks=(10,))
    for name, cls in (
        ("recall", LinkPredRecall),
        ("ndcg", LinkPredNDCG),
        ("precision", LinkPredPrecision),
        ("map", LinkPredMAP),
    ):
        metric = cls(k=10)
        metric.update(torch.tensor(topk), target)
        assert float(metric.compute()) == pytest.approx(float(ours[f"{name}@10"].mean()), abs=1e-6), name


def test_rank_items_excludes_train_items_and_respects_candidates() -> None:
    fold = Fold(
        "test",
        num_users=2,
        num_items=5,
        train=torch.tensor([[0, 0, 1], [4, 3, 0]]),
        target=torch.tensor([[0, 1], [2, 1]]),
    )
    scores = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    topk = rank_items(lambda u: scores.expand(u.numel(), -1), fold, k=4)
    assert topk.tolist() == [[0, 1, 2, -1], [1, 2, 3, 4]]
    candidates = torch.tensor([False, True, True, True, True])
    topk = rank_items(lambda u: scores.expand(u.numel(), -1), fold, k=2, candidates=candidates)
    assert topk.tolist() == [[1, 2], [1, 2]]


def test_evaluate_hand_worked_beyond_accuracy() -> None:
    # 3 users, 4 items. Train: u0 has item 0, u1 items 0 and 1, u2 item 2. Targets: u0 item 1, u1 item 2.
    fold = Fold(
        "test",
        num_users=3,
        num_items=4,
        train=torch.tensor([[0, 1, 1, 2], [0, 0, 1, 2]]),
        target=torch.tensor([[0, 1], [1, 2]]),
    )
    topk = torch.tensor([[1, 2], [2, 3]])  # lists of eval users u0, u1
    genres = torch.tensor([[1, 0], [1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    out = evaluate(topk, fold, ks=(1, 2), item_features=genres)
    assert out["recall@1"] == 1.0 and out["ndcg@2"] == 1.0 and out["precision@2"] == 0.5
    assert out["coverage@2"] == pytest.approx(3 / 3)  # items 1, 2, 3 over 3 train items (0, 1, 2)
    # Jaccard(1, 2) = 1/2, Jaccard(2, 3) = 1/2 -> diversity 1/2
    assert out["diversity@2"] == pytest.approx(0.5)
    # share of train users: item 1 -> 1/3, item 2 -> 1/3 (twice), item 3 -> none, counted as 1/3
    assert out["novelty@2"] == pytest.approx(-math.log2(1 / 3))
    assert out["users"] == 2 and out["targets"] == 2


def test_evaluate_refuses_lists_with_train_items() -> None:
    fold = Fold("test", 1, 3, train=torch.tensor([[0], [0]]), target=torch.tensor([[0], [1]]))
    with pytest.raises(DataError):
        evaluate(torch.tensor([[0, 1]]), fold, ks=(2,))


def test_evaluate_score_fn_equals_lists() -> None:
    _, _, target = _random_case(3, users=10, items=40, k=20)
    fold = Fold("test", 10, 40, train=torch.empty(2, 0, dtype=torch.long), target=target)
    scores = torch.rand(10, 40, generator=torch.Generator().manual_seed(0))
    by_fn = evaluate(lambda u: scores[u], fold)
    by_list = evaluate(scores.topk(20, dim=1).indices, fold)
    assert by_fn == by_list


def test_intra_list_diversity_identical_and_disjoint() -> None:
    features = torch.tensor([[1, 0], [1, 0], [0, 1]], dtype=torch.bool)
    out = intra_list_diversity(torch.tensor([[0, 1], [0, 2], [0, -1]]), features)
    assert out[0] == 0.0 and out[1] == 1.0 and math.isnan(out[2])
