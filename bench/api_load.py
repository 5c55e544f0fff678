"""API load benchmark: recommendations (k=20, with explanations) for random ml-latest-small users.

Everything runs on this machine: a private Neo4j (.kgrec/neo4j-bench, 27687 or KGREC_BENCH_BOLT_PORT), the
API (`kgrec serve` in a subprocess, on 28000 or KGREC_BENCH_API_PORT) and this load generator (a lean
keep-alive client, so that it takes little of the two cores from the server). After the API has warmed its answer cache (KGREC_CACHE_WARM_USERS), four runs:

(a) open loop: a fixed arrival rate (default 150 requests/s for 30 s); latency is counted from each
    request's *scheduled* time, so queueing inside the server or the client is not hidden;
(b) closed loop: 32 clients sending back to back (default 20 s): throughput;
(c) the same API restarted with the answer cache off, a few clients back to back: what a request costs
    when everything is computed (a user who just interacted, or a request with new filters);
(d) ingestion beside readers (bench/api_ingest.py): readers alone, then beside writers of
    ``POST /interactions/batch``, then beside writers of single ``POST /interactions``: events/s and the readers'
    p50/p99 (``--ingest-duration 0`` skips it, ``--only-ingest`` runs only it).

``--misses`` runs instead bench/api_misses.py: (e) every request a miss, (f) an open loop from the first second
/ready answers 200, (g) cost abuse beside normal traffic.

Every 200 must carry k items (one in ten bodies is parsed to check); the cache hit ratio, the mean time of
each stage per run (read from the API's /metrics) and the errors by kind are printed beside the figures.
bench/out/api_load.json keeps every request of (a) (scheduled time, latency) for bench/tail_events.py, which sets
the slow ones against the API's timeline (``KGREC_DEBUG_TIMELINE=true``) and Neo4j's ``logs/gc.log``.

    .venv/bin/python -m bench.api_load [--rate 150 --duration 30 --clients 32 --api-workers 1 --model blend]
                                       [--ingest-duration 20 --ingest-clients 4 --ingest-batch 500 --single-clients 20]
    .venv/bin/python -m bench.api_load --misses [--miss-clients 4 --miss-rate 100 --abusers 8 --abuse-compare]
    .venv/bin/python -m bench.api_load --impressions-compare 6 [--rate 150 --duration 30]
    .venv/bin/python -m bench.api_load --impressions-pool A.json B.json  # series of --impressions-compare, pooled
    .venv/bin/python -m bench.api_load --realistic [--rate 100 --duration 60 --world-interactions 5000000 --model none]
                                       [--model blend --artifacts DIR]  # serve a promoted version from DIR

``--impressions-compare ROUNDS`` runs instead bench/api_impressions.py: ROUNDS pairs of API starts with impressions
recorded and without, run (a) in each, and the pooled percentiles' ratios with bootstrap intervals over the rounds;
``--impressions-pool`` pools the rounds of several such series (their JSON files) into one comparison.

``--realistic`` runs instead bench/api_realistic.py: (h) the API on a synthetic world at real size (100k users, 50k
items), users drawn Zipf-like, 10% of requests ``POST /interactions``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import re
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from api.heap import time_collections
from bench.common import OUT, bench_settings, remove_impressions, require_dataset, serve_api, shut_down, stop_api
from etl.load import load_stream
from etl.sources import movielens_variables, read_mapping_dataset, shipped_mapping_path
from graph.driver import create_driver
from graph.neo4j_local import launcher
from graph.writers import read_graph_counts
from schema.model import Label

console = Console()
API_PORT = int(os.environ.get("KGREC_BENCH_API_PORT", "28000"))
#: The write key of the benchmark's API (its batches and single interactions need one).
BENCH_KEY = "kgrec-bench-write-key"


def ensure_movielens_loaded(settings) -> list[str]:  # noqa: ANN001
    """Load ml-latest-small with its knowledge unless the bench graph already holds exactly it."""
    with create_driver(settings) as driver:
        nodes, rels = read_graph_counts(driver)
        if nodes.get("User") != 610 or rels.get("INTERACTED") != 100_836 or not rels.get("ACTED_IN"):
            console.print("loading ml-latest-small (+ actors, HetRec) into the benchmark Neo4j …")
            ml = require_dataset("ml-latest-small")
            variables = movielens_variables(
                ml,
                require_dataset("ml-small-actors-tomasonjo") / "movies.csv",
                require_dataset("hetrec2011-movielens-2k"),
            )
            load_stream(
                driver,
                lambda sink: read_mapping_dataset(shipped_mapping_path("movielens"), variables, sink=sink)[0],
                item_labels=[Label.MOVIE],
                replace=True,
                reject_dir=OUT / "rejects",
            )
            remove_impressions(settings)  # the lists of the graph replaced
        records, _, _ = driver.execute_query("MATCH (u:User) RETURN u.userId AS id ORDER BY id")
    return [r["id"] for r in records]


ARTIFACTS = OUT / "api_load_artifacts"


def ensure_model(settings, model: str, root: Path = ARTIFACTS) -> str | None:  # noqa: ANN001
    """Make sure a ``model`` version is promoted under the artifacts root ``root`` (``kgrec retrain`` on the bench
    graph when there is none; a promoted version is served as it is, never retrained)."""
    if model == "none":
        return None
    from gnn.config import GnnSettings, resolve_config
    from gnn.jobs import retrain_job
    from gnn.serving import current_version

    gnn = GnnSettings(artifacts_dir=root, snapshots_dir=OUT / "api_load_snapshots")
    current = current_version(root, model)
    if current is None:
        console.print(f"training the {model} for the API (kgrec retrain --model {model}) …")
        started = time.perf_counter()
        config = resolve_config(model, gnn.train_config, {"device": "cpu"})
        report = retrain_job(settings, gnn, config, keep=2, publish=True)
        console.print(f"  retrain took {time.perf_counter() - started:.0f} s")
        current = report.artifact.path
    return current.name if current else None


def start_api(
    settings,  # noqa: ANN001
    workers: int,
    model: str = "none",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """The benchmark's API (the answer cache on, warmed), with ``env`` beside its own settings."""
    return serve_api(
        settings,
        API_PORT,
        {"KGREC_ARTIFACTS_DIR": str(ARTIFACTS), "KGREC_SERVE_MODEL": model, "KGREC_API_KEY": BENCH_KEY, **(env or {})},
        "api_load_server.log",
        workers=workers,
        timeout=300.0,  # /ready waits for the warm cache, which takes longer on a busy machine
    )


def wait_for_cache(workers: int, timeout: float) -> None:
    """Wait until every API worker has precomputed its answers after loading the model (KGREC_CACHE_WARM_USERS).

    Each worker keeps its own cache and logs ``answer cache warmed for N users`` when done; /metrics shows only
    the worker that happens to answer, so the server's log is what tells that all of them are ready.
    """
    started = time.time()
    log = OUT / "api_load_server.log"
    done: list[str] = []
    while time.time() - started < timeout:
        done = re.findall(r"answer cache warmed for (\d+) users", log.read_text(encoding="utf-8", errors="replace"))
        if len(done) >= workers:
            break
        time.sleep(1)
    console.print(
        f"answer cache: {len(done)} of {workers} worker(s) warmed ({', '.join(done) or 'none'} users) "
        f"in {time.time() - started:.0f} s"
    )


def _url(user: str) -> str:
    return f"/users/{user}/recommendations?k=20&explain=true"


class LeanClient:
    """A minimal HTTP/1.1 keep-alive client for the load loops.

    The load generator shares the two cores with the API and Neo4j, so it must cost little per request:
    httpx's async client spends about 1 ms of CPU on each, this about a tenth of that. It sends ``GET`` and
    reads a ``Content-Length`` body (what the API sends); connections are reused through an idle pool.
    Every ``check_every``-th 200 body is parsed and must hold the ``k`` items asked for, at least 80% of
    them with an explanation path, so a fast wrong answer counts as an error.

    Like any HTTP client, it does not reuse a connection the server has closed or is about to close: uvicorn closes
    a keep-alive connection idle for 5 s (``timeout_keep_alive``), so an idle connection is dropped from the pool
    when its read side has seen the server's close or when it has been idle ``keepalive_expiry`` seconds (default 4,
    below the server's 5). Before, the pool handed out connections the server had closed seconds earlier, and after a
    stall (when many connections were open at once and most then sat idle) the request and its one retry both met
    closed ones: the ``IncompleteReadError`` of every earlier run of this benchmark.
    """

    def __init__(
        self,
        port: int,
        max_connections: int,
        check_every: int = 10,
        k: int = 20,
        headers: dict[str, str] | None = None,
        keepalive_expiry: float = 4.0,
    ) -> None:
        self.port = port
        self.max_connections = max_connections
        self.check_every = check_every
        self.k = k
        self.keepalive_expiry = keepalive_expiry
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        #: Idle connections with the time each was released, oldest first (the most recent is reused first).
        self._idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = deque()
        self._open = 0
        self._freed = asyncio.Condition()
        self._sent = 0
        #: The checked bodies that failed the check: (path, items, items explained), to tell a wrong answer from a
        #: wrong check.
        self.bad: list[tuple[str, int, int]] = []
        #: Idle connections dropped before reuse (closed by the server, or idle past ``keepalive_expiry``), and
        #: requests sent again on a new connection after a reused one was found closed (the close raced the request).
        self.expired = 0
        self.retried = 0

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        self._open -= 1
        self.expired += 1

    async def _acquire(self, reuse: bool = True) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """A connection and whether it was reused from the idle pool (never, when not ``reuse``: a new one)."""
        async with self._freed:
            while True:
                now = time.perf_counter()
                while self._idle and now - self._idle[0][2] >= self.keepalive_expiry:  # the oldest first
                    self._drop(self._idle.popleft()[1])
                while reuse and self._idle:
                    reader, writer, _ = self._idle.pop()
                    if not reader.at_eof() and not writer.is_closing():
                        return (reader, writer), True
                    self._drop(writer)  # the server closed it meanwhile
                if self._open < self.max_connections:
                    self._open += 1
                    break
                if self._idle:  # a new connection asked for, the pool full of idle ones: close the oldest
                    self._drop(self._idle.popleft()[1])
                    continue
                await self._freed.wait()
        try:
            return await asyncio.open_connection("127.0.0.1", self.port), False
        except OSError:
            async with self._freed:
                self._open -= 1
                self._freed.notify()
            raise

    async def _release(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        async with self._freed:
            if conn is None:
                self._open -= 1
            else:
                self._idle.append((*conn, time.perf_counter()))
            self._freed.notify()

    async def get(self, path: str) -> str:
        """GET ``path``; returns ``"200"``, another status code, ``"bad body"`` or an exception's name (:meth:`send`)."""
        return await self.send("GET", path)

    async def send(self, method: str, path: str, body: bytes = b"") -> str:
        """``method`` ``path`` with a JSON ``body`` (none when empty); returns ``"200"``, another status code,
        ``"bad body"`` or an exception's name.

        Like any HTTP client, a request that finds its reused keep-alive connection closed by the server
        before a byte of the answer came back (the server's close crossed the request) is sent once more
        on a new connection; any other failure counts.
        """
        for attempt in range(2):
            conn = None
            reused = False
            try:
                conn, reused = await self._acquire(reuse=attempt == 0)
                reader, writer = conn
                content = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
                writer.write(
                    f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self._headers}{content}\r\n".encode() + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12].decode()
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if length is None:
                    raise ValueError("response without Content-Length")
                body = await reader.readexactly(int(length.group(1)))
                self._sent += 1
                if method == "GET" and status == "200" and self.check_every and self._sent % self.check_every == 0:
                    items = json.loads(body)["items"]
                    explained = sum(1 for item in items if item["explanations"])
                    if len(items) != self.k or explained < 0.8 * self.k:  # issue 3: at least 80% carry a path
                        status = "bad body"
                        self.bad.append((path, len(items), explained))
                await self._release(conn)
                return status
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                if conn is not None:
                    conn[1].close()
                    await self._release(None)
                stale = (
                    reused
                    and isinstance(exc, (asyncio.IncompleteReadError, ConnectionResetError))
                    and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial)
                )
                if attempt == 0 and stale:
                    self.retried += 1
                    continue
                return type(exc).__name__
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


Url = Callable[[random.Random], str]
#: Statuses of a refusal: the server's bound (503) or a client's budget (429); counted apart from errors.
REFUSALS = ("503", "429")


def _figures(latencies: list[tuple[float, str]], errors: dict[str, int]) -> dict:
    """Percentiles of every request (refusals included) and of the answered ones, and the refusals by status."""
    every = np.array([t for t, _ in latencies] or [0.0]) * 1000
    answered = np.array([t for t, outcome in latencies if outcome == "200"] or [0.0]) * 1000
    return {
        "errors": {kind: n for kind, n in errors.items() if kind not in REFUSALS},
        "refused": {kind: n for kind, n in errors.items() if kind in REFUSALS},
        "answered": sum(1 for _, outcome in latencies if outcome == "200"),
        "p50_ms": float(np.percentile(every, 50)),
        "p90_ms": float(np.percentile(every, 90)),
        "p99_ms": float(np.percentile(every, 99)),
        "max_ms": float(every.max()),
        "answered_p99_ms": float(np.percentile(answered, 99)),
    }


async def open_loop(
    users: list[str],
    rate: float,
    duration: float,
    seed: int = 1,
    url: Url | None = None,
    client: LeanClient | None = None,
) -> dict:
    """Requests at a fixed arrival rate; latency from each request's scheduled time (queueing is not hidden)."""
    rng = random.Random(seed)
    path = url or (lambda r: _url(r.choice(users)))
    n = int(rate * duration)
    latencies: list[tuple[float, str]] = []
    errors: dict[str, int] = {}
    client = client or LeanClient(API_PORT, max_connections=512)
    start = time.perf_counter() + 0.2
    wall_offset = time.time() - time.perf_counter()  # to give the slowest requests a wall-clock time (server logs)
    slowest: list[tuple[float, float]] = []
    # This client's own garbage collections stall the clock's reader: with the run's thousands of coroutines alive,
    # one took 5-73 ms (up to 1.2 s on a loaded machine) and met 12% of the slowest requests' stalls (bench/
    # tail_events.py). The collector is off for the run (its garbage is freed after it); any collection still made
    # is reported.
    collections: list[list[float]] = []
    untime = time_collections(lambda gen, at, ms, cpu, _: collections.append([round(at, 4), round(ms, 2), gen]))
    collecting = gc.isenabled()
    gc.disable()

    async def one(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        outcome = await client.get(path(rng))
        if outcome != "200":
            errors[outcome] = errors.get(outcome, 0) + 1
        latency = time.perf_counter() - scheduled
        latencies.append((latency, outcome))  # from the scheduled time
        slowest.append((latency, scheduled + wall_offset))

    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        untime()
        if collecting:
            gc.enable()
    wall = time.perf_counter() - start
    await client.close()
    return {
        "requests": n,
        "started_at": round(start + wall_offset, 3),
        "target_rate": rate,
        "achieved_rate": n / wall,
        **_figures(latencies, errors),
        "bad_bodies": client.bad[:20],
        # idle connections the client dropped before reuse (closed by the server or past keep-alive), requests retried
        "connections": {"expired": client.expired, "retried": client.retried},
        # the requests scheduled after the first second: without the start, when the client opens its connections
        "p99_after_1s_ms": float(
            np.percentile([1000 * t for t, at in slowest if at - wall_offset >= start + 1] or [0], 99)
        ),
        # the 1% slowest requests: [scheduled at (epoch seconds), latency ms], to set beside the server's logs
        "slowest": [[round(at, 3), round(1000 * t, 1)] for t, at in sorted(slowest, reverse=True)[: max(n // 100, 1)]],
        # every request, [scheduled at (epoch seconds), latency ms] in the order scheduled, and the client's own
        # collections [start (epoch seconds), ms, generation]: bench/tail_events.py sets them against the server's
        "timeline": sorted([round(at, 4), round(1000 * t, 2)] for t, at in slowest),
        "client_gc": collections,
    }


async def closed_loop(
    users: list[str],
    clients: int,
    duration: float,
    seed: int = 2,
    url: Url | None = None,
    client: LeanClient | None = None,
) -> dict:
    """``clients`` senders back to back for ``duration`` s: throughput (answered requests per second)."""
    rng = random.Random(seed)
    path = url or (lambda r: _url(r.choice(users)))
    latencies: list[tuple[float, str]] = []
    errors: dict[str, int] = {}
    client = client or LeanClient(API_PORT, max_connections=clients)
    stop = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            outcome = await client.get(path(rng))
            if outcome != "200":
                errors[outcome] = errors.get(outcome, 0) + 1
            latencies.append((time.perf_counter() - t, outcome))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - started
    await client.close()
    figures = _figures(latencies, errors)
    return {
        "clients": clients,
        "requests": len(latencies),
        "throughput_rps": figures["answered"] / wall,
        **figures,
        "bad_bodies": client.bad[:20],
        "connections": {"expired": client.expired, "retried": client.retried},
    }


_HIST = re.compile(r'^kgrec_recall_query_seconds_(sum|count)\{strategy="([^"]+)"\} ([0-9.e+-]+)$', re.M)
_CACHE = re.compile(r'^kgrec_response_cache_total\{outcome="(hit|miss)"\} ([0-9.e+-]+)$', re.M)
_HISTORY = re.compile(r'^kgrec_history_cache_total\{outcome="(hit|stale|miss)"\} ([0-9.e+-]+)$', re.M)
_EXPOSURE = re.compile(r'^kgrec_exposure_cache_total\{outcome="(hit|applied|stale|miss)"\} ([0-9.e+-]+)$', re.M)
_LISTS = re.compile(r"^kgrec_recommendation_lists_total\{[^}]*\} ([0-9.e+-]+)$", re.M)
_DROPPED = re.compile(r'^kgrec_impressions_dropped_total\{reason="([^"]+)"\} ([0-9.e+-]+)$', re.M)


def read_metrics() -> dict[str, dict[str, float]]:
    """Cumulative stage sums/counts, answer cache outcomes, held histories' outcomes (``history``: hit, stale,
    miss), held exposure rows' outcomes (``exposure``: hit, applied, stale, miss) and the impression recorder's lists
    (``impressions``: ``lists`` recorded, and dropped by reason) of the API (every worker's, summed: ``kgrec serve``
    counts them in one directory)."""
    text = httpx.get(f"http://127.0.0.1:{API_PORT}/metrics", timeout=10).text
    out: dict[str, dict[str, float]] = {
        "sum": {},
        "count": {},
        "cache": {},
        "history": {},
        "exposure": {},
        "impressions": {},
    }
    out["impressions"]["lists"] = sum(float(value) for value in _LISTS.findall(text))
    for reason, value in _DROPPED.findall(text):
        out["impressions"][f"dropped {reason}"] = float(value)
    for kind, strategy, value in _HIST.findall(text):
        out[kind][strategy] = float(value)
    for outcome, value in _CACHE.findall(text):
        out["cache"][outcome] = float(value)
    for outcome, value in _HISTORY.findall(text):
        out["history"][outcome] = float(value)
    for outcome, value in _EXPOSURE.findall(text):
        out["exposure"][outcome] = float(value)
    return out


def stage_means(before: dict, after: dict) -> dict[str, float]:
    """Mean ms per call of each stage between two :func:`read_metrics` snapshots."""
    means = {}
    for stage, total in after["sum"].items():
        calls = after["count"].get(stage, 0.0) - before["count"].get(stage, 0.0)
        if calls > 0:
            means[stage] = 1000 * (total - before["sum"].get(stage, 0.0)) / calls
    return means


def hit_ratio(before: dict, after: dict) -> float | None:
    hits = after["cache"].get("hit", 0.0) - before["cache"].get("hit", 0.0)
    misses = after["cache"].get("miss", 0.0) - before["cache"].get("miss", 0.0)
    return hits / (hits + misses) if hits + misses else None


def _cpu_seconds(api_pid: int, neo4j_pidfile: Path) -> dict[str, float]:
    """CPU seconds (user + system) used so far by the API process and the benchmark's Neo4j (Linux /proc; a process
    whose figure cannot be read is left out)."""
    out: dict[str, float] = {}
    pids = {"api": str(api_pid)}
    with contextlib.suppress(OSError):
        pids["neo4j"] = neo4j_pidfile.read_text().strip()
    for name, pid in pids.items():
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _errors(run: dict) -> str:
    errors = {**run["errors"], **run.get("refused", {})}
    if isinstance(errors, dict):
        return ", ".join(f"{n} {kind}" for kind, n in errors.items()) or "0"
    return str(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="open-loop arrival rate (requests/s) [default: 150; 100 with --realistic]",
    )
    parser.add_argument("--duration", type=float, default=30.0, help="open-loop duration (s)")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop concurrent clients")
    parser.add_argument("--saturation-duration", type=float, default=20.0, help="closed-loop duration (s)")
    parser.add_argument(
        "--miss-clients",
        type=int,
        default=4,
        help="clients of run (c), every answer computed (answer cache off); 0 skips it",
    )
    parser.add_argument("--miss-duration", type=float, default=15.0, help="duration of run (c) (s)")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--ingest-duration", type=float, default=20.0, help="length of each run of (d) (s); 0 skips")
    parser.add_argument("--ingest-clients", type=int, default=4, help="(d): writers of POST /interactions/batch")
    parser.add_argument("--ingest-batch", type=int, default=500, help="(d): events per batch")
    parser.add_argument("--single-clients", type=int, default=20, help="(d): writers of single POST /interactions")
    parser.add_argument("--ingest-readers", type=int, default=8, help="(d): readers beside the writers")
    parser.add_argument("--only-ingest", action="store_true", help="run (d) only, not (a), (b), (c)")
    parser.add_argument(
        "--misses",
        action="store_true",
        help="run only bench/api_misses.py's (e) misses, (f) cold start, (g) cost abuse (uses --rate, --duration, "
        "--miss-clients, --miss-duration)",
    )
    parser.add_argument("--miss-rate", type=float, default=100.0, help="(e): open-loop rate of misses (requests/s)")
    parser.add_argument("--abusers", type=int, default=8, help="(g): anonymous clients asking k=100, random filters")
    parser.add_argument("--normal-rate", type=float, default=50.0, help="(g): open-loop rate of normal traffic")
    parser.add_argument("--abuse-compare", action="store_true", help="(g): also run it with the cost budget off")
    parser.add_argument(
        "--impressions-compare",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="run only the comparison of the read path with impressions recorded and without (bench/"
        "api_impressions.py): ROUNDS pairs of API starts, each run (a) at --rate for --duration, pooled",
    )
    parser.add_argument(
        "--impressions-pool",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="pool the rounds of several --impressions-compare series (copies of bench/out/api_impressions.json) into "
        "one comparison; runs nothing",
    )
    parser.add_argument("--keep-server", action="store_true", help="leave the benchmark Neo4j running")
    parser.add_argument(
        "--model",
        default=None,
        choices=["blend", "lightgcn", "none"],
        help="model the API ranks with (none: graph recall sources only); trained if missing [default: blend; "
        "none with --realistic]",
    )
    realistic = parser.add_argument_group("(h) --realistic: a synthetic world at size (bench/api_realistic.py)")
    realistic.add_argument(
        "--realistic",
        action="store_true",
        help="run only (h): the API on a synthetic world of --world-* size (its own Neo4j, .kgrec/neo4j-world-bench, "
        "on the benchmark ports), an open loop of --rate requests/s for --duration s with --post-share writes",
    )
    realistic.add_argument("--world-users", type=int, default=100_000, help="(h): users of the world")
    realistic.add_argument("--world-items", type=int, default=50_000, help="(h): items of the world")
    realistic.add_argument("--world-interactions", type=int, default=5_000_000, help="(h): about how many interactions")
    realistic.add_argument("--post-share", type=float, default=0.1, help="(h): share of requests that are POSTs")
    realistic.add_argument("--zipf", type=float, default=1.0, help="(h): exponent of the users' request frequency")
    realistic.add_argument("--warm-users", type=int, default=1000, help="(h): KGREC_CACHE_WARM_USERS of the API")
    realistic.add_argument(
        "--warm-ready-users",
        type=int,
        default=None,
        help="(h): KGREC_CACHE_WARM_READY_USERS of the API, the warmed users /ready waits for before the loop starts "
        "(the rest are warmed during it) [default: all of --warm-users]",
    )
    realistic.add_argument(
        "--one-client",
        action="store_true",
        help="(h): send every read with the API key, i.e. as one client (default: each user a client of its own, "
        "by address, so the per-client budget of uncached work applies per user)",
    )
    realistic.add_argument("--ready-timeout", type=float, default=1800.0, help="(h): seconds to wait for /ready")
    realistic.add_argument(
        "--artifacts",
        type=Path,
        default=None,
        help="(h): the artifacts root the API serves from (KGREC_ARTIFACTS_DIR; a --model version promoted there is "
        "served as it is, e.g. one `kgrec retrain` fitted on the world) [default: bench/out/api_load_artifacts, "
        "where a missing model is trained]",
    )
    args = parser.parse_args()
    if args.impressions_pool:
        from bench.api_impressions import pool_series, report

        try:
            report(pool_series(args.impressions_pool), "api_impressions_pooled")
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"--impressions-pool: {exc}")
        return
    if args.realistic:
        from bench.api_realistic import run_realistic

        args.rate = args.rate or 100.0
        if not 0.0 <= args.post_share <= 1.0 or args.zipf < 0:
            parser.error("--post-share is a share (0 to 1) and --zipf is at least 0")
        run_realistic(
            args,
            int(os.environ.get("KGREC_BENCH_BOLT_PORT", "27687")),
            int(os.environ.get("KGREC_BENCH_HTTP_PORT", "27474")),
            API_PORT,
            BENCH_KEY,
        )
        return
    args.model = args.model or "blend"
    args.rate = args.rate or 150.0

    OUT.mkdir(parents=True, exist_ok=True)
    settings = bench_settings()
    launcher.start(settings)
    api = None
    runs: dict[str, dict] = {}
    stages: dict[str, dict[str, float]] = {}
    ingest: list[dict] = []
    try:
        users = ensure_movielens_loaded(settings)
        version = ensure_model(settings, args.model)
        if args.impressions_compare > 0:
            from bench.api_impressions import report, run_compare

            report(run_compare(settings, users, args))
            return
        if args.misses:
            from bench.api_misses import misses_table, run_misses

            misses, miss_stages = run_misses(settings, users, args)
            for table in misses_table(misses, miss_stages):
                Console(width=max(console.width, 140)).print(table)
            path = OUT / "api_misses.json"
            path.write_text(json.dumps({"model": args.model, "runs": misses, "stage_ms": miss_stages}, indent=2))
            console.print(f"figures written to {path}")
            return
        api = start_api(settings, args.api_workers, args.model)
        wait_for_cache(args.api_workers, timeout=300.0)
        console.print("warming up (10 s closed loop) …")
        asyncio.run(closed_loop(users, 8, 10.0, seed=99))
        if args.ingest_duration > 0:
            from bench.api_ingest import run_ingest

            ingest = run_ingest(settings, users, args)
        if not args.only_ingest:
            before = read_metrics()
            console.print(f"(a) open loop: {args.rate:.0f} requests/s for {args.duration:.0f} s …")
            cpu = _cpu_seconds(api.pid, settings.home / "run" / "neo4j.pid")
            runs["a"] = asyncio.run(open_loop(users, args.rate, args.duration))
            runs["a"]["cpu_s"] = {
                name: round(t - cpu[name], 2)
                for name, t in _cpu_seconds(api.pid, settings.home / "run" / "neo4j.pid").items()
                if name in cpu
            }
            console.print(f"(b) closed loop: {args.clients} clients for {args.saturation_duration:.0f} s …")
            runs["b"] = asyncio.run(closed_loop(users, args.clients, args.saturation_duration))
            after = read_metrics()
            stages["(a)+(b)"] = stage_means(before, after)
            runs["a"]["cache_hit_ratio"] = runs["b"]["cache_hit_ratio"] = hit_ratio(before, after)
        if args.miss_clients > 0 and not args.only_ingest:
            stop_api(api)
            api = serve_api(
                settings,
                API_PORT,
                {
                    "KGREC_ARTIFACTS_DIR": str(ARTIFACTS),
                    "KGREC_SERVE_MODEL": args.model,
                    "KGREC_RESPONSE_CACHE_SIZE": "0",
                    "KGREC_CACHE_WARM_USERS": "0",
                },
                "api_load_server_nocache.log",
                workers=args.api_workers,
                timeout=300.0,  # several workers each import torch and load the model: minutes on a busy machine
            )
            asyncio.run(closed_loop(users, 2, 5.0, seed=98))  # warm the JIT of Neo4j's query plans
            before = read_metrics()
            console.print(
                f"(c) every answer computed (cache off): {args.miss_clients} clients for {args.miss_duration:.0f} s …"
            )
            runs["c"] = asyncio.run(closed_loop(users, args.miss_clients, args.miss_duration, seed=3))
            stages["(c)"] = stage_means(before, read_metrics())
    finally:
        shut_down(api, settings, args.keep_server)

    table = Table(title="GET /users/{id}/recommendations?k=20&explain=true on ml-latest-small", show_edge=False)
    for col in ("run", "requests", "rate (req/s)", "p50 ms", "p90 ms", "p99 ms", "errors", "cache hits"):
        table.add_column(col, justify="left" if col == "run" else "right")
    labels = {
        "a": f"(a) fixed {args.rate:.0f}/s",
        "b": f"(b) {args.clients} clients",
        "c": f"(c) cache off, {args.miss_clients} clients",
    }
    for name, run in runs.items():
        rate = run.get("achieved_rate", run.get("throughput_rps", 0.0))
        ratio = run.get("cache_hit_ratio")
        table.add_row(
            labels[name],
            str(run["requests"]),
            f"{rate:.1f}",
            f"{run['p50_ms']:.1f}",
            f"{run['p90_ms']:.1f}" if "p90_ms" in run else "",
            f"{run['p99_ms']:.1f}",
            _errors(run),
            "off" if name == "c" else ("—" if ratio is None else f"{100 * ratio:.1f}%"),
        )
    table.caption = (
        f"model: {args.model} {version or ''}; API workers: {args.api_workers}; "
        "targets: (a) p50 ≤ 25 ms, p99 ≤ 100 ms, no errors; (b) ≥ 300 req/s"
    )
    if runs:
        console.print(table)
    for name, run in runs.items():
        if run.get("connections"):
            console.print(
                f"{labels[name]}: idle connections dropped before reuse {run['connections']['expired']}, "
                f"requests retried on a new connection {run['connections']['retried']}"
            )
        for path, items, explained in run.get("bad_bodies", []):  # which answers failed the body check, and how
            console.print(f"{labels[name]}: bad body {path}: {items} items, {explained} explained")
    stage_table = Table(title="mean ms per call of each stage (from /metrics of the answering worker)", show_edge=False)
    stage_table.add_column("stage")
    for run_name in stages:
        stage_table.add_column(run_name, justify="right")
    for stage in sorted(
        {s for m in stages.values() for s in m}, key=lambda x: -max(m.get(x, 0) for m in stages.values())
    ):
        stage_table.add_row(stage, *(f"{stages[r][stage]:.2f}" if stage in stages[r] else "" for r in stages))
    if stages:
        console.print(stage_table)
    if ingest:
        from bench.api_ingest import ingest_table

        Console(width=max(console.width, 110)).print(ingest_table(ingest, args))  # nine columns: no wrapping
    path = OUT / "api_load.json"
    path.write_text(
        json.dumps(
            {
                "model": args.model,
                "model_version": version,
                "api_workers": args.api_workers,
                "runs": runs,
                "stage_ms": stages,
                "ingest": ingest,
            },
            indent=2,
        )
    )
    console.print(f"figures written to {path}")


if __name__ == "__main__":
    main()
