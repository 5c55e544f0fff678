"""Where recorded impressions live: the served lists, each user's exposure, each item's impressions and clicks.

One interface (:class:`ImpressionStore`), two stores, chosen by ``KGREC_IMPRESSION_STORE`` in the API:

* :class:`Neo4jImpressionStore` (``neo4j``): the graph itself (``record_impressions.cypher``): a ``(:Recommendation)``
  node per list, the exposure as arrays on the user node (read with the user's context and fingerprint,
  ``user_context.cypher``), the items' ``impressions`` and ``clicks``; attribution and a skip's exposure run inside
  the feedback's own transaction (:func:`graph.writers.write_feedback`). The store of API processes on several hosts.
* :class:`SqliteImpressionStore` (``sqlite``, the default): a SQLite file on the API's host (``KGREC_IMPRESSION_DB``).
  The lists and the clicks and conversions attributed to them are append-only rows (pruned by age only); the exposure
  (per user and item: times shown, last shown, the user's list number when last shown, read as the most recent
  ``max_shown`` items: the rows beyond them are deleted once they are a tenth more) and the per-item counts are
  aggregates updated once per user and item per window, as in the graph. Neo4j then does none of the recording's work:
  on the 2-core machine the whole p99 cost of recording under load was Neo4j's side of the write (docs/benchmarks.md
  §5), which SQLite does in the recorder's thread in C, the interpreter's lock released while it steps; on a quiet
  machine it costs the read path's p99 less than the graph's store (hence the default; the figures against recording
  off: ``bench.api_load --impressions-compare``, docs/benchmarks.md §5). The file is in WAL mode (readers never wait
  for the writer), ``synchronous=NORMAL`` (a commit survives a crash of the process; a power cut may lose the last
  ones), every read-modify-write in a ``BEGIN IMMEDIATE`` transaction and a busy timeout, so that several API worker
  processes of one host share one file. A file is per host: API processes on several hosts need the Neo4j store
  (docs/architecture.md). A file records the graph it was written for (the Neo4j database's id, ``db.info()``), and is
  opened for no other: read for another graph, its lists and exposure would fatigue and rotate items of users who
  merely share an id (:meth:`SqliteImpressionStore.bind`).

Both live here, in the graph layer, because they store the same facts in the same shapes (:class:`graph.writers.
ImpressionBatch` in, :class:`graph.reads.VariantFigures` out) and the layers above read them: the API's recorder,
feedback and exploration, ``kgrec report`` and the benchmarks (kgrec/ and bench/ do not import the API's service).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from neo4j import Driver

from graph import catalog
from graph.query import run_read
from graph.reads import UserContext, VariantFigures, read_item_exposure, variant_report
from graph.writers import (
    EXPOSURE_ITEMS,
    BatchWriter,
    ImpressionBatch,
    WriteStats,
    convert_shown,
    prune_recommendations,
    warm_impressions,
    write_impressions,
)
from schema.errors import ConfigError, DatabaseUnavailableError, KgrecError

log = logging.getLogger(__name__)

#: The stores ``KGREC_IMPRESSION_STORE`` names.
STORES = ("neo4j", "sqlite")


class ImpressionStoreError(KgrecError):
    """The impression store could not be read or written (SQLite: the file locked past the busy timeout, unwritable,
    or damaged)."""


class ImpressionStore(ABC):
    """Recorded lists, exposure and item counts (module docstring). Thread-safe."""

    #: Whether the feedback's graph transaction attributes it and counts a skip's exposure itself (the Neo4j store);
    #: otherwise :meth:`SqliteImpressionStore.attribute` and :meth:`SqliteImpressionStore.record_skip` do.
    in_graph: bool = True

    @abstractmethod
    def prepare(self) -> None:
        """What the first window would otherwise wait for, done once before the app is ready."""

    @abstractmethod
    def write(self, batch: ImpressionBatch) -> WriteStats:
        """Record one transaction of served lists: the lists, the users' exposure and listsShown, the items'
        impressions.

        Raises:
            KgrecError: The store could not take it (the caller drops the batch and counts it).
        """

    @abstractmethod
    def prune(self, before: int, limit: int) -> int:
        """Delete at most ``limit`` lists shown before ``before`` (epoch seconds) and what was attributed to them;
        exposure and item counts stay. Returns how many lists were deleted."""

    @abstractmethod
    def exposure(
        self, context: UserContext, count: Callable[[str], None] | None = None
    ) -> tuple[dict[str, tuple[int, int]], int]:
        """The written exposure of ``context``'s user: ``{item_id: (times shown, the user's list number when last
        shown)}`` of the items not interacted with, and how many lists were recorded for them. The dict may be the
        store's own (held between reads): read it, do not change it. ``count``: called with what the rows held in
        the process gave (:meth:`HeldExposure.get`'s outcomes), by a store that holds them."""

    @abstractmethod
    def lists_shown(self, user_id: str, in_graph: int) -> int:
        """How many lists were recorded for the user (written); ``in_graph``: the ``listsShown`` their fingerprint
        read from Neo4j."""

    @abstractmethod
    def item_exposure(self) -> dict[str, tuple[int, int]]:
        """``{item_id: (impressions, attributed clicks)}`` of every item shown at least once (exploration)."""

    @abstractmethod
    def variant_report(self, since: int = 0) -> list[VariantFigures]:
        """Per variant, by name, the figures of the lists recorded at or after ``since`` (epoch seconds)."""

    def close(self) -> None:  # noqa: B027 - the Neo4j store holds nothing of its own
        """Release what the store holds (the app's shutdown)."""


class Neo4jImpressionStore(ImpressionStore):
    """The impressions in the graph (module docstring): today's statements, unchanged.

    Args:
        driver: Open driver.
        database: Neo4j database.
        max_shown: Most items a user's exposure arrays keep.
    """

    in_graph = True

    def __init__(self, driver: Driver, database: str = "neo4j", max_shown: int = EXPOSURE_ITEMS) -> None:
        self.driver = driver
        self.database = database
        self.max_shown = max_shown
        self.writer = BatchWriter(driver, database)
        self._converted = False  # no SHOWN of an older graph left to convert (graph.writers.convert_shown)

    def prepare(self) -> None:
        """Convert a graph recorded before the exposure arrays (its ``SHOWN``: a one-time migration that would
        otherwise run during the first window of traffic) and have Neo4j plan the impression statement
        (:func:`graph.writers.warm_impressions`)."""
        self._convert()
        warm_impressions(self.driver, self.database)

    def write(self, batch: ImpressionBatch) -> WriteStats:
        self._convert()  # once per process: an older graph's SHOWN into the users' arrays
        return write_impressions(self.writer, batch, self.max_shown)

    def _convert(self) -> None:
        if not self._converted:
            convert_shown(self.driver, self.database, max_shown=self.max_shown)
            self._converted = True

    def prune(self, before: int, limit: int) -> int:
        return prune_recommendations(self.driver, before, limit, self.database)

    def exposure(
        self, context: UserContext, count: Callable[[str], None] | None = None
    ) -> tuple[dict[str, tuple[int, int]], int]:
        """Read with the context itself (``user_context.cypher``): nothing more to read (or count)."""
        return context.shown, context.lists_shown

    def lists_shown(self, user_id: str, in_graph: int) -> int:
        """Read with the fingerprint itself: ``in_graph``."""
        return in_graph

    def item_exposure(self) -> dict[str, tuple[int, int]]:
        return read_item_exposure(self.driver, self.database)

    def variant_report(self, since: int = 0) -> list[VariantFigures]:
        return variant_report(self.driver, since, self.database)


class Attribution(NamedTuple):
    """What :meth:`SqliteImpressionStore.attribute` found and did (the fields of :class:`graph.writers.
    FeedbackOutcome` that ``attribute_feedback.cypher`` gives in the graph)."""

    found: bool
    shown: bool
    variant: str | None
    new_click: bool
    new_conversion: bool


#: The SQLite store's tables. ``lists`` and ``outcomes`` are append-only (pruned by age); ``exposure`` (``seq``: the
#: order items joined the user's exposure, the most recent highest, as the graph's arrays are ordered; not indexed:
#: every window rewrites the ``seq`` of the items it shows, and an index on it cost about a quarter of the writer's
#: time, where ordering a user's rows is needed only to forget the oldest), ``users`` and ``items`` are aggregates.
#: ``users.items`` counts the user's ``exposure`` rows, kept by triggers (:data:`_TRIGGERS`).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
    recommendation_id TEXT PRIMARY KEY, user_id TEXT, variant TEXT NOT NULL, model_version TEXT NOT NULL,
    shown_at INTEGER NOT NULL, item_ids TEXT NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS lists_shown_at ON lists (shown_at);
CREATE TABLE IF NOT EXISTS outcomes (
    recommendation_id TEXT NOT NULL, kind TEXT NOT NULL, item_id TEXT NOT NULL,
    PRIMARY KEY (recommendation_id, kind, item_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exposure (
    user_id TEXT NOT NULL, item_id TEXT NOT NULL, count INTEGER NOT NULL, last_shown INTEGER NOT NULL,
    list INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (user_id, item_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, lists_shown INTEGER NOT NULL, seq INTEGER NOT NULL, items INTEGER NOT NULL DEFAULT 0)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY, impressions INTEGER NOT NULL, clicks INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
#: ``users.items``, each user's count of ``exposure`` rows, kept in step by SQLite itself: a row inserted (an upsert's
#: update branch fires no insert trigger) adds one, creating the user's row if needed; a row deleted takes one off.
#: The writer then reads whether a user holds more than ``max_shown + slack`` items from one row, where it counted the
#: user's rows (up to ``max_shown`` of them) after every window: a sixth of its time once every user was at the bound.
_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS exposure_added AFTER INSERT ON exposure BEGIN "
    "INSERT INTO users (user_id, lists_shown, seq, items) VALUES (NEW.user_id, 0, 0, 1) "
    "ON CONFLICT (user_id) DO UPDATE SET items = items + 1; END",
    "CREATE TRIGGER IF NOT EXISTS exposure_removed AFTER DELETE ON exposure BEGIN "
    "UPDATE users SET items = items - 1 WHERE user_id = OLD.user_id; END",
)

_SHOWN = (
    "INSERT INTO exposure (user_id, item_id, count, last_shown, list, seq) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (user_id, item_id) DO UPDATE SET count = count + excluded.count, last_shown = excluded.last_shown, "
    "list = excluded.list, seq = excluded.seq"
)
_USER = (
    "INSERT INTO users (user_id, lists_shown, seq) VALUES (?, ?, ?) "
    "ON CONFLICT (user_id) DO UPDATE SET lists_shown = excluded.lists_shown, seq = excluded.seq"
)
# the user's items beyond the max_shown most recent (seq at or below the max_shown + 1-th highest's) are forgotten
#: Most ids in one ``IN (...)`` list (SQLite allows 32,766 parameters a statement).
_IN_CHUNK = 500
_TRIM = (
    "DELETE FROM exposure WHERE user_id = ?1 AND seq <= "
    "(SELECT seq FROM exposure WHERE user_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)"
)
_ITEM_SHOWN = (
    "INSERT INTO items (item_id, impressions, clicks) VALUES (?, ?, 0) "
    "ON CONFLICT (item_id) DO UPDATE SET impressions = impressions + excluded.impressions"
)
_ITEM_CLICKED = (
    "INSERT INTO items (item_id, impressions, clicks) VALUES (?, 0, 1) "
    "ON CONFLICT (item_id) DO UPDATE SET clicks = clicks + 1"
)
_REPORT = """
SELECT variant, count(*), sum(size),
       sum((SELECT count(*) FROM outcomes o WHERE o.recommendation_id = l.recommendation_id AND o.kind = 'click')),
       sum((SELECT count(*) FROM outcomes o WHERE o.recommendation_id = l.recommendation_id AND o.kind = 'conversion'))
FROM lists l WHERE shown_at >= ? GROUP BY variant ORDER BY variant
"""


class ExposureRows(dict):
    """A user's exposure rows as :class:`HeldExposure` holds them, ``{item_id: (times shown, list number when last
    shown, seq)}``, with what :meth:`SqliteImpressionStore.exposure` gives of them (``view``: the ``max_shown`` most
    recent as ``{item_id: (times shown, list number)}``), computed by the first read that needs it (550 rows' sort
    and copy cost about 0.4 ms of a miss)."""

    __slots__ = ("view",)

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.view: dict[str, tuple[int, int]] | None = None


#: The version of a user's exposure in a SQLite file: the file's generation (``meta``, new at every :meth:`
#: SqliteImpressionStore.clear`), the user's ``lists_shown`` and ``seq``. Every change of a user's rows changes it: a
#: list written adds to ``lists_shown`` (and to ``seq`` with each item), a skip adds to ``seq``, a clear renews the
#: generation.
_GENERATION = "(SELECT value FROM meta WHERE key = 'generation')"
_VERSION = f"SELECT {_GENERATION}, lists_shown, seq FROM users WHERE user_id = ?"


#: A window :meth:`SqliteImpressionStore.write` wrote for a user: their version before it, after it, and its items
#: (oldest first: id, times shown, last shown, list number within the window).
Window = tuple[tuple, tuple, Sequence[tuple[str, int, int, int]]]
#: A window as :meth:`SqliteImpressionStore._expose` returns it: the user's id, then the :data:`Window`.
_Written = tuple[str, tuple, tuple, Sequence[tuple[str, int, int, int]]]


class HeldExposure:
    """Users' exposure rows as last read from a SQLite file, with the version they were read at (:data:`_VERSION`),
    so that a user who comes back costs one row's read instead of their few hundred (about 1 ms of a miss's CPU in the
    API at 500 items, docs/benchmarks.md §5). A held entry is used only at the file's version of the user. The process
    that writes a user's window keeps it beside the rows it holds (:meth:`written`: no work in the writer's thread but
    an append), and the next read that finds the file at the version after it applies the windows to the rows
    (:func:`written_rows`, tens of microseconds); a window of another process changes the version to one no kept
    window reaches, so the rows are read again. At most :attr:`MAX_WINDOWS` windows wait per user (a user whose lists
    are served from the answer cache is written often and read seldom): one more drops the entry. Thread-safe LRU
    bounded by the rows held, summed over users (a user with more rows is not held); ``size`` 0 disables it. The rows
    of an entry are never changed in place (a reader may be walking them): applying windows makes new ones.

    Args:
        size: Most rows held, summed over users (0 = off).
        max_shown: The store's ``max_shown``, and ``slack``: what :func:`written_rows` cuts to.
        slack: The store's ``slack``.
    """

    #: Most windows kept per user until their next read.
    MAX_WINDOWS = 8

    def __init__(self, size: int, max_shown: int = EXPOSURE_ITEMS, slack: int = 0) -> None:
        self.size = size
        self.max_shown = max_shown
        self.slack = slack
        self._entries: OrderedDict[str, tuple[tuple, ExposureRows, tuple[Window, ...]]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def rows(self) -> int:
        """Rows held, summed over users."""
        return self._held

    def get(self, user_id: str, version: tuple, count: Callable[[str], None] | None = None) -> ExposureRows | None:
        """The rows of ``user_id`` at ``version``: those held at it, or those held with the windows kept after them
        that reach it applied (then held at it); else None (and an entry that no kept window brings to ``version`` is
        dropped). ``count`` is called with the outcome: ``hit``, ``applied`` (windows applied), ``stale`` (held, but
        at a version the kept windows do not reach: read again) or ``miss`` (none held)."""
        if self.size <= 0:
            return None
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is None:
                outcome = "miss"
            else:
                at, rows, windows = entry
                if at == version:
                    self._entries.move_to_end(user_id)
                    outcome = "hit"
                else:
                    reach = next((n for n, window in enumerate(windows, start=1) if window[1] == version), 0)
                    outcome = "applied" if reach else "stale"
                    if not reach:
                        self._drop(user_id)
        if count is not None:
            count(outcome)
        if outcome != "applied":
            return rows if outcome == "hit" else None
        for before, _, items in windows[:reach]:  # outside the lock: the writer only appends meanwhile
            rows = written_rows(rows, items, before[1:], self.max_shown, self.slack)
        with self._lock:
            current = self._entries.get(user_id)
            if current is not None and current[0] == at and current[2][:reach] == windows[:reach]:
                self._drop(user_id)
                self._hold(user_id, version, rows, current[2][reach:])
        return rows

    def put(self, user_id: str, version: tuple, rows: ExposureRows) -> None:
        """Hold ``rows``, read at ``version``, for ``user_id`` (replacing any other)."""
        if self.size <= 0:
            return
        with self._lock:
            if user_id in self._entries:
                self._drop(user_id)
            self._hold(user_id, version, rows, ())

    def written(self, user_id: str, before: tuple, after: tuple, items: Sequence[tuple[str, int, int, int]]) -> None:
        """A committed window moved ``user_id`` from version ``before`` to ``after``: kept beside the rows held, when
        they are at ``before`` (held at it, or with the windows kept reaching it); any other entry is dropped (it
        missed a change), as is one with :attr:`MAX_WINDOWS` windows kept already."""
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is None:
                return
            at, rows, windows = entry
            if (windows[-1][1] if windows else at) != before or len(windows) >= self.MAX_WINDOWS:
                self._drop(user_id)
                return
            self._entries[user_id] = (at, rows, (*windows, (before, after, items)))

    def clear(self) -> None:
        """Forget every user's rows."""
        with self._lock:
            self._entries.clear()
            self._held = 0

    def _hold(self, user_id: str, version: tuple, rows: ExposureRows, windows: tuple[Window, ...]) -> None:
        """Hold ``rows`` at ``version`` with ``windows`` kept after it (none held for ``user_id``; under the lock),
        within the bound."""
        if len(rows) > self.size:
            return
        self._entries[user_id] = (version, rows, windows)
        self._held += len(rows)
        while self._held > self.size:
            self._drop(next(iter(self._entries)))

    def _drop(self, user_id: str) -> None:
        """Remove ``user_id``'s rows (held; under the lock)."""
        _, rows, _ = self._entries.pop(user_id)
        self._held -= len(rows)


def written_rows(
    held: ExposureRows, items: Sequence[tuple[str, int, int, int]], known: tuple[int, int], max_shown: int, slack: int
) -> ExposureRows:
    """``held`` (a user's rows at ``known``: ``lists_shown``, ``seq``) after :meth:`SqliteImpressionStore._expose`
    wrote one user's window to the file, computed as its statements compute it: each item (oldest first: id, times
    shown, last shown, list number within the window) upserted with its count added, its list number and ``seq``
    set, then, over ``max_shown + slack`` rows, all but the ``max_shown`` of the highest ``seq`` forgotten
    (``_TRIM``)."""
    rows = ExposureRows(held)
    before, seq = known
    for n, (item_id, count, _, number) in enumerate(items, start=1):
        old = rows.get(item_id)
        rows[item_id] = ((old[0] if old is not None else 0) + count, before + number, seq + n)
    if seq + len(items) > max_shown and len(rows) > max_shown + slack:
        cut = sorted(row[2] for row in rows.values())[-max_shown]
        rows = ExposureRows({item: row for item, row in rows.items() if row[2] >= cut})
    return rows


class SqliteImpressionStore(ImpressionStore):
    """The impressions in a SQLite file (module docstring). Each thread has its own connection; several processes
    may open one file.

    Args:
        path: The file (created with its directory).
        max_shown: Most items a user's exposure gives (the most recently shown). The file keeps up to a tenth more
            (``slack``): a user over ``max_shown + slack`` loses their oldest rows down to ``max_shown``, one sort of
            their rows every ``slack`` new items instead of one after every list with new items (a user's sort cost
            about 0.24 ms at 500 items); :meth:`exposure` reads the ``max_shown`` most recent.
        busy_seconds: Longest a statement waits for another connection's write lock before failing.
        held_rows: Most exposure rows held in the process between reads, summed over users (:class:`HeldExposure`;
            0 = none held: every read reads the user's rows).
    """

    in_graph = False

    def __init__(
        self, path: Path, max_shown: int = EXPOSURE_ITEMS, busy_seconds: float = 30.0, held_rows: int = 0
    ) -> None:
        self.path = Path(path)
        self.max_shown = max_shown
        self.slack = max_shown // 10
        self.busy_seconds = busy_seconds
        self.held = HeldExposure(held_rows, max_shown, self.slack)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with _errors("create"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db().executescript(_SCHEMA)
        with self._transaction("add the exposure counts") as db:  # a file written before users.items
            if "items" not in {row[1] for row in db.execute("PRAGMA table_info(users)")}:
                db.execute("ALTER TABLE users ADD COLUMN items INTEGER NOT NULL DEFAULT 0")
                db.execute("UPDATE users SET items = (SELECT count(*) FROM exposure e WHERE e.user_id = users.user_id)")
            for trigger in _TRIGGERS:
                db.execute(trigger)

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: every transaction is begun explicitly)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={int(self.busy_seconds * 1000)}")
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _transaction(self, what: str, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` for a write (the file's write lock taken before anything is read, so
        that two processes' read-modify-writes are serialised), a deferred one for a read (one snapshot)."""
        with _errors(what):
            db = self._db()
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def prepare(self) -> None:
        """Nothing to plan: the tables exist from the constructor."""

    def write(self, batch: ImpressionBatch) -> WriteStats:
        """One transaction. Every statement's rows are generated as SQLite takes them (``executemany`` of a generator):
        the few microseconds of Python a row alternate with SQLite's steps, which run without the interpreter's lock,
        so a request waiting for the lock gets it at the next row. Rows built into lists first were stretches of
        pure Python of up to a millisecond, which a waiting request sat through (the lock changes hands on its own only
        every ``sys.getswitchinterval()``, 5 ms)."""
        started = time.perf_counter()
        written: list[_Written] = []
        with self._transaction("write impressions") as db:
            db.executemany(
                "INSERT OR IGNORE INTO lists VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        r["recommendation_id"],
                        r["user_id"],
                        r["variant"],
                        r["model_version"],
                        r["shown_at"],
                        json.dumps(list(r["item_ids"])),
                        len(r["item_ids"]),
                    )
                    for r in batch.lists
                ),
            )
            if batch.users:
                written = self._expose(db, batch.users)
            db.executemany(_ITEM_SHOWN, iter(batch.items))
        for user_id, at, after, items in written:  # committed: kept for the held rows' next read
            self.held.written(user_id, at, after, items)
        return WriteStats(rows=len(batch.lists), batches=1, seconds=time.perf_counter() - started)

    def _expose(
        self, db: sqlite3.Connection, users: Sequence[tuple[str, int, list[tuple[str, int, int, int]]]]
    ) -> list[_Written]:
        """Add the users' exposure (:class:`graph.writers.ImpressionBatch` ``users``) in a few statements for all of
        them: their counters read at once, every (user, item) upserted by one ``executemany``, the counters written by
        another, and the exposure cut back to ``max_shown`` items for the users who now hold more than ``max_shown +
        slack`` (their count, ``users.items``, read for those whose ``seq``, which counts every item ever added, is
        over ``max_shown``).

        Returns:
            What the window did to each user, to apply to the rows :attr:`held` holds once the transaction is
            committed: (user id, their version before it, after it, the items written); none when none are held.
        """
        known: dict[str, tuple[int, int]] = {}
        for chunk in _chunks([user[0] for user in users]):
            marks = ", ".join("?" * len(chunk))
            for user_id, lists_shown, seq in db.execute(
                f"SELECT user_id, lists_shown, seq FROM users WHERE user_id IN ({marks})", chunk
            ):
                known[user_id] = (lists_shown, seq)
        counters: list[tuple[str, int, int]] = []  # filled as the rows are taken

        def shown() -> Iterator[tuple[str, str, int, int, int, int]]:
            for user_id, lists, items in users:
                before, seq = known.get(user_id, (0, 0))
                for n, (item_id, count, last_shown, number) in enumerate(items, start=1):  # oldest first
                    yield user_id, item_id, count, last_shown, before + number, seq + n
                counters.append((user_id, before + lists, seq + len(items)))

        db.executemany(_SHOWN, shown())
        db.executemany(_USER, iter(counters))
        crowded = [user_id for user_id, _, seq in counters if seq > self.max_shown]
        for chunk in _chunks(crowded):
            marks = ", ".join("?" * len(chunk))
            over = db.execute(
                f"SELECT user_id, ? FROM users WHERE user_id IN ({marks}) AND items > ?",
                (self.max_shown, *chunk, self.max_shown + self.slack),
            ).fetchall()
            db.executemany(_TRIM, over)
        if not len(self.held):
            return []
        (generation,) = db.execute(f"SELECT {_GENERATION}").fetchone()
        return [
            (user_id, (generation, *known.get(user_id, (0, 0))), (generation, *counter[1:]), items)
            for (user_id, _, items), counter in zip(users, counters, strict=True)
        ]

    def record_skip(self, user_id: str, item_id: str, timestamp: int) -> None:
        """One more ignored impression of the item for the user (``record_skip.cypher``'s exposure part): its count
        and last-shown time bumped in place, or the item added as the most recent with list number 0 (rotation leaves
        it alone), the exposure bounded as by :meth:`write`; listsShown unchanged."""
        with self._transaction("record a skip") as db:
            seq = (db.execute("SELECT seq FROM users WHERE user_id = ?", (user_id,)).fetchone() or (0,))[0]
            bumped = db.execute(
                "UPDATE exposure SET count = count + 1, last_shown = ? WHERE user_id = ? AND item_id = ?",
                (timestamp, user_id, item_id),
            ).rowcount
            if bumped:  # the rows changed: so does the user's version (held rows elsewhere are read again)
                db.execute("UPDATE users SET seq = seq + 1 WHERE user_id = ?", (user_id,))
            else:
                db.execute("INSERT INTO exposure VALUES (?, ?, 1, ?, 0, ?)", (user_id, item_id, timestamp, seq + 1))
                db.execute(
                    "INSERT INTO users (user_id, lists_shown, seq) VALUES (?, 0, ?) "
                    "ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
                    (user_id, seq + 1),
                )
                self._bound(db, user_id)

    def _bound(self, db: sqlite3.Connection, user_id: str) -> None:
        """Forget the user's least recently shown items beyond ``max_shown`` once they hold more than ``max_shown +
        slack`` (their count read first from ``users.items``: ordering the rows by ``seq`` sorts them)."""
        items = db.execute("SELECT items FROM users WHERE user_id = ?", (user_id,)).fetchone()[0]
        if items > self.max_shown + self.slack:
            db.execute(_TRIM, (user_id, self.max_shown))

    def attribute(
        self, recommendation_id: str, user_id: str, item_id: str, *, click: bool, conversion: bool
    ) -> Attribution:
        """Attribute a feedback to the list it names, by ``attribute_feedback.cypher``'s rules: when the list exists,
        was this user's (or nobody's) and showed the item, a click (a conversion is a click too) of the item counts
        once per list, and a new one in the item's clicks."""
        with self._transaction("attribute feedback") as db:
            row = db.execute(
                "SELECT user_id, variant, item_ids FROM lists WHERE recommendation_id = ?", (recommendation_id,)
            ).fetchone()
            if row is None:
                return Attribution(found=False, shown=False, variant=None, new_click=False, new_conversion=False)
            owner, variant, item_ids = row
            shown = owner in (None, user_id) and item_id in json.loads(item_ids)
            new_click = shown and (click or conversion) and self._outcome(db, recommendation_id, "click", item_id)
            if new_click:
                db.execute(_ITEM_CLICKED, (item_id,))
            new_conversion = shown and conversion and self._outcome(db, recommendation_id, "conversion", item_id)
            return Attribution(True, shown, variant, new_click, new_conversion)

    @staticmethod
    def _outcome(db: sqlite3.Connection, recommendation_id: str, kind: str, item_id: str) -> bool:
        """Append the outcome unless the list has it already; whether it was new."""
        cursor = db.execute("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?)", (recommendation_id, kind, item_id))
        return cursor.rowcount == 1

    def prune(self, before: int, limit: int) -> int:
        with self._transaction("prune lists") as db:
            ids = [
                (r[0],)
                for r in db.execute("SELECT recommendation_id FROM lists WHERE shown_at < ? LIMIT ?", (before, limit))
            ]
            db.executemany("DELETE FROM outcomes WHERE recommendation_id = ?", ids)
            db.executemany("DELETE FROM lists WHERE recommendation_id = ?", ids)
        return len(ids)

    def clear(self) -> None:
        """Delete every list, outcome, exposure and count, in one write transaction (the graph they named was replaced:
        ``kgrec load --replace``, as wiping the graph empties the graph's store); the file stays, and an API that has it
        open records on into it."""
        with self._transaction("clear") as db:
            for table in ("lists", "outcomes", "users", "exposure", "items", "meta"):
                db.execute(f"DELETE FROM {table}")  # the store's own tables (meta: the next bind() adopts the graph)
            # a new generation: every process's held rows are read again (a user's counts may come back the same)
            db.execute("INSERT INTO meta VALUES ('generation', ?)", (uuid.uuid4().hex,))
        self.held.clear()

    def bind(self, graph: str) -> None:
        """Check that this file records the graph whose database id is ``graph`` (:func:`graph_id`), recording it
        if the file records none yet (new, emptied by :meth:`clear`, or written before files recorded their graph).

        Raises:
            ConfigError: The file records another graph: its lists and exposure name that graph's users and items,
                and read for this one they would fatigue and rotate the wrong items.
        """
        with self._transaction("bind") as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'graph_id'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('graph_id', ?)", (graph,))
        if row is not None and row[0] != graph:
            raise ConfigError(
                f"the impression file {self.path} records another graph (Neo4j database id {row[0]}) than the one "
                f"this process uses ({graph}): set KGREC_IMPRESSION_DB to a file of its own for this graph, or delete "
                "the file to start afresh (`kgrec load --replace` empties it)"
            )

    def exposure(
        self, context: UserContext, count: Callable[[str], None] | None = None
    ) -> tuple[dict[str, tuple[int, int]], int]:
        """The user's version first (one row): their rows come from :attr:`held` while it is the one they were held
        at, else from the file (in the same snapshot) and are held."""
        user_id = context.user_id
        with self._transaction("read exposure", write=False) as db:
            version = db.execute(_VERSION, (user_id,)).fetchone()
            if version is None:  # no row in users: nothing was ever recorded for the user
                return {}, 0
            rows = self.held.get(user_id, version, count)
            if rows is None:
                read = db.execute("SELECT item_id, count, list, seq FROM exposure WHERE user_id = ?", (user_id,))
                rows = ExposureRows({sys.intern(item): (count, last, seq) for item, count, last, seq in read})
                self.held.put(user_id, version, rows)
        view = rows.view
        if view is None:
            view = rows.view = self._view(rows)  # (two readers may both compute it: the same dict)
        seen = context.columns.seen
        return (view if seen.isdisjoint(view) else {i: v for i, v in view.items() if i not in seen}), version[1]

    def _view(self, rows: ExposureRows) -> dict[str, tuple[int, int]]:
        """The exposure ``rows`` give: the ``max_shown`` most recent (the file keeps up to a tenth more), as
        ``{item_id: (times shown, list number)}``."""
        if len(rows) > self.max_shown:
            # (their seq picked here: SQLite's ORDER BY seq LIMIT cost 0.14 ms more a read at 550 rows, this 0.04)
            cut = sorted([row[2] for row in rows.values()])[-self.max_shown]
            return {item: (row[0], row[1]) for item, row in rows.items() if row[2] >= cut}
        return {item: (row[0], row[1]) for item, row in rows.items()}

    def lists_shown(self, user_id: str, in_graph: int) -> int:
        """Read from the file (``in_graph`` is not this store's)."""
        with _errors("read lists shown"):
            row = self._db().execute("SELECT lists_shown FROM users WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else 0

    def item_exposure(self) -> dict[str, tuple[int, int]]:
        with _errors("read item exposure"):
            rows = self._db().execute("SELECT item_id, impressions, clicks FROM items WHERE impressions > 0")
            return {item: (impressions, clicks) for item, impressions, clicks in rows}

    def variant_report(self, since: int = 0) -> list[VariantFigures]:
        with _errors("read the variant report"):
            rows = self._db().execute(_REPORT, (int(since),)).fetchall()
        return [VariantFigures(str(v), int(n), int(shown or 0), int(c or 0), int(x or 0)) for v, n, shown, c, x in rows]

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()
        self._local = threading.local()


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    """``ids`` in pieces of at most :data:`_IN_CHUNK` (one ``IN (...)`` list each)."""
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """SQLite's errors as kgrec's (:class:`ImpressionStoreError`)."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise ImpressionStoreError(f"the impression store could not {what}: {exc}") from exc


def graph_id(driver: Driver, database: str = "neo4j") -> str:
    """The id of the Neo4j database ``database`` (``db.info()``: fixed when its store is created).

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the query.
    """
    records, _ = run_read("graph id", catalog.GRAPH_ID, {}, driver, database)
    return str(records[0]["id"])


def open_impression_store(
    kind: str,
    driver: Driver,
    database: str = "neo4j",
    path: Path | None = None,
    max_shown: int = EXPOSURE_ITEMS,
    held_rows: int = 0,
) -> ImpressionStore:
    """The store ``kind`` names (:data:`STORES`); ``path``: the SQLite file (``sqlite`` needs it), bound to the graph
    (:meth:`SqliteImpressionStore.bind`; not checked, with a warning, while Neo4j is unreachable); ``held_rows``: the
    SQLite store's :class:`HeldExposure` bound (the graph's store reads the exposure with the user's context).

    Raises:
        ConfigError: The SQLite file records another graph.
        ImpressionStoreError: The SQLite file cannot be created or opened.
        ValueError: No such store, or ``sqlite`` without a path.
    """
    if kind == "neo4j":
        return Neo4jImpressionStore(driver, database, max_shown)
    if kind == "sqlite" and path is not None:
        store = SqliteImpressionStore(path, max_shown, held_rows=held_rows)
        try:
            store.bind(graph_id(driver, database))
        except DatabaseUnavailableError as exc:
            log.warning("the impression file %s was not checked against the graph (Neo4j unreachable): %s", path, exc)
        except ConfigError:
            store.close()
            raise
        return store
    raise ValueError(f"no impression store {kind!r} (path {path}); known: {', '.join(STORES)}")


__all__ = [
    "STORES",
    "Attribution",
    "ImpressionStore",
    "ImpressionStoreError",
    "Neo4jImpressionStore",
    "SqliteImpressionStore",
    "graph_id",
    "open_impression_store",
]
