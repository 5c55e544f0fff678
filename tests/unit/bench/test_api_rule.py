"""The product path in process (bench.api_rule): the retrain's split of a train-only graph, and the API's lists."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from bench.api_rule import api_lists, rated_items, train_only
from etl.synthetic import generate_world
from gnn.blend.config import RankerConfig
from gnn.blend.fit import fit_ranker
from gnn.data import build_graph_snapshot
from gnn.evaluation import split_interactions
from gnn.jobs import serving_split
from gnn.serving import BlendModel
from tests.unit.gnn.worlds import export_from_dataset

FAST = RankerConfig(
    use_lightgcn=False,
    component_search=False,
    ranker="linear",
    ranker_l2_grid=None,
    als_factors=4,
    device="cpu",
    progress=False,
)


def _pairs(t: torch.Tensor) -> set[tuple[int, int]]:
    return set(zip(t[0].tolist(), t[1].tolist(), strict=True))


def test_the_retrain_split_of_a_train_part_is_the_benchmarks_fit_and_validation() -> None:
    snapshot = build_graph_snapshot(export_from_dataset(generate_world(users=60, items=80, seed=3).dataset))
    split = split_interactions(snapshot)
    assert split.method == "temporal" and split.test.size(1) > 0
    graph = train_only(snapshot, split)  # what bench.acceptance's retrain exports
    assert graph.num_interactions == snapshot.num_interactions - split.test.size(1)
    assert (graph.num_users, graph.num_items) == (snapshot.num_users, snapshot.num_items)
    serving = serving_split(graph)
    # no test part: every positive is in fit or validation, and they are the benchmark's own
    assert serving.test.size(1) == 0 and serving.describe()["test_users"] == 0
    assert _pairs(serving.val) == _pairs(split.val) and _pairs(serving.fit) == _pairs(split.fit)
    # the protocol's split of the same graph would have held a test part out of the fit part
    assert split_interactions(graph).fit.size(1) < serving.fit.size(1)


def test_api_lists_never_hold_an_item_the_user_interacted_with() -> None:
    snapshot = build_graph_snapshot(export_from_dataset(generate_world(users=60, items=80, seed=4).dataset))
    split = split_interactions(snapshot)
    graph = train_only(snapshot, split)
    model = fit_ranker(graph, serving_split(graph), FAST, final="all")
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        served = BlendModel(Path(tmp))
    users = torch.unique(split.test[0])
    rated = _pairs(rated_items(graph))
    assert any(r < 4.0 for r in graph.edge_rating.tolist())  # ratings below 4 are excluded too
    for lam in (0.6, 1.0):
        lists = api_lists(served, graph, users, k=10, mmr_lambda=lam)
        assert lists.shape == (users.numel(), 10)
        for row, user in enumerate(users.tolist()):
            shown = [i for i in lists[row].tolist() if i >= 0]
            assert shown and len(set(shown)) == len(shown)
            assert not any((user, i) in rated for i in shown)
    # MMR only reorders and swaps within its pool of twice k: the relevance order's first item is shown first
    plain, diverse = api_lists(served, graph, users, k=10, mmr_lambda=1.0), api_lists(served, graph, users, k=10)
    assert torch.equal(plain[:, 0], diverse[:, 0])
