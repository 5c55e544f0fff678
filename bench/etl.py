"""ETL benchmark: how fast kgrec loads ml-latest-small (+ actors, HetRec) and Last.fm into Neo4j.

Runs on a private Neo4j (.kgrec/neo4j-bench, ports 27687/27474) and prints, per dataset and phase,
rows and relationships per second, then the same ratings+movies loaded two ways side by side:
kgrec's loader versus Neo4j's own LOAD CSV with CALL {} IN TRANSACTIONS (the reference way).

    .venv/bin/python -m bench.etl [--keep-server]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from rich.console import Console
from rich.table import Table

from bench.common import OUT, bench_settings, require_dataset
from etl.load import LoadReport, load_stream
from etl.sources import lastfm_variables, movielens_variables, read_mapping_dataset, shipped_mapping_path
from graph.driver import create_driver
from graph.neo4j_local import launcher
from graph.writers import read_graph_counts, wipe_graph
from schema.model import Label

console = Console()

# The reference: what a Neo4j user writes by hand. Benchmark-only text, run verbatim.
LOAD_CSV_MOVIES = """
LOAD CSV WITH HEADERS FROM 'file:///movies.csv' AS row
CALL (row) {
  MERGE (i:Item {itemId: row.movieId}) SET i.title = row.title, i:Movie
} IN TRANSACTIONS OF 10000 ROWS
"""
LOAD_CSV_RATINGS = """
LOAD CSV WITH HEADERS FROM 'file:///ratings.csv' AS row
CALL (row) {
  MERGE (u:User {userId: row.userId})
  WITH u, row
  MATCH (i:Item {itemId: row.movieId})
  MERGE (u)-[r:INTERACTED]->(i)
  SET r.rating = toFloat(row.rating), r.timestamp = toInteger(row.timestamp), r.weight = 1.0
} IN TRANSACTIONS OF 10000 ROWS
"""


def _load(driver, mapping: str, variables: dict[str, str], labels: list[Label], empty_first: bool = True) -> LoadReport:  # noqa: ANN001
    """Load through kgrec's loader; by default into an empty graph (the wipe is not timed)."""
    if empty_first:
        wipe_graph(driver)

    def produce(sink):  # noqa: ANN001, ANN202
        return read_mapping_dataset(shipped_mapping_path(mapping), variables, sink=sink)[0]

    return load_stream(driver, produce, item_labels=labels, reject_dir=OUT / "rejects")


def _phase_table(title: str, report: LoadReport) -> Table:
    table = Table(title=title, show_edge=False)
    for col in ("phase", "rows", "seconds", "rows/s"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for p in report.phases:
        table.add_row(p.name, f"{p.rows:,}", f"{p.seconds:.2f}", f"{p.rows_per_second:,.0f}" if p.rows else "")
    rels = report.relationships.get("*", 0)
    table.add_row(
        "[bold]wall total",
        f"{report.rows_written:,}",
        f"{report.seconds:.2f}",
        f"{report.rows_written / report.seconds:,.0f}",
    )
    table.caption = (
        f"read+validate {report.read_seconds:.2f}s overlapped with writes {report.write_seconds:.2f}s; "
        f"{rels:,} relationships → {rels / report.seconds:,.0f} rels/s wall"
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-server", action="store_true", help="leave the benchmark Neo4j running")
    args = parser.parse_args()

    ml = require_dataset("ml-latest-small")
    actors = require_dataset("ml-small-actors-tomasonjo") / "movies.csv"
    hetrec = require_dataset("hetrec2011-movielens-2k")
    lastfm = require_dataset("hetrec2011-lastfm-2k")
    settings = bench_settings()
    console.print(f"starting the benchmark Neo4j in {settings.home} …")
    launcher.start(settings)
    results: dict[str, dict] = {}
    try:
        with create_driver(settings) as driver:
            warm = _load(driver, "movielens", movielens_variables(ml), [Label.MOVIE])  # warm the JIT and caches
            console.print(f"warm-up load: {warm.seconds:.2f}s")

            full = _load(driver, "movielens", movielens_variables(ml, actors, hetrec), [Label.MOVIE])
            console.print(_phase_table("ml-latest-small + actors + HetRec, into an empty graph", full))
            again = _load(
                driver, "movielens", movielens_variables(ml, actors, hetrec), [Label.MOVIE], empty_first=False
            )
            console.print(
                f"second identical load (everything exists already): {again.seconds:.2f}s wall, "
                f"counts unchanged: {(again.nodes, again.relationships) == (full.nodes, full.relationships)}"
            )
            fm = _load(driver, "lastfm", lastfm_variables(lastfm), [Label.ARTIST])
            console.print(_phase_table("hetrec2011-lastfm-2k, into an empty graph", fm))

            # Side by side: ratings + movies only, kgrec vs LOAD CSV.
            ours = _load(driver, "movielens", movielens_variables(ml), [Label.MOVIE])
            import_dir = settings.home / "import"
            import_dir.mkdir(parents=True, exist_ok=True)
            for name in ("movies.csv", "ratings.csv"):
                shutil.copy(ml / name, import_dir / name)
            wipe_graph(driver)
            started = time.perf_counter()
            with driver.session() as session:
                session.run(LOAD_CSV_MOVIES).consume()
                session.run(LOAD_CSV_RATINGS).consume()
            ref_seconds = time.perf_counter() - started
            ref_nodes, ref_rels = read_graph_counts(driver)
            side = Table(title="ratings.csv + movies.csv (+ genres and tags for kgrec), empty graph", show_edge=False)
            for col in ("loader", "INTERACTED", "seconds", "ratings/s", "validates rows / reject file"):
                side.add_column(col, justify="left" if col in ("loader", "validates rows / reject file") else "right")
            side.add_row(
                "kgrec load movielens",
                f"{ours.relationships['INTERACTED']:,}",
                f"{ours.seconds:.2f}",
                f"{ours.relationships['INTERACTED'] / ours.seconds:,.0f}",
                "yes",
            )
            side.add_row(
                "Neo4j LOAD CSV (reference)",
                f"{ref_rels.get('INTERACTED', 0):,}",
                f"{ref_seconds:.2f}",
                f"{ref_rels.get('INTERACTED', 0) / ref_seconds:,.0f}",
                "no",
            )
            console.print(side)

            results = {
                "movielens_full": _as_json(full),
                "movielens_reload_seconds": again.seconds,
                "lastfm": _as_json(fm),
                "movielens_ratings_only": _as_json(ours),
                "load_csv_reference": {"seconds": ref_seconds, "nodes": ref_nodes, "relationships": ref_rels},
            }
    finally:
        if not args.keep_server:
            launcher.stop(settings)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "etl.json"
    path.write_text(json.dumps(results, indent=2))
    console.print(f"figures written to {path}")


def _as_json(report: LoadReport) -> dict:
    return {
        "seconds_wall": report.seconds,
        "read_seconds": report.read_seconds,
        "write_seconds": report.write_seconds,
        "phases": [{"name": p.name, "rows": p.rows, "seconds": p.seconds} for p in report.phases],
        "nodes": report.nodes,
        "relationships": report.relationships,
        "rejects": report.rejects,
    }


if __name__ == "__main__":
    main()
