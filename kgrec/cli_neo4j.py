"""``kgrec neo4j start|stop|status``: the project's own Neo4j 5.26 server, without Docker.

Mounted by :mod:`kgrec.cli` as ``app.add_typer(neo4j_app, name="neo4j")``. Settings come from the
environment (``NEO4J_*``, see :class:`graph.settings.Neo4jSettings`). Errors kgrec raises on purpose
are printed as one line with exit code 1.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from graph.neo4j_local import ServerStatus, ensure_jars, start, status, stop
from graph.settings import Neo4jSettings, get_neo4j_settings
from schema.errors import KgrecError

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_NOT_RUNNING = 3  # LSB convention for "program is not running"

neo4j_app = typer.Typer(
    help=(
        "Run the project's own Neo4j 5.26 Community server (Bolt, Neo4j Browser, APOC) from Maven Central "
        "jars: needs JDK 17+ and Maven, no Docker. Configure with NEO4J_* variables (NEO4J_HOME, "
        "NEO4J_BOLT_PORT, NEO4J_HTTP_PORT, NEO4J_PASSWORD, NEO4J_HEAP, NEO4J_PAGECACHE, NEO4J_JARS_DIR)."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _fail(exc: KgrecError) -> typer.Exit:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code=1)


def _settings() -> Neo4jSettings:
    try:
        return get_neo4j_settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        err.print(f"[bold red]error:[/] invalid NEO4J_* settings: {problems}", highlight=False)
        raise typer.Exit(code=1) from None


def _describe(state: ServerStatus, settings: Neo4jSettings) -> None:
    version = f"Neo4j {state.version} ({state.edition})" if state.version else "Neo4j"
    apoc = f", APOC {state.apoc_version}" if state.apoc_version else ""
    console.print(f"{version}{apoc} running, pid {state.pid}", highlight=False)
    console.print(f"  Bolt:    {state.bolt_uri}  (user {settings.user})", highlight=False)
    console.print(f"  Browser: {state.browser_url}", highlight=False)
    console.print(f"  Home:    {state.home}  (logs in {state.home / 'logs'})", highlight=False)


@neo4j_app.command(
    "start",
    help=(
        "Start the local server and wait until it answers over Bolt (safe to repeat).\n\n"
        "The first start downloads ~150 MB of jars with Maven into NEO4J_JARS_DIR; later starts take 10-30 s. "
        "The server keeps running in the background after this command returns; its data stays in NEO4J_HOME "
        "across restarts. Stop it with `kgrec neo4j stop`."
    ),
)
def start_cmd() -> None:
    """Start the local server, print where Bolt and Browser are."""
    settings = _settings()
    try:
        with err.status("Checking Java, Maven and the Neo4j jars (the first time downloads ~150 MB)..."):
            ensure_jars(settings)
        with err.status(f"Starting Neo4j (up to {settings.start_timeout:.0f} s)..."):
            state = start(settings)
    except KgrecError as exc:
        raise _fail(exc) from None
    if state.already_running:
        console.print("Already running; nothing to do.")
    _describe(state, settings)


@neo4j_app.command("stop")
def stop_cmd(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for a clean shutdown before the JVM is killed.")
    ] = 60.0,
) -> None:
    """Stop the local server cleanly (SIGTERM; SIGKILL only after --timeout). Harmless if it is not running."""
    settings = _settings()
    try:
        stopped = stop(settings, timeout=timeout)
    except KgrecError as exc:
        raise _fail(exc) from None
    console.print("Neo4j stopped." if stopped else f"Neo4j was not running (home {settings.home}).", highlight=False)


@neo4j_app.command(
    "status",
    help=(
        "Say whether the local server runs, where, and which version.\n\n"
        "Exit code 0 if it runs and answers over Bolt, 1 if it runs but does not answer with the configured "
        "credentials, 3 if it is not running."
    ),
)
def status_cmd() -> None:
    """Print the local server's state; the exit code tells it too."""
    settings = _settings()
    try:
        state = status(settings)
    except KgrecError as exc:
        raise _fail(exc) from None
    if not state.running:
        console.print(
            f"Neo4j is not running (home {state.home}, would listen on {state.bolt_uri}). "
            "Start it with `kgrec neo4j start`.",
            highlight=False,
        )
        raise typer.Exit(code=EXIT_NOT_RUNNING)
    _describe(state, settings)
    if not state.reachable:
        err.print(f"[bold red]error:[/] it runs but does not answer over Bolt: {state.error}", highlight=False)
        raise typer.Exit(code=1)


@neo4j_app.command("jars")
def jars_cmd() -> None:
    """Resolve the Neo4j, APOC and Browser jars from Maven Central into the cache (done once)."""
    from graph.neo4j_local.launcher import ensure_jars

    try:
        path = ensure_jars(get_neo4j_settings())
    except KgrecError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"jars ready in {path}")
