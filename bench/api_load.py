"""API load benchmark: recommendations (k=20, with explanations) for random ml-latest-small users.

Everything runs on this machine: a private Neo4j (.kgrec/neo4j-bench, 27687), the API (`kgrec serve`
in a subprocess) and this load generator. Two measurements:

(a) open loop: a fixed arrival rate (default 150 requests/s for 30 s); latency is counted from each
    request's *scheduled* time, so queueing inside the server or the client is not hidden;
(b) closed loop: 32 clients sending back to back (default 20 s): throughput.

Then the time per recall strategy, read from the API's own /metrics.

    .venv/bin/python -m bench.api_load [--rate 150 --duration 30 --clients 32 --api-workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import subprocess
import time

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench.common import OUT, bench_settings, require_dataset, serve_api
from etl.load import load_stream
from etl.sources import movielens_variables, read_mapping_dataset, shipped_mapping_path
from graph.driver import create_driver
from graph.neo4j_local import launcher
from graph.writers import read_graph_counts
from schema.model import Label

console = Console()
API_PORT = 28000


def ensure_movielens_loaded(settings) -> list[str]:  # noqa: ANN001
    """Load ml-latest-small with its knowledge unless the bench graph already holds exactly it."""
    with create_driver(settings) as driver:
        nodes, rels = read_graph_counts(driver)
        if nodes.get("User") != 610 or rels.get("INTERACTED") != 100_836 or not rels.get("ACTED_IN"):
            console.print("loading ml-latest-small (+ actors, HetRec) into the benchmark Neo4j …")
            ml = require_dataset("ml-latest-small")
            variables = movielens_variables(
                ml, require_dataset("ml-small-actors-tomasonjo") / "movies.csv", require_dataset("hetrec2011-movielens-2k")
            )
            load_stream(
                driver,
                lambda sink: read_mapping_dataset(shipped_mapping_path("movielens"), variables, sink=sink)[0],
                item_labels=[Label.MOVIE], replace=True, reject_dir=OUT / "rejects",
            )
        records, _, _ = driver.execute_query("MATCH (u:User) RETURN u.userId AS id ORDER BY id")
    return [r["id"] for r in records]


ARTIFACTS = OUT / "api_load_artifacts"


def ensure_model(settings, model: str) -> str | None:  # noqa: ANN001
    """Make sure a ``model`` version is promoted for the bench graph (``kgrec retrain`` when there is none)."""
    if model == "none":
        return None
    from gnn.config import GnnSettings
    from gnn.jobs import current_version, retrain_job

    gnn = GnnSettings(artifacts_dir=ARTIFACTS, snapshots_dir=OUT / "api_load_snapshots")
    current = current_version(ARTIFACTS, model)
    if current is None:
        console.print(f"training the {model} for the API (kgrec retrain --model {model}) …")
        started = time.perf_counter()
        report = retrain_job(settings, gnn, {"model": model, "device": "cpu"}, keep=2, publish=True)
        console.print(f"  retrain took {time.perf_counter() - started:.0f} s")
        current = report.artifact.path
    return current.name if current else None


def start_api(settings, workers: int, model: str = "none") -> subprocess.Popen[bytes]:  # noqa: ANN001
    return serve_api(settings, API_PORT, {"KGREC_ARTIFACTS_DIR": str(ARTIFACTS), "KGREC_SERVE_MODEL": model},
                     "api_load_server.log", workers=workers, timeout=60.0)


def wait_for_cache(users: int, timeout: float) -> None:
    """Wait until the API has precomputed its answers after loading the model (KGREC_CACHE_WARM_USERS)."""
    started = time.time()
    entries, last_growth, previous = 0.0, time.time(), -1.0
    while time.time() - started < timeout:
        text = httpx.get(f"http://127.0.0.1:{API_PORT}/metrics", timeout=10).text
        match = re.search(r"^kgrec_response_cache_entries ([0-9.e+]+)$", text, re.M)
        entries = float(match.group(1)) if match else 0.0
        if entries > previous:
            previous, last_growth = entries, time.time()
        if entries >= users or (entries > 0 and time.time() - last_growth > 15):
            break  # all users, or warming finished (users without positives are answered by graph recall)
        time.sleep(2)
    console.print(f"answer cache: {entries:.0f} of {users} users precomputed in {time.time() - started:.0f} s")


def _url(user: str) -> str:
    return f"/users/{user}/recommendations?k=20&explain=true"


async def open_loop(users: list[str], rate: float, duration: float, seed: int = 1) -> dict:
    rng = random.Random(seed)
    n = int(rate * duration)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{API_PORT}", limits=limits, timeout=30) as client:
        start = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await client.get(_url(rng.choice(users)))
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - scheduled)

        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {
        "requests": n, "target_rate": rate, "achieved_rate": n / wall, "errors": errors,
        "p50_ms": float(np.percentile(lat, 50)), "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(lat.max()),
    }


async def closed_loop(users: list[str], clients: int, duration: float, seed: int = 2) -> dict:
    rng = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{API_PORT}", limits=limits, timeout=30) as client:
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    response = await client.get(_url(rng.choice(users)))
                    errors += response.status_code != 200
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    return {
        "clients": clients, "requests": len(latencies), "throughput_rps": len(latencies) / wall, "errors": errors,
        "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
    }


_HIST = re.compile(r'^kgrec_recall_query_seconds_(sum|count)\{strategy="([^"]+)"\} ([0-9.e+-]+)$', re.M)


def recall_times() -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{API_PORT}/metrics", timeout=10).text
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for kind, strategy, value in _HIST.findall(text):
        (sums if kind == "sum" else counts)[strategy] = float(value)
    return {s: 1000 * sums[s] / counts[s] for s in sums if counts.get(s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="open-loop arrival rate (requests/s)")
    parser.add_argument("--duration", type=float, default=30.0, help="open-loop duration (s)")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop concurrent clients")
    parser.add_argument("--saturation-duration", type=float, default=20.0, help="closed-loop duration (s)")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--keep-server", action="store_true", help="leave the benchmark Neo4j running")
    parser.add_argument("--model", default="blend", choices=["blend", "lightgcn", "none"],
                        help="model the API ranks with (none: graph recall sources only); trained if missing")
    args = parser.parse_args()

    OUT.mkdir(parents=True, exist_ok=True)
    settings = bench_settings()
    launcher.start(settings)
    api = None
    try:
        users = ensure_movielens_loaded(settings)
        version = ensure_model(settings, args.model)
        api = start_api(settings, args.api_workers, args.model)
        if args.model != "none":
            wait_for_cache(len(users), timeout=300.0)
        console.print("warming up (10 s closed loop) …")
        asyncio.run(closed_loop(users, 8, 10.0, seed=99))
        console.print(f"(a) open loop: {args.rate:.0f} requests/s for {args.duration:.0f} s …")
        fixed = asyncio.run(open_loop(users, args.rate, args.duration))
        console.print(f"(b) closed loop: {args.clients} clients for {args.saturation_duration:.0f} s …")
        saturated = asyncio.run(closed_loop(users, args.clients, args.saturation_duration))
        per_strategy = recall_times()
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        if not args.keep_server:
            launcher.stop(settings)

    table = Table(title="GET /users/{id}/recommendations?k=20&explain=true on ml-latest-small", show_edge=False)
    for col in ("run", "requests", "rate (req/s)", "p50 ms", "p90 ms", "p99 ms", "errors"):
        table.add_column(col, justify="left" if col == "run" else "right")
    table.add_row(
        f"(a) fixed {fixed['target_rate']:.0f}/s", str(fixed["requests"]), f"{fixed['achieved_rate']:.1f}",
        f"{fixed['p50_ms']:.1f}", f"{fixed['p90_ms']:.1f}", f"{fixed['p99_ms']:.1f}", str(sum(fixed["errors"].values())),
    )
    table.add_row(
        f"(b) {saturated['clients']} clients", str(saturated["requests"]), f"{saturated['throughput_rps']:.1f}",
        f"{saturated['p50_ms']:.1f}", "", f"{saturated['p99_ms']:.1f}", str(saturated["errors"]),
    )
    table.caption = f"model: {args.model} {version or ''}; API workers: {args.api_workers}; targets: (a) p50 ≤ 25 ms, p99 ≤ 100 ms, no errors; (b) ≥ 300 req/s"
    console.print(table)
    strategies = Table(title="mean time per stage / recall strategy call (from /metrics, all runs)", show_edge=False)
    strategies.add_column("strategy")
    strategies.add_column("ms", justify="right")
    for name, ms in sorted(per_strategy.items(), key=lambda kv: -kv[1]):
        strategies.add_row(name, f"{ms:.2f}")
    console.print(strategies)
    path = OUT / "api_load.json"
    path.write_text(json.dumps({"model": args.model, "model_version": version, "open_loop": fixed,
                                       "closed_loop": saturated, "recall_ms": per_strategy}, indent=2))
    console.print(f"figures written to {path}")


if __name__ == "__main__":
    main()
