"""The report of bench.scaling: per-size series, power-law fits of each phase, pause accounting, table and figure."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Phases of one size, in order (top level; ``fit`` is split further below).
PHASES = ("generate", "load", "export", "split", "fit", "promote", "publish")
FIT_PHASES = ("fit_components", "fit_ranker", "refit")


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> dict[str, float] | None:
    """Least-squares fit of ``y = a · x^b`` in log-log space over the points where both are positive and finite.

    Returns:
        ``{"b", "a", "r2", "points"}``, or None with fewer than two usable points or a single distinct x.
    """
    pairs = [
        (math.log(float(u)), math.log(float(v)))
        for u, v in zip(x, y, strict=True)
        if u is not None and v is not None and u > 0 and v > 0 and math.isfinite(u) and math.isfinite(v)
    ]
    if len(pairs) < 2:
        return None
    n = len(pairs)
    mx = sum(p[0] for p in pairs) / n
    my = sum(p[1] for p in pairs) / n
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    if sxx == 0:
        return None
    b = sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx
    intercept = my - b * mx
    ss_res = sum((p[1] - intercept - b * p[0]) ** 2 for p in pairs)
    ss_tot = sum((p[1] - my) ** 2 for p in pairs)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"b": b, "a": math.exp(intercept), "r2": r2, "points": n}


def first_pass(record: dict[str, Any], key: str = "seconds") -> dict[str, float]:
    """Seconds (``key``: wall ``seconds`` or ``cpu_seconds``) per blend component in its first call (the fit-edges
    pass; the refit pass is in ``refit``), the trial fits of the component search left out."""
    out: dict[str, float] = {}
    for call in record.get("calls", []):
        if "component_search" not in call.get("path", ()):
            out.setdefault(call["component"], call.get(key))
    return out


#: Rows of the table, in order: (name, where the figure comes from).
FIT_COMPONENTS = ("ease", "knowledge", "sequence", "als", "lightgcn", "cold_embeddings")
RANKER_PARTS = ("val_features", "ranker_weights")
#: The fit's parts timed as phases (their CPU seconds come from the calls; the wall ones from the artifact too).
SEARCH = "component_search"


def cpu_series(record: dict[str, Any]) -> dict[str, float | None]:
    """CPU seconds (user + system of the size's own process; Neo4j's are not in them) of every phase and
    component by the names of :func:`series` (None where not recorded: runs before calls had CPU seconds)."""
    phases = record.get("cpu_phases", {})
    calls = first_pass(record, "cpu_seconds")
    out: dict[str, float | None] = {k: phases.get(k) for k in PHASES[:4]}
    out["fit"] = phases.get("fit")
    out[" fit_components (fit edges)"] = calls.get("fit_components")
    out.update({f"   {k}": calls.get(k) for k in FIT_COMPONENTS})
    parts = [calls.get(k) for k in (*RANKER_PARTS, SEARCH)]
    out[" fit_ranker (validation)"] = sum(parts) if all(p is not None for p in parts) else None  # type: ignore[arg-type]
    out.update({f"   {k}": calls.get(k) for k in (*RANKER_PARTS, SEARCH)})
    out[" refit (every positive)"] = calls.get("refit")
    out.update({k: phases.get(k) for k in PHASES[5:]})
    out["retrain (export→publish)"] = record.get("retrain_cpu_seconds")
    out["total (generate→publish)"] = sum(phases[k] for k in PHASES) if all(k in phases for k in PHASES) else None
    return out


def series(record: dict[str, Any]) -> dict[str, float | None]:
    """Every timed quantity of one size by name (None when it did not run to its end).

    A size that failed still gives the phases and components it finished (e.g. load and export of a world
    whose fit ran out of memory), so those figures enter their power-law fits too.
    """
    phases = record.get("phases", {})
    fit_phases = record.get("fit_phases") or {}
    calls = first_pass(record)
    out: dict[str, float | None] = {k: phases.get(k) for k in PHASES[:4]}
    out["export"] = phases.get("export", calls.get("export"))
    out["fit"] = phases.get("fit")
    out[" fit_components (fit edges)"] = fit_phases.get("fit_components")
    out.update({f"   {k}": calls.get(k) for k in FIT_COMPONENTS})
    out[" fit_ranker (validation)"] = fit_phases.get("fit_ranker")
    out.update({f"   {k}": calls.get(k) for k in (*RANKER_PARTS, SEARCH)})
    out[" refit (every positive)"] = fit_phases.get("refit")
    out.update({k: phases.get(k) for k in PHASES[5:]})
    out["retrain (export→publish)"] = record.get("retrain_seconds")
    out["total (generate→publish)"] = sum(phases[k] for k in PHASES) if all(k in phases for k in PHASES) else None
    return out


def fit_power_law_of(results: list[dict[str, Any]], values: list[Any]) -> dict[str, float] | None:
    """``fit_power_law`` of one per-size series against the sizes' interactions (sizes without counts left out)."""
    pairs = [(r["counts"]["interactions"], v) for r, v in zip(results, values, strict=True) if r.get("counts")]
    return fit_power_law([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else None


def power_law_fits(results: list[dict[str, Any]]) -> dict[str, Any]:
    """``fit_power_law`` of every series against interactions, over the sizes that have the figure; peak RSS over
    the sizes that finished."""
    counted = [r for r in results if r.get("counts")]
    if not counted:
        return {}
    xs = [r["counts"]["interactions"] for r in counted]
    fits: dict[str, Any] = {}
    for name in series(counted[0]):
        fit = fit_power_law(xs, [series(r)[name] for r in counted])
        if fit:
            fits[name] = fit
    done = [r for r in counted if r.get("ok")]
    rss = fit_power_law([r["counts"]["interactions"] for r in done], [r.get("peak_rss_mb") for r in done])
    if rss:
        fits["peak_rss_mb"] = rss
    cpu: dict[str, Any] = {}
    for name in cpu_series(counted[0]):
        fit = fit_power_law(xs, [cpu_series(r)[name] for r in counted])
        if fit:
            cpu[name] = fit
    fits["cpu"] = cpu  # exponents of the CPU seconds (the curve on a shared machine)
    return fits


def pause_intervals(pid: int | None, log: Path = Path("/tmp/kgrec-team/pauses.log")) -> list[tuple[float, float]]:
    """(start, end) epoch seconds of the lead's SIGSTOP pauses that list ``pid`` (an open pause ends now)."""
    from datetime import datetime

    if pid is None or not log.is_file():
        return []
    intervals: list[tuple[float, float]] = []
    opened: float | None = None
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[1] != "PAUSE":
            continue
        try:
            moment = datetime.fromisoformat(parts[0].replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if parts[2] == "start":
            opened = moment if str(pid) in parts[3:] else None
        elif parts[2] == "end" and opened is not None:
            intervals.append((opened, moment))
            opened = None
    if opened is not None:
        intervals.append((opened, time.time()))
    return intervals


def subtract_pauses(record: dict[str, Any], log: Path = Path("/tmp/kgrec-team/pauses.log")) -> None:
    """Take the time this size's process spent paused out of every phase and call that spans it (in place).

    The raw figures stay under ``raw_phases`` / each call's ``raw_seconds``; ``paused_seconds`` says how much
    was taken out. Fit sub-phases (timed inside the blend) are corrected by the pauses inside their calls.
    """
    intervals = pause_intervals(record.get("pid"), log)
    if not intervals or record.get("paused_seconds") is not None:
        return

    def overlap(span: list[float]) -> float:
        return sum(max(0.0, min(span[1], b) - max(span[0], a)) for a, b in intervals)

    record["raw_phases"] = dict(record.get("phases", {}))
    paused: dict[str, float] = {}
    for name, span in record.get("spans", {}).items():
        if name in record["phases"] and overlap(span) > 0:
            paused[name] = overlap(span)
            record["phases"][name] -= paused[name]
    for call in record.get("calls", []):
        if call.get("span") and overlap(call["span"]) > 0:
            call["raw_seconds"] = call["seconds"]
            call["seconds"] -= overlap(call["span"])
    fit_paused = paused.get("fit", 0.0)
    if fit_paused and record.get("fit_phases"):  # split the fit's pauses by the calls they fell in
        calls = record.get("calls", [])
        first = {}
        for c in calls:
            first.setdefault(c["component"], c)
        lost = {c["component"]: c.get("raw_seconds", c["seconds"]) - c["seconds"] for c in first.values()}
        components = sum(lost.get(k, 0.0) for k in ("ease", "knowledge", "sequence", "als", "lightgcn"))
        ranker = sum(lost.get(k, 0.0) for k in ("val_features", "ranker_weights"))
        for key, taken in (
            ("fit_components", components),
            ("fit_ranker", ranker),
            ("refit", fit_paused - components - ranker),
        ):
            if record["fit_phases"].get(key) is not None and taken > 0:
                record["fit_phases"][key] -= taken
    total = sum(paused.values())
    if record.get("retrain_seconds") is not None:
        record["retrain_seconds"] -= sum(v for k, v in paused.items() if k not in ("generate", "load"))
    record["paused_seconds"] = total
    record["paused_by_phase"] = paused


def pauses_overlap(start: float, end: float) -> list[str]:
    """Lines of the lead's pause log that fall inside [start, end] (epoch seconds), if any."""
    log = Path("/tmp/kgrec-team/pauses.log")
    if not log.is_file():
        return []
    from datetime import datetime

    hits = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        for token in line.replace(",", " ").split():
            try:
                moment = datetime.fromisoformat(token.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
            if start <= moment <= end:
                hits.append(line.strip())
                break
    return hits


def plot(results: list[dict[str, Any]], fits: dict[str, Any], path: Path) -> None:
    """Log-log PNG of CPU seconds per phase against interactions (matplotlib's Agg canvas, no pyplot); wall
    seconds for a run without CPU seconds per component."""
    from matplotlib.figure import Figure

    results = sorted(results, key=lambda r: r["scale"])
    fig = Figure(figsize=(10, 6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    colours = colormaps["tab20"]
    use_cpu = any(v is not None for r in results for k, v in cpu_series(r).items() if k.startswith("   "))
    of, exponents = (cpu_series, fits.get("cpu", {})) if use_cpu else (series, fits)
    names = [n for n in of(results[0]) if n not in ("split", "promote", "   knowledge")]
    for k, name in enumerate(names):
        points = [(r["counts"]["interactions"], of(r)[name]) for r in results if r.get("counts") and of(r).get(name)]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        fit = exponents.get(name)
        label = name.strip() + (f" (b={fit['b']:.2f})" if fit else "")
        top = name in PHASES or name.startswith(("retrain", "total"))
        ax.plot(
            xs,
            ys,
            "-" if top else "--",
            marker="o",
            label=label,
            color=colours(k % 20),
            linewidth=2.2 if name.startswith(("retrain", "total")) else 1.2,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("interactions (INTERACTED edges)")
    ax.set_ylabel("CPU seconds (user + system of the retrain's process)" if use_cpu else "seconds (wall)")
    ax.set_title("kgrec retrain (blend) on synthetic worlds" + (", CPU seconds" if use_cpu else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, format="png")


def fmt(value: Any, digits: int = 1) -> str:  # noqa: ANN401
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_table(results: list[dict[str, Any]], fits: dict[str, Any]) -> None:
    results = sorted(results, key=lambda r: r["scale"])
    from rich.console import Console
    from rich.table import Table

    table = Table(title="kgrec retrain (blend) per synthetic world size — seconds, unless stated", show_edge=False)
    table.add_column("")
    for r in results:
        table.add_column(f"{r['scale']:g}×", justify="right")
    table.add_column("b (t ∝ E^b)", justify="right")

    def row(name: str, values: list[Any], fit: Any = None, digits: int = 1) -> None:  # noqa: ANN401
        table.add_row(name, *(fmt(v, digits) for v in values), f"{fit['b']:.2f}" if fit else "")

    for key in ("users", "items", "interactions", "knowledge_edges", "follows", "relationships"):
        row(key, [r.get("counts", {}).get(key) for r in results])
    row("items with positives (fit)", [r.get("dense", {}).get("ease_items_all") for r in results])
    row("EASE items (fit pass)", [r.get("dense", {}).get("ease_items") for r in results])
    row("EASE one items² f64, GB", [r.get("dense", {}).get("ease_matrix_gb") for r in results], digits=2)
    row("validation users (all)", [r.get("dense", {}).get("val_users_all") for r in results])
    row("validation users (ranker)", [r.get("dense", {}).get("val_users") for r in results])
    row("val features U·F·I f32, GB", [r.get("dense", {}).get("val_features_gb") for r in results], digits=2)
    row("wipe of the previous graph (not in load)", [r.get("wipe_seconds") for r in results])
    per = [series(r) for r in results]
    for name in per[0]:
        row(name, [p[name] for p in per], fits.get(name))
    cpu = [cpu_series(r) for r in results]
    for name in cpu[0]:
        if any(c[name] is not None for c in cpu):
            row(f"CPU s: {name.strip()}", [c[name] for c in cpu], fits.get("cpu", {}).get(name), digits=1)
    row("peak RSS, MiB", [r.get("peak_rss_mb") for r in results], fits.get("peak_rss_mb"), digits=0)
    row("retrain CPU seconds (user + system)", [r.get("retrain_cpu_seconds") for r in results], digits=0)
    row("validation NDCG@20", [r.get("validation_ndcg20") for r in results], digits=4)
    row("LightGCN epochs", [r.get("lightgcn_epochs") for r in results])
    row("load average (1 min) at start", [r.get("loadavg_start") for r in results], digits=2)
    row("outcome", [("ok" if r.get("ok") else f"FAILED in {r.get('running', '?')}") for r in results])
    Console(width=200).print(table)
    for r in results:
        if not r.get("ok"):
            failed = r.get("failed_call")
            after = f" after {failed['seconds']:.0f} s in it" if failed else ""
            Console(width=200, highlight=False).print(
                f"[red]{r['scale']:g}×[/] failed in phase {r.get('running', '?')}{after}: {r.get('error', '(killed)')}"
            )
