"""(h) A realistic workload (``bench.api_load --realistic``): the API on a synthetic world at real size.

The world (etl/world.py: 100,000 users, 50,000 items, millions of interactions by default) is written once under
bench/out and loaded into the benchmark Neo4j unless it already holds it. The API serves it with the model
``--model`` names (``none`` by default: graph recall; a model is trained by ``kgrec retrain`` when missing). An open
loop sends ``--rate`` requests/s for ``--duration`` s: users are drawn Zipf-like over their activity rank (the most
active users ask most often, as the warm set assumes), and a share (``--post-share``, 10%) of the requests are
``POST /interactions`` of such a user with a random item, which makes that user's next list a miss. Printed beside
the targets (p99 ≤ 100 ms, no errors): p50/p99 of reads, of writes and of all requests, errors, refusals, the cache
hit ratio and the mean time of each stage (the API's /metrics, summed over workers), the CPU the API's processes
(with ``--api-workers N``, the supervisor and each worker: a socket each), Neo4j and the load generator used during
the loop, and the machine's busy, idle and stolen core seconds (/proc/stat: idle seconds beside a saturated API process
say that one interpreter, not the cores, is the bound; stolen ones that the hypervisor slowed the run down).

Each simulated user is a client of its own, as the API tells clients apart: its reads carry no API key (reads do not
need one) and come from an address of its own (``X-Forwarded-For``, which uvicorn takes from the local load
generator as from a trusted proxy: ``FORWARDED_ALLOW_IPS``), so the per-client budget of uncached work
(``KGREC_MISS_COST_RATE``) applies per user, as with real users, and a refusal measures overload. The posts are sent
with the API key, as the backend recording events would (the key is required for writes; writes have no such
budget). Each request has a connection of its own (distinct clients share no keep-alive pool), so a request never
meets a pooled connection that the server closed while it sat idle. ``--one-client`` sends every read with the key
through one pool of keep-alive connections instead: one client for the whole load, as before.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.common import OUT, private_server, remove_impressions, serve_api
from etl.load import load_stream
from etl.sources import read_mapping_dataset, shipped_mapping_path
from etl.world import WorldSummary, write_world
from gnn.serving import current_version
from graph.driver import create_driver
from graph.neo4j_local import launcher
from graph.reads import most_active_users
from graph.settings import Neo4jSettings
from graph.writers import read_graph_counts
from schema.model import Label

console = Console()


def world_settings(bolt_port: int, http_port: int) -> Neo4jSettings:
    """The realistic run's own Neo4j (``.kgrec/neo4j-world-bench``): 1.5 GB heap, 2.5 GB page cache (the machine's
    memory is shared with the API, the load generator and other work)."""
    return private_server("world-bench", bolt_port, http_port, heap="1500m", pagecache="2500m")


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (/proc; None when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_cpu() -> dict[str, float] | None:
    """The machine's CPU seconds so far, summed over its cores (/proc/stat's first line): ``busy`` (user, nice,
    system, irq, softirq), ``idle`` (idle and iowait) and ``steal`` (time the hypervisor gave this machine's virtual
    cores to others: a run with much of it ran slower than its CPU figures say). None when it cannot be read."""
    try:
        fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "busy": (user + nice + system + irq + softirq) / tick,
        "idle": (idle + iowait) / tick,
        "steal": steal / tick,
    }


def process_tree(pid: int | None) -> list[int]:
    """``pid`` and its descendants (``kgrec serve --workers N``: the supervisor and its worker processes), from
    /proc (the ones that cannot be read are left out)."""
    if pid is None:
        return []
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            children = [int(child) for child in task.read_text().split()]
        except (OSError, ValueError):
            continue
        for child in children:
            out.extend(process_tree(child))
    return out


def memory_mib(pid: int | None) -> dict[str, float]:
    """Resident memory of a process now (``rss``) and at its peak (``hwm``), in MiB (/proc; empty when unreadable)."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            for key, name in (("VmRSS:", "rss"), ("VmHWM:", "hwm")):
                if line.startswith(key):
                    out[name] = int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def largest_memory(pids: list[int]) -> dict[str, float]:
    """:func:`memory_mib` of the largest of ``pids`` by resident memory (with several API workers: a worker's)."""
    return max((memory_mib(pid) for pid in pids), key=lambda m: m.get("rss", 0.0), default={})


def plot_timeline(timeline: list[Timed], cpu: dict[str, list[float]], started_at: float, path: Path) -> None:
    """Every request's latency by when it was due, by kind (top), over the cores each process used (bottom): a stall
    shows as a column of slow requests, and the process that had the cores meanwhile under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6), sharex=True, height_ratios=(3, 2))
    for kind in KINDS:
        rows = [(due, 1000 * latency) for due, latency, k in timeline if k == kind]
        if rows:
            due, ms = zip(*rows, strict=True)
            top.scatter(due, ms, s=3, label=kind)
    top.set_yscale("log")
    top.axhline(100, color="grey", linewidth=0.8, linestyle="--")
    top.set_ylabel("latency ms (log)")
    top.legend(loc="upper right", markerscale=4)
    times = [t - started_at for t in cpu["t"]]
    every = (times[1] - times[0]) if len(times) > 1 else 1.0
    for name, values in cpu.items():
        if name not in ("t", "steal") and any(values):
            bottom.plot(times, [v / every for v in values], label=name, linewidth=1)
    bottom.set_ylabel("cores")
    bottom.set_xlabel("seconds into the run")
    bottom.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class CpuSampler:
    """CPU seconds used by each process of ``pids`` (name: pid) and by the machine, every ``every`` seconds while it
    runs (a thread): set against a run's slow seconds, they say which process had the cores then. ``timeline``:
    ``{"t": [wall clock], name: [CPU s in each interval], "busy"/"steal": [the machine's]}``."""

    def __init__(self, pids: dict[str, int | None], every: float = 0.25) -> None:
        self.pids, self.every = pids, every
        self.timeline: dict[str, list[float]] = {"t": [], **{name: [] for name in pids}, "busy": [], "steal": []}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _read(self) -> dict[str, float]:
        machine = machine_cpu() or {}
        now = {name: cpu_seconds(pid) or 0.0 for name, pid in self.pids.items()}
        return {**now, "busy": machine.get("busy", 0.0), "steal": machine.get("steal", 0.0)}

    def _run(self) -> None:
        last = self._read()
        while not self._stop.wait(self.every):
            now = self._read()
            self.timeline["t"].append(round(time.time(), 3))
            for name, value in now.items():
                self.timeline[name].append(round(value - last[name], 3))
            last = now

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def world_dir(args: argparse.Namespace) -> Path:
    return OUT / f"world-{args.world_users}-{args.world_items}-{args.world_interactions}"


def ensure_world(settings: Neo4jSettings, args: argparse.Namespace) -> tuple[WorldSummary, dict | None]:
    """Write the world's files unless present, and load them unless the graph holds the world already.

    Returns:
        The world's summary and the load's figures (None when nothing was loaded).
    """
    folder = world_dir(args)
    if (folder / "world.json").is_file():
        summary = WorldSummary(**json.loads((folder / "world.json").read_text(encoding="utf-8")))
    else:
        console.print(f"writing the world to {folder} …")
        summary = write_world(folder, args.world_users, args.world_items, args.world_interactions, seed=42)
        console.print(f"  {summary.interactions:,} interactions in {summary.seconds:.0f} s")
    with create_driver(settings) as driver:
        nodes, rels = read_graph_counts(driver)
        if nodes.get("User") == summary.users and rels.get("INTERACTED", 0) >= summary.interactions:
            return summary, None
        console.print(f"loading the world into {settings.uri} (kgrec load world) …")
        variables = {"world": str(folder.resolve())}
        report = load_stream(
            driver,
            lambda sink: read_mapping_dataset(shipped_mapping_path("world"), variables, sink=sink)[0],
            item_labels=[Label.MOVIE],
            replace=True,
            reject_dir=OUT / "rejects",
        )
        remove_impressions(settings)  # the lists of the graph replaced
    figures = {
        "seconds": report.seconds,
        "phases": {p.name: {"rows": p.rows, "seconds": p.seconds} for p in report.phases},
        "rejects": report.rejects,
    }
    console.print(f"  loaded in {report.seconds:.0f} s")
    return summary, figures


def client_address(rank: int) -> str:
    """The address the user of activity rank ``rank`` asks from (10.0.0.0/8, one per user)."""
    return f"10.{(rank >> 16) & 255}.{(rank >> 8) & 255}.{rank & 255}"


def zipf_cdf(n: int, exponent: float) -> np.ndarray:
    """The cumulative distribution over ranks 0..n-1 with P(rank r) ∝ (r + 1)^-exponent."""
    weights = 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64), exponent)
    cdf = np.cumsum(weights) / weights.sum()
    cdf[-1] = 1.0  # not a rounding error below it
    return cdf


#: The kinds of request of the realistic loop (:func:`request_kinds`).
KINDS = ("held", "first", "after post", "post")


def request_kinds(ranks: list[int], writes: list[bool], warm_users: int) -> list[str]:
    """Each request's kind, from the order of the requests alone: ``post``; a read of a user in the warm set (the
    ``warm_users`` most active) or read before, with no post of theirs since (``held``: the API should hold the
    answer); the first read of any other user (``first``); a read after a post of the user's (``after post``). Both
    of the last should be computed. Requests in flight at once, and answers that aged out of the cache, make a few
    reads differ from their kind."""
    held = set(range(warm_users))
    posted: set[int] = set()
    kinds = []
    for rank, write in zip(ranks, writes, strict=True):
        if write:
            kinds.append("post")
            posted.add(rank)
        elif rank in posted:
            kinds.append("after post")
            posted.discard(rank)
            held.add(rank)
        else:
            kinds.append("held" if rank in held else "first")
            held.add(rank)
    return kinds


#: A request of the realistic loop as :func:`kind_figures` and :func:`slowest` read it: when it was due (s after the
#: start), its latency (s) and its kind.
Timed = tuple[float, float, str]


def _worst(timeline: list[Timed], share: float) -> list[Timed]:
    """The slowest ``share`` of ``timeline`` (one request at least), by when they were due."""
    return sorted(sorted(timeline, key=lambda row: -row[1])[: max(1, int(len(timeline) * share))])


def kind_figures(timeline: list[Timed], share: float = 0.01) -> dict[str, dict[str, float]]:
    """Per kind of request (each of :data:`KINDS`): how many, p50 and p99 in ms, and how many are among the slowest
    ``share`` of all (:func:`slowest`'s)."""
    worst = Counter(kind for _, _, kind in _worst(timeline, share)) if timeline else Counter()
    by_kind: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _, latency, kind in timeline:
        by_kind[kind].append(1000 * latency)
    return {
        kind: {
            "requests": len(ms),
            "p50_ms": float(np.percentile(ms or [0.0], 50)),
            "p99_ms": float(np.percentile(ms or [0.0], 99)),
            "in_slowest": worst[kind],
        }
        for kind, ms in by_kind.items()
    }


def slowest(timeline: list[Timed], share: float = 0.01) -> dict:
    """The slowest ``share`` of the requests: each with when it was due (s after the start), its latency (ms) and
    kind, by time; how many distinct seconds of the run they fell in (a few: stalls; many: load); and the p99 of the
    requests due in each second of the run."""
    worst = _worst(timeline, share)
    per_second: dict[int, list[float]] = {}
    for due, latency, _ in timeline:
        per_second.setdefault(int(due), []).append(1000 * latency)
    return {
        "seconds": len({int(due) for due, _, _ in worst}),
        "requests": [[round(due, 3), round(1000 * latency, 1), kind] for due, latency, kind in worst],
        "p99_by_second": [round(float(np.percentile(per_second[s], 99)), 1) for s in sorted(per_second)],
    }


async def realistic_loop(
    port: int, key: str, users: list[str], items: list[str], args: argparse.Namespace, seed: int = 7
) -> dict:
    """The open loop: reads and posts at ``args.rate`` per second, latency from each request's scheduled time."""
    from bench.api_load import LeanClient, _figures

    rng = random.Random(seed)
    cdf = zipf_cdf(len(users), args.zipf)
    n = int(args.rate * args.duration)
    draws = np.minimum(np.searchsorted(cdf, np.random.default_rng(seed).random(n), side="right"), len(users) - 1)
    client = LeanClient(port, max_connections=512, headers={"X-API-Key": key})  # --one-client: every request
    keyed = {"X-API-Key": key}

    async def once(headers: dict[str, str], method: str, path: str, body: bytes = b"", check: bool = False) -> str:
        """One request on a connection of its own (module docstring): a client of its own never finds a pooled
        connection that the server closed while it sat idle; every tenth read's body is checked."""
        own = LeanClient(port, max_connections=1, check_every=1 if check else 0, headers=headers)
        try:
            return await own.send(method, path, body)
        finally:
            await own.close()

    out: dict[str, list[tuple[float, str]]] = {"read": [], "write": []}
    errors: dict[str, dict[str, int]] = {"read": {}, "write": {}}
    clock = [int(time.time())]
    # Each request's kind, in the order they are sent: a post, or a read the API should answer from its cache
    # ("held") or compute ("first" read of a user outside the warm set, or the first read "after post").
    writes, picked = [], []
    for _ in range(n):  # drawn in this order since the first runs: the same seed gives the same requests
        writes.append(rng.random() < args.post_share)
        picked.append(rng.choice(items) if writes[-1] else "")
    kinds = request_kinds([int(d) for d in draws], writes, args.warm_users)
    timeline: list[Timed] = []
    start = time.perf_counter() + 0.2
    started_at = time.time() + 0.2  # the loop's start on the wall clock: run.slowest's times count from it

    async def one(i: int) -> None:
        rank = int(draws[i])
        user = users[rank]
        write, item = writes[i], picked[i]
        scheduled = start + i / args.rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if write:
            clock[0] += 1
            body = json.dumps({"user_id": user, "item_id": item, "rating": 4.5, "timestamp": clock[0]}).encode()
            if args.one_client:
                outcome = await client.send("POST", "/interactions", body)
            else:
                outcome = await once(keyed, "POST", "/interactions", body)
            outcome = "200" if outcome in ("200", "201") else outcome
        else:
            path = f"/users/{user}/recommendations?k=20&explain=true"
            if args.one_client:
                outcome = await client.get(path)
            else:
                outcome = await once({"X-Forwarded-For": client_address(rank)}, "GET", path, check=i % 10 == 0)
        kind = "write" if write else "read"
        if outcome != "200":
            errors[kind][outcome] = errors[kind].get(outcome, 0) + 1
        latency = time.perf_counter() - scheduled
        out[kind].append((latency, outcome))
        timeline.append((scheduled - start, latency, kinds[i]))

    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - start
    await client.close()
    every = out["read"] + out["write"]
    merged: dict[str, int] = {}
    for kinds in errors.values():
        for k, v in kinds.items():
            merged[k] = merged.get(k, 0) + v
    return {
        "requests": n,
        "target_rate": args.rate,
        "achieved_rate": n / wall,
        "distinct_users": len({int(d) for d in draws}),
        "clients": 1 if args.one_client else len({int(d) for d in draws}) + 1,
        "all": _figures(every, merged),
        "read": {"requests": len(out["read"]), **_figures(out["read"], errors["read"])},
        "write": {"requests": len(out["write"]), **_figures(out["write"], errors["write"])},
        "kinds": kind_figures(timeline),
        "slowest": slowest(timeline),
        "timeline": timeline,  # drawn by plot_timeline, then dropped from the JSON
        "started_at": started_at,
    }


def run_realistic(args: argparse.Namespace, bolt_port: int, http_port: int, api_port: int, key: str) -> None:
    """(h): world, model, API, open loop; prints the tables and writes bench/out/api_realistic.json."""
    from bench.api_load import ARTIFACTS, ensure_model, hit_ratio, read_metrics, stage_means
    from bench.common import shut_down

    settings = world_settings(bolt_port, http_port)
    OUT.mkdir(parents=True, exist_ok=True)
    launcher.start(settings)
    api = None
    try:
        summary, load = ensure_world(settings, args)
        model = args.model or "none"
        artifacts = args.artifacts or ARTIFACTS
        if args.artifacts is not None and model != "none" and current_version(args.artifacts, model) is None:
            raise SystemExit(f"no promoted {model} under {args.artifacts} (<root>/{model}/current.json)")
        version = ensure_model(settings, model, artifacts)
        with create_driver(settings) as driver:
            users = most_active_users(driver, summary.users)
            records, _, _ = driver.execute_query("MATCH (i:Item) RETURN i.itemId AS id ORDER BY id")
            items = [r["id"] for r in records]
        ready_users = args.warm_users if args.warm_ready_users is None else min(args.warm_ready_users, args.warm_users)
        env = {
            "KGREC_ARTIFACTS_DIR": str(artifacts),
            "KGREC_SERVE_MODEL": model,
            "KGREC_API_KEY": key,
            "KGREC_CACHE_WARM_USERS": str(args.warm_users),
            "KGREC_CACHE_WARM_READY_USERS": str(ready_users),
            "FORWARDED_ALLOW_IPS": "127.0.0.1",  # the load generator is the users' proxy (module docstring)
        }
        started = time.perf_counter()
        api = serve_api(
            settings, api_port, env, "api_realistic_server.log", workers=args.api_workers, timeout=args.ready_timeout
        )
        ready_seconds = time.perf_counter() - started
        api_pids = process_tree(api.pid)  # with --api-workers N: the supervisor and its workers
        api_memory = {"ready": largest_memory(api_pids)}
        console.print(
            f"API ready in {ready_seconds:.0f} s (warm set: {args.warm_users} users, {ready_users} before /ready), "
            f"RSS {api_memory['ready'].get('rss', 0):,.0f} MiB"
        )
        before = read_metrics()
        neo4j_pid = launcher.status(settings).pid
        cpu_before = {pid: cpu_seconds(pid) for pid in [neo4j_pid, *api_pids]}
        machine_before, client_before = machine_cpu(), time.process_time()
        console.print(
            f"(h) realistic: {args.rate:.0f} requests/s for {args.duration:.0f} s, {100 * args.post_share:.0f}% "
            f"POST /interactions, users Zipf({args.zipf:g}) by activity …"
        )
        sampler = CpuSampler({"neo4j": neo4j_pid, **{f"api {n}": pid for n, pid in enumerate(api_pids)}})
        with sampler:
            run = asyncio.run(realistic_loop(api_port, key, users, items, args))
        run["cpu_timeline"] = sampler.timeline
        plot_timeline(run.pop("timeline"), sampler.timeline, run["started_at"], OUT / "api_realistic_timeline.png")
        cpu_after = {pid: cpu_seconds(pid) for pid in cpu_before}
        machine_after, run["client_cpu_s"] = machine_cpu(), time.process_time() - client_before
        run["machine_cpu_s"] = (
            None
            if machine_before is None or machine_after is None
            else {kind: machine_after[kind] - machine_before[kind] for kind in machine_after}
        )
        api_memory["after"] = largest_memory(api_pids)
        after = read_metrics()
        run["cache_hit_ratio"] = hit_ratio(before, after)
        run["cache_misses"] = after["cache"].get("miss", 0.0) - before["cache"].get("miss", 0.0)
        run["history_cache"] = {o: n - before["history"].get(o, 0.0) for o, n in after["history"].items()}
        # answers computed (not refused): every graph-path answer runs collaborative recall once, a model answer
        # scores once
        stage = "collaborative" if model == "none" else "model"
        run["computed"] = after["count"].get(stage, 0.0) - before["count"].get(stage, 0.0)
        used = {
            pid: None if cpu_before[pid] is None or cpu_after[pid] is None else cpu_after[pid] - cpu_before[pid]
            for pid in cpu_before
        }
        run["neo4j_cpu_s"] = used[neo4j_pid]
        # every API process's CPU (a worker's own figure: api_process_cpu_s, the supervisor first)
        run["api_process_cpu_s"] = [used[pid] for pid in api_pids]
        run["api_cpu_s"] = None if None in run["api_process_cpu_s"] else sum(run["api_process_cpu_s"])
        stages = stage_means(before, after)
    finally:
        shut_down(api, settings, args.keep_server)

    table = Table(
        title=f"(h) realistic workload: {summary.users:,} users, {summary.items:,} items, "
        f"{summary.interactions:,} interactions; model {model} {version or ''}",
        show_edge=False,
    )
    for col in ("requests", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "refused", "target"):
        table.add_column(col, justify="left" if col == "requests" else "right")
    for name in ("read", "write", "all"):
        fig = run[name]
        table.add_row(
            {"read": "GET recommendations k=20 explain", "write": "POST /interactions", "all": "all"}[name],
            str(fig.get("requests", run["requests"])),
            f"{fig['p50_ms']:.1f}",
            f"{fig['p90_ms']:.1f}",
            f"{fig['p99_ms']:.1f}",
            f"{fig['max_ms']:.0f}",
            str(sum(fig["errors"].values())) + (f" {fig['errors']}" if fig["errors"] else ""),
            str(sum(fig["refused"].values())) + (f" {fig['refused']}" if fig["refused"] else ""),
            "p99 ≤ 100, no errors" if name == "all" else "",
        )
    ratio = run["cache_hit_ratio"]
    table.caption = (
        f"achieved {run['achieved_rate']:.1f} req/s of {args.rate:.0f}; {run['distinct_users']:,} distinct users "
        f"({'one client' if args.one_client else 'a client each'}); "
        f"cache hits {'—' if ratio is None else f'{100 * ratio:.1f}%'}; API ready {ready_seconds:.0f} s after start"
    )
    computed = run["computed"]
    table.caption += f"; {computed:,.0f} answers computed"
    held = run["history_cache"]
    if held:
        table.caption += "; context reads by held history: " + ", ".join(f"{n:,.0f} {o}" for o, n in held.items())
    peak = api_memory.get("after", {}).get("hwm")
    if peak is not None:
        table.caption += f"; API peak RSS {peak:,.0f} MiB" + (" (the largest worker)" if args.api_workers > 1 else "")
    for name, label in (("neo4j_cpu_s", "Neo4j"), ("api_cpu_s", "API")):
        if run[name] is not None:
            per = f", {1000 * run[name] / computed:.1f} ms per computed answer" if computed else ""
            table.caption += f"; {label} CPU {run[name]:.1f} s during (h){per}"
    if len(run["api_process_cpu_s"]) > 1:
        each = ", ".join("?" if s is None else f"{s:.1f}" for s in run["api_process_cpu_s"])
        table.caption += f" (by process, the supervisor first: {each} s)"
    table.caption += f"; the load generator's CPU {run['client_cpu_s']:.1f} s"
    machine = run["machine_cpu_s"]
    if machine is not None:
        table.caption += (
            f"; the machine's cores: {machine['busy']:.1f} s busy, {machine['idle']:.1f} s idle, "
            f"{machine['steal']:.1f} s stolen by the hypervisor"
        )
    Console(width=max(console.width, 140)).print(table)  # nine columns: no wrapping
    kind_table = Table(
        title="by kind of request (the loop's own classification: held = should be a hit)", show_edge=False
    )
    for col in ("kind", "n", "p50 ms", "p99 ms", "among the slowest 1%"):
        kind_table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, fig in run["kinds"].items():
        kind_table.add_row(
            kind, str(fig["requests"]), f"{fig['p50_ms']:.1f}", f"{fig['p99_ms']:.1f}", str(fig["in_slowest"])
        )
    console.print(kind_table)
    worst = run["slowest"]
    console.print(
        f"the slowest 1% ({len(worst['requests'])} requests) fell in {worst['seconds']} distinct seconds of the run "
        "(their times are in the JSON: run.slowest)"
    )
    stage_table = Table(title="mean ms per call of each stage during (h) (/metrics)", show_edge=False)
    stage_table.add_column("stage")
    stage_table.add_column("ms", justify="right")
    for stage, ms in sorted(stages.items(), key=lambda kv: -kv[1]):
        stage_table.add_row(stage, f"{ms:.2f}")
    console.print(stage_table)
    path = OUT / "api_realistic.json"
    path.write_text(
        json.dumps(
            {
                "world": {k: v for k, v in summary.__dict__.items() if k != "community_genres"},
                "load": load,
                "model": model,
                "model_version": version,
                "warm_users": args.warm_users,
                "warm_ready_users": ready_users,
                "api_workers": args.api_workers,
                "ready_seconds": ready_seconds,
                "artifacts": str(args.artifacts) if args.artifacts else None,
                "api_memory_mib": api_memory,
                "run": run,
                "stage_ms": stages,
            },
            indent=2,
        )
    )
    console.print(
        f"figures written to {path}; every request and the CPU by process: {OUT / 'api_realistic_timeline.png'}"
    )
