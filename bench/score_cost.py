"""What a computed answer's scoring costs in the API's process: CPU per ``BlendModel.scores`` call, by history length.

The current blend artifact under ``--artifacts`` is loaded as the API loads it (``gnn.serving.load_serving_model``,
a candidate set from 50,000 items, one BLAS thread). ``--users`` users are drawn as ``bench.api_realistic`` draws
them (Zipf by activity, ``--zipf``, seed ``--seed``), each scored on their fitted history with its rows looked up once
(as the API passes them); after a warm-up pass, each draw is scored once and timed with ``time.process_time``. Printed:
the CPU per scoring overall and by history length (positives: < 100, 100–500, 500–2,000, ≥ 2,000), each
bucket's share of the total, the load average before and after; with ``--profile``, the top functions of a cProfile
pass over the same draws; with ``--save FILE``, each drawn user's best ``--top`` items (``.npz``) and, with
``--compare FILE``, how many users' best items (order included) and their scores differ from such a file: the way to check that a
change to the scoring keeps its answers. Run one checkout, then another (``PYTHONPATH``), alternated, on the same
machine state.

    PYTHONPATH=. .venv/bin/python -m bench.score_cost --artifacts DIR [--users 800 --zipf 1.0 --seed 1 --profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from pathlib import Path

import numpy as np

from bench.api_realistic import zipf_cdf
from gnn.serving import BlendModel, Positives, ScoringCandidates, limit_scoring_threads, load_serving_model

#: Upper bounds of the history-length buckets (positives); the last is open.
BUCKETS = (100, 500, 2_000)


def bucket_name(k: int) -> str:
    """The label of bucket ``k`` of :data:`BUCKETS`."""
    edges = (0, *BUCKETS)
    return f"≥ {edges[-1]:,}" if k == len(BUCKETS) else f"{edges[k]:,}–{edges[k + 1]:,}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="artifacts root holding blend/current.json")
    parser.add_argument("--users", type=int, default=800, help="draws (a user may be drawn several times)")
    parser.add_argument("--zipf", type=float, default=1.0, help="exponent of the draw by activity rank")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--candidates-from", type=int, default=50_000, help="KGREC_SCORING_CANDIDATES_FROM_ITEMS")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of a further pass")
    parser.add_argument("--top", type=int, default=200, help="best items kept per user by --save / --compare")
    parser.add_argument("--save", type=Path, help="write each drawn user's best --top items here (.npz)")
    parser.add_argument("--compare", type=Path, help="count the users whose best --top items differ from this file")
    args = parser.parse_args()

    limit_scoring_threads(1)
    started = time.perf_counter()
    model = load_serving_model(args.artifacts, "blend", ScoringCandidates(None, args.candidates_from))
    if not isinstance(model, BlendModel):
        raise SystemExit(f"no blend artifact under {args.artifacts}")
    print(f"loaded {model.version} ({len(model.item_ids):,} items) in {time.perf_counter() - started:.1f} s")
    users = model.users_by_activity()
    cdf = zipf_cdf(len(users), args.zipf)
    rng = np.random.default_rng(args.seed)
    draws = [users[int(np.searchsorted(cdf, rng.random()))] for _ in range(args.users)]
    positives = {}
    for user in sorted(set(draws)):
        history = Positives.of(model.fitted_history(user))
        positives[user] = history._replace(rows=model.item_rows(history.item_ids))
    sizes = np.array([len(positives[u].item_ids) for u in draws])
    print(
        f"{len(draws)} draws of {len(positives)} users; history mean {sizes.mean():.0f}, median "
        f"{np.median(sizes):.0f}, max {sizes.max()}"
    )

    for user in draws[:50]:  # warm-up: caches, the first calls' allocations
        model.scores(user, positives[user])
    load_before = os.getloadavg()
    cost = np.empty(len(draws))
    for k, user in enumerate(draws):
        c0 = time.process_time()
        model.scores(user, positives[user])
        cost[k] = time.process_time() - c0
    load_after = os.getloadavg()
    bucket = np.searchsorted(np.asarray(BUCKETS), sizes, side="right")
    total = cost.sum()
    print(f"CPU per scoring: {1000 * cost.mean():.2f} ms (median {1000 * np.median(cost):.2f})")
    print(f"{'history':>12} {'draws':>6} {'mean ms':>8} {'share':>6}")
    for k in range(len(BUCKETS) + 1):
        here = cost[bucket == k]
        if len(here):
            print(f"{bucket_name(k):>12} {len(here):>6} {1000 * here.mean():>8.2f} {100 * here.sum() / total:>5.0f}%")
    print("load average before / after: {:.2f} {:.2f} {:.2f} / {:.2f} {:.2f} {:.2f}".format(*load_before, *load_after))

    if args.save or args.compare:
        chosen = sorted(positives)
        answers = [model.scores(u, positives[u]) for u in chosen]
        best = np.stack([_best(a, args.top) for a in answers])
        scores = np.stack([a[b] for a, b in zip(answers, best, strict=True)])
        if args.save:
            np.savez(args.save, users=np.asarray(chosen), best=best, scores=scores)
        if args.compare:
            other = np.load(args.compare)
            at = {u: k for k, u in enumerate(other["users"].tolist())}
            pairs = [(at[u], k) for k, u in enumerate(chosen) if u in at]
            order = sum(not np.array_equal(other["best"][j], best[k]) for j, k in pairs)
            value = sum(not np.array_equal(other["scores"][j], scores[k]) for j, k in pairs)
            print(
                f"of {len(pairs)} users, the best {args.top} differ (order included) for {order}, "
                f"their scores for {value}"
            )
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for user in draws:
            model.scores(user, positives[user])
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def _best(scores: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best item rows, best first (ties: lower row first), as lists are shown."""
    return np.lexsort((np.arange(len(scores)), -scores))[:n]


if __name__ == "__main__":
    main()
