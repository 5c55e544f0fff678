"""Writing validated rows into Neo4j while they are still being read, and reporting what happened.

Reading and validating is Python work; writing is Neo4j work. A background writer thread takes
row chunks in the order the reader produces them (items before the interactions that reference
them), so on two cores both run at once. The schema is applied before anything is written, so
every MERGE hits a uniqueness constraint's index.
"""

from __future__ import annotations

import csv
import logging
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from neo4j import Driver

from etl.dataset import KINDS, Dataset, ProgressFactory, RowSink, no_progress
from etl.extract import Reject
from graph import writers
from graph.writers import BatchWriter
from schema.ddl import apply_schema

log = logging.getLogger(__name__)

#: The order in which a whole Dataset is written: nodes first, then what references them.
WRITE_ORDER = KINDS


@dataclass
class PhaseStats:
    """One kind of row: rows written and seconds spent writing them, and what the writes created or changed
    (:class:`graph.writers.WriteStats`' ``changes``)."""

    name: str
    rows: int
    seconds: float
    changes: Counter[str] = field(default_factory=Counter)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class LoadReport:
    """What a load did: phases, resulting graph counts, rejects and skipped rows.

    ``source_rows`` counts the data lines read from files (records and the lines rejected while reading them),
    ``blank_lines`` the blank lines skipped per file; neither counts as a reject. ``read_seconds`` and
    ``write_seconds`` overlap; ``seconds`` is the wall time of the whole load.
    """

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
    seconds: float = 0.0
    rows_read: int = 0
    rows_written: int = 0
    source_rows: int = 0
    blank_lines: Counter[str] = field(default_factory=Counter)

    @property
    def changes(self) -> Counter[str]:
        """What the writes created or changed, summed over the phases (:class:`graph.writers.WriteStats`)."""
        total: Counter[str] = Counter()
        for phase in self.phases:
            total.update(phase.changes)
        return total

    @property
    def unchanged(self) -> bool:
        """Rows were written and every one was already in the graph: no node, relationship or label created and no
        interaction changed (a reload of the same files). Known from the writes' own counts, without reading the graph;
        properties such as an item's title are rewritten and not compared."""
        return self.rows_written > 0 and not any(self.changes.values())

    @property
    def reject_rate(self) -> float:
        """Rejected rows over source rows (data lines read); 0 when nothing was read from files."""
        return self.rejects / self.source_rows if self.source_rows else 0.0


class _BackgroundWriter:
    """Writes submitted chunks in a thread of its own, in submission order."""

    def __init__(self, writer: BatchWriter, item_labels: Sequence[str], progress: ProgressFactory) -> None:
        self._writer = writer
        self._labels = list(item_labels)
        self._progress = progress
        self._queue: queue.Queue[tuple[str, list] | None] = queue.Queue(maxsize=4)  # type: ignore[type-arg]
        self._error: BaseException | None = None
        self._ticks: dict[str, Callable[[int], None]] = {}
        self.phases: dict[str, PhaseStats] = {}
        self._thread = threading.Thread(target=self._run, name="kgrec-writer", daemon=True)
        self._thread.start()

    def submit(self, kind: str, rows: list) -> None:  # type: ignore[type-arg]
        """Queue rows for writing; raises the writer's error if it has failed."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put((kind, rows), timeout=0.5)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """Wait for every queued chunk to be written; re-raise a write error."""
        if self._thread.is_alive():
            while self._error is None:
                try:
                    self._queue.put(None, timeout=0.5)
                    break
                except queue.Full:
                    continue
            self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (job := self._queue.get()) is not None:
                kind, rows = job
                tick = self._ticks.get(kind) or self._ticks.setdefault(kind, self._progress(f"write {kind}", 0))
                stats = self._write(kind, rows, tick)
                phase = self.phases.setdefault(kind, PhaseStats(kind, 0, 0.0))
                phase.rows += stats.rows
                phase.seconds += stats.seconds
                phase.changes.update(stats.changes)
        except BaseException as exc:  # handed to the reading thread, which re-raises it
            self._error = exc

    def _write(self, kind: str, rows: list, tick: Callable[[int], None]) -> writers.WriteStats:  # type: ignore[type-arg]
        w = self._writer
        if kind == "users":
            return writers.write_users(w, rows, tick)
        if kind == "items":
            return writers.write_items(w, rows, self._labels, tick)
        if kind == "interactions":
            return writers.load_interactions(w, rows, tick)
        if kind == "genres":
            return writers.write_item_genres(w, rows, tick)
        if kind == "people":
            return writers.write_item_people(w, rows, tick)
        if kind == "tags":
            return writers.write_item_tags(w, rows, tick)
        if kind == "follows":
            return writers.write_follows(w, rows, tick)
        if kind == "item_attributes":
            return writers.write_item_attributes(w, rows, tick)
        if kind == "user_attributes":
            return writers.write_user_attributes(w, rows, tick)
        raise ValueError(f"unknown row kind {kind!r}")


def load_stream(
    driver: Driver,
    produce: Callable[[RowSink], Dataset],
    *,
    item_labels: Sequence[str] = (),
    database: str = "neo4j",
    replace: bool = False,
    batch_size: int = 10_000,
    reject_dir: Path = Path(".kgrec/rejects"),
    progress: ProgressFactory = no_progress,
) -> LoadReport:
    """Apply the schema, optionally wipe, then write rows while ``produce`` reads them.

    Args:
        driver: An open driver.
        produce: Reads the source, passing row chunks to the sink it is given, and returns the
            complete Dataset (for rejects and counts) when done.
        item_labels: Labels for items besides Item (e.g. ["Movie"]).
        database: Target database.
        replace: Delete every node and relationship first.
        batch_size: Rows per write transaction.
        reject_dir: Folder of ``<dataset name>.rejects.csv`` (written only when there are rejects).
        progress: Factory of progress callbacks ``(phase, total) -> tick(n)``; total 0 = unknown.

    Returns:
        The report, with graph counts read back from Neo4j after the load.

    Raises:
        DatabaseUnavailableError: Neo4j is not reachable.
        KgrecError: Neo4j refused a write, or the source could not be read.
    """
    started = time.perf_counter()
    apply_schema(driver, database)
    phases: list[PhaseStats] = []
    if replace:
        log.info("replace: wiping the graph")
        t = time.perf_counter()
        writers.wipe_graph(driver, database)
        phases.append(PhaseStats("wipe", 0, time.perf_counter() - t))

    background = _BackgroundWriter(BatchWriter(driver, database, batch_size), item_labels, progress)
    read_started = time.perf_counter()
    try:
        dataset = produce(background.submit)
    except BaseException:
        try:
            background.close()
        except Exception:  # the reading error is the one to report
            log.exception("writer failed too")
        raise
    read_seconds = time.perf_counter() - read_started
    background.close()
    phases.extend(background.phases[k] for k in WRITE_ORDER if k in background.phases)

    report = dataset_report(dataset, reject_dir, read_seconds)
    report.phases = phases
    report.write_seconds = sum(p.seconds for p in phases)
    report.rows_written = sum(p.rows for p in phases)
    report.nodes, report.relationships = writers.read_graph_counts(driver, database)
    report.seconds = time.perf_counter() - started
    for phase in phases:
        log.info("wrote %d %s rows in %.2fs", phase.rows, phase.name, phase.seconds)
    return report


def dataset_report(dataset: Dataset, reject_dir: Path, read_seconds: float = 0.0) -> LoadReport:
    """What a load of ``dataset`` would write, without Neo4j (a dry run, and the base of a real load's report): rows
    per kind as phases of 0 seconds, rejects (written to the reject file), skipped and merged rows; no graph counts."""
    report = LoadReport(name=dataset.name, read_seconds=read_seconds)
    report.phases = [PhaseStats(kind, dataset.count(kind), 0.0) for kind in WRITE_ORDER]
    report.rows_read = sum(dataset.read.values()) or dataset.fact_count
    report.rejects = len(dataset.rejects)
    report.rejects_by_reason = summarize_rejects(dataset.rejects)
    report.source_rows = sum(dataset.source_rows.values())
    report.blank_lines = +Counter(dataset.blank)
    report.skipped = Counter(dataset.skipped)
    report.merged = Counter(dataset.merged)
    report.reject_file = write_reject_file(dataset.rejects, reject_dir / f"{dataset.name}.rejects.csv")
    return report


def emit_dataset(dataset: Dataset, sink: RowSink, chunk: int = 10_000) -> Dataset:
    """Hand a complete Dataset to a sink in write order and chunks; returns the dataset."""
    for kind in WRITE_ORDER:
        rows = getattr(dataset, kind)
        for offset in range(0, len(rows), chunk):
            sink(kind, rows[offset : offset + chunk])
    return dataset


def load_dataset(driver: Driver, dataset: Dataset, **options: object) -> LoadReport:
    """Write an already complete Dataset (e.g. the synthetic world); options as for :func:`load_stream`."""
    return load_stream(
        driver,
        lambda sink: emit_dataset(dataset, sink),
        item_labels=dataset.item_labels,
        **options,  # type: ignore[arg-type]
    )


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
