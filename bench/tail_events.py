"""Where the read path's tail is: the slow requests of bench.api_load's open loop (a) set against what ran meanwhile.

Each request of (a) is an interval, from its scheduled time to its answer (``timeline`` in bench/out/api_load.json);
the events are intervals too, from four timelines:

- ``impressions``: the API's impression write transactions (``KGREC_DEBUG_TIMELINE``, lines of the API's log);
- ``api gc N``: the API process's garbage collections of generation N (the same log);
- ``neo4j gc``, ``neo4j safepoint``: Neo4j's JVM collection pauses and its other stop-the-world pauses
  (``logs/gc.log`` of the benchmark's Neo4j, :func:`graph.neo4j_local.jvm.gc_log_option`);
- ``client gc``: the load generator's own collections (a stall of the clock's reader, not of the server).

A stall *meets* an event when the two intervals overlap, the event widened by ``--margin`` ms on each side. For each
kind of event: the share of the stalls (of the slowest 1% of requests after the first second) that meet one, against
what chance gives them: the same share with the kind's events shifted in time (``--shifts`` random offsets, wrapping
around the run's window: the same events and the same stalls, only no longer aligned; a stall lasts long, so it meets
more of any events than a fast request would); their ratio is the lift. A cause of the tail shows a
lift well above 1 and a large share of the slow requests; a bystander a lift near 1. Slow requests come in bursts (a
stall holds every request in flight), so they are counted as *stalls*: the slow requests' intervals merged where they
overlap.

    .venv/bin/python -m bench.tail_events [DIR ...] [--margin 2] [--slowest 0.01] [--shifts 200]

Each DIR holds a run's ``api_load.json``, ``api_load_server.log`` and ``gc.log`` (copies taken after the run; several
DIRs are pooled); without DIR, the last run's files (bench/out and the benchmark Neo4j's log).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.common import OUT, bench_settings

console = Console()

_API = re.compile(r"api\.timeline: (impressions|gc) (?:gen=(\d) )?start=([0-9.]+) ms=([0-9.]+) cpu_ms=([0-9.]+)")
_JVM_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)([+-]\d{4})\]")
_GC_PAUSE = re.compile(r"\[gc *\] GC\((\d+)\) Pause .* ([0-9.]+)ms$")
_GC_CPU = re.compile(r"\[gc,cpu *\] GC\((\d+)\) User=([0-9.]+)s Sys=([0-9.]+)s")
_SAFEPOINT = re.compile(r'\[safepoint *\] Safepoint "([^"]+)".* Total: (\d+) ns')

#: ``{kind: [(start, end, cpu_ms)]}``: start and end in epoch seconds, the CPU the event itself used (NaN: unknown).
Events = dict[str, list[tuple[float, float, float]]]


def api_events(text: str) -> Events:
    """The API's timeline lines (``KGREC_DEBUG_TIMELINE``)."""
    events: Events = {}
    for kind, gen, start, ms, cpu_ms in _API.findall(text):
        name = f"api gc {gen}" if kind == "gc" else kind
        events.setdefault(name, []).append((float(start), float(start) + float(ms) / 1000, float(cpu_ms)))
    return events


def jvm_events(text: str) -> Events:
    """The JVM's pauses from its ``gc.log`` (a line is written at a pause's end): collection pauses as ``neo4j gc``,
    the other stop-the-world operations as ``neo4j safepoint`` (a collection's own safepoint is its pause); a
    collection's CPU (its ``gc,cpu`` line: user + system time of the JVM's collector threads)."""
    events: Events = {}
    pauses: dict[str, tuple[float, float]] = {}
    cpu: dict[str, float] = {}
    for line in text.splitlines():
        when = _JVM_TIME.match(line)
        if when is None:
            continue
        end = datetime.strptime(when.group(1) + when.group(2), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        if pause := _GC_PAUSE.search(line):
            pauses[pause.group(1)] = (end - float(pause.group(2)) / 1000, end)
        elif used := _GC_CPU.search(line):
            cpu[used.group(1)] = 1000 * (float(used.group(2)) + float(used.group(3)))
        elif (safepoint := _SAFEPOINT.search(line)) and not safepoint.group(1).startswith("G1"):
            events.setdefault("neo4j safepoint", []).append((end - int(safepoint.group(2)) / 1e9, end, float("nan")))
    if pauses:
        events["neo4j gc"] = [(s, e, cpu.get(gc_id, float("nan"))) for gc_id, (s, e) in pauses.items()]
    return events


def stalls(requests: np.ndarray) -> np.ndarray:
    """Requests (rows ``[start, end]``) merged where they overlap: rows ``[start, end]`` in time order."""
    merged: list[list[float]] = []
    for start, end in sorted(requests.tolist()):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return np.array(merged).reshape(-1, 2)


def meets(requests: np.ndarray, events: list[tuple[float, float, float]], margin: float) -> np.ndarray:
    """Which requests (or stalls: rows ``[start, end]``, epoch seconds) overlap one of ``events`` widened by
    ``margin`` s."""
    if not events:
        return np.zeros(len(requests), dtype=bool)
    ordered = np.array(sorted(events))[:, :2]
    starts = ordered[:, 0] - margin
    latest_end = np.maximum.accumulate(ordered[:, 1]) + margin  # the latest end among the events begun so far
    last = np.searchsorted(starts, requests[:, 1], side="right") - 1  # the last event begun before the request ends
    return (last >= 0) & (latest_end[np.maximum(last, 0)] >= requests[:, 0])


def run_requests(run: dict) -> tuple[np.ndarray, np.ndarray]:
    """A run of (a)'s requests after its first second: ``[start, end]`` epoch seconds, and latencies in ms."""
    timeline = np.array(run["timeline"])
    timeline = timeline[timeline[:, 0] >= run["started_at"] + 1.0]
    return np.column_stack([timeline[:, 0], timeline[:, 0] + timeline[:, 1] / 1000]), timeline[:, 1]


def load_run(folder: Path | None) -> tuple[dict, Events]:
    """A run's (a) and its events: from a folder of copies, or (None) the last run's files."""
    if folder is None:
        paths = (OUT / "api_load.json", OUT / "api_load_server.log", bench_settings().home / "logs" / "gc.log")
    else:
        paths = (folder / "api_load.json", folder / "api_load_server.log", folder / "gc.log")
    run = json.loads(paths[0].read_text())["runs"]["a"]
    events = {"client gc": [(at, at + ms / 1000, float("nan")) for at, ms, _ in run.get("client_gc", [])]}
    for path, parse in ((paths[1], api_events), (paths[2], jvm_events)):
        if path.exists():
            events.update(parse(path.read_text(encoding="utf-8", errors="replace")))
    return run, events


def shifted(
    events: list[tuple[float, float, float]], offset: float, window: tuple[float, float]
) -> list[tuple[float, float, float]]:
    """``events`` moved ``offset`` s later, wrapping around ``window`` (each keeps its length)."""
    width = window[1] - window[0]
    starts = [window[0] + (s - window[0] + offset) % width for s, _, _ in events]
    return [(start, start + e - s, cpu) for start, (s, e, cpu) in zip(starts, events, strict=True)]


def tail_figures(
    runs: list[tuple[dict, Events]], margin_ms: float = 2.0, slowest: float = 0.01, shifts: int = 200, seed: int = 0
) -> list[dict]:
    """Per kind of event, pooled over ``runs``: how many fell in the runs' windows, their median and longest ms,
    how many of them a stall met (:func:`stalls` of each run's slowest ``slowest`` requests after its first second),
    the share of the stalls meeting one, and that share's mean over ``shifts`` random shifts of the events (chance);
    the CPU the events used (all of them in the windows, and the most one used), where the timeline gives it."""
    rng = np.random.default_rng(seed)
    kinds = sorted({kind for _, events in runs for kind in events})
    totals = {
        kind: {"events": 0, "ms": [], "cpu_ms": [], "events_met": 0, "met": 0, "chance_met": 0.0} for kind in kinds
    }
    stall_n = slow_n = 0
    for run, events in runs:
        requests, latency = run_requests(run)
        slow = latency >= np.quantile(latency, 1 - slowest)
        held = stalls(requests[slow])
        stall_n, slow_n = stall_n + len(held), slow_n + int(slow.sum())
        window = (requests[:, 0].min(), requests[:, 1].max())
        margin = margin_ms / 1000
        for kind in kinds:
            inside = [event for event in events.get(kind, []) if event[1] >= window[0] and event[0] <= window[1]]
            totals[kind]["events"] += len(inside)
            totals[kind]["ms"] += [1000 * (e - s) for s, e, _ in inside]
            totals[kind]["cpu_ms"] += [cpu for _, _, cpu in inside if not np.isnan(cpu)]
            totals[kind]["met"] += int(meets(held, inside, margin).sum())
            totals[kind]["events_met"] += sum(bool(meets(held, [event], margin).any()) for event in inside)
            offsets = rng.uniform(0, window[1] - window[0], shifts)
            totals[kind]["chance_met"] += float(
                np.mean([meets(held, shifted(inside, o, window), margin).sum() for o in offsets])
            )
    out = []
    for kind, t in totals.items():
        share, chance = t["met"] / max(stall_n, 1), t["chance_met"] / max(stall_n, 1)
        out.append(
            {
                "kind": kind,
                "events": t["events"],
                "events_met": t["events_met"],
                "median_ms": float(np.median(t["ms"])) if t["ms"] else 0.0,
                "max_ms": max(t["ms"], default=0.0),
                "cpu_ms": sum(t["cpu_ms"]) if t["cpu_ms"] else None,
                "max_cpu_ms": max(t["cpu_ms"], default=None),
                "slow_requests": slow_n,
                "stalls": stall_n,
                "share": share,
                "chance": chance,
                "lift": share / chance if chance else None,
            }
        )
    return out


def tail_table(figures: list[dict], title: str) -> Table:
    table = Table(title=title, show_edge=False)
    columns = ("event", "events", "met by a stall", "median ms", "max ms", "CPU ms: all, max", "stalls meeting one")
    columns = (*columns, "chance")
    for col in (*columns, "lift"):
        table.add_column(col, justify="left" if col == "event" else "right")
    for f in figures:
        table.add_row(
            f["kind"],
            str(f["events"]),
            str(f["events_met"]),
            f"{f['median_ms']:.2f}",
            f"{f['max_ms']:.1f}",
            "" if f["cpu_ms"] is None else f"{f['cpu_ms']:.0f}, {f['max_cpu_ms']:.1f}",
            f"{100 * f['share']:.0f}% of {f['stalls']}",
            f"{100 * f['chance']:.1f}%",
            "—" if f["lift"] is None else f"{f['lift']:.1f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, help="folders of a run's copies (pooled)")
    parser.add_argument("--margin", type=float, default=2.0, help="ms each event is widened by on each side")
    parser.add_argument("--slowest", type=float, default=0.01, help="share of each run's requests counted slow")
    parser.add_argument("--shifts", type=int, default=200, help="random shifts of each kind's events (chance)")
    args = parser.parse_args()
    runs = [load_run(folder) for folder in args.folders] or [load_run(None)]
    for folder, run in zip(args.folders or [None], runs, strict=True):
        requests, latency = run_requests(run[0])
        console.print(
            f"{folder or 'last run'}: {len(latency)} requests after the first second, p50 "
            f"{np.percentile(latency, 50):.2f} ms, p99 {np.percentile(latency, 99):.2f} ms"
        )
    title = f"the slowest {100 * args.slowest:g}% of (a) after 1 s against the events (±{args.margin:g} ms)"
    Console(width=max(console.width, 120)).print(
        tail_table(tail_figures(runs, args.margin, args.slowest, args.shifts), title)
    )


if __name__ == "__main__":
    main()
