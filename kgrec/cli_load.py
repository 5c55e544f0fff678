"""``kgrec load …`` and ``kgrec stats``: data into Neo4j, and what the graph holds.

Loads are validated, batched and idempotent; rejected rows go to a file with their reasons. Progress bars
show on a terminal only (:class:`kgrec.progress.ProgressBars`); every load ends with the same summary
(:func:`print_report`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.settings import ApiSettings, load_api_settings
from etl.dataset import Dataset, RowSink
from etl.load import LoadReport, emit_dataset, load_stream
from etl.settings import get_etl_settings
from graph.driver import create_driver
from graph.impressions import SqliteImpressionStore
from graph.settings import get_neo4j_settings
from graph.writers import read_graph_counts, read_item_ids
from kgrec.cli_common import OptionTable, console, err, fail, with_options
from kgrec.progress import ProgressBars
from schema.errors import KgrecError
from schema.model import Label

load_app = typer.Typer(
    help="Load data into Neo4j (validated, batched, idempotent; rejects go to a file with reasons).",
    no_args_is_help=True,
)

ReplaceOpt = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Delete the whole graph before loading (and, after it, empty the API's SQLite impression file, "
        "KGREC_IMPRESSION_DB, whose lists named the graph replaced).",
    ),
]
BatchOpt = Annotated[
    int | None, typer.Option("--batch-size", min=1, help="Rows per write transaction (default: 10000).")
]
RejectsOpt = Annotated[
    Path | None, typer.Option("--rejects-dir", help="Folder for the reject file (default: .kgrec/rejects).")
]
ProgressOpt = Annotated[
    bool | None, typer.Option("--progress/--no-progress", help="Progress bars (default: on in a terminal).")
]
#: Exit code of a load that wrote its valid rows but rejected more than ``--max-reject-rate`` of its source rows.
EXIT_TOO_MANY_REJECTS = 4
MaxRejectRateOpt = Annotated[
    float,
    typer.Option(
        "--max-reject-rate",
        min=0.0,
        max=1.0,
        help=f"Largest share of source rows that may be rejected (1.0 = no limit); past it the valid rows are still "
        f"written but the load exits with code {EXIT_TOO_MANY_REJECTS}. Errors exit with code 1.",
    ),
]
DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Read and validate every file and print what would be written and rejected (the reject file is "
        "written); write nothing to Neo4j. Items already in the graph count as known when Neo4j is reachable.",
    ),
]
#: The options every load command takes after its own (:func:`kgrec.cli_common.with_options`).
LOAD_OPTIONS: OptionTable = {
    "replace": (ReplaceOpt, False),
    "batch_size": (BatchOpt, None),
    "rejects_dir": (RejectsOpt, None),
    "progress": (ProgressOpt, None),
    "max_reject_rate": (MaxRejectRateOpt, 0.05),
    "dry_run": (DryRunOpt, False),
}
loads = with_options(LOAD_OPTIONS, "replace", "batch_size", "rejects_dir", "progress", "max_reject_rate", "dry_run")


Produce = Callable[[set[str], ProgressBars, RowSink], Dataset]


def _run_load(
    produce: Produce,
    *,
    item_labels: Sequence[str],
    replace: bool,
    batch_size: int | None,
    rejects_dir: Path | None,
    progress: bool | None,
    max_reject_rate: float,
    dry_run: bool = False,
) -> LoadReport:
    settings = get_neo4j_settings()
    etl_settings = get_etl_settings()
    bars = ProgressBars(progress)
    if dry_run:
        report = _dry_run(produce, replace=replace, reject_dir=rejects_dir or etl_settings.reject_dir, bars=bars)
        _check_reject_rate(report, max_reject_rate)
        return report
    try:
        # where the impressions a replace forgets are kept: read (and refused when invalid) before the graph is wiped
        api = load_api_settings(api_key=None) if replace else None
        driver = create_driver(settings)
        with driver:
            known = set() if replace else read_item_ids(driver, settings.database)
            report = load_stream(
                driver,
                lambda sink: produce(known, bars, sink),
                item_labels=item_labels,
                database=settings.database,
                replace=replace,
                batch_size=batch_size or etl_settings.batch_size,
                reject_dir=rejects_dir or etl_settings.reject_dir,
                progress=bars,
            )
        if api is not None:
            _forget_impressions(api)
    except KgrecError as exc:
        bars.close()
        raise fail(exc) from exc
    bars.close()
    print_report(report)
    _check_reject_rate(report, max_reject_rate)
    return report


def _forget_impressions(api: ApiSettings) -> None:
    """Empty the SQLite impression file of the API run here (``KGREC_IMPRESSION_STORE=sqlite``, the default, and
    ``KGREC_IMPRESSION_DB``) after a replace: its lists, exposure and counts named the replaced graph's users and items,
    as the graph's own store did, which the wipe removed. A file that does not exist is not created."""
    if api.impression_store != "sqlite" or not api.impression_db.is_file():
        return
    store = SqliteImpressionStore(api.impression_db)
    try:
        store.clear()
    finally:
        store.close()
    console.print(
        f"emptied the impression store {api.impression_db} (its lists named the replaced graph)",
        soft_wrap=True,
        highlight=False,
    )


def _dry_run(produce: Produce, *, replace: bool, reject_dir: Path, bars: ProgressBars) -> LoadReport:
    """Read and validate without writing: the items already in the graph are read when Neo4j answers."""
    from etl.load import dataset_report
    from schema.errors import DatabaseUnavailableError

    settings = get_neo4j_settings()
    known: set[str] = set()
    note = ""
    if not replace:
        try:
            with create_driver(settings) as driver:
                known = read_item_ids(driver, settings.database)
        except DatabaseUnavailableError:
            note = " (Neo4j is not reachable: only the mapping's own items count as known)"
    started = time.perf_counter()
    try:
        dataset = produce(known, bars, lambda _kind, _rows: None)
    except KgrecError as exc:
        bars.close()
        raise fail(exc) from exc
    bars.close()
    report = dataset_report(dataset, reject_dir, time.perf_counter() - started)
    console.print(f"[bold]dry run of {report.name}: nothing was written to Neo4j[/]{note}", highlight=False)
    print_report(report, dry_run=True)
    return report


def _check_reject_rate(report: LoadReport, max_reject_rate: float) -> None:
    """Exit with :data:`EXIT_TOO_MANY_REJECTS` and one line when more rows were rejected than allowed."""
    if report.reject_rate > max_reject_rate:
        err.print(
            f"[bold red]error:[/] rejected {report.rejects:,} of {report.source_rows:,} rows "
            f"({_percent(report.reject_rate)}) > --max-reject-rate {_percent(max_reject_rate)}: see {report.reject_file}",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(code=EXIT_TOO_MANY_REJECTS)


def _load_mapping(
    path: Path, variables: dict[str, str], labels: Sequence[str], base_dir: Path | None, options: dict[str, Any]
) -> None:
    """Load the files a mapping describes: check its files and columns first (one error line, graph untouched),
    then read and write them as :func:`_run_load` does."""
    from etl.sources import check_mapping, read_mapping_dataset

    limit = get_etl_settings().max_line_bytes
    try:
        check_mapping(path, variables, base_dir=base_dir, max_line_bytes=limit)
    except KgrecError as exc:
        raise fail(exc) from exc

    def produce(known: set[str], bars: ProgressBars, sink: RowSink) -> Dataset:
        return read_mapping_dataset(
            path, variables, base_dir=base_dir, known_items=known, progress=bars, sink=sink, max_line_bytes=limit
        )[0]

    _run_load(produce, item_labels=labels, **options)


def _percent(share: float) -> str:
    """A share as a percentage with at most one decimal: 1.0 → '100%', 0.0734 → '7.3%'."""
    text = f"{share * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def print_graph_counts(title: str, nodes: dict[str, int], relationships: dict[str, int]) -> None:
    """Print node counts per label beside relationship counts per type (``*``: all of them)."""
    graph = Table(title=title, show_edge=False)
    graph.add_column("nodes", style="cyan")
    graph.add_column("count", justify="right")
    graph.add_column("relationships", style="magenta")
    graph.add_column("count", justify="right")
    nodes_sorted = sorted(nodes.items(), key=lambda kv: (kv[0] != "*", kv[0]))
    rels = sorted(relationships.items(), key=lambda kv: (kv[0] != "*", kv[0]))
    for k in range(max(len(nodes_sorted), len(rels))):
        n = nodes_sorted[k] if k < len(nodes_sorted) else ("", None)
        r = rels[k] if k < len(rels) else ("", None)
        graph.add_row(
            "all" if n[0] == "*" else n[0],
            "" if n[1] is None else f"{n[1]:,}",
            "all" if r[0] == "*" else r[0],
            "" if r[1] is None else f"{r[1]:,}",
        )
    console.print(graph)


def print_report(report: LoadReport, *, dry_run: bool = False) -> None:
    """Print a load's closing summary: graph counts, phases with rows/s, rejects and skips (a dry run: the rows that
    would be written per kind instead of graph counts and phases)."""
    if dry_run:
        would = Table(title=f"{report.name}: rows a load would write", show_edge=False)
        would.add_column("kind")
        would.add_column("rows", justify="right")
        for p in report.phases:
            would.add_row(p.name, f"{p.rows:,}")
        console.print(would)
        _print_tail(report)
        return
    print_graph_counts(f"graph after loading {report.name}", report.nodes, report.relationships)
    _print_changes(report)

    if report.phases:
        phases = Table(title="write phases", show_edge=False)
        for col in ("phase", "rows", "seconds", "rows/s"):
            phases.add_column(col, justify="left" if col == "phase" else "right")
        for p in report.phases:
            phases.add_row(p.name, f"{p.rows:,}", f"{p.seconds:.2f}", f"{p.rows_per_second:,.0f}" if p.rows else "")
        console.print(phases)
    _print_tail(report)


def _print_changes(report: LoadReport) -> None:
    """One line under the graph counts: what the load created or changed, or that the graph was already up to date
    (a reload of the same files), from the writes' own counts (:attr:`etl.load.LoadReport.changes`)."""
    if report.unchanged:
        console.print(
            "unchanged: every row was already in the graph (no node, relationship or label created, no interaction "
            "changed)",
            highlight=False,
        )
        return
    if not report.rows_written:
        return
    changes = report.changes
    parts = [f"created {changes['nodes_created']:,} nodes and {changes['relationships_created']:,} relationships"]
    if changes["labels_added"] and not changes["nodes_created"]:
        parts.append(f"added {changes['labels_added']:,} labels to existing nodes")
    if changes["interactions_changed"]:
        parts.append(f"changed {changes['interactions_changed']:,} existing interactions")
    console.print("; ".join(parts), highlight=False)


def _print_tail(report: LoadReport) -> None:
    if report.seconds:
        console.print(
            f"read+validate {report.rows_read:,} source rows in {report.read_seconds:.2f}s while writing "
            f"{report.rows_written:,} rows in {report.write_seconds:.2f}s: total {report.seconds:.2f}s wall "
            f"({report.rows_read / report.seconds:,.0f} source rows/s)"
        )
    if report.skipped:
        console.print(
            "skipped (knowledge about items outside the catalogue): "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(report.skipped.items()))
        )
    if report.merged:
        console.print("repeated facts merged: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.merged.items())))
    if report.blank_lines:
        console.print(
            "skipped blank lines (not rejects): "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(report.blank_lines.items()))
        )
    if report.rejects:
        of = f" of {report.source_rows:,} source rows ({_percent(report.reject_rate)})" if report.source_rows else ""
        console.print(f"[yellow]rejected {report.rejects:,} rows[/]{of} → {report.reject_file}")
        for reason, count in report.rejects_by_reason.most_common(10):
            console.print(f"  {count:>7,}  {reason}", highlight=False)
    else:
        console.print("[green]no rejected rows[/]")


@load_app.command("movielens")
@loads
def load_movielens(
    directory: Annotated[
        Path, typer.Argument(help="Folder with movies.csv, ratings.csv and tags.csv (ml-latest-small).")
    ],
    actors: Annotated[
        Path | None, typer.Option(help="ml-small-actors-tomasonjo movies.csv: actors and directors by movieId.")
    ] = None,
    hetrec: Annotated[
        Path | None, typer.Option(help="hetrec2011-movielens-2k folder: directors, genres, weighted tags.")
    ] = None,
    **options: Any,  # noqa: ANN401 - LOAD_OPTIONS
) -> None:
    """Load MovieLens ratings, movies, genres and tags, with actors/directors when given."""
    from etl.sources import movielens_variables, shipped_mapping_path

    try:
        variables = movielens_variables(directory, actors, hetrec)
    except KgrecError as exc:
        raise fail(exc) from exc
    _load_mapping(shipped_mapping_path("movielens"), variables, [Label.MOVIE], None, options)


@load_app.command("lastfm")
@loads
def load_lastfm(
    directory: Annotated[Path, typer.Argument(help="hetrec2011-lastfm-2k folder (artists, plays, friends).")],
    **options: Any,  # noqa: ANN401 - LOAD_OPTIONS
) -> None:
    """Load Last.fm users, artists (items), play counts (weights) and friendships (FOLLOWS)."""
    from etl.sources import lastfm_variables, shipped_mapping_path

    try:
        variables = lastfm_variables(directory)
    except KgrecError as exc:
        raise fail(exc) from exc
    _load_mapping(shipped_mapping_path("lastfm"), variables, [Label.ARTIST], None, options)


@load_app.command("mapping")
@loads
def load_mapping_file(
    mapping_file: Annotated[
        Path, typer.Argument(help="YAML mapping of CSV/TSV files onto the graph (docs/mapping.md).")
    ],
    var: Annotated[
        list[str] | None, typer.Option("--var", help="Path variable NAME=VALUE for {NAME} in the mapping (repeatable).")
    ] = None,
    base_dir: Annotated[
        Path | None, typer.Option(help="Resolve relative paths here (default: the YAML's folder).")
    ] = None,
    **options: Any,  # noqa: ANN401 - LOAD_OPTIONS
) -> None:
    """Load any delimited files described by a YAML mapping."""
    from etl.mapping import load_mapping

    variables: dict[str, str] = {}
    for item in var or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise fail(KgrecError(f"--var expects NAME=VALUE, got {item!r}"))
        variables[name] = value

    try:
        labels = load_mapping(mapping_file).item_labels
    except KgrecError as exc:
        raise fail(exc) from exc
    _load_mapping(mapping_file, variables, labels, base_dir, options)


@load_app.command("synthetic")
@loads
def load_synthetic(
    users: Annotated[int, typer.Option(min=4, help="Number of users.")] = 300,
    items: Annotated[int, typer.Option(min=12, help="Number of items.")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same world).")] = 42,
    **options: Any,  # noqa: ANN401 - LOAD_OPTIONS
) -> None:
    """Load a deterministic synthetic world with taste communities and friends who influence each other."""
    from etl.synthetic import generate_world

    def produce(_known: set[str], _bars: ProgressBars, sink: RowSink) -> Dataset:
        return emit_dataset(generate_world(users=users, items=items, seed=seed).dataset, sink)

    _run_load(produce, item_labels=[Label.MOVIE], **options)


@load_app.command("world")
@loads
def load_world(
    directory: Annotated[
        Path,
        typer.Argument(help="Folder of the world's CSV files; written first when it holds none (or --regenerate)."),
    ],
    users: Annotated[int, typer.Option(min=4, help="Users of a world being written.")] = 100_000,
    items: Annotated[int, typer.Option(min=12, help="Items of a world being written.")] = 50_000,
    interactions: Annotated[
        int, typer.Option(min=1, help="About how many interactions a world being written has (Zipf-like activity).")
    ] = 5_000_000,
    seed: Annotated[int, typer.Option(help="Random seed of a world being written (same seed, same files).")] = 42,
    regenerate: Annotated[bool, typer.Option("--regenerate", help="Write the files even when they exist.")] = False,
    generate_only: Annotated[bool, typer.Option("--generate-only", help="Write the files; load nothing.")] = False,
    **options: Any,  # noqa: ANN401 - LOAD_OPTIONS
) -> None:
    """Load a synthetic world at real size (100k users, 50k items, millions of interactions by default), written to
    CSV files first in bounded memory (etl/world.py) and loaded like any mapping (etl/mappings/world.yaml)."""
    from etl.sources import shipped_mapping_path
    from etl.world import WorldSummary, write_world

    if regenerate or not (directory / "world.json").is_file():
        bars = ProgressBars(options.get("progress"))
        tick = bars("write world", users)
        summary = write_world(directory, users, items, interactions, seed, progress=tick)
        bars.close()
        console.print(
            f"wrote {summary.users:,} users, {summary.items:,} items, {summary.interactions:,} interactions and "
            f"{summary.follows:,} follows to {directory} in {summary.seconds:.1f}s"
        )
    else:
        import json

        summary = WorldSummary(**json.loads((directory / "world.json").read_text(encoding="utf-8")))
        console.print(
            f"{directory} holds a world of {summary.interactions:,} interactions (--regenerate to rewrite it)"
        )
    if not generate_only:
        _load_mapping(shipped_mapping_path("world"), {"world": str(directory.resolve())}, [Label.MOVIE], None, options)


def stats() -> None:
    """Print node counts per label and relationship counts per type."""
    settings = get_neo4j_settings()
    try:
        with create_driver(settings) as driver:
            nodes, rels = read_graph_counts(driver, settings.database)
    except KgrecError as exc:
        raise fail(exc) from exc
    print_graph_counts("graph", nodes, rels)


def register(app: typer.Typer) -> None:
    """Add ``kgrec stats`` to the ``kgrec`` app (the ``load`` group is :data:`load_app`)."""
    app.command("stats")(stats)
