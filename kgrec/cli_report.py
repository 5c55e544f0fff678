"""``kgrec report``: the online figures of each variant from the recorded lists, in the configured impression store
(``KGREC_IMPRESSION_STORE``: the SQLite file ``KGREC_IMPRESSION_DB`` by default, or Neo4j)."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from api.settings import load_api_settings
from graph.driver import create_driver
from graph.impressions import open_impression_store
from graph.settings import get_neo4j_settings
from kgrec.cli_common import console, fail
from kgrec.report import as_json, build_report
from schema.errors import KgrecError


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def report(
    days: Annotated[
        float | None, typer.Option(min=0, help="Only lists served in the last DAYS days (default: all).")
    ] = None,
    baseline: Annotated[
        str | None, typer.Option(help="Variant the others are compared with (default: 'default', else the first).")
    ] = None,
    as_json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per variant: lists, impressions, clicks, CTR and conversions with 95% intervals, and the CTR difference from
    the baseline with its 95% interval (from the recorded lists and the feedback attributed to them, in the API's
    impression store: KGREC_IMPRESSION_STORE, the SQLite file KGREC_IMPRESSION_DB by default, or neo4j)."""
    settings = get_neo4j_settings()
    since = int(time.time() - days * 86400) if days is not None else 0
    try:
        api = load_api_settings(api_key=None)  # only where impressions are kept
        with create_driver(settings) as driver:
            store = open_impression_store(api.impression_store, driver, settings.database, api.impression_db)
            try:
                figures = store.variant_report(since)
            finally:
                store.close()
        rows = build_report(figures, baseline)
    except KgrecError as exc:
        raise fail(exc) from exc
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--baseline") from exc
    if as_json_output:
        typer.echo(json.dumps({"since": since, "variants": as_json(rows)}, indent=2))
        return
    if not rows:
        where = "the graph" if api.impression_store == "neo4j" else str(api.impression_db)
        console.print(
            f"no recorded lists in {where} (is KGREC_IMPRESSIONS on in the API, and are KGREC_IMPRESSION_STORE and "
            "KGREC_IMPRESSION_DB set here as there?)",
            soft_wrap=True,
            highlight=False,
        )
        return
    table = Table(title="online figures by variant (95% intervals)")
    for column in ("variant", "lists", "impressions", "clicks", "CTR", "conversions", "conv. rate", "CTR − baseline"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in rows:
        diff = "baseline"
        if r.ctr_diff is not None:
            diff = f"{100 * r.ctr_diff:+.2f} pts [{100 * r.ctr_diff_low:+.2f}, {100 * r.ctr_diff_high:+.2f}]"
        table.add_row(
            r.variant,
            str(r.lists),
            str(r.impressions),
            str(r.clicks),
            f"{_pct(r.ctr)} [{_pct(r.ctr_low)}, {_pct(r.ctr_high)}]",
            str(r.conversions),
            f"{_pct(r.conversion_rate)} [{_pct(r.conversion_low)}, {_pct(r.conversion_high)}]",
            diff,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``kgrec report`` to the ``kgrec`` app."""
    app.command("report")(report)
