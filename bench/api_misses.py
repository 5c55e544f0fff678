"""The API's uncached work and its bounds (``python -m bench.api_load --misses``): three runs on ml-latest-small.

(e) **misses**: the API with the answer cache off (``KGREC_RESPONSE_CACHE_SECONDS=0``, no warm set), so every
    request is computed: one client back to back (the cost of one miss), ``--miss-clients`` back to back
    (throughput at saturation), then an open loop at ``--miss-rate`` requests/s. The mean time of each stage comes
    from the API's /metrics.
(f) **cold start**: the API started with its defaults; the moment /ready first answers 200 (model loaded, warm set
    warm), an open loop at ``--rate`` requests/s over every user for ``--duration`` s.
(g) **cost abuse**: on the same API, ``--abusers`` anonymous clients back to back asking k=100 with random filters
    (every one a miss), beside normal traffic (k=20, with the API key, an open loop at ``--normal-rate``): the
    per-client budget of uncached work (``KGREC_MISS_COST_RATE``) and the read rate limit, both at their defaults,
    answer the abusers 429 while the others are served. ``--abuse-compare`` runs it a second time with the budget off (the figures before it existed).

Refusals (503 at the server's bound, 429 over a client's budget) are counted apart from errors; latency
percentiles include them, and "answered p99" is that of the 200s alone. Figures are printed beside the targets.
"""

from __future__ import annotations

import asyncio
import random
import time

from rich.console import Console
from rich.table import Table

from bench.api_load import (
    API_PORT,
    ARTIFACTS,
    BENCH_KEY,
    LeanClient,
    Url,
    closed_loop,
    open_loop,
    read_metrics,
    stage_means,
)
from bench.common import serve_api, stop_api

console = Console()
GENRES = ["Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Fantasy", "Horror"]
GENRES += ["Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "Children", "Film-Noir", "IMAX"]


def _abusive(users: list[str]) -> Url:
    """k=100 with random filters: every request a new cache key."""

    def url(rng: random.Random) -> str:
        query = f"k=100&explain=true&exclude_genres={rng.choice(GENRES)}&year_min={rng.randint(1930, 2005)}"
        return f"/users/{rng.choice(users)}/recommendations?{query}"

    return url


def _env(model: str, **extra: str) -> dict[str, str]:
    return {"KGREC_ARTIFACTS_DIR": str(ARTIFACTS), "KGREC_SERVE_MODEL": model, "KGREC_API_KEY": BENCH_KEY, **extra}


def run_misses(settings, users: list[str], args) -> tuple[dict[str, dict], dict[str, dict[str, float]]]:  # noqa: ANN001
    """Runs (e), (f), (g); returns the runs by label and the stage means of (e)."""
    runs: dict[str, dict] = {}
    stages: dict[str, dict[str, float]] = {}
    api = serve_api(
        settings,
        API_PORT,
        _env(args.model, KGREC_RESPONSE_CACHE_SECONDS="0", KGREC_CACHE_WARM_USERS="0", KGREC_MISS_COST_RATE="0"),
        "api_misses_nocache.log",
        workers=args.api_workers,
        timeout=120.0,
    )
    try:
        asyncio.run(closed_loop(users, 2, 5.0, seed=98))  # warm the JIT of Neo4j's query plans
        console.print("(e) every request a miss: 1 client …")
        before = read_metrics()
        runs["(e) misses, 1 client"] = asyncio.run(closed_loop(users, 1, args.miss_duration, seed=3))
        stages["(e) 1 client"] = stage_means(before, read_metrics())
        console.print(f"(e) every request a miss: {args.miss_clients} clients …")
        before = read_metrics()
        runs[f"(e) misses, {args.miss_clients} clients"] = asyncio.run(
            closed_loop(users, args.miss_clients, args.miss_duration, seed=4)
        )
        stages[f"(e) {args.miss_clients} clients"] = stage_means(before, read_metrics())
        console.print(f"(e) every request a miss: open loop {args.miss_rate:.0f}/s …")
        runs[f"(e) misses, open {args.miss_rate:.0f}/s"] = asyncio.run(
            open_loop(users, args.miss_rate, args.miss_duration, seed=5)
        )
    finally:
        stop_api(api)

    console.print("(f) cold start: starting the API with its defaults …")
    started = time.perf_counter()
    api = serve_api(settings, API_PORT, _env(args.model, KGREC_MISS_COST_RATE="0"), "api_misses.log", timeout=600.0)
    ready_after = time.perf_counter() - started
    try:
        run = asyncio.run(open_loop(users, args.rate, args.duration, seed=6))
        run["ready_after_s"] = ready_after
        console.print(f"  {run}")
        runs[f"(f) from /ready, open {args.rate:.0f}/s"] = run
    finally:
        stop_api(api)

    budgets = [("on", None)] + ([("off", "0")] if args.abuse_compare else [])
    for label, rate in budgets:
        extra = {"KGREC_READ_RATE": "50"}  # the API's defaults (the benchmark's other runs turn the rate limit off)
        if rate is not None:
            extra["KGREC_MISS_COST_RATE"] = rate
        api = serve_api(settings, API_PORT, _env(args.model, **extra), "api_misses_abuse.log", timeout=600.0)
        try:
            console.print(f"(g) cost abuse, budget {label}: {args.abusers} abusers beside normal traffic …")
            normal, abuse = asyncio.run(_abuse(users, args))
            console.print(f"  normal: {normal}\n  abusers: {abuse}")
            runs[f"(g) normal traffic, budget {label}"] = normal
            runs[f"(g) {args.abusers} abusers, budget {label}"] = abuse
        finally:
            stop_api(api)
    return runs, stages


async def _abuse(users: list[str], args) -> tuple[dict, dict]:  # noqa: ANN001
    normal_client = LeanClient(API_PORT, max_connections=256, headers={"X-API-Key": BENCH_KEY})
    abuse_client = LeanClient(API_PORT, max_connections=args.abusers, check_every=0)
    normal, abuse = await asyncio.gather(
        open_loop(users, args.normal_rate, args.miss_duration, seed=7, client=normal_client),
        closed_loop(users, args.abusers, args.miss_duration, seed=8, url=_abusive(users), client=abuse_client),
    )
    return normal, abuse


def misses_table(runs: dict[str, dict], stages: dict[str, dict[str, float]]) -> list[Table]:
    """The runs beside their targets, and the stage means."""
    table = Table(title="uncached work and its bounds (GET /users/{id}/recommendations, ml-latest-small)")
    for col in ("run", "requests", "answered/s", "p50 ms", "p99 ms", "answered p99", "refused", "errors", "target"):
        table.add_column(col, justify="left" if col in ("run", "target") else "right")
    targets = {
        "(e) misses, 1": "",
        "(e) misses, open": "p99 ≤ 100 ms at 100/s",
        "(e) misses,": "≥ 150 req/s",
        "(f)": "p99 ≤ 250 ms, refusals counted",
        "(g) normal": "served as without abusers",
        "(g)": "refused quickly (429)",
    }
    for name, run in runs.items():
        rate = run.get("throughput_rps", run.get("achieved_rate", 0.0))
        if "achieved_rate" in run:
            rate = run["answered"] / max(run["requests"] / run["achieved_rate"], 1e-9)
        target = next((t for prefix, t in targets.items() if name.startswith(prefix)), "")
        if "ready_after_s" in run:
            target += f" (ready after {run['ready_after_s']:.0f} s)"
        table.add_row(
            name,
            str(run["requests"]),
            f"{rate:.1f}",
            f"{run['p50_ms']:.1f}",
            f"{run['p99_ms']:.1f}",
            f"{run['answered_p99_ms']:.1f}",
            ", ".join(f"{n} {s}" for s, n in run["refused"].items()) or "0",
            ", ".join(f"{n} {s}" for s, n in run["errors"].items()) or "0",
            target,
        )
    stage_table = Table(title="mean ms per call of each stage of a miss (API /metrics)")
    stage_table.add_column("stage")
    for name in stages:
        stage_table.add_column(name, justify="right")
    for stage in sorted({s for m in stages.values() for s in m}):
        stage_table.add_row(stage, *(f"{stages[r].get(stage, 0.0):.2f}" for r in stages))
    return [table, stage_table]


__all__ = ["misses_table", "run_misses"]
