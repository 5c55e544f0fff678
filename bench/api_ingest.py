"""Ingestion beside readers, for ``bench.api_load``: events per second written and what the readers see meanwhile.

Three runs of the same length against the benchmark's API, each with the same readers (closed loop, recommendations
of random ml-latest-small users, as ``bench.api_load`` sends them):

* readers alone (the reference);
* ``POST /interactions/batch``: a few writers sending batches of events back to back;
* ``POST /interactions``: many writers sending one event per request back to back.

The events are interactions of users made for the run (``bench-ingest-…``) with random existing items, with
explicit timestamps; they are deleted afterwards so the benchmark graph stays ml-latest-small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import dataclass, field

import httpx
import numpy as np
from rich.table import Table

from bench.api_load import API_PORT, BENCH_KEY, LeanClient, _errors, _url, console
from graph.driver import create_driver
from graph.settings import Neo4jSettings
from graph.writers import delete_users, read_item_ids

USER_PREFIX = "bench-ingest-"
USERS_PER_WRITER = 200


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    events: int = 0
    rejected: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    if not latencies:
        return float("nan"), float("nan")
    lat = np.array(latencies) * 1000
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def _event(rng: random.Random, writer: int, items: list[str], clock: list[int]) -> dict:
    clock[0] += 1
    return {
        "user_id": f"{USER_PREFIX}{writer}-{rng.randrange(USERS_PER_WRITER)}",
        "item_id": rng.choice(items),
        "rating": rng.choice([1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0]),
        "timestamp": clock[0],
    }


async def _reader_loop(users: list[str], readers: int, stop: float, seed: int) -> _Tally:
    rng = random.Random(seed)
    tally = _Tally()
    client = LeanClient(API_PORT, max_connections=readers)

    async def worker() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            outcome = await client.get(_url(rng.choice(users)))
            if outcome != "200":
                tally.error(outcome)
            tally.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(readers)))
    await client.close()
    return tally


async def _writer_loop(
    mode: str, writers: int, batch: int, items: list[str], key: str, stop: float, seed: int
) -> _Tally:
    if mode == "single":
        return await _single_loop(writers, items, key, stop, seed)
    tally = _Tally()
    limits = httpx.Limits(max_connections=writers, max_keepalive_connections=writers)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{API_PORT}", headers={"X-API-Key": key}, timeout=120.0, limits=limits
    ) as client:

        async def worker(writer: int) -> None:
            rng = random.Random(seed * 1000 + writer)
            clock = [1_600_000_000 + writer * 10_000_000]
            while time.perf_counter() < stop:
                started = time.perf_counter()
                try:
                    if mode == "batch":
                        rows = [_event(rng, writer, items, clock) for _ in range(batch)]
                        response = await client.post("/interactions/batch", json=rows)
                        if response.status_code == 200:
                            body = response.json()
                            tally.events += body["created"] + body["updated"] + body["unchanged"]
                            tally.rejected += body["rejected"]
                    else:
                        response = await client.post("/interactions", json=_event(rng, writer, items, clock))
                        if response.status_code == 201:
                            tally.events += 1
                    if response.status_code not in (200, 201):
                        tally.error(str(response.status_code))
                except httpx.HTTPError as exc:
                    tally.error(type(exc).__name__)
                tally.latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker(w) for w in range(writers)))
    return tally


async def _single_loop(writers: int, items: list[str], key: str, stop: float, seed: int) -> _Tally:
    """``writers`` clients posting one event each to ``POST /interactions`` back to back, through the lean client
    the readers use: httpx's client cost the load generator about 2.8 ms of CPU a post, on the cores the API and
    Neo4j share, so the benchmark measured partly itself."""
    tally = _Tally()
    client = LeanClient(API_PORT, max_connections=writers, check_every=0, headers={"X-API-Key": key})

    async def worker(writer: int) -> None:
        rng = random.Random(seed * 1000 + writer)
        clock = [1_600_000_000 + writer * 10_000_000]
        while time.perf_counter() < stop:
            started = time.perf_counter()
            outcome = await client.send("POST", "/interactions", json.dumps(_event(rng, writer, items, clock)).encode())
            if outcome == "201":
                tally.events += 1
            else:
                tally.error(outcome)
            tally.latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(w) for w in range(writers)))
    await client.close()
    return tally


async def ingest_run(
    mode: str,
    users: list[str],
    items: list[str],
    key: str,
    *,
    writers: int,
    batch: int,
    readers: int,
    duration: float,
    seed: int,
) -> dict:
    """One run: ``readers`` beside ``writers`` in ``mode`` ("batch", "single" or "none") for ``duration`` s."""
    started = time.perf_counter()
    stop = started + duration
    read_task = _reader_loop(users, readers, stop, seed)
    if mode == "none":
        read = await read_task
        write = _Tally()
    else:
        read, write = await asyncio.gather(read_task, _writer_loop(mode, writers, batch, items, key, stop, seed))
    wall = time.perf_counter() - started
    read_p50, read_p99 = _percentiles(read.latencies)
    write_p50, write_p99 = _percentiles(write.latencies)
    return {
        "mode": mode,
        "writers": writers if mode != "none" else 0,
        "batch": batch if mode == "batch" else (1 if mode == "single" else 0),
        "seconds": wall,
        "write_requests": len(write.latencies),
        "events": write.events,
        "rejected_rows": write.rejected,
        "events_per_s": write.events / wall,
        "write_p50_ms": write_p50,
        "write_p99_ms": write_p99,
        "write_errors": write.errors,
        "readers": readers,
        "read_requests": len(read.latencies),
        "read_rps": len(read.latencies) / wall,
        "read_p50_ms": read_p50,
        "read_p99_ms": read_p99,
        "read_errors": read.errors,
    }


def ingested_users(writers: int) -> list[str]:
    """Every user id a run with ``writers`` writers may have created (to delete them afterwards)."""
    return [f"{USER_PREFIX}{w}-{u}" for w in range(writers) for u in range(USERS_PER_WRITER)]


def run_ingest(settings: Neo4jSettings, users: list[str], args: argparse.Namespace) -> list[dict]:
    """Run (d): readers alone, beside batch writers, beside single-event writers; delete the ingested users."""
    with create_driver(settings) as driver:
        items = sorted(read_item_ids(driver))
    common = {"readers": args.ingest_readers, "duration": args.ingest_duration}
    plan = [
        ("none", 0, 0),
        ("batch", args.ingest_clients, args.ingest_batch),
        ("single", args.single_clients, 1),
    ]
    results = []
    try:
        for seed, (mode, writers, batch) in enumerate(plan, start=10):
            console.print(
                f"(d) {args.ingest_readers} readers beside "
                + {"none": "no writer", "batch": f"{writers} writers of {batch}-event batches"}.get(
                    mode, f"{writers} writers of single events"
                )
                + f" for {args.ingest_duration:.0f} s …"
            )
            results.append(
                asyncio.run(
                    ingest_run(mode, users, items, BENCH_KEY, writers=writers, batch=batch, seed=seed, **common)
                )
            )
    finally:
        with create_driver(settings) as driver:
            delete_users(driver, ingested_users(max(args.ingest_clients, args.single_clients)))
    return results


def ingest_table(results: list[dict], args: argparse.Namespace) -> Table:
    """The table of (d): events/s of each way of writing beside the readers' throughput and latency."""
    table = Table(
        title=f"(d) ingestion beside {args.ingest_readers} readers (GET recommendations k=20), "
        f"{args.ingest_duration:.0f} s each",
        show_edge=False,
    )
    for col in ("writes", "events/s", "write p50", "write p99", "write err", "reads/s", "read p50", "read p99"):
        table.add_column(col, justify="left" if col == "writes" else "right")
    table.add_column("read err", justify="right")
    for run in results:
        label = {
            "none": "none",
            "batch": f"batch {run['writers']}×{run['batch']}",
            "single": f"single ×{run['writers']}",
        }
        writing = run["mode"] != "none"
        table.add_row(
            label[run["mode"]],
            f"{run['events_per_s']:.0f}" if writing else "",
            f"{run['write_p50_ms']:.0f}" if writing else "",
            f"{run['write_p99_ms']:.0f}" if writing else "",
            _errors({"errors": run["write_errors"]}) if writing else "",
            f"{run['read_rps']:.0f}",
            f"{run['read_p50_ms']:.1f}",
            f"{run['read_p99_ms']:.1f}",
            _errors({"errors": run["read_errors"]}),
        )
    table.caption = "ms per request; batch A×B: A clients sending B events per request; single ×A: A clients, one each"
    return table


__all__ = ["USER_PREFIX", "ingest_run", "ingest_table", "ingested_users", "run_ingest"]
