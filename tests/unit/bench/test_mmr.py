"""bench.mmr: λ = 1 is the blend's own ranking, lower λ diversifies the lists, the default rule picks the
smallest λ within the tolerance."""

from __future__ import annotations

import numpy as np
import torch

from bench.mmr import embedding_diversity, mmr_lists, recommend, sweep, unit_vectors
from etl.synthetic import generate_world
from gnn.blend.config import FEATURES, RankerConfig
from gnn.blend.fit import fit_components
from gnn.blend.model import RankerModel
from gnn.data import build_graph_snapshot
from gnn.evaluation import split_interactions
from tests.unit.gnn.worlds import export_from_dataset


def _model() -> tuple[RankerModel, object, object]:
    world = generate_world(users=40, items=60, seed=3)
    snapshot = build_graph_snapshot(export_from_dataset(world.dataset))
    split = split_interactions(snapshot, seed=42)
    config = RankerConfig(
        ease_lambda=1.0,
        device="cpu",
        progress=False,
        sequence_window=3,
        lightgcn={"embedding_dim": 8, "num_layers": 2, "lr": 0.05, "batch_size": 256, "max_epochs": 5, "patience": 2},
    )
    components = fit_components(snapshot, split.fit, config, lightgcn_epochs=5)
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    weights[FEATURES.index("lightgcn")], weights[FEATURES.index("pop_global")] = 1.0, 0.3
    return RankerModel(config, snapshot.users.ids, snapshot.items.ids, components, weights), split, snapshot


def test_lambda_one_is_the_plain_ranking_and_lower_lambda_is_more_diverse() -> None:
    model, split, snapshot = _model()
    fold = split.validation()
    lists = mmr_lists(model, fold, [1.0, 0.3], pool=30, k=10)
    for row, user in enumerate(fold.eval_users.tolist()):
        items, times = model.history(user)
        scores = model.score(items, times, user)
        assert np.array_equal(lists[1.0][row].numpy(), np.argsort(-scores, kind="stable")[:10])
        assert not np.isin(lists[0.3][row].numpy(), items).any()
    vectors = unit_vectors(model)
    assert embedding_diversity(lists[0.3], vectors) > embedding_diversity(lists[1.0], vectors)
    rows = sweep(model, fold, snapshot.item_genre_matrix(), [1.0, 0.3], pool=30)
    assert [r["lambda"] for r in rows] == [1.0, 0.3] and all(0 <= r["ndcg@20"] <= 1 for r in rows)
    assert isinstance(lists[1.0], torch.Tensor)


def test_recommend_takes_the_smallest_lambda_within_tolerance() -> None:
    rows = [
        {"lambda": 1.0, "ndcg@20": 0.200},
        {"lambda": 0.8, "ndcg@20": 0.199},
        {"lambda": 0.6, "ndcg@20": 0.1985},
        {"lambda": 0.4, "ndcg@20": 0.19},
    ]
    assert recommend(rows, 0.01) == 0.6
    assert recommend(rows, 0.0) == 1.0
