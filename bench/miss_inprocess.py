"""The CPU of a miss inside the API's process, without HTTP: ``Recommender.serve`` for every user, in turn.

The recommender is built as the app builds it (the bench model of ``bench.api_load``, one scoring thread, a blend's
candidate set as KGREC_SCORING_CANDIDATES_FROM_ITEMS chooses it, young
collections every KGREC_GC_YOUNG_THRESHOLD allocations) with the answer cache and impression recording off, so every
call is a miss (k=20 with explanations). After ``--warm`` users, ``--passes`` passes over every user (the onboarding
user 442, answered by the graph path, left out) print the process CPU a miss; the first pass pays the cold
neighbourhood cache of the explanation join. With ``--stages`` a last pass wraps the main functions of a miss and
prints each one's CPU a miss (the wrapping costs a little). The last pass's bodies, recommendation ids blanked, are
hashed (and written with ``--bodies FILE``), so two checkouts' answers can be compared byte for byte.

    .venv/bin/python -m bench.miss_inprocess [--passes 3 --warm 50 --stages --bodies FILE]

Run it from the checkout to measure (``PYTHONPATH`` at it); it needs the benchmark Neo4j (``bench.api_load
--keep-server``) and the model ``bench.api_load`` trained.

With ``--world-artifacts DIR`` the misses are those of a synthetic world instead: the realistic run's Neo4j
(``bench.api_load --realistic … --keep-server`` left it loaded, on the same ports) and the blend promoted under
``DIR``, each pass ``--draws`` users drawn Zipf-like over their activity rank as the realistic run draws them (its
heavy users are drawn often: their histories of thousands of interactions are the expensive misses):

    .venv/bin/python -m bench.miss_inprocess --world-artifacts DIR --draws 1000 --passes 2 --stages

``--beyond 5000`` draws only users past the realistic run's warm set (5,000 by default): most of that run's computed
answers are such users' first requests, light histories whose neighbourhoods are seldom held yet.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from api import cache, service
from api.metrics import Metrics
from api.model import ModelHolder
from api.ranking import Exposure
from api.service import Recommender
from api.settings import ApiSettings
from bench.api_load import ARTIFACTS
from bench.api_realistic import world_settings, zipf_cdf
from bench.common import bench_settings, impression_db
from gnn.serving import limit_scoring_threads
from graph import explain, reads
from graph.driver import create_driver
from graph.settings import Neo4jSettings

_RECOMMENDATION_ID = re.compile(rb'"recommendation_id":"[0-9a-f]*"')
#: The functions ``--stages`` times: (owner, attribute, label).
STAGES: list[tuple[Any, str, str]] = [
    (service, "user_context", "user context (read + columns)"),
    (reads, "run_read", "user context: the driver"),
    (service, "explain_items", "explain"),
    (explain, "_joined_co", "explain: co-interaction join"),
    (explain, "_joined_traits", "explain: trait join"),
    (explain, "_built", "explain: path models"),
    (service, "pick", "MMR"),
    (Exposure, "of", "exposure"),
    (Exposure, "fatigue", "fatigue"),
    (service, "unseen_ranking", "unseen ranking"),
    (service, "strongest_seeds", "seeds"),
    (service, "scored_items", "items"),
    (cache.Answer, "__init__", "rendering (Answer)"),
]


def world_server() -> Neo4jSettings:
    """The realistic run's Neo4j on the benchmark's ports (as ``bench.api_load --realistic`` starts it)."""
    return world_settings(
        int(os.environ.get("KGREC_BENCH_BOLT_PORT", "27687")), int(os.environ.get("KGREC_BENCH_HTTP_PORT", "27474"))
    )


def drawn_users(driver: Any, draws: int, exponent: float, beyond: int = 0) -> list[str]:
    """``draws`` users drawn Zipf-like over their activity rank (seed 0), as the realistic run draws them; with
    ``beyond``, only among the users ranked past the first ``beyond`` (the realistic run's warm set: most of its
    computed answers are users drawn there, whose first request is a miss), with the same Zipf weights."""
    ranked = reads.most_active_users(driver, 10**9)
    cdf = zipf_cdf(len(ranked), exponent)
    if beyond > 0:
        if beyond >= len(ranked):
            raise SystemExit(f"--beyond {beyond}: the world has {len(ranked)} users")
        cdf = (cdf[beyond:] - cdf[beyond - 1]) / (1.0 - cdf[beyond - 1])
        ranked = ranked[beyond:]
    rng = np.random.default_rng(0)
    return [ranked[int(i)] for i in np.searchsorted(cdf, rng.random(draws))]


def blank_ids(body: bytes) -> bytes:
    """``body`` with its recommendation id blanked (the only part of an answer that changes from call to call)."""
    return _RECOMMENDATION_ID.sub(b'"recommendation_id":""', body)


@contextmanager
def timed(owner: Any, name: str, label: str, used: Counter[str]) -> Iterator[None]:
    """Replace ``owner.name`` with a wrapper adding the process CPU of each call to ``used[label]``, until the end."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            used[label] += time.process_time() - started

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=3, help="passes over every user")
    parser.add_argument("--warm", type=int, default=50, help="users answered before the first pass")
    parser.add_argument("--stages", action="store_true", help="a last pass timing each stage of a miss")
    parser.add_argument("--bodies", type=Path, help="write the last pass's bodies (ids blanked) here")
    parser.add_argument(
        "--world-artifacts",
        type=Path,
        help="the realistic run's world and the blend promoted under this artifacts root (module docstring)",
    )
    parser.add_argument("--draws", type=int, default=1000, help="with --world-artifacts: users drawn a pass")
    parser.add_argument("--zipf", type=float, default=1.0, help="with --world-artifacts: the draw's exponent")
    parser.add_argument(
        "--beyond",
        type=int,
        default=0,
        help="with --world-artifacts: draw only users ranked past this many by activity (e.g. the realistic run's "
        "warm set, 5000: the users whose first request is a miss there)",
    )
    args = parser.parse_args()
    world = args.world_artifacts is not None
    server = world_server() if world else bench_settings()
    settings = ApiSettings(
        artifacts_dir=args.world_artifacts if world else ARTIFACTS,
        serve_model="blend",
        response_cache_seconds=0,
        impressions=False,
        cache_warm_users=0,
        read_rate=0,
        impression_db=impression_db(server),  # the exposure the benchmark's API recorded on this graph
    )
    limit_scoring_threads(settings.scoring_threads)
    if settings.gc_young_threshold > 0:
        gc.set_threshold(settings.gc_young_threshold)
    with create_driver(server) as driver, ThreadPoolExecutor(settings.recall_workers) as pool:
        models = ModelHolder(settings.artifacts_dir, "blend", (), settings.candidates())  # as the API holds it
        models.reload()
        recommender = Recommender(driver, settings, pool, Metrics(), models=models)
        if world:
            users = drawn_users(driver, args.draws, args.zipf, args.beyond)
        else:
            users = [r["id"] for r in driver.execute_query("MATCH (u:User) RETURN u.userId AS id ORDER BY id")[0]]
            users = [u for u in users if u != "442"]
        for user in users[: args.warm]:
            recommender.serve(user, 20)
        bodies: list[bytes] = []
        fallbacks, repicks = recommender.metrics.explain_fallbacks, recommender.metrics.explain_repicks
        for n in range(args.passes):
            started = time.process_time()
            fell_back, picked_again = fallbacks._value.get(), repicks._value.get()
            bodies = [recommender.serve(user, 20) for user in users]
            used = time.process_time() - started
            print(
                f"pass {n + 1}: {1000 * used / len(users):.2f} ms CPU a miss, load {os.getloadavg()[0]:.1f}; "
                f"{repicks._value.get() - picked_again:.0f} rounds of picking again (a picked item without a path), "
                f"{fallbacks._value.get() - fell_back:.0f} of {len(users)} misses explained the candidates in batches"
            )
        blanked = [blank_ids(body) for body in bodies]
        print("bodies sha256", hashlib.sha256(b"\n".join(blanked)).hexdigest())
        if args.bodies is not None:
            args.bodies.write_bytes(b"\n".join(blanked) + b"\n")
        if args.stages:
            stages: Counter[str] = Counter()
            model = type(recommender.model)
            wrapped = [*STAGES, (model, "scores", "model scores")]
            started = time.process_time()
            with ExitStack() as stack:
                for owner, name, label in wrapped:
                    stack.enter_context(timed(owner, name, label, stages))
                for user in users:
                    recommender.serve(user, 20)
            total = time.process_time() - started
            print(f"stages pass: {1000 * total / len(users):.2f} ms CPU a miss")
            for label, seconds in stages.most_common():
                print(f"  {label:32s} {1e6 * seconds / len(users):7.0f} µs a miss  {100 * seconds / total:5.1f}%")


if __name__ == "__main__":
    main()
