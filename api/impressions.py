"""Recording what was shown: every served list becomes an impression row, written to the impression store (Neo4j,
or a SQLite file: :mod:`graph.impressions`, ``KGREC_IMPRESSION_STORE``) off the read path.

A request only adds its row to an in-process bounded queue (no I/O, no wait), which sums it into the window's
aggregates at once (:class:`graph.writers.ImpressionWindow`, a few microseconds a list: the writer then only cuts
transactions, instead of aggregating thousands of lists in one stretch of Python while requests wait for the
interpreter's lock). A background thread takes what has queued every ``KGREC_IMPRESSIONS_FLUSH_SECONDS`` (sooner
when ``KGREC_IMPRESSIONS_QUEUE`` is half full) and writes it (:meth:`graph.impressions.ImpressionStore.write`; in
Neo4j :func:`graph.writers.write_impressions`): a
``(:Recommendation)`` node per list, as served, but each user's exposure (parallel arrays on the user node: item
ids, counts, last-shown times and list numbers, bounded to the ``KGREC_EXPOSURE_ITEMS`` most recent items) and
``listsShown`` in one ``SET`` per user per window, and each item's ``impressions`` once, so a user asking again and
again and a popular item cost Neo4j one write per window instead of one per list (and a user's twenty items one
write, not twenty relationships). The window's rows go out in transactions of at most ``KGREC_IMPRESSIONS_BATCH``
lists and users each (small transactions interleave with reads).

Until they are written, the queued lists still count for fatigue and rotation: :meth:`ImpressionRecorder.
pending_exposure` gives a user's queued exposure, which the service adds to what the store holds.

A full queue drops the row and counts it (``kgrec_impressions_dropped{reason="queue_full"}``), never blocking a
request; a batch the store refuses or cannot take is dropped and counted too (``reason="write_failed"``). The queue is
flushed when the app stops. What a crash (or a kill -9) can lose: the rows still queued, at most
``KGREC_IMPRESSIONS_FLUSH_SECONDS`` of lists (and never more than ``KGREC_IMPRESSIONS_QUEUE``).

Before the app is ready (:meth:`ImpressionRecorder.prepare`, from the first cache warming), else before its first
write, the store is prepared (:meth:`graph.impressions.ImpressionStore.prepare`; in Neo4j: a graph recorded before the
exposure arrays converted, once, and the statement planned for the usual sizes of a window).

The same thread prunes the list nodes older than ``KGREC_IMPRESSIONS_RETENTION_DAYS`` (once a minute, 1,000 per
transaction); the exposure aggregates stay.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

from neo4j import Driver

from api.metrics import Metrics
from graph.impressions import ImpressionStore, Neo4jImpressionStore
from graph.writers import EXPOSURE_ITEMS, ImpressionWindow
from schema.errors import KgrecError

log = logging.getLogger(__name__)
timeline = logging.getLogger("api.timeline")  # KGREC_DEBUG_TIMELINE: when each write ran (bench/tail_events.py)


def new_recommendation_id() -> str:
    """A new list's id: a UUID of version 7 (RFC 9562) as 32 hex digits, the Unix time in milliseconds first, then
    74 random bits. Ordered by time, the lists recorded together have neighbouring ids, so recording them appends to
    the stores' indexes on the id (the SQLite file's primary key, the graph's ``recommendationId`` index) instead of
    writing into a random page of them per list: random ids (version 4) made a SQLite write transaction of ten lists
    write 34 pages to the log instead of 24, on a file of 1.3M lists (docs/benchmarks.md §5)."""
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits, 74 used
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | (rand >> 64 & 0xFFF) << 64 | 0b10 << 62
    return f"{value | rand & (1 << 62) - 1:032x}"


#: The variant of recorded similar-items lists (``GET /items/{id}/similar``): item pages are nobody's and no A/B
#: variant's, so they are reported apart.
SIMILAR_VARIANT = "similar"


class ImpressionRecorder:
    """The bounded queue of served lists and the thread that writes them (one per app; thread-safe).

    Args:
        driver: Open driver.
        database: Neo4j database.
        metrics: Where lists, impressions and drops are counted.
        capacity: Most rows waiting; one more is dropped.
        batch: Most lists (and most users) per write transaction.
        every: Longest a row waits before it is written (seconds): the aggregation window.
        retention_days: Lists shown longer ago than this are pruned (:meth:`prune`) by the thread, at most every
            ``PRUNE_EVERY`` seconds; 0: never.
        max_shown: Most items a user's exposure arrays keep (the most recently shown), for the graph's store when
            ``store`` is None (a store given keeps its own bound).
        timeline: Log each write transaction's wall-clock start and length (INFO, logger ``api.timeline``:
            ``impressions start=EPOCH ms=M cpu_ms=C lists=L users=U items=I``, C the writer thread's CPU time;
            ``KGREC_DEBUG_TIMELINE``), to set slow requests against the writes (bench/tail_events.py).
        store: Where the lists are written; None: the graph (:class:`graph.impressions.Neo4jImpressionStore` of
            ``driver``).
    """

    #: Seconds between two prunings, and the lists one pruning transaction deletes at most (small transactions).
    PRUNE_EVERY = 60.0
    PRUNE_BATCH = 1000

    def __init__(
        self,
        driver: Driver,
        database: str,
        metrics: Metrics,
        capacity: int,
        batch: int,
        every: float,
        retention_days: float = 0.0,
        max_shown: int = EXPOSURE_ITEMS,
        timeline: bool = False,
        store: ImpressionStore | None = None,
    ) -> None:
        self.timeline = timeline
        self.store = store if store is not None else Neo4jImpressionStore(driver, database, max_shown)
        self.retention_days = retention_days
        self._pruned_at = 0.0
        self.metrics = metrics
        self.capacity = capacity
        self.batch = batch
        self.every = every
        self._window = ImpressionWindow()  # the queue: lists aggregated as they arrive
        self._pending: set[str] = set()  # ids queued or being written
        self._by_user: dict[str, deque[dict[str, Any]]] = {}  # rows queued or being written, per user, in order
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time keeps a user's lists in order
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        #: :meth:`prepare` has run (or is running).
        self.prepared = False

    def record(
        self, recommendation_id: str, user_id: str | None, variant: str, model_version: str, item_ids: list[str]
    ) -> bool:
        """Queue one served list (never blocks). Returns False when the queue was full and the list dropped.
        ``user_id`` None: a list shown to nobody in particular (an item page's similar items): its node and the
        items' impressions are written, no user's exposure."""
        self.metrics.lists.labels(variant).inc()
        self.metrics.impressions.labels(variant).inc(len(item_ids))
        row = {
            "recommendation_id": recommendation_id,
            "user_id": user_id,
            "variant": variant,
            "model_version": model_version,
            "shown_at": int(time.time()),
            "item_ids": tuple(item_ids),  # a tuple of strings: the collector stops walking it after one look
        }
        with self._lock:
            if len(self._window) >= self.capacity:
                self.metrics.impressions_dropped.labels("queue_full").inc()
                return False
            self._window.add(row)
            self._pending.add(recommendation_id)
            if user_id is not None:
                self._by_user.setdefault(user_id, deque()).append(row)
            size = len(self._window)
        self._ensure_thread()
        if size * 2 >= self.capacity:
            self._wake.set()
        return True

    def prepare(self) -> None:
        """What the first windows would otherwise wait for, done once (:meth:`graph.impressions.ImpressionStore.
        prepare`: in Neo4j, converting a graph recorded before the exposure arrays, a one-time migration that would
        otherwise run during the first window of traffic, and the impression statement's plans). The service's first
        cache warming calls it before /ready; without warming, the thread calls it before its first write. The store
        away or refusing: logged, and the first write converts the graph."""
        self.prepared = True
        started = time.perf_counter()
        try:
            self.store.prepare()
            log.info("impression store prepared in %.2f s", time.perf_counter() - started)
        except KgrecError as exc:
            log.warning("impressions not prepared at start-up (the first window will): %s", exc)

    def pending(self, recommendation_id: str) -> bool:
        """Whether this list is queued and not yet written."""
        with self._lock:
            return recommendation_id in self._pending

    def pending_lists(self, user_id: str) -> int:
        """How many of the user's lists are queued or being written."""
        with self._lock:
            return len(self._by_user.get(user_id, ()))

    def pending_exposure(self, user_id: str) -> tuple[int, dict[str, tuple[int, int]]]:
        """The user's lists not yet written: how many, and ``{item_id: (times shown, the number of the list that
        last showed it among them, from 1)}`` — what fatigue and rotation add to the exposure read from Neo4j."""
        with self._lock:
            rows = list(self._by_user.get(user_id, ()))
        shown: dict[str, tuple[int, int]] = {}
        for number, row in enumerate(rows, start=1):
            for item_id in row["item_ids"]:
                shown[item_id] = (shown.get(item_id, (0, 0))[0] + 1, number)
        return len(rows), shown

    def flush(self, pace: bool = False) -> int:
        """Write every queued row now (in the caller's thread); returns how many lists were written.

        With ``pace`` (the background thread), each transaction of a window is followed by a pause as long as it
        took (at most the window), so that recording takes at most about half of Neo4j's time and the reads and
        writes of requests run in between."""
        written = 0
        with self._write_lock:
            while True:
                with self._lock:
                    window, self._window = self._window, ImpressionWindow()
                if not window:
                    return written
                written += self._write(window, pace)
                if pace:  # the rows queued meanwhile make the next window
                    return written

    def flush_list(self, recommendation_id: str) -> int:
        """Write one queued list now, with the other queued lists of its user (a user's lists are written in the
        order served) but not the rest of the window: what a feedback naming a list still queued waits for, one
        small transaction instead of the whole window. Returns how many lists were written (0: not queued)."""
        with self._write_lock:  # a window being written finishes first: its lists are then no longer queued
            with self._lock:
                taken = self._window.take(recommendation_id)
            return 0 if taken is None else self._write(taken, pace=False)

    def _write(self, window: ImpressionWindow, pace: bool) -> int:
        """Write ``window`` (taken from the queue; the write lock held) in transactions of at most ``batch`` lists;
        returns how many lists were written. A batch the store cannot take is dropped and counted."""
        rows = window.rows
        written = 0
        try:
            took = 0.0  # the previous transaction's seconds: the pause before the next one (pace)
            for part in window.batches(self.batch):
                if pace and took and not self._stop.is_set():
                    time.sleep(min(took, self.every))
                try:
                    started, cpu = time.time(), time.thread_time()
                    stats = self.store.write(part)
                    self.metrics.write_seconds.labels("impressions").observe(stats.seconds)
                    if self.timeline:
                        timeline.info(
                            "impressions start=%.4f ms=%.2f cpu_ms=%.2f lists=%d users=%d items=%d",
                            started,
                            1000 * stats.seconds,
                            1000 * (time.thread_time() - cpu),
                            len(part.lists),
                            len(part.users),
                            len(part.items),
                        )
                    written += len(part.lists)
                    took = stats.seconds
                except KgrecError as exc:  # the store away or refusing: drop the batch, count it, carry on
                    log.warning("dropped %d impression rows: %s", len(part.lists), exc)
                    self.metrics.impressions_dropped.labels("write_failed").inc(len(part.lists))
        finally:
            self._forget(rows)
        return written

    def _forget(self, rows: list[dict[str, Any]]) -> None:
        """Rows written (or dropped): no longer pending."""
        with self._lock:
            for row in rows:
                self._pending.discard(row["recommendation_id"])
                queued = self._by_user.get(row["user_id"]) if row["user_id"] is not None else None
                if queued:
                    queued.popleft()  # a user's rows are taken in the order they were queued
                    if not queued:
                        del self._by_user[row["user_id"]]

    def prune(self, now: float | None = None, max_batches: int = 20) -> int:
        """Delete the recorded lists older than the retention, ``PRUNE_BATCH`` per transaction, at most
        ``max_batches`` transactions (the rest waits for the next pruning); returns how many were deleted."""
        if self.retention_days <= 0:
            return 0
        before = int((time.time() if now is None else now) - self.retention_days * 86_400)
        deleted = 0
        for _ in range(max_batches):
            n = self.store.prune(before, self.PRUNE_BATCH)
            deleted += n
            if n < self.PRUNE_BATCH:
                break
        if deleted:
            log.info("pruned %d recorded lists older than %g days", deleted, self.retention_days)
        return deleted

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is queued (the app's shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def _ensure_thread(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kgrec-impressions", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        if not self.prepared:
            self.prepare()
        while not self._stop.is_set():
            self._wake.wait(self.every)
            self._wake.clear()
            try:
                self.flush(pace=True)
            except Exception:  # noqa: BLE001 - the recorder must outlive any surprise; the rows are counted lost
                log.exception("writing impressions failed")
            if self.retention_days > 0 and time.monotonic() - self._pruned_at >= self.PRUNE_EVERY:
                self._pruned_at = time.monotonic()
                try:
                    self.prune()
                except KgrecError as exc:  # the store away: the next pruning catches up
                    log.warning("pruning recorded lists failed: %s", exc)


__all__ = ["SIMILAR_VARIANT", "ImpressionRecorder", "new_recommendation_id"]
