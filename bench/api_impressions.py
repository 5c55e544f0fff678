"""The read path with impressions recorded against without (``python -m bench.api_load --impressions-compare N``).

Recording what was shown must not slow the answers: the criterion is that the read path's latency with impressions
recorded stays within 10% of its latency with recording off. On a 2-core machine one run's p99 moves by ±20% from
run to run with nothing changed (docs/benchmarks.md §5), so one pair of runs cannot tell a 10% difference. This
benchmark runs ``N`` rounds, each a pair of API starts on the benchmark graph, one with ``KGREC_IMPRESSIONS=false``
and one with ``true`` (the order alternates from round to round, and both runs of a round send the same requests):
the answer cache warmed, a 10 s closed-loop warm-up, then the open loop of run (a) (``--rate`` requests/s for
``--duration`` s). Every request scheduled after a run's first second (before it, the client opens its connections)
counts. It prints, per round and pooled over the rounds, p50, p90, p99 and p99.9, and the ratio of recording on to
off at each with a 95% bootstrap interval over rounds (rounds drawn with replacement, both runs of a round together),
and the API process's CPU a request of the open loop in each run (/proc; with ``--api-workers`` above 1, the
supervisor's only), averaged over the rounds: what recording costs the API, a steadier figure on this machine than
the tail's latency.
The figures go to ``bench/out/api_impressions.json`` and a plot of the pooled latency quantiles to
``bench/out/api_impressions.png``; each run's files to ``bench/out/api_impressions/roundN_{off,on}``, which
``bench.tail_events`` reads (with ``KGREC_DEBUG_TIMELINE=true`` in the environment, the API's log holds its
collections and write transactions to set the slow requests against).

Run it alone: another job on the two cores moves the tail more than recording does.

Series taken at different times pool into one comparison (their rounds together, as if run in one command; the rate
and duration must match): ``python -m bench.api_load --impressions-pool A.json B.json`` (copies of
``bench/out/api_impressions.json``) prints the same table over every round and writes
``bench/out/api_impressions_pooled.json`` and ``.png``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.api_load import _cpu_seconds, closed_loop, hit_ratio, open_loop, read_metrics, start_api, wait_for_cache
from bench.common import OUT, stop_api
from bench.tail_events import run_requests

console = Console()

#: The two configurations, by name: the API's environment beside the benchmark's own.
CONFIGS = {"off": {"KGREC_IMPRESSIONS": "false"}, "on": {"KGREC_IMPRESSIONS": "true"}}
#: The percentiles compared.
QUANTILES = (50.0, 90.0, 99.0, 99.9)
#: The criterion: recording on at most this many times recording off.
TARGET_RATIO = 1.10


def keep_run(folder: Path, run: dict, logs: Sequence[Path]) -> None:
    """A run's files as ``bench.tail_events FOLDER`` reads them: its (a) (``api_load.json``) and copies of ``logs``
    that exist (the API's ``api_load_server.log``: with ``KGREC_DEBUG_TIMELINE=true`` in the environment, its
    collections and write transactions; Neo4j's ``gc.log``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "api_load.json").write_text(json.dumps({"runs": {"a": run}}), encoding="utf-8")
    for source in logs:
        if source.exists():
            shutil.copyfile(source, folder / source.name)


def pooled_ratio(
    off: Sequence[np.ndarray], on: Sequence[np.ndarray], q: float, draws: int = 2000, seed: int = 1
) -> tuple[float, float, float]:
    """The ratio of ``on``'s pooled ``q``-th percentile to ``off``'s (every round's latencies together), and its 95%
    bootstrap interval: rounds drawn with replacement, the two runs of a round drawn together.

    Args:
        off: Per round, the latencies with recording off.
        on: Per round, the latencies with recording on (as many rounds as ``off``).
        q: The percentile (0–100).
        draws: Bootstrap draws.
        seed: The draws' seed.

    Returns:
        (ratio, low, high).
    """
    if len(off) != len(on) or not off:
        raise ValueError("pooled_ratio needs as many rounds of each configuration, at least one")
    ratio = float(np.percentile(np.concatenate(on), q) / np.percentile(np.concatenate(off), q))
    rng = np.random.default_rng(seed)
    ratios = np.empty(draws)
    for n in range(draws):
        picked = rng.integers(0, len(off), len(off))
        ratios[n] = np.percentile(np.concatenate([on[i] for i in picked]), q) / np.percentile(
            np.concatenate([off[i] for i in picked]), q
        )
    low, high = np.percentile(ratios, [2.5, 97.5])
    return ratio, float(low), float(high)


def run_compare(settings, users: list[str], args) -> dict:  # noqa: ANN001
    """``args.impressions_compare`` rounds of the pair (module docstring); returns the figures, JSON-ready."""
    rounds: list[dict[str, dict]] = []
    pidfile = settings.home / "run" / "neo4j.pid"
    for r in range(args.impressions_compare):
        order = ("off", "on") if r % 2 == 0 else ("on", "off")
        figures: dict[str, dict] = {}
        for name in order:
            console.print(f"round {r + 1} of {args.impressions_compare}, recording {name}: starting the API …")
            api = start_api(settings, args.api_workers, args.model, CONFIGS[name])
            try:
                wait_for_cache(args.api_workers, timeout=300.0)
                asyncio.run(closed_loop(users, 8, 10.0, seed=99))
                before, cpu = read_metrics(), _cpu_seconds(api.pid, pidfile)
                run = asyncio.run(open_loop(users, args.rate, args.duration, seed=r + 1))
                used, after = _cpu_seconds(api.pid, pidfile), read_metrics()
            finally:
                stop_api(api)
            logs = (OUT / "api_load_server.log", settings.home / "logs" / "gc.log")
            keep_run(OUT / "api_impressions" / f"round{r + 1}_{name}", run, logs)
            latencies = run_requests(run)[1]  # the requests after the run's first second
            figures[name] = {
                "requests": len(latencies),
                "errors": run["errors"],
                "lists_recorded": after["impressions"].get("lists", 0.0) - before["impressions"].get("lists", 0.0),
                "cache_hit_ratio": hit_ratio(before, after),
                # CPU a request of the open loop (every request, the first second's too), by process
                **{f"{p}_cpu_ms": 1000 * (used[p] - cpu[p]) / run["requests"] for p in cpu if p in used},
                **{f"p{q:g}_ms": float(np.percentile(latencies, q)) for q in QUANTILES},
                "latencies_ms": [round(float(x), 2) for x in latencies],
            }
        rounds.append(figures)
    return summarise(rounds, args.rate, args.duration)


def summarise(rounds: list[dict[str, dict]], rate: float, duration: float) -> dict:
    """The comparison over ``rounds`` (each ``{"off": figures, "on": figures}``, as :func:`run_compare` records
    them): the pooled percentiles, their ratios on / off with intervals, and the API's CPU ratio (:func:`cpu_ratio`)."""
    off = [np.array(r["off"]["latencies_ms"]) for r in rounds]
    on = [np.array(r["on"]["latencies_ms"]) for r in rounds]
    pooled = {
        name: {f"p{q:g}_ms": float(np.percentile(np.concatenate(arrays), q)) for q in QUANTILES}
        for name, arrays in (("off", off), ("on", on))
    }
    ratios = {f"p{q:g}": pooled_ratio(off, on, q) for q in QUANTILES}
    return {
        "rate": rate,
        "duration": duration,
        "rounds": rounds,
        "pooled": pooled,
        "ratios": ratios,
        "cpu_ratio": cpu_ratio(rounds),
    }


def cpu_ratio(rounds: Sequence[dict[str, dict]], draws: int = 2000, seed: int = 1) -> tuple[float, float, float] | None:
    """The API's CPU a request with recording on over off (the means over the rounds), and its 95% bootstrap interval
    over rounds (both runs of a round drawn together); None when a round lacks the figure."""
    if not rounds or any("api_cpu_ms" not in r[name] for r in rounds for name in CONFIGS):
        return None
    off = np.array([r["off"]["api_cpu_ms"] for r in rounds])
    on = np.array([r["on"]["api_cpu_ms"] for r in rounds])
    picked = np.random.default_rng(seed).integers(0, len(rounds), (draws, len(rounds)))
    low, high = np.percentile(on[picked].mean(axis=1) / off[picked].mean(axis=1), [2.5, 97.5])
    return float(on.mean() / off.mean()), float(low), float(high)


def pool_series(paths: Sequence[Path]) -> dict:
    """The rounds of several series (``bench/out/api_impressions.json`` files) as one comparison (:func:`summarise`).

    Raises:
        ValueError: The series ran at different rates or durations, or a file holds no rounds.
    """
    series = [json.loads(Path(path).read_text(encoding="utf-8")) for path in paths]
    shapes = {(s["rate"], s["duration"]) for s in series}
    if len(shapes) != 1:
        raise ValueError(f"the series ran at different rates and durations (requests/s, s): {sorted(shapes)}")
    if any(not s["rounds"] for s in series):
        raise ValueError("a series holds no rounds")
    rate, duration = shapes.pop()
    return summarise([r for s in series for r in s["rounds"]], rate, duration)


def compare_table(result: dict) -> Table:
    """Per round and pooled: each configuration's percentiles, then the ratios with their intervals."""
    table = Table(
        title=f"GET /users/{{id}}/recommendations?k=20&explain=true, {result['rate']:.0f}/s for "
        f"{result['duration']:.0f} s: recording impressions off and on (ms, requests after the first second)",
        show_edge=False,
    )
    table.add_column("round")
    for name in CONFIGS:
        for q in QUANTILES:
            table.add_column(f"{name} p{q:g}", justify="right")
    for name in CONFIGS:
        table.add_column(f"{name} API CPU ms/req", justify="right")
    table.add_column("lists recorded", justify="right")
    table.add_column("errors", justify="right")
    for n, figures in enumerate(result["rounds"], start=1):
        errors = sum(sum(figures[name]["errors"].values()) for name in CONFIGS)
        table.add_row(
            str(n),
            *(f"{figures[name][f'p{q:g}_ms']:.2f}" for name in CONFIGS for q in QUANTILES),
            *(_cpu(figures[name].get("api_cpu_ms")) for name in CONFIGS),
            f"{figures['on']['lists_recorded']:.0f}",
            str(errors),
        )
    table.add_row(
        "pooled",
        *(f"{result['pooled'][name][f'p{q:g}_ms']:.2f}" for name in CONFIGS for q in QUANTILES),
        *(_cpu(mean_cpu(result, name)) for name in CONFIGS),
        "",
        "",
    )
    ratios = result["ratios"]
    table.caption = "on / off, pooled, [95% bootstrap interval over rounds]: " + "; ".join(
        f"p{q:g} {ratios[f'p{q:g}'][0]:.3f} [{ratios[f'p{q:g}'][1]:.3f}, {ratios[f'p{q:g}'][2]:.3f}]" for q in QUANTILES
    )
    cpu = result.get("cpu_ratio")
    if cpu:
        table.caption += f". The API's CPU a request, on / off: {cpu[0]:.3f} [{cpu[1]:.3f}, {cpu[2]:.3f}]"
    table.caption += f". Target: on within {100 * (TARGET_RATIO - 1):.0f}% of off (ratio ≤ {TARGET_RATIO:.2f})"
    return table


def _cpu(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def mean_cpu(result: dict, name: str) -> float | None:
    """The API's CPU a request of configuration ``name``, averaged over the rounds (None: not read)."""
    values = [r[name]["api_cpu_ms"] for r in result["rounds"] if "api_cpu_ms" in r[name]]
    return sum(values) / len(values) if values else None


def plot_compare(result: dict, path: str) -> None:
    """The pooled latency quantiles of both configurations (left) and each round's p99 (right), to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    levels = np.array([50, 80, 90, 95, 98, 99, 99.5, 99.8, 99.9])
    ticks = -np.log10(1 - levels / 100)  # the tail spread out: 90 → 1, 99 → 2, 99.9 → 3
    for name in CONFIGS:
        pooled = np.concatenate([np.array(r[name]["latencies_ms"]) for r in result["rounds"]])
        left.plot(ticks, np.percentile(pooled, levels), marker="o", label=f"recording {name}")
        right.plot(
            range(1, len(result["rounds"]) + 1),
            [r[name]["p99_ms"] for r in result["rounds"]],
            marker="o",
            label=f"recording {name}",
        )
    left.set_xticks(ticks, [f"p{q:g}" for q in levels], rotation=45)
    left.set_ylabel("ms")
    left.set_title("pooled over the rounds")
    right.set_xticks(range(1, len(result["rounds"]) + 1))
    right.set_xlabel("round")
    right.set_ylabel("p99 ms")
    right.set_title("each round's p99")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result: dict, name: str = "api_impressions") -> None:
    """Print the table and write the JSON and the plot under bench/out (``name``.json, ``name``.png)."""
    Console(width=max(console.width, 150)).print(compare_table(result))
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(result), encoding="utf-8")
    plot_compare(result, str(OUT / f"{name}.png"))
    console.print(f"{len(result['rounds'])} rounds: figures written to {path}, plot to {OUT / f'{name}.png'}")
