"""The CPU a miss costs, per process: the API and Neo4j measured apart (``/proc/<pid>/stat`` around a run).

The API is started against the benchmark graph with the answer cache off (``KGREC_RESPONSE_CACHE_SECONDS=0``, no warm
set), so every request is a miss (k=20 with explanations, the blend of ``bench.api_load``). After a short warm-up,
``--clients`` clients send back to back for ``--duration`` s; the CPU time (user + system) the API process and the
Neo4j JVM used during the run, divided by the requests answered, is printed beside the throughput, the latency and
the mean time of each stage (the API's /metrics). Repeat with ``--runs``: on a shared machine, compare runs taken
under the same conditions only. Neo4j must be loaded with ml-latest-small and a model promoted: run
``bench.api_load`` once with ``--keep-server`` (or it is started here from ``.kgrec/neo4j-bench``).
With ``--open-rate R`` each run is followed by an open loop of R misses a second for ``--duration`` s (latency counted
from each request's scheduled time, as ``bench.api_load``'s), its own row: the p99 at a rate below saturation.

    .venv/bin/python -m bench.miss_cpu [--clients 4 --duration 20 --runs 1 --api-workers 1 --open-rate 100]

With ``--api-workers 2`` the API runs two uvicorn worker processes; its CPU is then that of the server process and
all of its live descendants (the workers), summed, and the column "worker cpu %" shows each worker's share of it,
largest first (``50/50``: both workers carried the load; ``90/10``: one of them held most connections), and
"worker conns" the connections each worker held halfway through the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.api_load import (
    API_PORT,
    ARTIFACTS,
    BENCH_KEY,
    closed_loop,
    ensure_model,
    open_loop,
    read_metrics,
    stage_means,
)
from bench.common import bench_settings, serve_api, stop_api
from graph.driver import create_driver
from graph.neo4j_local import launcher

console = Console()
_TICKS = os.sysconf("SC_CLK_TCK")
ESTABLISHED = "01"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _parents() -> dict[int, int]:
    """Every live process's parent (``/proc/<pid>/stat`` field 4)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return parents


def tree_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of ``pid`` and every live process descending from it (uvicorn's workers)."""
    parents = _parents()
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(_cpu_seconds_or_none(member) or 0.0 for member in tree)


def worker_cpu_seconds(pid: int) -> dict[int, float]:
    """:func:`cpu_seconds` of each live child of ``pid`` (the API's worker processes)."""
    used = {child: _cpu_seconds_or_none(child) for child, parent in _parents().items() if parent == pid}
    return {child: seconds for child, seconds in used.items() if seconds is not None}


def worker_split(before: dict[int, float], after: dict[int, float]) -> str:
    """The share (%) of the workers' CPU each worker used between two :func:`worker_cpu_seconds`, largest first, e.g.
    ``52/48``: whether the connections were spread over the workers or one worker held most of them."""
    used = sorted((after[pid] - before.get(pid, 0.0) for pid in after), reverse=True)
    total = sum(used)
    return "/".join(f"{100 * u / total:.0f}" for u in used if u > 0.01 * total) if total > 0 else "-"


def worker_connections(pid: int, port: int) -> dict[int, int]:
    """The established connections to ``port`` each child of ``pid`` holds (``/proc/net/tcp`` and the children's
    open files): how the kernel or the workers' accepts spread the clients' connections."""
    established = {inode for local, _, state, inode in tcp_sockets() if local == port and state == ESTABLISHED}
    return {child: len(inodes & established) for child, inodes in child_socket_inodes(pid).items()}


def tcp_sockets() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4 TCP socket, from ``/proc/net/tcp`` (state ``0A``:
    listening, ``01``: established)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.split(":")[1], 16) for address in fields[1:3])
        rows.append((local, remote, fields[3], int(fields[9])))
    return rows


def child_socket_inodes(pid: int) -> dict[int, set[int]]:
    """The inodes of the sockets each live child of ``pid`` holds open."""
    held: dict[int, set[int]] = {}
    for child in (child for child, parent in _parents().items() if parent == pid):
        inodes: set[int] = set()
        for fd in Path(f"/proc/{child}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
        held[child] = inodes
    return held


def _recorded(before: dict, after: dict) -> str:
    """The lists the API recorded between two :func:`bench.api_load.read_metrics` snapshots, and those its recorder
    dropped (a full queue: the writer fell behind)."""
    delta = {k: v - before["impressions"].get(k, 0.0) for k, v in after["impressions"].items()}
    dropped = ", ".join(f"{k} {v:.0f}" for k, v in sorted(delta.items()) if k != "lists" and v) or "none dropped"
    return f"{delta.get('lists', 0.0):.0f} lists, {dropped}"


def exposure_reads(before: dict, after: dict) -> str:
    """The run's exposure reads by what the workers' held rows gave (SQLite store), with the share from memory."""
    reads = {
        k: after["exposure"].get(k, 0.0) - before["exposure"].get(k, 0.0) for k in ("hit", "applied", "stale", "miss")
    }
    total = sum(reads.values())
    if not total:
        return "none counted"
    held = (reads["hit"] + reads["applied"]) / total
    return ", ".join(f"{k} {v:.0f}" for k, v in reads.items()) + f" ({100 * held:.0f}% without reading the rows)"


def _cpu_seconds_or_none(pid: int) -> float | None:
    try:
        return cpu_seconds(pid)
    except OSError:
        return None  # ended meanwhile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4, help="clients sending back to back")
    parser.add_argument("--duration", type=float, default=20.0, help="length of each run (s)")
    parser.add_argument("--runs", type=int, default=1, help="runs on the same API")
    parser.add_argument("--model", default="blend", help="model the API serves")
    parser.add_argument(
        "--api-workers", type=int, default=1, help="uvicorn worker processes of the API (their CPU is summed)"
    )
    parser.add_argument(
        "--open-rate", type=float, default=0.0, help="after each run, an open loop at this rate (misses/s); 0: none"
    )
    args = parser.parse_args()
    settings = bench_settings()
    neo4j = launcher.start(settings)
    if neo4j.pid is None:
        raise SystemExit("the benchmark Neo4j did not start")
    ensure_model(settings, args.model)
    with create_driver(settings) as driver:
        users = [r["id"] for r in driver.execute_query("MATCH (u:User) RETURN u.userId AS id ORDER BY id")[0]]
    env = {
        "KGREC_ARTIFACTS_DIR": str(ARTIFACTS),
        "KGREC_SERVE_MODEL": args.model,
        "KGREC_API_KEY": BENCH_KEY,
        "KGREC_RESPONSE_CACHE_SECONDS": "0",
        "KGREC_CACHE_WARM_USERS": "0",
        "KGREC_MISS_COST_RATE": "0",
    }
    api = serve_api(settings, API_PORT, env, "miss_cpu.log", workers=args.api_workers, timeout=300.0)
    title = f"every request a miss, {args.duration:.0f} s, {args.api_workers} API worker(s)"
    table = Table(title=title)
    columns = ["run", "load", "answered/s", "p50 ms", "p99 ms", "API cpu ms/req", "Neo4j cpu ms/req", "load avg"]
    if args.api_workers > 1:
        columns[6:6] = ["worker cpu %", "worker conns"]
    for col in columns:
        table.add_column(col, justify="right")
    loops = [(f"{args.clients} clients", lambda seed: closed_loop(users, args.clients, args.duration, seed=seed))]
    if args.open_rate > 0:
        loops.append(
            (f"open {args.open_rate:.0f}/s", lambda seed: open_loop(users, args.open_rate, args.duration, seed))
        )
    try:
        asyncio.run(closed_loop(users, 2, 5.0, seed=98))  # warm the query plans
        for n in range(args.runs):
            for label, loop in loops:
                before = read_metrics()
                api_cpu, db_cpu, workers = (
                    tree_cpu_seconds(api.pid),
                    cpu_seconds(neo4j.pid),
                    worker_cpu_seconds(api.pid),
                )
                held: dict[int, int] = {}  # sampled halfway through the run, when every client is connected
                sample = threading.Timer(
                    args.duration / 2, lambda into: into.update(worker_connections(api.pid, API_PORT)), args=(held,)
                )
                sample.start()
                run = asyncio.run(loop(4 + n))
                sample.join()
                api_used, db_used = tree_cpu_seconds(api.pid) - api_cpu, cpu_seconds(neo4j.pid) - db_cpu
                split = []
                if args.api_workers > 1:
                    conns = "/".join(str(c) for c in sorted(held.values(), reverse=True) if c)
                    split = [worker_split(workers, worker_cpu_seconds(api.pid)), conns or "-"]
                after = read_metrics()
                stages = stage_means(before, after)
                answered = max(run["answered"], 1)
                # an open loop's answered/s: its achieved rate of requests times the share answered
                rate = run.get(
                    "throughput_rps", run.get("achieved_rate", 0.0) * run["answered"] / max(run["requests"], 1)
                )
                table.add_row(
                    str(n + 1),
                    label,
                    f"{rate:.1f}",
                    f"{run['p50_ms']:.1f}",
                    f"{run['p99_ms']:.1f}",
                    f"{1000 * api_used / answered:.2f}",
                    *split,
                    f"{1000 * db_used / answered:.2f}",
                    f"{os.getloadavg()[0]:.1f}",
                )
                console.print(
                    f"run {n + 1}, {label}, stages (mean ms a call): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in sorted(stages.items()))
                )
                if run["errors"] or run["refused"]:
                    console.print(f"run {n + 1}, {label}: errors {run['errors']}, refused {run['refused']}")
                console.print(f"run {n + 1}, {label}, impressions: {_recorded(before, after)}")
                console.print(f"run {n + 1}, {label}, exposure reads: {exposure_reads(before, after)}")
    finally:
        stop_api(api)
    console.print(table)


if __name__ == "__main__":
    main()
