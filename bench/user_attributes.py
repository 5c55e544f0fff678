"""Do user attributes carry signal? The blend with and without its ``peers`` feature on synthetic worlds whose users'
attributes follow their taste communities (plus noise), under the protocol and the API's rule.

For each seed: the synthetic world with user attributes (``etl.synthetic.generate_world(user_attributes=True)``), its
snapshot, the protocol's split (:func:`gnn.evaluation.split_interactions`), then what ``kgrec retrain`` fits on the
train-only graph (:func:`bench.api_rule.product_fit`) twice — with every feature, and with ``peers`` left out of
``ranker_features`` — each asked for every test user's top-20 as the API ranks them (:func:`bench.api_rule.api_lists`).
NDCG@20 is reported overall and for the test users with at most 5 train positives. Beside them, the test NDCG@20 of
the ``peers`` feature alone and of global popularity alone (both from a blend refitted on the train part).
``--no-follows`` drops the world's follows, whose communities the ``social`` feature otherwise already reads.

    .venv/bin/python -m bench.user_attributes [--seeds 1 2 3] [--users 300] [--items 600] [--noise 0.25] [--no-follows]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.api_rule import api_lists, product_fit, rated_items, train_only
from etl.dataset import Dataset
from etl.synthetic import generate_world
from gnn.blend.config import FEATURES, RankerConfig
from gnn.blend.evaluate import component_score_fn
from gnn.blend.fit import fit_ranker
from gnn.data import GraphSnapshot, build_graph_snapshot
from gnn.evaluation import Fold, evaluate, split_interactions
from gnn.serving import BlendModel
from graph.export import NO_TIMESTAMP, GraphExport
from schema.model import attribute_id

FEW = 5  # "few interactions": at most this many train positives


def dataset_export(dataset: Dataset) -> GraphExport:
    """The export that loading ``dataset`` into Neo4j would give (interactions, knowledge, user attributes)."""
    inter = dataset.interactions
    return GraphExport(
        users=[u.user_id for u in dataset.users],
        items=[i.item_id for i in dataset.items],
        interactions=pd.DataFrame(
            {
                "user_id": [r.user_id for r in inter],
                "item_id": [r.item_id for r in inter],
                "rating": [np.nan if r.rating is None else r.rating for r in inter],
                "weight": [r.weight for r in inter],
                "timestamp": pd.array([NO_TIMESTAMP if r.timestamp is None else r.timestamp for r in inter], "int64"),
            }
        ),
        item_genres=pd.DataFrame([(r.item_id, r.genre) for r in dataset.genres], columns=["item_id", "genre"]),
        item_people=pd.DataFrame(
            [(r.item_id, r.person_id, r.role.value) for r in dataset.people], columns=["item_id", "person_id", "role"]
        ),
        item_tags=pd.DataFrame(
            [(r.item_id, r.tag, r.weight) for r in dataset.tags], columns=["item_id", "tag", "weight"]
        ).astype({"weight": "float64"}),
        follows=pd.DataFrame(
            [(r.follower_id, r.followee_id) for r in dataset.follows], columns=["follower_id", "followee_id"]
        ),
        user_genres=pd.DataFrame([], columns=["user_id", "genre"]),
        item_years=pd.DataFrame(
            {"item_id": [i.item_id for i in dataset.items], "year": [i.year or -1 for i in dataset.items]}
        ),
        user_attributes=pd.DataFrame(
            [(r.owner_id, attribute_id(r.kind, r.value)) for r in dataset.user_attributes],
            columns=["user_id", "attribute"],
        ),
    )


def _ndcg(lists_or_fn: Any, fold: Fold, few: np.ndarray) -> tuple[float, float]:  # noqa: ANN401 - lists or ScoreFn
    per_user = np.asarray(evaluate(lists_or_fn, fold, ks=(20,), per_user=True)["per_user"]["ndcg@20"])
    return float(per_user.mean()), float(per_user[few].mean())


def measure(snapshot: GraphSnapshot) -> dict[str, Any]:
    """The figures of one world (see the module docstring)."""
    split = split_interactions(snapshot)
    graph = train_only(snapshot, split)
    fold = Fold("test", split.num_users, split.num_items, rated_items(graph), split.test)
    train_counts = torch.bincount(split.train[0], minlength=snapshot.num_users)
    few = (train_counts[fold.eval_users] <= FEW).numpy()
    out: dict[str, Any] = {"test_users": len(few), "few_users": int(few.sum())}
    without = [f for f in FEATURES if f != "peers"]
    for name, overrides in (("with peers", {}), ("without peers", {"ranker_features": without})):
        model, seconds = product_fit(snapshot, split, overrides)
        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp))
            served = BlendModel(Path(tmp))
        lists = api_lists(served, graph, fold.eval_users)
        out[name] = dict(zip(("ndcg20", "ndcg20_few"), _ndcg(lists, fold, few), strict=True))
        out[name]["peers_weight"] = float(model.weights[FEATURES.index("peers")])
        out[name]["seconds"] = seconds
    config = RankerConfig(device="cpu", num_threads=1, progress=False)
    refit = fit_ranker(snapshot, split, config, final="train")
    for feature in ("peers", "pop_global"):
        out[f"{feature} alone"] = dict(
            zip(("ndcg20", "ndcg20_few"), _ndcg(component_score_fn(refit, feature), fold, few), strict=True)
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--noise", type=float, default=0.25, help="probability that an attribute is random")
    parser.add_argument("--no-follows", action="store_true", help="drop the follows (no social signal)")
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    results = {}
    for seed in args.seeds:
        started = time.perf_counter()
        world = generate_world(args.users, args.items, seed, user_attributes=True, attribute_noise=args.noise)
        snapshot = build_graph_snapshot(dataset_export(world.dataset))
        if args.no_follows:
            snapshot = dataclasses.replace(snapshot, follow_index=torch.empty(2, 0, dtype=torch.long), snapshot_id="")
        with threadpool_limits(limits=1, user_api="blas"):
            results[seed] = measure(snapshot)
        r = results[seed]
        print(
            f"seed {seed}: {r['test_users']} test users, {r['few_users']} with ≤{FEW} train positives "
            f"({time.perf_counter() - started:.0f} s)"
        )
        for name in ("with peers", "without peers", "peers alone", "pop_global alone"):
            print(f"  {name:<17} NDCG@20 {r[name]['ndcg20']:.4f}   ≤{FEW}: {r[name]['ndcg20_few']:.4f}")
    for key in ("ndcg20", "ndcg20_few"):
        mean = {n: np.mean([r[n][key] for r in results.values()]) for n in ("with peers", "without peers")}
        print(f"mean {key}: with peers {mean['with peers']:.4f}, without {mean['without peers']:.4f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
