"""``kgrec serve``, ``kgrec recommend`` and ``kgrec demo``: the API, one user's list from the shell, the tour.

``recommend`` answers as the API would (same model, same graph); ``demo`` starts the local Neo4j, loads the
synthetic world, trains and promotes the blend, shows explained recommendations and serves the API.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from graph.driver import create_driver
from graph.settings import get_neo4j_settings
from kgrec.cli_common import console, fail
from kgrec.cli_load import load_synthetic
from kgrec.cli_train import retrain
from schema.errors import KgrecError


def demo(
    users: Annotated[int, typer.Option(min=4, help="Users in the synthetic world.")] = 300,
    items: Annotated[int, typer.Option(min=12, help="Items in the synthetic world.")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the API at the end (Ctrl-C stops it).")
    ] = True,
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
        raise fail(exc) from exc
    console.print(f"Neo4j {status.version or ''} is running: {status.bolt_uri}")
    load_synthetic(users=users, items=items, seed=seed, replace=True)
    if train_model:
        console.print()
        console.print("[bold]Training the blend[/] (kgrec retrain: export → fit on validation → promote) …")
        retrain(model="blend")
    console.print()
    recommend("u1", k=5, sources=None, explain=True)
    console.print()
    console.print(f"[bold]Neo4j Browser:[/] {status.browser_url}  (user {settings.user}, password from NEO4J_PASSWORD)")
    console.print(
        "  try: MATCH p=(u:User {userId: 'u1'})-[:INTERACTED]->(:Item)<-[:ACTED_IN]-(:Person) RETURN p LIMIT 25"
    )
    console.print("  saved recall queries to paste: docs/browser_queries.cypher")
    if not serve_api:
        console.print("Stop Neo4j with `kgrec neo4j stop`.")
        return
    from api.settings import get_api_settings

    api = get_api_settings()
    base = f"http://{api.host}:{api.port}"
    console.print()
    console.print(f"[bold]API[/] on {base} (docs: {base}/docs). Try, in another terminal:")
    for line in api_examples(base, write_key=api.api_key is not None):
        console.print(line, highlight=False, soft_wrap=True)
    console.print("Ctrl-C stops the API; `kgrec neo4j stop` stops Neo4j.")
    serve(host=None, port=None, workers=1)


def api_examples(base: str, write_key: bool) -> list[str]:
    """The requests the demo suggests: two reads, and a write when the server has a write key (without
    KGREC_API_KEY it refuses every write, so the demo says how to set one instead of showing a request that fails)."""
    lines = [f"  curl '{base}/users/u1/recommendations?k=5'", f"  curl '{base}/items/i1/similar?k=5'"]
    if write_key:
        lines.append(
            f"  curl -X POST {base}/interactions -H \"X-API-Key: $KGREC_API_KEY\" -H 'Content-Type: application/json' "
            """-d '{"user_id": "u1", "item_id": "i2", "rating": 5}'"""
        )
    else:
        lines.append(
            "Writes (POST, PATCH) need a key, and none is set: stop this, `export KGREC_API_KEY=$(openssl rand -hex 16)` "
            "and run `kgrec serve` (Neo4j and the trained model stay)."
        )
    return lines


#: How long a worker process may take to answer the parent's health ping (``kgrec serve --workers``).
WORKER_HEALTHCHECK_SECONDS = 120


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default: KGREC_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: KGREC_PORT or 8000).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes behind the one port (uvicorn workers; on Linux each with a listening socket of its "
            "own, so that the kernel spreads the connections), each with its own model copy and answer cache; /metrics "
            "sums them all. See docs/scaling.md.",
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn
    from pydantic import ValidationError

    from api.settings import describe_invalid_settings, get_api_settings
    from kgrec.supervisor import reuse_port_balances, run_workers

    try:
        settings = get_api_settings()
    except ValidationError as exc:  # a bad KGREC_* value
        raise fail(KgrecError(describe_invalid_settings(exc))) from None
    from api.app import check_variants

    try:
        check_variants(settings)  # a broken KGREC_VARIANTS file or a missing model version: say so before starting
    except KgrecError as exc:
        raise fail(exc) from exc
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(f"kgrec API on http://{bind_host}:{bind_port}  (docs: http://{bind_host}:{bind_port}/docs)")
    options = {
        "factory": True,
        "host": bind_host,
        "port": bind_port,
        "workers": workers,
        "log_level": "info",
        "access_log": False,
        "log_config": _serve_log_config(),
        # a worker answers the parent's health pings only once its imports (torch) let it; on a busy machine that
        # takes longer than uvicorn's default 5 s, and the parent would kill and restart it again and again
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    with _shared_metrics(workers):
        if workers > 1 and reuse_port_balances():  # a listening socket per worker: the kernel spreads the connections
            run_workers(uvicorn.Config("api.app:create_app", **options))
        else:  # one socket, shared by the workers if several
            uvicorn.run("api.app:create_app", **options)


@contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """With several workers, a fresh directory they share: ``PROMETHEUS_MULTIPROC_DIR`` to count in (one of your own
    is emptied first), so that /metrics sums every worker, and the marks of the warmed workers, so that /ready waits
    for all of them (:mod:`api.workers`); removed at the end."""
    from api.metrics import MULTIPROC_ENV
    from api.workers import WORKERS_DIR_ENV, WORKERS_ENV

    if workers <= 1:
        yield
        return
    shared = Path(tempfile.mkdtemp(prefix="kgrec-workers-"))
    own = os.environ.get(MULTIPROC_ENV)
    metrics = Path(own) if own else shared / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    for stale in metrics.glob("*.db"):  # counts of an earlier run would be added to this one's
        stale.unlink()
    added = {MULTIPROC_ENV: str(metrics), WORKERS_DIR_ENV: str(shared), WORKERS_ENV: str(workers)}
    os.environ.update(added)  # inherited by the workers (prometheus_client reads its variable when imported)
    try:
        yield
    finally:
        shutil.rmtree(shared, ignore_errors=True)
        for name in added if not own else (WORKERS_DIR_ENV, WORKERS_ENV):
            os.environ.pop(name, None)


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


def recommend(
    user_id: Annotated[str, typer.Argument(help="The user's id (userId in the graph).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Number of items.")] = 10,
    sources: Annotated[str | None, typer.Option(help="Comma-separated recall sources (default: all).")] = None,
    explain: Annotated[bool, typer.Option("--explain/--no-explain", help="Show explanation paths.")] = True,
) -> None:
    """Print a user's recommendations with their explanations, as the API would answer (same model, same graph)."""
    from concurrent.futures import ThreadPoolExecutor

    from api.metrics import Metrics
    from api.model import ModelHolder
    from api.service import Recommender
    from api.settings import load_api_settings

    settings = get_neo4j_settings()
    try:
        api_settings = load_api_settings(api_key=None)
    except KgrecError as exc:
        raise fail(exc) from exc
    models = None
    if api_settings.serve_model != "none":
        models = ModelHolder(api_settings.artifacts_dir, api_settings.serve_model, (), api_settings.candidates())
        models.reload()
    try:
        with create_driver(settings) as driver, ThreadPoolExecutor(4) as pool:
            service = Recommender(driver, api_settings, pool, Metrics(), settings.database, models=models)
            names = [s.strip() for s in sources.split(",")] if sources else None
            response = service.recommend(user_id, k, explain=explain, sources=names)
    except KgrecError as exc:
        raise fail(exc) from exc
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


def register(app: typer.Typer) -> None:
    """Add the demo and the serving commands to the ``kgrec`` app."""
    app.command("demo")(demo)
    app.command("serve")(serve)
    app.command("recommend")(recommend)
