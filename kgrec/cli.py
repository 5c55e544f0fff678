"""The ``kgrec`` command: local Neo4j, schema, loading, and the demo.

Each command builds its settings, opens what it needs, calls library code and prints a summary.
Errors that kgrec raises on purpose (:class:`schema.errors.KgrecError`) are printed as one line
with exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from etl.dataset import Dataset
from etl.dataset import RowSink
from etl.load import LoadReport, emit_dataset, load_stream
from etl.settings import get_etl_settings
from graph.driver import create_driver
from graph.settings import get_neo4j_settings
from graph.writers import read_graph_counts, read_item_ids
from kgrec.progress import ProgressBars
from schema.ddl import apply_schema, describe_model
from schema.errors import KgrecError
from schema.model import Label

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="kgrec",
    help="kgrec: a knowledge-graph recommender backed by Neo4j.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
schema_app = typer.Typer(help="The graph contract: constraints, indexes and the model.", no_args_is_help=True)
load_app = typer.Typer(
    help="Load data into Neo4j (validated, batched, idempotent; rejects go to a file with reasons).",
    no_args_is_help=True,
)
app.add_typer(schema_app, name="schema")
app.add_typer(load_app, name="load")

try:  # the local-server commands live in their own module
    from kgrec.cli_neo4j import neo4j_app

    app.add_typer(neo4j_app, name="neo4j", help="Run the local Neo4j 5.26 server (no Docker needed).")
except ImportError:  # pragma: no cover - only while the module is being written
    pass

from kgrec.cli_train import register as _register_learning_commands  # noqa: E402 - after the app exists

_register_learning_commands(app)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO level).")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("neo4j").setLevel(logging.WARNING)


def _fail(exc: KgrecError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", soft_wrap=True, highlight=False)
    return typer.Exit(code=1)


# --- schema -------------------------------------------------------------------------------------


@schema_app.command("apply")
def schema_apply() -> None:
    """Create every constraint and index that is missing (safe to repeat)."""
    settings = get_neo4j_settings()
    try:
        driver = create_driver(settings)
        with driver:
            created = apply_schema(driver, settings.database)
    except KgrecError as exc:
        raise _fail(exc) from exc
    console.print(f"created: {', '.join(created)}" if created else "schema already complete: nothing to do")


@schema_app.command("show")
def schema_show() -> None:
    """Print the canonical graph model with its constraints and indexes."""
    console.print(describe_model(), highlight=False)


# --- load ---------------------------------------------------------------------------------------

ReplaceOpt = Annotated[bool, typer.Option("--replace", help="Delete the whole graph before loading.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Rows per write transaction [default: 10000].")]
RejectsOpt = Annotated[
    Optional[Path], typer.Option("--rejects-dir", help="Folder for the reject file [default: .kgrec/rejects].")
]
ProgressOpt = Annotated[
    Optional[bool], typer.Option("--progress/--no-progress", help="Progress bars [default: on in a terminal].")
]


Produce = Callable[[set[str], ProgressBars, RowSink], Dataset]


def _run_load(
    produce: Produce,
    *,
    item_labels: Sequence[Label],
    replace: bool,
    batch_size: int | None,
    rejects_dir: Path | None,
    progress: bool | None,
) -> LoadReport:
    settings = get_neo4j_settings()
    etl_settings = get_etl_settings()
    bars = ProgressBars(progress)
    try:
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
    except KgrecError as exc:
        bars.close()
        raise _fail(exc) from exc
    bars.close()
    print_report(report)
    return report


def print_report(report: LoadReport) -> None:
    """Print a load's closing summary: graph counts, phases with rows/s, rejects and skips."""
    graph = Table(title=f"graph after loading {report.name}", show_edge=False)
    graph.add_column("nodes", style="cyan")
    graph.add_column("count", justify="right")
    graph.add_column("relationships", style="magenta")
    graph.add_column("count", justify="right")
    nodes = sorted(report.nodes.items(), key=lambda kv: (kv[0] != "*", kv[0]))
    rels = sorted(report.relationships.items(), key=lambda kv: (kv[0] != "*", kv[0]))
    for k in range(max(len(nodes), len(rels))):
        n = nodes[k] if k < len(nodes) else ("", None)
        r = rels[k] if k < len(rels) else ("", None)
        graph.add_row(
            "all" if n[0] == "*" else n[0], "" if n[1] is None else f"{n[1]:,}",
            "all" if r[0] == "*" else r[0], "" if r[1] is None else f"{r[1]:,}",
        )
    console.print(graph)

    if report.phases:
        phases = Table(title="write phases", show_edge=False)
        for col in ("phase", "rows", "seconds", "rows/s"):
            phases.add_column(col, justify="left" if col == "phase" else "right")
        for p in report.phases:
            phases.add_row(p.name, f"{p.rows:,}", f"{p.seconds:.2f}", f"{p.rows_per_second:,.0f}" if p.rows else "")
        console.print(phases)
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
    if report.rejects:
        console.print(f"[yellow]rejected {report.rejects:,} rows[/] → {report.reject_file}")
        for reason, count in report.rejects_by_reason.most_common(10):
            console.print(f"  {count:>7,}  {reason}", highlight=False)
    else:
        console.print("[green]no rejected rows[/]")


@load_app.command("movielens")
def load_movielens(
    directory: Annotated[Path, typer.Argument(help="Folder with movies.csv, ratings.csv and tags.csv (ml-latest-small).")],
    actors: Annotated[
        Optional[Path], typer.Option(help="ml-small-actors-tomasonjo movies.csv: actors and directors by movieId.")
    ] = None,
    hetrec: Annotated[
        Optional[Path], typer.Option(help="hetrec2011-movielens-2k folder: directors, genres, weighted tags.")
    ] = None,
    replace: ReplaceOpt = False,
    batch_size: BatchOpt = None,
    rejects_dir: RejectsOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Load MovieLens ratings, movies, genres and tags, with actors/directors when given."""
    from etl.sources import movielens_variables, read_mapping_dataset, shipped_mapping_path

    def produce(known: set[str], bars: ProgressBars, sink: RowSink) -> Dataset:
        variables = movielens_variables(directory, actors, hetrec)
        path = shipped_mapping_path("movielens")
        return read_mapping_dataset(path, variables, known_items=known, progress=bars, sink=sink)[0]

    _run_load(
        produce, item_labels=[Label.MOVIE], replace=replace, batch_size=batch_size, rejects_dir=rejects_dir,
        progress=progress,
    )


@load_app.command("lastfm")
def load_lastfm(
    directory: Annotated[Path, typer.Argument(help="hetrec2011-lastfm-2k folder (artists, plays, friends).")],
    replace: ReplaceOpt = False,
    batch_size: BatchOpt = None,
    rejects_dir: RejectsOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Load Last.fm users, artists (items), play counts (weights) and friendships (FOLLOWS)."""
    from etl.sources import lastfm_variables, read_mapping_dataset, shipped_mapping_path

    def produce(known: set[str], bars: ProgressBars, sink: RowSink) -> Dataset:
        path = shipped_mapping_path("lastfm")
        return read_mapping_dataset(path, lastfm_variables(directory), known_items=known, progress=bars, sink=sink)[0]

    _run_load(
        produce, item_labels=[Label.ARTIST], replace=replace, batch_size=batch_size, rejects_dir=rejects_dir,
        progress=progress,
    )


@load_app.command("mapping")
def load_mapping_file(
    mapping_file: Annotated[Path, typer.Argument(help="YAML mapping of CSV/TSV files onto the graph (docs/mapping.md).")],
    var: Annotated[
        Optional[list[str]], typer.Option("--var", help="Path variable NAME=VALUE for {NAME} in the mapping (repeatable).")
    ] = None,
    base_dir: Annotated[
        Optional[Path], typer.Option(help="Resolve relative paths here [default: the YAML's folder].")
    ] = None,
    replace: ReplaceOpt = False,
    batch_size: BatchOpt = None,
    rejects_dir: RejectsOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Load any delimited files described by a YAML mapping."""
    from etl.mapping import load_mapping
    from etl.sources import read_mapping_dataset

    variables: dict[str, str] = {}
    for item in var or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise _fail(KgrecError(f"--var expects NAME=VALUE, got {item!r}"))
        variables[name] = value

    try:
        labels = load_mapping(mapping_file).item_labels
    except KgrecError as exc:
        raise _fail(exc) from exc

    def produce(known: set[str], bars: ProgressBars, sink: RowSink) -> Dataset:
        return read_mapping_dataset(
            mapping_file, variables, base_dir=base_dir, known_items=known, progress=bars, sink=sink
        )[0]

    _run_load(
        produce, item_labels=labels, replace=replace, batch_size=batch_size, rejects_dir=rejects_dir,
        progress=progress,
    )


@load_app.command("synthetic")
def load_synthetic(
    users: Annotated[int, typer.Option(min=4, help="Number of users.")] = 300,
    items: Annotated[int, typer.Option(min=12, help="Number of items.")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same world).")] = 42,
    replace: ReplaceOpt = False,
    batch_size: BatchOpt = None,
    rejects_dir: RejectsOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Load a deterministic synthetic world with taste communities and friends who influence each other."""
    from etl.synthetic import generate_world

    def produce(_known: set[str], _bars: ProgressBars, sink: RowSink) -> Dataset:
        return emit_dataset(generate_world(users=users, items=items, seed=seed).dataset, sink)

    _run_load(
        produce, item_labels=[Label.MOVIE], replace=replace, batch_size=batch_size, rejects_dir=rejects_dir,
        progress=progress,
    )


# --- inspection and demo ------------------------------------------------------------------------


@app.command("stats")
def stats() -> None:
    """Print node counts per label and relationship counts per type."""
    settings = get_neo4j_settings()
    try:
        with create_driver(settings) as driver:
            nodes, rels = read_graph_counts(driver, settings.database)
    except KgrecError as exc:
        raise _fail(exc) from exc
    print_report(LoadReport(name="(current graph)", nodes=nodes, relationships=rels))


@app.command("demo")
def demo(
    users: Annotated[int, typer.Option(min=4, help="Users in the synthetic world.")] = 300,
    items: Annotated[int, typer.Option(min=12, help="Items in the synthetic world.")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the API at the end (Ctrl-C stops it).")] = True,
    train_model: Annotated[
        bool, typer.Option("--train/--no-train", help="Train and promote the blend so that the API ranks with it.")
    ] = True,
) -> None:
    """Start the local Neo4j, load the synthetic world, train the model, show explained recommendations, serve the API."""
    from graph.neo4j_local import launcher

    settings = get_neo4j_settings()
    try:
        status = launcher.start(settings)
    except KgrecError as exc:
        raise _fail(exc) from exc
    console.print(f"Neo4j {status.version or ''} is running: {status.bolt_uri}")
    load_synthetic(users=users, items=items, seed=seed, replace=True, batch_size=None, rejects_dir=None, progress=None)
    if train_model:
        console.print()
        console.print("[bold]Training the blend[/] (kgrec retrain: export → fit on validation → promote) …")
        from kgrec.cli_train import retrain

        retrain(model="blend", keep=5, publish=True, device=None, max_epochs=None, seed=None, config=None,
                artifacts=None, progress=True)
    console.print()
    recommend("u1", k=5, sources=None, explain=True)
    console.print()
    console.print(f"[bold]Neo4j Browser:[/] {status.browser_url}  (user {settings.user}, password from NEO4J_PASSWORD)")
    console.print("  try: MATCH p=(u:User {userId: 'u1'})-[:INTERACTED]->(:Item)<-[:ACTED_IN]-(:Person) RETURN p LIMIT 25")
    console.print("  saved recall queries to paste: docs/browser_queries.cypher")
    if not serve_api:
        console.print("Stop Neo4j with `kgrec neo4j stop`.")
        return
    from api.settings import get_api_settings

    api = get_api_settings()
    base = f"http://{api.host}:{api.port}"
    console.print()
    console.print(f"[bold]API[/] on {base} (docs: {base}/docs). Try, in another terminal:")
    console.print(f"  curl '{base}/users/u1/recommendations?k=5'", highlight=False, soft_wrap=True)
    console.print(f"  curl '{base}/items/i1/similar?k=5'", highlight=False, soft_wrap=True)
    console.print(
        f"  curl -X POST {base}/interactions -H \"X-API-Key: $KGREC_API_KEY\" -H 'Content-Type: application/json' "
        """-d '{"user_id": "u1", "item_id": "i2", "rating": 5}'""",
        highlight=False, soft_wrap=True,
    )
    console.print("Ctrl-C stops the API; `kgrec neo4j stop` stops Neo4j.")
    serve(host=None, port=None, workers=1)


# --- serving ------------------------------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[Optional[str], typer.Option(help="Bind address [default: KGREC_HOST or 127.0.0.1].")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port [default: KGREC_PORT or 8000].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from api.settings import get_api_settings

    try:
        settings = get_api_settings()
    except Exception as exc:  # pydantic's ValidationError: a bad KGREC_* value
        raise _fail(KgrecError(f"invalid API settings: {exc}")) from exc
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(f"kgrec API on http://{bind_host}:{bind_port}  (docs: http://{bind_host}:{bind_port}/docs)")
    uvicorn.run(
        "api.app:create_app", factory=True, host=bind_host, port=bind_port, workers=workers,
        log_level="info", access_log=False, log_config=_serve_log_config(),
    )


def _serve_log_config() -> dict:
    """Uvicorn's logging, plus kgrec's own loggers (model loads, cache warming, degraded answers) at INFO."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["kgrec"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["kgrec"] = {"formatter": "kgrec", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    for name in ("api", "graph", "gnn"):
        config["loggers"][name] = {"handlers": ["kgrec"], "level": "INFO", "propagate": False}
    return config


@app.command("recommend")
def recommend(
    user_id: Annotated[str, typer.Argument(help="The user's id (userId in the graph).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Number of items.")] = 10,
    sources: Annotated[
        Optional[str], typer.Option(help="Comma-separated recall sources (default: all).")
    ] = None,
    explain: Annotated[bool, typer.Option("--explain/--no-explain", help="Show explanation paths.")] = True,
) -> None:
    """Print a user's recommendations with their explanations, as the API would answer (same model, same graph)."""
    from concurrent.futures import ThreadPoolExecutor

    from api.metrics import Metrics
    from api.service import Recommender
    from api.settings import ApiSettings

    from api.model import ModelHolder

    settings = get_neo4j_settings()
    api_settings = ApiSettings(api_key=None)
    models = None
    if api_settings.serve_model != "none":
        models = ModelHolder(api_settings.artifacts_dir, api_settings.serve_model)
        models.reload()
    try:
        with create_driver(settings) as driver, ThreadPoolExecutor(4) as pool:
            service = Recommender(driver, api_settings, pool, Metrics(), settings.database, models=models)
            names = [s.strip() for s in sources.split(",")] if sources else None
            response = service.recommend(user_id, k, explain=explain, sources=names)
    except KgrecError as exc:
        raise _fail(exc) from exc
    print_recommendations(response)


def print_recommendations(response) -> None:  # noqa: ANN001 - api.schemas.RecommendationsResponse
    """Print a recommendation list as a table with one explanation line per path."""
    table = Table(title=f"recommendations for user {response.user_id} ({response.model_version})", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("item")
    table.add_column("score", justify="right")
    table.add_column("sources")
    table.add_column("because (first of the explanation paths)")
    for rank, item in enumerate(response.items, start=1):
        table.add_row(
            str(rank),
            f"{item.title or ''} [dim]({item.item_id})[/]",
            f"{item.score:.3f}",
            ", ".join(f"{name} {value:.2f}" for name, value in item.sources.items()),
            item.explanations[0].text if item.explanations else "[dim]-[/]",
        )
    console.print(table)
    if response.degraded:
        console.print("[yellow]degraded: Neo4j or some recall sources were unreachable; this is a fallback list[/]")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
