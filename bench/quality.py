"""Quality benchmark: every model on one snapshot, one split, one table (the protocol of docs/evaluation.md).

The dataset is loaded into a private Neo4j (.kgrec/neo4j-quality, ports 26687/26474, or KGREC_QUALITY_BOLT_PORT /
KGREC_QUALITY_HTTP_PORT), exported once
(``graph.export``), turned into a snapshot and split per user (``gnn.evaluation``); every model — the
references (most-popular, item-kNN cosine, implicit ALS and BPR, EASE^R, PyG's LightGCN trained as its
example does) and ours (``gnn``'s LightGCN, the blend of :mod:`gnn.blend` and, on request, the inductive
GraphSAGE) — sees exactly that data. Hyper-parameters are chosen on the validation split by a coordinate search whose grids grow at an
edge until the best value is inside, then each model is retrained on all of train and measured once on
test. Reference models rank the items that appear in train; ours ranks every item in the graph. The blend
fits its ranker weights on validation itself (components on ``split.fit``, weights on ``split.val``) and is
refitted on train once; EASE^R's λ and ALS's factors, regularisation and alpha are chosen on validation by
the blend's own component search (``gnn.blend.search.search_components``), the rest are ``RankerConfig``'s defaults.

Cold-start slices of the test fold, per model: *short-history users* (test users with at most 5, and at most
10, train positives — users with fewer than 5 positives in all never reach test, so "1–5" starts at 4 in
practice), and *cold items* (targets restricted to test items without any train positive; users without such
an item are left out of that slice).

    .venv/bin/python -m bench.quality [--dataset ml-latest-small|lastfm] [--models ...] [--quick]
                                      [--with-graphsage] [--no-blend] [--skip-load] [--keep-server]
                                      [--snapshot bench/out/snapshot-ml-latest-small]

Prints the table, writes bench/out/quality-<dataset>.json and quality-<dataset>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from bench.baselines import SEED, THREADS, TORCH_THREADS, VAL_METRIC
from bench.common import OUT, private_server, require_dataset
from bench.measure import BLEND, RECALL_PREFIX, run_blend, run_model, run_recall_rows
from bench.models import model_specs
from bench.quality_recall import restore_pending
from bench.report import ModelResult, console, model_rows, print_slices, print_table, write_chart
from bench.search import ModelSpec, TrialCache
from bench.stats import paired_comparison
from gnn.data import GraphSnapshot, build_graph_snapshot
from gnn.evaluation import split_interactions
from graph.settings import Neo4jSettings


def quality_settings() -> Neo4jSettings:
    """The quality benchmark's own server: .kgrec/neo4j-quality on 26687/26474 (or KGREC_QUALITY_BOLT_PORT and
    KGREC_QUALITY_HTTP_PORT, so that two checkouts can run it side by side)."""
    return private_server(
        "quality",
        int(os.environ.get("KGREC_QUALITY_BOLT_PORT", "26687")),
        int(os.environ.get("KGREC_QUALITY_HTTP_PORT", "26474")),
        heap="2g",
        pagecache="512m",
    )


#: The datasets ``--dataset`` loads (and a ``--snapshot`` directory may be named after).
DATASETS = ("ml-latest-small", "lastfm")


def resolve_dataset(parser: argparse.ArgumentParser, dataset: str | None, snapshot: Path | None) -> str:
    """The dataset that names a run's outputs: ``--dataset``, else the one a ``--snapshot`` directory is named
    after (``snapshot-<dataset>``), else ml-latest-small; a ``--dataset`` contradicting the snapshot's name is
    an error (the table, JSON and saved blend would be filed under the wrong dataset)."""
    named = snapshot.name.removeprefix("snapshot-") if snapshot is not None else None
    named = named if named in DATASETS else None
    if dataset is not None and named is not None and dataset != named:
        parser.error(f"--dataset {dataset} with --snapshot {snapshot}, a snapshot of {named}")
    if dataset is None and snapshot is not None and named is None:
        parser.error(f"--snapshot {snapshot}: cannot tell its dataset from the name; give --dataset")
    return dataset or named or "ml-latest-small"


def removal_ledger(settings: Neo4jSettings) -> Path:
    """Where the recall rows park the test interactions they removed from ``settings``' graph."""
    return OUT / f"removed-interactions-{settings.home.name if settings.home else 'server'}.json"


def dataset_rows(dataset: str) -> Any:  # noqa: ANN401 - etl.dataset.Dataset (bench imports etl lazily)
    """The validated rows of a benchmark dataset as the product loads it: Last.fm, or MovieLens with its knowledge
    sources (actors and directors, HetRec tags; the split depends on interactions only, so references do not
    change)."""
    from etl.sources import lastfm_variables, movielens_variables, read_mapping_dataset, shipped_mapping_path

    if dataset == "lastfm":
        mapping, variables = "lastfm", lastfm_variables(require_dataset("hetrec2011-lastfm-2k"))
    else:
        mapping, variables = (
            "movielens",
            movielens_variables(
                require_dataset(dataset),
                require_dataset("ml-small-actors-tomasonjo") / "movies.csv",
                require_dataset("hetrec2011-movielens-2k"),
            ),
        )
    data, _ = read_mapping_dataset(shipped_mapping_path(mapping), variables)
    return data


def load_snapshot(
    driver: Any, settings: Neo4jSettings, dataset: str, skip_load: bool
) -> tuple[GraphSnapshot, dict[str, float]]:
    """Load the dataset into the running private server (unless told not to), export, build the snapshot.

    First puts back any test interactions an interrupted earlier run removed (bench.quality_recall).
    """
    from etl.load import load_dataset
    from graph.export import export_graph

    timings: dict[str, float] = {}
    restored = restore_pending(driver, settings.database, removal_ledger(settings))
    if restored:
        console.print(f"[yellow]restored {restored:,} interactions an interrupted run had removed[/]")
    if not skip_load:
        started = time.perf_counter()
        load_dataset(driver, dataset_rows(dataset), replace=True, reject_dir=OUT / "rejects")
        timings["load_seconds"] = time.perf_counter() - started
    export = export_graph(driver, settings.database)
    timings["export_seconds"] = export.seconds
    started = time.perf_counter()
    snapshot = build_graph_snapshot(export)
    timings["snapshot_seconds"] = time.perf_counter() - started
    return snapshot, timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dataset",
        choices=DATASETS,
        help="default: ml-latest-small, or with --snapshot the dataset its directory is named after "
        "(snapshot-<dataset>, as this benchmark saves it); names the outputs",
    )
    parser.add_argument("--models", nargs="*", help="subset of model names (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller grids")
    parser.add_argument(
        "--with-graphsage",
        action="store_true",
        help="also tune and measure gnn's GraphSAGE (slow: minutes per fit on CPU)",
    )
    parser.add_argument("--no-blend", action="store_true", help="leave out the kgrec blend (gnn.blend)")
    parser.add_argument(
        "--lean",
        action="store_true",
        help="hold a few axes instead of tuning them, for a large catalogue in bounded time "
        "(Last.fm): PyG LightGCN num_layers=2 (its example's), kgrec LightGCN lr_decay and num_layers "
        "at gnn.config's defaults (0.99, 3), GraphSAGE id_dropout=0.1; every other axis is searched as usual. "
        "Also runs the blend right after the references, then kgrec LightGCN, GraphSAGE and PyG LightGCN "
        "(the slowest fits last)",
    )
    parser.add_argument(
        "--no-recall",
        action="store_true",
        help="leave out the rows of the Cypher recall strategies (graph.recall.STRATEGIES)",
    )
    parser.add_argument("--skip-load", action="store_true", help="use the graph already in the quality server")
    parser.add_argument("--keep-server", action="store_true", help="leave the quality Neo4j running")
    parser.add_argument(
        "--snapshot", type=Path, help="use a saved snapshot directory (GraphSnapshot.save) instead of Neo4j"
    )
    parser.add_argument(
        "--blend-variant",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="also measure a blend variant: RankerConfig overrides as JSON, e.g. "
        "'nofresh={\"ranker_features\": [...]}' (repeatable)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="fit N trials of a search at once, each in its own process (default 1). The LightGCNs "
        "train on one thread each, so 2 keeps both cores busy; a grid at its edge then grows by "
        "N values at a time. Trial seconds are measured while the others run",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the validation trials recorded in bench/out/trials-<dataset>.jsonl (every "
        "finished trial is recorded there) for the same model, parameters, snapshot, split "
        "and code, so that a search stopped part-way goes on where it stopped",
    )
    args = parser.parse_args()
    args.dataset = resolve_dataset(parser, args.dataset, args.snapshot)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")

    from threadpoolctl import threadpool_limits

    from graph.neo4j_local import launcher

    torch.set_num_threads(TORCH_THREADS)
    started = time.perf_counter()
    recall_results: list[ModelResult] = []
    if args.snapshot is not None:
        snapshot = GraphSnapshot.load(args.snapshot)
        timings = {"export_seconds": 0.0, "snapshot_load_seconds": time.perf_counter() - started}
        console.print(f"snapshot read from {args.snapshot} (no Neo4j)")
    else:
        from graph.driver import create_driver

        settings = quality_settings()
        console.print(f"starting the quality Neo4j in {settings.home} …")
        launcher.start(settings)
        try:
            with create_driver(settings) as driver:
                snapshot, timings = load_snapshot(driver, settings, args.dataset, args.skip_load)
                timings["server_and_data_seconds"] = time.perf_counter() - started
                split = split_interactions(snapshot, seed=SEED)
                genres = snapshot.item_genre_matrix()
                if not args.no_recall and (not args.models or any(m.startswith(RECALL_PREFIX) for m in args.models)):
                    recall_results, recall_timings = run_recall_rows(
                        driver, settings.database, snapshot, split, genres, removal_ledger(settings)
                    )
                    timings.update(recall_timings)
        finally:
            if not args.keep_server:
                launcher.stop(settings)
    if args.snapshot is not None:
        split = split_interactions(snapshot, seed=SEED)
        genres = snapshot.item_genre_matrix()
        console.print("[yellow]no Neo4j (--snapshot): the Cypher recall rows are left out[/]")
    console.print(f"snapshot {snapshot.snapshot_id}: {snapshot.counts()} (export {timings['export_seconds']:.2f}s)")
    console.print(f"split: {split.describe()}")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.snapshot is None:
        snapshot.save(OUT / f"snapshot-{args.dataset}")

    specs = [
        s
        for s in model_specs(args.quick, snapshot, args.with_graphsage, args.lean)
        if not args.models or s.name in args.models
    ]
    partial_path = OUT / f"quality-{args.dataset}.partial.json"
    cache = TrialCache(
        OUT / f"trials-{args.dataset}.jsonl",
        {"snapshot_id": snapshot.snapshot_id, "split": split.describe(), "seed": SEED},
        args.resume,
    )

    def checkpoint() -> None:  # what is measured so far survives a run stopped before the end
        results[-1].info["loadavg_after"] = list(os.getloadavg())
        partial_path.write_text(
            json.dumps(
                {
                    "dataset": args.dataset,
                    "snapshot_id": snapshot.snapshot_id,
                    "timings": timings,
                    "models": model_rows(results),
                },
                indent=2,
                default=str,
            )
        )

    results: list[ModelResult] = []
    with_blend = not args.no_blend and (not args.models or BLEND in args.models)
    jobs: list[ModelSpec | None] = [*specs, *([None] if with_blend else [])]  # None: the blend
    if args.lean:  # the slowest fits last, so that a run stopped at a deadline still has the blend
        slow = ("kgrec LightGCN", "kgrec GraphSAGE", "PyG LightGCN")
        jobs = [j for j in jobs if j is None or j.name not in slow] + sorted(
            (j for j in jobs if j is not None and j.name in slow), key=lambda j: slow.index(j.name)
        )
    for spec in jobs:
        if spec is None:
            console.print(f"[bold]{BLEND}[/]: components on fit, ranker on validation, refit on train …")
            with threadpool_limits(limits=1, user_api="blas"):
                results.append(run_blend(snapshot, split, genres, OUT / f"blend-{args.dataset}"))
                checkpoint()
                for variant in args.blend_variant:
                    name, _, overrides = variant.partition("=")
                    console.print(f"[bold]{BLEND} ({name})[/]: {overrides}", markup=True, highlight=False)
                    results.append(
                        run_blend(
                            snapshot, split, genres, OUT / f"blend-{args.dataset}-{name}", json.loads(overrides), name
                        )
                    )
                    checkpoint()
            continue
        if spec.name == "most-popular" and recall_results:  # the table: most-popular, then the recall rows
            with threadpool_limits(limits=THREADS, user_api="blas"):
                results.append(run_model(spec, split, genres))
            results.extend(recall_results)
            recall_results = []
            checkpoint()
            continue
        console.print(f"[bold]{spec.name}[/]: tuning on validation …")
        # implicit's own threads do the work; BLAS threads on top of them only oversubscribe two cores.
        with threadpool_limits(
            limits=1 if spec.name.startswith(("implicit", "item-kNN")) else THREADS, user_api="blas"
        ):
            results.append(run_model(spec, split, genres, args.jobs, cache))
        checkpoint()

    results.extend(recall_results)  # when most-popular was not asked for
    print_table(args.dataset, split, results)
    print_slices(results)
    comparisons = {ours: paired_comparison(results, ours) for ours in (BLEND, "kgrec LightGCN")}
    for ours, comparison in comparisons.items():
        for name, c in comparison.items():
            console.print(
                f"{ours} − {name}: NDCG@20 {c['mean_diff']:+.4f} (95% bootstrap "
                f"[{c['low']:+.4f}, {c['high']:+.4f}], paired per user)",
                highlight=False,
            )
    references = [r for r in results if r.ranks == "items seen in train"]
    best_reference = max(references, key=lambda r: r.test[VAL_METRIC]).name if references else None
    if best_reference and best_reference in comparisons[BLEND]:
        c = comparisons[BLEND][best_reference]
        console.print(
            f"[bold]{BLEND} vs the best reference ({best_reference})[/]: NDCG@20 {c['mean_diff']:+.4f} "
            f"[{c['low']:+.4f}, {c['high']:+.4f}]",
            highlight=False,
        )
    report = {
        "best_reference": best_reference,
        "dataset": args.dataset,
        "snapshot_id": snapshot.snapshot_id,
        "snapshot": snapshot.counts(),
        "split": split.describe(),
        "seed": SEED,
        "protocol": "docs/evaluation.md: per-user split, full ranking without the user's train items, K=10/20",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": TORCH_THREADS,
            "implicit_threads": THREADS,
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "timings": timings,
        "paired_ndcg20_vs_ours": comparisons["kgrec LightGCN"],
        "paired_ndcg20_vs_blend": comparisons[BLEND],
        "lean": args.lean,
        "loadavg_end": list(os.getloadavg()),
        "models": model_rows(results),
    }
    json_path = OUT / f"quality-{args.dataset}.json"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    png_path = OUT / f"quality-{args.dataset}.png"
    write_chart(png_path, args.dataset, results)
    partial_path.unlink(missing_ok=True)
    console.print(f"written: {json_path}, {png_path}")


if __name__ == "__main__":
    main()
