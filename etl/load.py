"""Writing a :class:`Dataset` into Neo4j and reporting what happened.

Order matters: nodes first (users, items), then relationships that MATCH them. The schema is
applied before anything is written, so every MERGE hits a uniqueness constraint's index.
"""

from __future__ import annotations

import csv
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from neo4j import Driver

from etl.dataset import Dataset, no_progress
from etl.extract import Reject
from graph import writers
from graph.writers import BatchWriter
from schema.ddl import apply_schema

log = logging.getLogger(__name__)

from etl.dataset import ProgressFactory  # noqa: E402


@dataclass
class PhaseStats:
    """One write phase: rows written and seconds taken."""

    name: str
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class LoadReport:
    """What a load did: phases, resulting graph counts, rejects and skipped rows."""

    name: str
    phases: list[PhaseStats] = field(default_factory=list)
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    rejects: int = 0
    rejects_by_reason: Counter[str] = field(default_factory=Counter)
    reject_file: Path | None = None
    skipped: Counter[str] = field(default_factory=Counter)
    merged: Counter[str] = field(default_factory=Counter)
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    rows_read: int = 0
    rows_written: int = 0

    @property
    def seconds(self) -> float:
        return self.read_seconds + self.write_seconds


def load_dataset(
    driver: Driver,
    dataset: Dataset,
    *,
    database: str = "neo4j",
    replace: bool = False,
    batch_size: int = 10_000,
    reject_dir: Path = Path(".kgrec/rejects"),
    progress: ProgressFactory = no_progress,
    read_seconds: float = 0.0,
) -> LoadReport:
    """Apply the schema, optionally wipe the graph, write every row of ``dataset`` and report.

    Args:
        driver: An open driver.
        dataset: Validated rows.
        database: Target database.
        replace: Delete every node and relationship first.
        batch_size: Rows per write transaction.
        reject_dir: Folder of the reject file ``<dataset name>.rejects.csv`` (written only when there are rejects).
        progress: Factory of progress callbacks ``(phase, total) -> tick(n)``.
        read_seconds: Time already spent reading and transforming (for the report).

    Returns:
        The report, including graph counts read back from Neo4j after the load.

    Raises:
        DatabaseUnavailableError: Neo4j is not reachable.
        KgrecError: Neo4j refused a write.
    """
    report = LoadReport(name=dataset.name, read_seconds=read_seconds)
    apply_schema(driver, database)
    if replace:
        log.info("replace: wiping the graph")
        started = time.perf_counter()
        writers.wipe_graph(driver, database)
        report.phases.append(PhaseStats("wipe", 0, time.perf_counter() - started))

    writer = BatchWriter(driver, database, batch_size)
    phases = [
        ("users", dataset.users, lambda rows, tick: writers.write_users(writer, rows, tick)),
        ("items", dataset.items, lambda rows, tick: writers.write_items(writer, rows, dataset.item_labels, tick)),
        ("interactions", dataset.interactions, lambda rows, tick: writers.write_interactions(writer, rows, tick)),
        ("genres", dataset.genres, lambda rows, tick: writers.write_item_genres(writer, rows, tick)),
        ("people", dataset.people, lambda rows, tick: writers.write_item_people(writer, rows, tick)),
        ("tags", dataset.tags, lambda rows, tick: writers.write_item_tags(writer, rows, tick)),
        ("follows", dataset.follows, lambda rows, tick: writers.write_follows(writer, rows, tick)),
    ]
    for name, rows, write in phases:
        if not rows:
            continue
        tick = progress(f"write {name}", len(rows))
        stats = write(rows, tick)
        report.phases.append(PhaseStats(name, stats.rows, stats.seconds))
        log.info("wrote %d %s rows in %.2fs", stats.rows, name, stats.seconds)

    report.write_seconds = sum(p.seconds for p in report.phases)
    report.rows_written = sum(p.rows for p in report.phases)
    report.rows_read = sum(dataset.read.values())
    report.nodes, report.relationships = writers.read_graph_counts(driver, database)
    report.rejects = len(dataset.rejects)
    report.rejects_by_reason = summarize_rejects(dataset.rejects)
    report.skipped = Counter(dataset.skipped)
    report.merged = Counter(dataset.merged)
    report.reject_file = write_reject_file(dataset.rejects, reject_dir / f"{dataset.name}.rejects.csv")
    return report


_VARYING = re.compile(r"'[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?")


def summarize_rejects(rejects: list[Reject]) -> Counter[str]:
    """Count rejects by reason with the varying parts (ids, numbers) blanked out."""
    return Counter(f"{r.source}: {_VARYING.sub('…', r.reason)}" for r in rejects)


def write_reject_file(rejects: list[Reject], path: Path) -> Path | None:
    """Write every reject (source, file, line, reason, raw) to ``path``; remove a stale file when none."""
    if not rejects:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["source", "file", "line", "reason", "raw"])
        for r in rejects:
            out.writerow([r.source, r.path, r.line, r.reason, r.raw])
    return path
