"""Recording what was shown: every served list becomes an impression row, written to Neo4j off the read path.

A request only appends its row to an in-process bounded queue (no I/O, no wait); a background thread flushes the
queue in batches (``KGREC_IMPRESSIONS_BATCH`` rows, at least every ``KGREC_IMPRESSIONS_FLUSH_SECONDS``) with one
``UNWIND`` write each (:func:`graph.writers.write_impressions`: a ``(:Recommendation)`` node per list and the
``SHOWN`` exposure of its items). A full queue drops the row and counts it (``kgrec_impressions_dropped{reason=
"queue_full"}``), never blocking a request; a batch Neo4j refuses or cannot take is dropped and counted too
(``reason="write_failed"``). The queue is flushed when the app stops. What a crash (or a kill -9) can lose: the rows
still queued, at most ``KGREC_IMPRESSIONS_FLUSH_SECONDS`` of lists (and never more than ``KGREC_IMPRESSIONS_QUEUE``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from neo4j import Driver

from api.metrics import Metrics
from graph.writers import BatchWriter, write_impressions
from schema.errors import KgrecError

log = logging.getLogger(__name__)


class ImpressionRecorder:
    """The bounded queue of served lists and the thread that writes them (one per app; thread-safe).

    Args:
        driver: Open driver.
        database: Neo4j database.
        metrics: Where lists, impressions and drops are counted.
        capacity: Most rows waiting; one more is dropped.
        batch: Rows per write.
        every: Longest a row waits before its batch is written (seconds).
    """

    def __init__(
        self, driver: Driver, database: str, metrics: Metrics, capacity: int, batch: int, every: float
    ) -> None:
        self.writer = BatchWriter(driver, database, batch_size=batch)
        self.metrics = metrics
        self.batch = batch
        self.every = every
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=capacity)
        self._pending: set[str] = set()  # ids queued or being written
        self._pending_lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time keeps a user's lists in order
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(
        self, recommendation_id: str, user_id: str, variant: str, model_version: str, item_ids: list[str]
    ) -> bool:
        """Queue one served list (never blocks). Returns False when the queue was full and the list dropped."""
        self.metrics.lists.labels(variant).inc()
        self.metrics.impressions.labels(variant).inc(len(item_ids))
        row = {
            "recommendation_id": recommendation_id,
            "user_id": user_id,
            "variant": variant,
            "model_version": model_version,
            "shown_at": int(time.time()),
            "item_ids": item_ids,
        }
        with self._pending_lock:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self.metrics.impressions_dropped.labels("queue_full").inc()
                return False
            self._pending.add(recommendation_id)
        self._ensure_thread()
        if self._queue.qsize() >= self.batch:
            self._wake.set()
        return True

    def pending(self, recommendation_id: str) -> bool:
        """Whether this list is queued and not yet written."""
        with self._pending_lock:
            return recommendation_id in self._pending

    def flush(self) -> int:
        """Write every queued row now (in the caller's thread); returns how many were written."""
        written = 0
        with self._write_lock:
            while True:
                rows = self._take()
                if not rows:
                    return written
                try:
                    write_impressions(self.writer, rows)
                    written += len(rows)
                except KgrecError as exc:  # Neo4j away or refusing: drop the batch, count it, carry on
                    log.warning("dropped %d impression rows: %s", len(rows), exc)
                    self.metrics.impressions_dropped.labels("write_failed").inc(len(rows))
                finally:
                    with self._pending_lock:
                        self._pending.difference_update(r["recommendation_id"] for r in rows)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is queued (the app's shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def _take(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < self.batch:
            try:
                rows.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return rows

    def _ensure_thread(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kgrec-impressions", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the recorder must outlive any surprise; the rows are counted lost
                log.exception("writing impressions failed")


__all__ = ["ImpressionRecorder"]
