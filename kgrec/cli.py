"""The ``kgrec`` command: the app, its schema commands, and the other modules' commands, by job.

Loads and ``stats`` are in :mod:`kgrec.cli_load`, the learning jobs in :mod:`kgrec.cli_train`, serving and the
demo in :mod:`kgrec.cli_serve`, the local server in :mod:`kgrec.cli_neo4j`.
Each command builds its settings, opens what it needs, calls library code and prints a summary.
Errors that kgrec raises on purpose (:class:`schema.errors.KgrecError`) are printed as one line
with exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from graph.driver import create_driver
from graph.settings import get_neo4j_settings
from kgrec import cli_load, cli_report, cli_serve, cli_train
from kgrec.cli_common import console, fail
from schema.ddl import apply_schema, describe_model
from schema.errors import KgrecError

app = typer.Typer(
    name="kgrec",
    help="kgrec: a knowledge-graph recommender backed by Neo4j.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
schema_app = typer.Typer(help="The graph contract: constraints, indexes and the model.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")
app.add_typer(cli_load.load_app, name="load")

try:  # the local-server commands live in their own module
    from kgrec.cli_neo4j import neo4j_app

    app.add_typer(neo4j_app, name="neo4j", help="Run the local Neo4j 5.26 server (no Docker needed).")
except ImportError:  # pragma: no cover - only while the module is being written
    pass

# the commands by job, in the order `kgrec --help` lists them
cli_train.register(app)  # train, evaluate, retrain, models
cli_load.register(app)  # stats (the load group is added above)
cli_serve.register(app)  # demo, serve, recommend
cli_report.register(app)  # report (online figures by variant)


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO level).")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("neo4j").setLevel(logging.WARNING)


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
        raise fail(exc) from exc
    console.print(f"created: {', '.join(created)}" if created else "schema already complete: nothing to do")


@schema_app.command("show")
def schema_show() -> None:
    """Print the canonical graph model with its constraints and indexes."""
    console.print(describe_model(), highlight=False)


def main() -> None:
    """Console-script entry point (the torch.jit.script warning is filtered in :mod:`kgrec`'s ``__init__``)."""
    app()


if __name__ == "__main__":
    main()
