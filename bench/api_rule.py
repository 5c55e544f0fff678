"""The API's answers without the API: the product path of ``bench.acceptance`` in process, for cheap experiments.

``bench.acceptance`` deletes the test interactions from Neo4j, runs ``kgrec retrain`` and asks ``kgrec serve`` for
every test user's top-20 over HTTP. In process the same steps are: :func:`train_only` (the snapshot the retrain
would export from the train-only graph), :func:`gnn.jobs.serving_split` and :func:`gnn.blend.fit.fit_ranker` with
``final="all"`` (what ``kgrec retrain`` fits), then :func:`api_lists`, which ranks as ``api/service.py``'s model
path does without filters: every item the user interacted with left out, the blend's new-arrival candidates, maximal
marginal relevance over twice ``k`` with the model's item vectors (``KGREC_MMR_LAMBDA``), the reserved positions
filled. :func:`rated_items` gives the API's exclusion rule to the reference models.

    .venv/bin/python -m bench.api_rule --snapshot bench/out/snapshot-lastfm [--overrides JSON] [--mmr-lambda 0.6]

Prints the blend's NDCG@20 / Recall@20 under the API's rule (and without MMR) on the protocol's test users.
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
import torch
from torch import Tensor

from api.ranking import cold_unseen, pick, unseen_ranking
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, Split, evaluate, split_interactions
from gnn.serving import BlendModel, Positives


def train_only(snapshot: GraphSnapshot, split: Split) -> GraphSnapshot:
    """``snapshot`` without ``split``'s test interactions: what an export of the graph gives once
    ``bench.acceptance`` has deleted them (every node stays)."""
    keep = split.interaction_mask(snapshot)
    return dataclasses.replace(
        snapshot,
        edge_index=snapshot.edge_index[:, keep],
        edge_weight=snapshot.edge_weight[keep],
        edge_rating=snapshot.edge_rating[keep],
        edge_time=snapshot.edge_time[keep],
        edge_polarity=None if snapshot.edge_polarity is None else snapshot.edge_polarity[keep],
        snapshot_id="",
    )


def rated_items(snapshot: GraphSnapshot) -> Tensor:
    """``[2, n]`` every (user_idx, item_idx) with an interaction, rated below 4 too: what the API never recommends."""
    return torch.unique(snapshot.edge_index, dim=1)


def api_lists(
    model: BlendModel, snapshot: GraphSnapshot, users: Tensor, k: int = 20, mmr_lambda: float = 0.6
) -> Tensor:
    """``[len(users), k]`` item_idx (``-1`` pads) of the API's answer to each user (``api/service.py``'s model
    path, no filters; explanation paths do not change the list): ``snapshot`` is the graph the API reads the
    users' interactions from, in the model's index space."""
    rated = rated_items(snapshot)
    ptr = torch.searchsorted(rated[0].contiguous(), torch.arange(snapshot.num_users + 1)).numpy()
    items_of, times_of = snapshot.edge_index[1].numpy(), snapshot.edge_time.numpy()
    weights_of = snapshot.edge_weight.numpy()
    positive = (torch.isnan(snapshot.edge_rating) | (snapshot.edge_rating >= 4.0)).numpy()
    user_of = snapshot.edge_index[0].numpy()
    edge_ptr = np.searchsorted(user_of, np.arange(snapshot.num_users + 1))
    ids = model.item_ids
    out = torch.full((users.numel(), k), -1, dtype=torch.long)
    want = 2 * k if mmr_lambda < 1.0 else k
    for r, u in enumerate(users.tolist()):
        lo, hi = edge_ptr[u], edge_ptr[u + 1]
        mask = positive[lo:hi]
        positives = [
            (ids[int(i)], None if t < 0 else int(t))
            for i, t in zip(items_of[lo:hi][mask], times_of[lo:hi][mask], strict=True)
        ]
        if not positives:
            continue
        seen = {ids[int(i)] for i in rated[1, ptr[u] : ptr[u + 1]].tolist()}
        plays = [float(w) for w in weights_of[lo:hi][mask]]  # the interactions' weights, as the API reads them
        scores = model.scores(snapshot.users.ids[u], Positives.of(positives, plays))
        ranked = unseen_ranking(model, scores, seen)
        cold = cold_unseen(model, scores, seen, k)
        head = set(ranked[:want])
        spare = [i for i in cold if i not in head][: 3 * model.cold_slots]
        allowed = [i for i in cold if i in head or i in spare] if cold else None
        picked = pick(model, scores, ranked[:want], k, mmr_lambda, allowed)
        out[r, : len(picked)] = torch.as_tensor(picked, dtype=torch.long)
    return out


def product_fit(snapshot: GraphSnapshot, split: Split, overrides: dict[str, Any] | None = None) -> tuple[Any, float]:
    """What ``kgrec retrain`` fits (the blend, refitted on every positive) on the train-only graph of ``split``:
    the fitted model and its seconds."""
    from gnn.blend.config import RankerConfig
    from gnn.blend.fit import fit_ranker
    from gnn.jobs import serving_split

    graph = train_only(snapshot, split)
    config = RankerConfig(**{**(overrides or {}), "device": "cpu", "num_threads": 1, "progress": False})
    started = time.perf_counter()
    model = fit_ranker(graph, serving_split(graph), config, final="all")
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", type=Path, required=True, help="saved snapshot (bench.quality's)")
    parser.add_argument("--overrides", default="{}", help="RankerConfig fields as JSON")
    parser.add_argument("--mmr-lambda", type=float, default=0.6)
    parser.add_argument("--out", type=Path, help="save the per-user NDCG@20 here (JSON)")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    snapshot = GraphSnapshot.load(args.snapshot)
    split = split_interactions(snapshot)
    with threadpool_limits(limits=1, user_api="blas"):
        model, seconds = product_fit(snapshot, split, json.loads(args.overrides))
    graph = train_only(snapshot, split)
    fold = Fold("test", split.num_users, split.num_items, rated_items(graph), split.test)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        served = BlendModel(Path(tmp))
    report = model.meta["validation"]
    print(f"fit {seconds:.0f} s; component search: {json.dumps(report.get('component_search', {}).get('chosen'))}")
    print(f"validation NDCG@20 {report['val_ndcg20']:.4f}")
    result: dict[str, Any] = {"seconds": seconds, "search": report.get("component_search")}
    for lam in sorted({args.mmr_lambda, 1.0}):
        lists = api_lists(served, graph, fold.eval_users, mmr_lambda=lam)
        figures = evaluate(lists, fold, ks=(20,), per_user=True)
        print(f"API rule, MMR λ {lam:g}: NDCG@20 {figures['ndcg@20']:.4f}, Recall@20 {figures['recall@20']:.4f}")
        result[f"mmr_{lam:g}"] = {"ndcg@20": figures["ndcg@20"], "per_user": figures["per_user"]["ndcg@20"]}
    if args.out:
        args.out.write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
