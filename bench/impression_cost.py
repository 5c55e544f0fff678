"""What recording a served list costs, per list and per aggregation window: the API's writer and Neo4j measured apart,
in either impression store (``--store``: the graph, or the SQLite file of ``KGREC_IMPRESSION_STORE=sqlite``).

Served lists are made up as the API records them (``api.impressions.ImpressionRecorder``): the benchmark graph's users
(ml-latest-small), each shown the same 20 items every time (a cached answer), or with ``--changed N`` N of them
replaced at random in each list (an answer recomputed, or rotation), users drawn at random. For each window
size (``--windows``: lists written together, i.e. ``KGREC_IMPRESSIONS_FLUSH_SECONDS`` × the rate of served lists; 300
is 2 s at 150 lists/s), ``--lists`` lists are queued and written window after window by the recorder's own flush in
this thread, in transactions of ``--batch`` lists; the CPU of this thread (``time.thread_time``: building the
transactions, the driver) and of the Neo4j JVM (``/proc/<pid>/stat``) over all of them, divided by the lists, is
printed beside the CPU of queueing them (``record``, in the request's thread: it sums each list into the window), the
stores and window sizes alternated for ``--rounds`` rounds. With the SQLite store the writer's CPU is SQLite's too
(it runs in the writer's thread). The lists are written for real (the bench graph grows by their ``Recommendation``
nodes and the users' exposure; the SQLite file, ``--db``, by its rows). Neo4j must be loaded: run ``bench.api_load
--keep-server`` once first.

The lists' ids are the API's (``--ids time``: UUIDs of version 7, :func:`api.impressions.new_recommendation_id`), or
random ones (``random``: 32 random hex digits, as UUIDs of version 4 were), or both alternated (``time,random``):
what the order of the ids costs the store's index on them grows with the lists the store holds, so measure it on a
file of the size in question (``--db .kgrec/neo4j-bench-impressions.sqlite3``, the file ``bench.api_load``'s runs
have filled, or a copy of it).

    .venv/bin/python -m bench.impression_cost [--windows 300,1500 --lists 3000 --batch N --rounds 2 --changed 0
                                               --store neo4j,sqlite --ids time --db .kgrec/bench-impressions.sqlite3]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from api.impressions import ImpressionRecorder, new_recommendation_id
from api.metrics import Metrics
from api.settings import ApiSettings
from bench.common import bench_settings
from bench.miss_cpu import cpu_seconds
from graph.driver import create_driver
from graph.impressions import STORES, open_impression_store

#: How the lists' ids are made (``--ids``): as the API makes them (ordered by time), or at random.
IDS = {"time": new_recommendation_id, "random": lambda: os.urandom(16).hex()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", default="300,1500", help="lists written together, comma-separated")
    parser.add_argument("--lists", type=int, default=3000, help="lists recorded per window size and round")
    parser.add_argument(
        "--batch", type=int, help="lists per transaction (KGREC_IMPRESSIONS_BATCH; default: the store's own)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the window sizes alternated in each")
    parser.add_argument("--changed", type=int, default=0, help="items of a user's 20 replaced at random in each list")
    parser.add_argument("--store", default="neo4j", help=f"impression stores, comma-separated, alternated: {STORES}")
    parser.add_argument("--db", type=Path, default=Path(".kgrec/bench-impressions.sqlite3"), help="the SQLite file")
    parser.add_argument("--ids", default="time", help=f"the lists' ids, comma-separated, alternated: {', '.join(IDS)}")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    kinds, id_kinds = args.store.split(","), args.ids.split(",")
    if not set(kinds) <= set(STORES):
        parser.error(f"--store: one or more of {', '.join(STORES)}")
    if not set(id_kinds) <= set(IDS):
        parser.error(f"--ids: one or more of {', '.join(IDS)}")
    settings = bench_settings()
    neo4j_pid = int((settings.home / "run" / "neo4j.pid").read_text().split()[0])
    driver = create_driver(settings)
    users = [r["id"] for r in driver.execute_query("MATCH (u:User) RETURN u.userId AS id ORDER BY id").records]
    items = [r["id"] for r in driver.execute_query("MATCH (i:Item) RETURN i.itemId AS id ORDER BY id").records]
    if not users or len(items) < 20:
        raise SystemExit("the benchmark graph is empty: run `python -m bench.api_load --keep-server` once first")
    rng = random.Random(7)
    answer = {u: rng.sample(items, 20) for u in users}
    recorders = {}
    for kind in kinds:
        store = open_impression_store(kind, driver, "neo4j", args.db)
        batch = args.batch or ApiSettings(api_key=None, impression_store=kind).impressions_batch_size()
        recorders[kind] = ImpressionRecorder(
            driver, "neo4j", Metrics(), capacity=10 * max(windows), batch=batch, every=3600, store=store
        )
        recorders[kind].prepare()
    figures: dict[tuple[str, int, str], list[tuple[float, float, float]]] = defaultdict(list)
    console = Console()
    order = [(kind, window, ids) for kind in kinds for window in windows for ids in id_kinds]
    for number in range(1, args.rounds + 1):
        for kind, window, ids in order if number % 2 else order[::-1]:  # alternated from round to round
            recorder, new_id = recorders[kind], IDS[ids]
            queueing = own = neo4j = 0.0
            done = 0
            while done < args.lists:
                for _ in range(window):
                    user, recommendation_id = rng.choice(users), new_id()
                    shown = answer[user]
                    if args.changed:  # distinct items: the kept ones, then others
                        kept = rng.sample(shown, 20 - args.changed)
                        shown = kept + [i for i in rng.sample(items, 2 * args.changed) if i not in kept][: args.changed]
                    before = time.thread_time()
                    recorder.record(recommendation_id, user, "default", "bench", shown)
                    queueing += time.thread_time() - before
                before, jvm = time.thread_time(), cpu_seconds(neo4j_pid)
                recorder.flush()
                own += time.thread_time() - before
                neo4j += cpu_seconds(neo4j_pid) - jvm
                done += window
            run = figures[kind, window, ids]
            run.append((1e6 * queueing / done, 1e6 * own / done, 1e3 * neo4j / done))
            console.print(
                f"round {number}, {kind}, window {window}, {ids} ids: {run[-1][0]:.1f} µs queueing, "
                f"{run[-1][1]:.0f} µs API writer, {run[-1][2]:.3f} ms Neo4j a list"
            )
    for recorder in recorders.values():
        recorder.store.close()
    driver.close()
    batches = ", ".join(f"{kind} {recorder.batch}" for kind, recorder in recorders.items())
    table = Table(title=f"CPU per recorded list ({args.lists} lists a round; lists a transaction: {batches})")
    for column in ("store", "lists a window", "ids", "queueing µs / list", "API writer µs / list", "Neo4j ms / list"):
        table.add_column(column, justify="right")
    for (kind, window, ids), runs in sorted(figures.items()):
        table.add_row(
            kind,
            str(window),
            ids,
            " / ".join(f"{q:.1f}" for q, _, _ in runs),
            " / ".join(f"{a:.0f}" for _, a, _ in runs),
            " / ".join(f"{n:.3f}" for _, _, n in runs),
        )
    console.print(table)


if __name__ == "__main__":
    main()
