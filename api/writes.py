"""The write requests: recording an interaction (``POST /interactions``) and onboarding a user (``POST /users``).

Both only write to the graph; the next recommendation request reflects them at once, because answers are cached
under the user's interaction fingerprint (:func:`graph.reads.user_fingerprint`). A written post is also applied to the
history this process holds of its user (:meth:`api.cache.HeldHistories.apply_rows`), so that the next answer need
not read that history again.

Single interactions are written by :class:`InteractionWriter`: two threads write them as
:func:`graph.writers.write_interaction_groups` rows (the statement of ``POST /interactions/batch``), and the posts
that arrive while a thread writes are written together in a next transaction. A post costs no round trip of its own
(the statement finds the item, creates the user and answers which it did), concurrent posts share a commit, and
each post still gets its own answer. Every post is answered: a post waits at most ``timeout`` seconds (then 503;
Neo4j ends the write transaction after as long), a failed write answers each of its posts with the error, and a
writer thread that fails for any other reason answers its posts before it goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError

from neo4j import Driver

from api.cache import HeldHistories
from api.errors import UnknownEntityError, UnknownNamesError, UserExistsError
from api.metrics import Metrics
from api.schemas import InteractionIn, InteractionOut, NewUserIn, NewUserOut
from graph.reads import read_existing_attributes, read_existing_genres, read_item_titles, user_exists
from graph.writers import BatchWriter, InteractionOutcome, create_user, write_interaction_groups, write_interactions
from schema.errors import DatabaseUnavailableError
from schema.rows import InteractionRow

#: A queued post: its row, the future of its outcome, when it was queued (perf_counter).
_Entry = tuple[InteractionRow, "Future[InteractionOutcome | None]", float]

#: How long a grouped write that failed transiently (a deadlock with a concurrent writer) is retried, at most.
RETRY_SECONDS = 15.0
#: How long a post waits for its write by default (``KGREC_WRITE_TIMEOUT_SECONDS``).
WRITE_TIMEOUT_SECONDS = 10.0


def interaction_row(body: InteractionIn) -> InteractionRow:
    """The row of one ``POST /interactions`` body: a missing weight counts 1.0 and a missing timestamp is now."""
    return InteractionRow(
        user_id=body.user_id,
        item_id=body.item_id,
        rating=body.rating,
        weight=body.weight if body.weight is not None else 1.0,
        timestamp=body.timestamp if body.timestamp is not None else int(time.time()),
    )


class InteractionWriter:
    """Writes single interactions, those of concurrent requests together, each request answered on its own.

    :meth:`submit` queues a row and returns a future of its outcome. ``threads`` threads (started on the first row)
    each take the queued rows in arrival order, up to ``max_rows`` of them, and write them in one transaction; rows
    queued meanwhile wait for the next. A thread leaves queued the rows of users another thread is writing, and a
    row whose (user, item) pair is already in the transaction being formed, so the posts of one user are written one
    transaction after the other and two posts of the same pair are applied in the order they arrived. Within one
    transaction only the first row of a new user answers ``created_user``, as if the posts had been written one by
    one.

    Args:
        driver: An open driver.
        database: Target database.
        max_rows: Most rows per transaction (1: one transaction per row).
        threads: Transactions written at once (while one commits, the next is formed and sent).
        metrics: Where the time rows wait in the queue and in their transaction, and the rows per transaction, are
            observed (``kgrec_write_stage_seconds``, ``kgrec_write_group_rows``); None: nowhere.
        timeout: Seconds after which Neo4j ends a write transaction (a write stuck on a lock or a stalled server then
            fails, and its posts are answered, instead of holding a writer thread); transient failures are retried
            for at most as long. :func:`record_interaction` waits as long for a post's answer.
        histories: The users' histories this process holds, to which each written transaction's rows are applied
            (:meth:`api.cache.HeldHistories.written`) before its posts are answered, so that a user's next read
            finds them current; None: none held.
    """

    def __init__(
        self,
        driver: Driver,
        database: str = "neo4j",
        max_rows: int = 500,
        threads: int = 2,
        metrics: Metrics | None = None,
        timeout: float = WRITE_TIMEOUT_SECONDS,
        histories: HeldHistories | None = None,
    ) -> None:
        self.driver = driver
        self.histories = histories
        self.timeout = timeout
        self.metrics = metrics
        self.database = database
        self.max_rows = max(1, max_rows)
        self.threads = max(1, threads)
        self._queue: deque[_Entry] = deque()
        self._busy: set[str] = set()  # users whose rows a thread is writing
        self._wake = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self.transactions = 0  # write transactions run so far

    def submit(self, row: InteractionRow) -> Future[InteractionOutcome | None]:
        """Queue ``row``; the future holds its outcome (None: its item does not exist) or the write's error
        (:class:`~schema.errors.DatabaseUnavailableError` when Neo4j is unreachable, or after :meth:`close`)."""
        future: Future[InteractionOutcome | None] = Future()
        with self._wake:
            if self._closed:
                future.set_exception(DatabaseUnavailableError("the service is shutting down"))
                return future
            self._queue.append((row, future, time.perf_counter()))
            self._workers = [worker for worker in self._workers if worker.is_alive()]  # none dies; if one did
            for n in range(len(self._workers), self.threads):
                worker = threading.Thread(target=self._run, name=f"kgrec-interaction-writer-{n}", daemon=True)
                self._workers.append(worker)
                worker.start()
            self._wake.notify()
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the threads; later rows fail with DatabaseUnavailableError."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout)

    def _take(self) -> list[_Entry]:
        """The next transaction's rows, in arrival order (called with the lock held)."""
        taken: list[_Entry] = []
        later: deque[_Entry] = deque()
        pairs: set[tuple[str, str]] = set()
        while self._queue and len(taken) < self.max_rows:
            entry = self._queue.popleft()
            pair = (entry[0].user_id, entry[0].item_id)
            if pair in pairs or entry[0].user_id in self._busy:
                later.append(entry)
            else:
                pairs.add(pair)
                taken.append(entry)
        self._queue.extendleft(reversed(later))
        return taken

    def _run(self) -> None:
        while True:
            with self._wake:
                batch = self._take()
                while not batch:
                    if self._closed and not self._queue:
                        return
                    self._wake.wait()
                    batch = self._take()
                users = {row.user_id for row, _, _ in batch}
                self._busy |= users
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - the thread goes on; its posts are answered, never left waiting
                gone = DatabaseUnavailableError(f"the interaction write failed: {exc!r}")
                for _, future, _ in batch:
                    _settle(future, error=gone)
            finally:
                with self._wake:
                    self._busy -= users
                    self.transactions += 1
                    self._wake.notify_all()

    def _write(self, batch: list[_Entry]) -> None:
        started = time.perf_counter()
        if self.metrics is not None:
            for _, _, queued in batch:
                self.metrics.write_seconds.labels("queued").observe(started - queued)
            self.metrics.write_group_rows.observe(len(batch))
        try:
            outcomes = write_interaction_groups(
                BatchWriter(self.driver, self.database, batch_size=self.max_rows),
                [(index, row) for index, (row, _, _) in enumerate(batch)],
                # deadlocks between the writer threads are retried; Neo4j away fails at once; Neo4j ends a stuck write
                retry_seconds=min(RETRY_SECONDS, self.timeout),
                timeout=self.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the write's error
            for _, future, _ in batch:
                _settle(future, error=exc)
            return
        finally:
            if self.metrics is not None:
                self.metrics.write_seconds.labels("transaction").observe(time.perf_counter() - started)
        if self.histories is not None:
            self.histories.apply_rows((row, outcomes[i]) for i, (row, _, _) in enumerate(batch) if i in outcomes)
        created: set[str] = set()
        for index, (row, future, _) in enumerate(batch):
            outcome = outcomes.get(index)
            if outcome is not None and outcome.created_user:
                if row.user_id in created:  # an earlier post of this transaction created the user
                    outcome = dataclasses.replace(outcome, created_user=False)
                created.add(row.user_id)
            _settle(future, outcome)


def _settle(
    future: Future[InteractionOutcome | None],
    outcome: InteractionOutcome | None = None,
    error: BaseException | None = None,
) -> None:
    """Answer a post's future, unless it is answered or cancelled already (then setting it would raise and stop the
    writer thread before the rest of its transaction's posts are answered)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome)
    except InvalidStateError:  # cancelled meanwhile
        pass


async def record_interaction(writer: InteractionWriter, body: InteractionIn) -> InteractionOut:
    """Record one interaction of a user (created if new) with an existing item.

    A missing weight counts 1.0 and a missing timestamp is now.

    Raises:
        UnknownEntityError: The item does not exist.
        DatabaseUnavailableError: Neo4j is unreachable, or did not write the post within the writer's timeout (the
            write may still land; a retry of the post is idempotent).
    """
    future = writer.submit(interaction_row(body))
    try:
        # shielded: the wait ends, the writer's future is not cancelled (the writer answers it when its write ends)
        outcome = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), writer.timeout)
    except TimeoutError as exc:
        raise DatabaseUnavailableError(f"Neo4j did not write the interaction within {writer.timeout:g} s") from exc
    if outcome is None:
        raise UnknownEntityError(f"unknown item {body.item_id!r}")
    return InteractionOut(user_id=body.user_id, item_id=body.item_id, created_user=outcome.created_user)


def onboard_user(driver: Driver, body: NewUserIn, database: str = "neo4j") -> NewUserOut:
    """Create a new user with the genres they like and an interaction (now, weight 1) with each item they like.

    A genre or item that is not in the graph refuses the whole body (nothing is written), naming each unknown one, so
    that a misspelt genre is not dropped without a word.

    Raises:
        UserExistsError: The user exists already.
        UnknownNamesError: Some liked genres, items or attributes do not exist.
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    if user_exists(driver, body.user_id, database=database):
        raise UserExistsError(f"user {body.user_id!r} exists already")
    titles = read_item_titles(driver, body.liked_items, database)
    known_genres = read_existing_genres(driver, body.liked_genres, database)
    unknown = [("liked_genres", n, "genre", g) for n, g in enumerate(body.liked_genres) if g not in known_genres]
    unknown += [("liked_items", n, "item", i) for n, i in enumerate(body.liked_items) if i not in titles]
    if body.attributes:
        known = read_existing_attributes(driver, body.attributes, database)
        unknown += [("attributes", n, "attribute", a) for n, a in enumerate(body.attributes) if a not in known]
    if unknown:
        raise UnknownNamesError(unknown)
    _, genres = create_user(driver, body.user_id, body.liked_genres, database, attributes=body.attributes)
    known_items = [i for i in dict.fromkeys(body.liked_items) if i in titles]
    now = int(time.time())
    rows = [InteractionRow(user_id=body.user_id, item_id=i, weight=1.0, timestamp=now) for i in known_items]
    if rows:
        write_interactions(BatchWriter(driver, database), rows)
    return NewUserOut(
        user_id=body.user_id,
        liked_genres=genres,
        liked_items=known_items,
        attributes=sorted(set(body.attributes)) if body.attributes else None,
    )


__all__ = ["InteractionWriter", "interaction_row", "onboard_user", "record_interaction"]
