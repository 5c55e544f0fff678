"""How ``kgrec retrain`` (the default model, the blend) scales with edges, on synthetic worlds of growing size.

For every size (a multiple of ml-latest-small's 100,836 interactions) a synthetic world (``etl.world``, what
``kgrec load world DIR --users --items --interactions --seed`` writes and loads: linear in the interactions, bounded
memory; under bench/out/scaling/world-*, deleted after its size) is generated and loaded into a private Neo4j
(.kgrec/neo4j-scaling, ports 25687/25474 or ``KGREC_SCALING_BOLT_PORT``/``KGREC_SCALING_HTTP_PORT``;
``--replace``), then ``gnn.jobs.retrain_job`` runs exactly as
``kgrec retrain`` runs it (model blend, CPU; artifacts and snapshots under bench/out/scaling/, never the
developer's). Phases timed: generate, load (without wiping the previous size's graph, shown apart), export,
split, fit (with the blend's own sub-phases: components fitted on the fit edges, ranker weights on validation,
components refitted on every positive, and each component — EASE^R, knowledge, sequence, ALS, LightGCN …),
promote (gate, save, prune) and publish (embeddings to Neo4j). Every phase is timed by listening to the phases
the job announces (:mod:`gnn.phases`; generate and load are announced here the same way), no module is patched.
Each size runs in its own process, so its peak RSS (``resource.getrusage``) is its own; the process gets an
address-space limit (``--memory-limit-gb``) so a size that does not fit fails with MemoryError in the phase
that explodes instead of waking the OOM killer on a shared machine, and a wall-time limit (``--timeout``).

Sizes: ``interactions = scale · 100,836``, ``users = scale · 1,000`` (about 100 interactions a user at every
size, Zipf-like; 100,000 users at 100×, ``kgrec load world``'s default) and ``items = 9,742 · scale^item_exponent``
(ml-latest-small's catalogue at 1×; catalogues grow slower than interactions — MovieLens from ml-latest-small to
ml-latest: 330× the ratings, 9× the movies, exponent ≈ 0.38; the default 0.36 gives 51,000 items at 100×, about
``kgrec load world``'s 50,000). CPU seconds of every phase are recorded beside its wall seconds (``cpu_phases``:
the process's own user + system time, comparable on a shared machine). Before fitting, the two dense structures of the blend are sized from
the split: EASE^R's ``items × items`` float64 Gram/inverse and the ranker's ``validation users × features ×
items`` float32 feature cube.

    nice -n 5 .venv/bin/python -m bench.scaling [--sizes 0.1,0.3,1,3,10] [--item-exponent 0.36]
                                                [--memory-limit-gb 12] [--timeout 1500] [--keep-going]
                                                [--existing 100=bolt://localhost:17600 --artifacts DIR]

A size given with ``--existing SCALE=URI`` is not generated nor loaded: its retrain runs against the world
already loaded in the Neo4j at URI (e.g. the 10M world of ``kgrec load world``, which takes about 15 minutes
to load; NEO4J_USER / NEO4J_PASSWORD or the local server's defaults), its counts read from the graph's count
store, its artifacts written to ``--artifacts`` and kept there (the benchmark's own server is not started when
every size is such a world). ``--from-json A.json B.json …`` merges the sizes of earlier runs (a later file's
size replaces an earlier one's) into one table, fits and figure.

Prints one column per size, the power-law exponent b of every phase (time ∝ interactions^b, least squares in
log-log over the sizes that finished), of wall seconds and of the process's CPU seconds (what the curve and the
figure use: on a shared machine wall seconds are mostly waiting), and writes bench/out/scaling.json and
bench/out/scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import OUT, ROOT, private_server
from bench.scaling_report import FIT_PHASES, pauses_overlap, plot, power_law_fits, print_table, subtract_pauses
from gnn.phases import PhaseEvent, listening, phase
from graph.settings import Neo4jSettings

ML_SMALL_INTERACTIONS = 100_836
ML_SMALL_ITEMS = 9_742
USERS_PER_SCALE = 1_000  # users of the 1× world (about 100 interactions each; 100,000 users at 100×)
ITEM_EXPONENT = 0.36
SEED = 42
KNOWLEDGE = ("IN_GENRE", "ACTED_IN", "DIRECTED", "HAS_TAG")
SCALING = OUT / "scaling"


def scaling_settings() -> Neo4jSettings:
    """The scaling benchmark's own server: .kgrec/neo4j-scaling on 25687/25474 (or KGREC_SCALING_BOLT_PORT and
    KGREC_SCALING_HTTP_PORT, so that two checkouts can run it side by side; heap 2g, page cache 1g, or
    KGREC_SCALING_HEAP and KGREC_SCALING_PAGECACHE)."""
    return private_server(
        "scaling",
        int(os.environ.get("KGREC_SCALING_BOLT_PORT", "25687")),
        int(os.environ.get("KGREC_SCALING_HTTP_PORT", "25474")),
        heap=os.environ.get("KGREC_SCALING_HEAP", "2g"),
        pagecache=os.environ.get("KGREC_SCALING_PAGECACHE", "1g"),
    )


def world_size(scale: float, item_exponent: float = ITEM_EXPONENT) -> tuple[int, int]:
    """``(users, items)`` of the synthetic world ``scale`` times ml-latest-small's interaction count."""
    users = max(4, round(scale * USERS_PER_SCALE))
    items = max(12, round(ML_SMALL_ITEMS * scale**item_exponent))
    return users, items


def world_interactions(scale: float) -> int:
    """About how many interactions the world of ``scale`` has (``etl.world.write_world``'s target)."""
    return max(1, round(scale * ML_SMALL_INTERACTIONS))


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far: on a shared machine the retrain's own work, which its wall
    time is not."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- one size, in its own process ----------------------------------------------------------------------


class Recorder:
    """Phase timings and peak RSS of one size, rewritten to ``path`` after every phase (a killed run keeps them).

    A listener of :mod:`gnn.phases` (``with listening(recorder):``): a top-level phase that ends is recorded
    under ``phases`` / ``spans`` / ``rss_after_mb``, a nested one (the blend's ``ease``, ``als``, ``lightgcn`` …)
    as one of ``calls``; ``running`` names the innermost phase under way, ``failed_call`` the innermost nested
    phase that failed; the end of ``split`` gives the ``dense`` sizes and the ``snapshot``'s.
    """

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        record.setdefault("phases", {})
        record.setdefault("rss_after_mb", {})
        record.setdefault("calls", [])
        record.setdefault("cpu_phases", {})
        self.cpu_started: dict[tuple[tuple[str, ...], str], float] = {}  # (path, name) -> CPU seconds at its start
        self.flush()

    def flush(self) -> None:
        self.path.write_text(json.dumps(self.record, indent=2))

    def phase(self, name: str, seconds: float, end: float | None = None) -> None:
        end = time.time() if end is None else end
        self.record["phases"][name] = seconds
        self.record.setdefault("spans", {})[name] = [end - seconds, end]  # epoch seconds (pause accounting)
        self.record["rss_after_mb"][name] = peak_rss_mb()
        self.flush()

    def running(self, name: str) -> None:
        self.record["running"] = name
        self.flush()

    def __call__(self, event: PhaseEvent) -> None:
        """Record one phase event (see the class docstring)."""
        key = (tuple(event.path), event.name)
        if event.kind == "start":
            self.cpu_started[key] = cpu_seconds()
            self.running(event.name)
            return
        cpu = cpu_seconds() - self.cpu_started.pop(key) if key in self.cpu_started else None
        if event.kind == "end" and event.name == "split" and "split" in event.data:
            snapshot = event.data["snapshot"]
            self.record["dense"] = dense_sizes(snapshot, event.data["split"])
            self.record["snapshot"] = {
                "users": snapshot.num_users,
                "items": snapshot.num_items,
                "interactions": snapshot.num_interactions,
            }
        if not event.path:  # generate, load, export, split, fit, promote, publish
            if event.kind == "end":  # a failed one stays ``running``
                if cpu is not None:  # this process's CPU seconds (Neo4j's are its own)
                    self.record["cpu_phases"][event.name] = cpu
                self.phase(event.name, event.seconds - event.data.get("wipe_seconds", 0.0))
            return
        if event.kind == "failed":  # how long it ran before it failed (not a phase time); the innermost counts
            self.record.setdefault(
                "failed_call", {"component": event.name, "seconds": event.seconds, "peak_rss_mb": peak_rss_mb()}
            )
        else:
            now = time.time()
            self.record["calls"].append(
                {
                    "component": event.name,
                    "seconds": event.seconds,
                    "cpu_seconds": cpu,
                    "peak_rss_mb": peak_rss_mb(),
                    "span": [now - event.seconds, now],
                    "path": list(event.path),
                }
            )
            self.record["running"] = event.path[-1]  # back in the enclosing phase
        self.flush()


def dense_sizes(snapshot: Any, split: Any) -> dict[str, float]:  # noqa: ANN401
    """Sizes of the blend's two dense structures for this split (its first, fit-edges pass), after the
    default caps (``RankerConfig.ease_max_items``, ``ease_max_solve``, ``ranker_max_users``, ``ranker_max_items``
    with ``ranker_candidates``); the uncapped sizes alongside."""
    import numpy as np

    from gnn.blend.config import FEATURES, RankerConfig

    config = RankerConfig()
    seen_all = int(np.unique(split.fit[1].numpy()).size)
    seen = seen_all if config.ease_max_items is None else min(seen_all, config.ease_max_items)
    if config.ease_max_solve is not None and min(snapshot.num_users, seen) > config.ease_max_solve:
        seen = config.ease_max_solve  # the solve bound (users and items both above it)
    val_all = int(split.validation().eval_users.numel())
    val_users = val_all if config.ranker_max_users is None else min(val_all, config.ranker_max_users)
    columns = snapshot.num_items
    if config.ranker_max_items is not None and columns > config.ranker_max_items:
        columns = min(columns, config.ranker_candidates)  # each user's candidates only
    return {
        "ease_items_all": seen_all,
        "ease_items": seen,
        "ease_matrix_gb": seen * seen * 8 / 1e9,  # one float64 items×items (Gram and its factor, then P = B)
        "val_users_all": val_all,
        "val_users": val_users,
        "val_columns": columns,
        "val_features_gb": val_users * len(FEATURES) * columns * 4 / 1e9,  # float32 [F, U, columns]
        "features": len(FEATURES),
    }


def run_size(
    users: int,
    items: int,
    interactions: int,
    seed: int,
    out: Path,
    memory_limit_gb: float,
    existing: str | None = None,
    artifacts: Path | None = None,
    keep_snapshot: bool = False,
) -> int:
    """Generate, load and retrain one world (or retrain the world already loaded at the URI ``existing``, its
    artifacts kept in ``artifacts``); write its record to ``out``. Returns the exit code."""
    if memory_limit_gb > 0:
        limit = int(memory_limit_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rec = Recorder(
        out,
        {
            "users_requested": users,
            "items_requested": items,
            "interactions_requested": interactions,
            "seed": seed,
            "memory_limit_gb": memory_limit_gb,
            "pid": os.getpid(),
            **({"existing": existing} if existing else {}),
        },
    )
    try:
        with listening(rec):
            if existing:
                return retrain_existing(rec, existing, artifacts)
            return retrain_size(rec, users, items, interactions, seed, keep_snapshot)
    except BaseException as exc:  # MemoryError, torch's allocator RuntimeError, a Neo4j error: record and exit
        rec.record["ok"] = False
        rec.record["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        rec.record["traceback"] = traceback.format_exc()[-3000:]
        rec.record["peak_rss_mb"] = peak_rss_mb()
        rec.flush()
        return 3


def retrain_size(
    rec: Recorder, users: int, items: int, interactions: int, seed: int, keep_snapshot: bool = False
) -> int:
    """Phases ``generate`` (``etl.world.write_world`` to CSV files) and ``load`` (``kgrec load world``'s mapping,
    ``--replace``) of one world, then ``gnn.jobs.retrain_job`` as ``kgrec retrain`` runs it (its phases reach
    ``rec`` as they end). Returns the exit code (0)."""
    from etl.load import load_stream
    from etl.settings import get_etl_settings
    from etl.sources import read_mapping_dataset, shipped_mapping_path
    from etl.world import write_world
    from graph.driver import create_driver
    from schema.model import Label

    settings = scaling_settings()
    folder = SCALING / f"world-{users}x{items}x{interactions}"
    shutil.rmtree(folder, ignore_errors=True)
    with phase("generate"):
        write_world(folder, users, items, interactions, seed)
    mapping = shipped_mapping_path("world")

    def produce(sink: Any) -> Any:  # noqa: ANN401 - etl's RowSink and Dataset
        return read_mapping_dataset(mapping, {"world": str(folder.resolve())}, sink=sink)[0]

    with phase("load") as data, create_driver(settings) as driver:
        report = load_stream(
            driver,
            produce,
            item_labels=[Label.MOVIE],
            database=settings.database,
            replace=True,
            batch_size=get_etl_settings().batch_size,
            reject_dir=SCALING / "rejects",
        )
        # --replace: the previous size's graph, shown apart (the recorder takes it out of the load)
        data["wipe_seconds"] = rec.record["wipe_seconds"] = sum(p.seconds for p in report.phases if p.name == "wipe")
    shutil.rmtree(folder, ignore_errors=True)
    record_counts(rec, report.nodes, report.relationships)

    artifacts = SCALING / f"artifacts-{users}x{items}"
    shutil.rmtree(artifacts, ignore_errors=True)  # every size is a first retrain (promoted by the gate)
    run_retrain(rec, settings, artifacts, SCALING / f"snapshots-{users}x{items}", keep_snapshot)
    shutil.rmtree(artifacts, ignore_errors=True)
    return 0


def record_counts(rec: Recorder, nodes: dict[str, int], rels: dict[str, int]) -> None:
    """The world's counts (nodes per label, relationships per type, ``*`` the totals) into the record."""
    rec.record["counts"] = {
        "users": nodes.get("User", 0),
        "items": nodes.get("Item", 0),
        "interactions": rels.get("INTERACTED", 0),
        "knowledge_edges": sum(rels.get(k, 0) for k in KNOWLEDGE),
        "follows": rels.get("FOLLOWS", 0),
        "relationships": rels.get("*", sum(rels.values())),
        "nodes": nodes.get("*", sum(nodes.values())),
    }
    rec.record["relationships"] = rels


def retrain_existing(rec: Recorder, uri: str, artifacts: Path | None) -> int:
    """The retrain of a world already loaded in the Neo4j at ``uri`` (no generate, no load; counts from the
    graph's count store); its artifacts go to ``artifacts`` (default: under bench/out/scaling/) and are kept.
    Returns the exit code (0)."""
    from graph.driver import create_driver
    from graph.writers import read_graph_counts

    settings = Neo4jSettings(uri=uri)
    with create_driver(settings) as driver:
        nodes, rels = read_graph_counts(driver, settings.database)
    record_counts(rec, nodes, rels)
    rec.record["users_requested"] = rec.record["counts"]["users"]
    rec.record["items_requested"] = rec.record["counts"]["items"]
    rec.record["interactions_requested"] = rec.record["counts"]["interactions"]
    folder = artifacts or SCALING / "artifacts-existing"
    run_retrain(rec, settings, folder, SCALING / "snapshots-existing", keep_snapshot=True)
    return 0


def run_retrain(
    rec: Recorder, settings: Neo4jSettings, artifacts: Path, snapshots: Path, keep_snapshot: bool = False
) -> None:
    """``gnn.jobs.retrain_job`` as ``kgrec retrain`` runs it (blend, CPU, bars off), artifacts in ``artifacts``, the
    snapshot in ``snapshots`` (deleted after unless ``keep_snapshot``: kept, e.g. for ``bench.blend_share`` on the
    same data; an existing world's always is); its phases reach ``rec`` as they end, its totals are recorded
    after."""
    from gnn.config import GnnSettings, resolve_config
    from gnn.jobs import retrain_job

    shutil.rmtree(snapshots, ignore_errors=True)  # every size saves its snapshot (no reuse)
    gnn_settings = GnnSettings(artifacts_dir=artifacts, snapshots_dir=snapshots)
    config = resolve_config("blend", gnn_settings.train_config, {"device": "cpu", "progress": False})  # bars off
    cpu = cpu_seconds()
    retrain = retrain_job(settings, gnn_settings, config, keep=2, publish=True)
    rec.record["retrain_cpu_seconds"] = cpu_seconds() - cpu
    rec.record["rss_after_mb"]["retrain"] = peak_rss_mb()
    rec.record["fit_phases"] = {k: retrain.artifact.timings.get(k) for k in FIT_PHASES}
    rec.record["retrain_seconds"] = retrain.seconds
    rec.record["validation_ndcg20"] = retrain.new_val
    rec.record["promoted"] = retrain.promoted
    rec.record["lightgcn_epochs"] = retrain.artifact.metrics.get("best_epoch")
    rec.record["artifact"] = str(retrain.artifact.path)
    rec.record["snapshot_dir"] = str(snapshots) if keep_snapshot else None
    rec.record["ok"] = True
    rec.record.pop("running", None)
    rec.flush()
    if not keep_snapshot:
        shutil.rmtree(snapshots, ignore_errors=True)


# --- the command: every size in its own process, the table, the fit, the figure --------------------------


def worker_command(
    users: int,
    items: int,
    interactions: int,
    seed: int,
    out: Path,
    memory_limit_gb: float,
    existing: str | None = None,
    artifacts: Path | None = None,
    keep_snapshot: bool = False,
) -> list[str]:
    """The command line of one size's own process (``--worker``), which writes its record to ``out``."""
    extra = ["--worker-existing", existing] if existing else []
    if existing and artifacts is not None:
        extra += ["--artifacts", str(artifacts)]
    if keep_snapshot:
        extra.append("--keep-snapshots")
    return [
        sys.executable,
        "-m",
        "bench.scaling",
        "--worker",
        str(users),
        str(items),
        str(interactions),
        str(seed),
        "--worker-out",
        str(out),
        "--memory-limit-gb",
        str(memory_limit_gb),
        *extra,
    ]


def parse_existing(values: list[str]) -> dict[float, str]:
    """``SCALE=URI`` pairs of ``--existing`` as {scale: uri}; SystemExit on a malformed one."""
    out: dict[float, str] = {}
    for value in values:
        scale, sep, uri = value.partition("=")
        try:
            if not sep or not uri.strip():
                raise ValueError(value)
            out[float(scale)] = uri.strip()
        except ValueError:
            raise SystemExit(f"--existing {value!r}: expected SCALE=URI, e.g. 100=bolt://localhost:7687") from None
    return out


def merge_runs(paths: list[Path]) -> dict[str, Any]:
    """The runs of several ``scaling.json`` files as one (each size once: a later file's replaces an earlier's)."""
    merged: dict[float, dict[str, Any]] = {}
    first: dict[str, Any] = {}
    for path in paths:
        run = json.loads(path.read_text())
        first = first or run
        for record in run["sizes"]:
            merged[float(record["scale"])] = record
    return {**first, "merged_from": [str(p) for p in paths], "sizes": [merged[k] for k in sorted(merged)]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        default="0.1,0.3,1,3,10",
        help="comma-separated multiples of ml-latest-small's 100,836 interactions (default %(default)s)",
    )
    parser.add_argument(
        "--item-exponent",
        type=float,
        default=ITEM_EXPONENT,
        help="items = 9,742 · scale^exponent (default %(default)s: 51,000 items at 100×; 1 grows items like "
        "interactions)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="synthetic world seed (default %(default)s)")
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=12.0,
        help="address-space limit of each size's process, GB (0: none; default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1500.0,
        help="wall seconds allowed per size before it is stopped (default %(default)s)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="after a size fails, still try the larger ones (default: stop there)"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed 0.01× world run first (it warms Neo4j's JVM and caches)",
    )
    parser.add_argument("--keep-server", action="store_true", help="leave the benchmark Neo4j running")
    parser.add_argument(
        "--existing",
        action="append",
        default=[],
        metavar="SCALE=URI",
        help="the size SCALE is the world already loaded in the Neo4j at URI (no generate, no load; e.g. "
        "100=bolt://localhost:7687 for a 10M world of `kgrec load world`); repeatable",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help="where the retrain of an --existing world writes its artifacts, kept (default: bench/out/scaling/)",
    )
    parser.add_argument(
        "--keep-snapshots",
        action="store_true",
        help="keep each size's snapshot (bench/out/scaling/snapshots-USERSxITEMS; an --existing world's is always "
        "kept, in snapshots-existing), e.g. for bench.blend_share",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="only print the table, fits and figure of earlier runs' JSON (e.g. bench/out/scaling.json); several "
        "are merged by size, and the result written to the first",
    )
    parser.add_argument(
        "--worker", nargs=4, type=int, metavar=("USERS", "ITEMS", "INTERACTIONS", "SEED"), help=argparse.SUPPRESS
    )
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-existing", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    SCALING.mkdir(parents=True, exist_ok=True)
    if args.worker:
        users, items, interactions, seed = args.worker
        code = run_size(
            users,
            items,
            interactions,
            seed,
            args.worker_out,
            args.memory_limit_gb,
            existing=args.worker_existing,
            artifacts=args.artifacts,
            keep_snapshot=args.keep_snapshots,
        )
        raise SystemExit(code)

    if args.from_json:
        earlier = merge_runs(args.from_json) if len(args.from_json) > 1 else json.loads(args.from_json[0].read_text())
        for record in earlier["sizes"]:
            subtract_pauses(record)
        fits = power_law_fits(earlier["sizes"])
        print_table(earlier["sizes"], fits)
        earlier["fits"] = fits
        args.from_json[0].write_text(json.dumps(earlier, indent=2))
        counted = [r for r in earlier["sizes"] if r.get("counts")]
        if counted:
            plot(counted, fits, args.from_json[0].with_suffix(".png"))
        return

    from graph.neo4j_local import launcher

    scales = [float(s) for s in args.sizes.split(",") if s.strip()]
    existing = parse_existing(args.existing)
    unknown = sorted(set(existing) - set(scales))
    if unknown:
        raise SystemExit(f"--existing names sizes not in --sizes: {', '.join(f'{s:g}' for s in unknown)}")
    settings = scaling_settings()
    own_server = any(scale not in existing for scale in scales)
    if own_server:
        launcher.start(settings)
    results: list[dict[str, Any]] = []
    try:
        if not args.no_warmup and own_server:
            users, items = world_size(0.01, args.item_exponent)
            print(f"warm-up (not reported): {users} users, {items} items …", flush=True)
            subprocess.run(
                worker_command(users, items, world_interactions(0.01), args.seed, SCALING / "warmup.json", 0),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        for scale in scales:
            users, items = world_size(scale, args.item_exponent)
            out = SCALING / f"size-{scale:g}.json"
            out.unlink(missing_ok=True)
            load_start = os.getloadavg()[0]
            world = f"the world at {existing[scale]}" if scale in existing else f"{users:,} users, {items:,} items"
            print(f"[{time.strftime('%H:%M:%S')}] {scale:g}×: {world} (load average {load_start:.2f}) …", flush=True)
            started = time.time()
            log = (SCALING / f"size-{scale:g}.log").open("wb")
            command = worker_command(
                users,
                items,
                world_interactions(scale),
                args.seed,
                out,
                args.memory_limit_gb,
                existing.get(scale),
                args.artifacts,
                args.keep_snapshots,
            )
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                code = proc.wait(timeout=args.timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                code = None
            log.close()
            record = json.loads(out.read_text()) if out.is_file() else {}
            record.update(
                scale=scale,
                exit_code=code,
                wall_seconds=time.time() - started,
                loadavg_start=load_start,
                loadavg_end=os.getloadavg()[0],
                pauses=pauses_overlap(started, time.time()),
            )
            subtract_pauses(record)
            if code is None:
                record["ok"] = False
                record["error"] = f"stopped after the {args.timeout:.0f} s timeout"
            record.setdefault(
                "peak_rss_mb",
                max(
                    [c["peak_rss_mb"] for c in record.get("calls", [])] + list(record.get("rss_after_mb", {}).values())
                    or [0.0]
                ),
            )
            results.append(record)
            verdict = "ok" if record.get("ok") else f"FAILED in {record.get('running', '?')}: {record.get('error')}"
            print(
                f"    {verdict}; {record['wall_seconds']:.0f} s wall, peak RSS {record['peak_rss_mb']:.0f} MiB, "
                f"load average {record['loadavg_end']:.2f}",
                flush=True,
            )
            if not record.get("ok") and not args.keep_going:
                break
    finally:
        if own_server and not args.keep_server:
            launcher.stop(settings)

    fits = power_law_fits(results)
    print_table(results, fits)
    payload = {
        "command": " ".join(["python -m bench.scaling", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "neo4j": {"heap": settings.heap, "pagecache": settings.pagecache, "bolt_port": settings.bolt_port},
        "item_exponent": args.item_exponent,
        "memory_limit_gb": args.memory_limit_gb,
        "timeout": args.timeout,
        "fits": fits,
        "sizes": results,
    }
    (OUT / "scaling.json").write_text(json.dumps(payload, indent=2))
    counted = [r for r in results if r.get("counts")]
    if counted:
        plot(counted, fits, OUT / "scaling.png")
    print(f"figures written to {OUT / 'scaling.json'}" + (f" and {OUT / 'scaling.png'}" if counted else ""))


if __name__ == "__main__":
    main()
