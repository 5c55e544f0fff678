"""How much the API's "never recommend what the user already rated" rule is worth, for every model alike.

The protocol (docs/evaluation.md) excludes a user's train *positives* from the ranking; the API excludes every
item the user rated (ratings below 4 too), as a product must. ``bench.acceptance`` measures the API, so
its figures are comparable with reference models only under the API's rule: this prints both, on one
split, for ALS, EASE^R, most-popular and a saved blend.

    .venv/bin/python -m bench.exclusion_check --snapshot DIR --blend DIR
      (DIR from bench.quality: bench/out/snapshot-<dataset>, bench/out/blend-<dataset>)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.baselines import fit_als, fit_ease, fit_most_popular
from gnn.blend.evaluate import blend_score_fn
from gnn.blend.model import RankerModel
from gnn.data import GraphSnapshot
from gnn.evaluation import ScoreFn, evaluate, split_interactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", type=Path, required=True, help="saved snapshot directory")
    parser.add_argument("--blend", type=Path, help="saved blend (fitted on the same split's train part)")
    parser.add_argument(
        "--als", default="64,10.0,1.0", help="ALS factors,regularization,alpha (tuned in bench.quality)"
    )
    parser.add_argument("--ease-lambda", type=float, default=50.0)
    args = parser.parse_args()
    snapshot = GraphSnapshot.load(args.snapshot)
    split = split_interactions(snapshot)
    fold = split.testing()
    test = set(zip(split.test[0].tolist(), split.test[1].tolist(), strict=True))
    rated: dict[int, list[int]] = {}
    for u, i in zip(snapshot.edge_index[0].tolist(), snapshot.edge_index[1].tolist(), strict=True):
        if (u, i) not in test:
            rated.setdefault(u, []).append(i)

    def excluding(fn: ScoreFn) -> ScoreFn:
        def score(users: torch.Tensor) -> torch.Tensor:
            out = fn(users).clone()
            for row, user in enumerate(users.tolist()):
                out[row, rated.get(user, [])] = -torch.inf
            return out

        return score

    factors, reg, alpha = args.als.split(",")
    models = [
        (
            "implicit ALS",
            fit_als(
                fold, {"iterations": 15, "factors": int(factors), "regularization": float(reg), "alpha": float(alpha)}
            ).score_fn,
        ),
        ("EASE^R", fit_ease(fold, {"lambda": args.ease_lambda}).score_fn),
        ("most-popular", fit_most_popular(fold, {}).score_fn),
    ]
    if args.blend:
        models.append(("kgrec blend", blend_score_fn(RankerModel.load(args.blend))))
    for name, fn in models:
        plain = evaluate(fn, fold, ks=(20,))
        seen = evaluate(excluding(fn), fold, ks=(20,))
        print(
            f"{name:14s} protocol NDCG@20 {plain['ndcg@20']:.4f} R@20 {plain['recall@20']:.4f} | "
            f"everything rated excluded NDCG@20 {seen['ndcg@20']:.4f} R@20 {seen['recall@20']:.4f}"
        )


if __name__ == "__main__":
    main()
