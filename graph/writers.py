"""Batched, idempotent writes of validated rows (``UNWIND $rows AS row MERGE ...``).

Every write goes through :class:`BatchWriter`, which cuts rows into batches and runs each batch in a
managed write transaction (retried by the driver on transient errors). Each query MERGEs on
constrained keys and sets properties to the row's values, so writing the same rows twice changes
nothing.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from typing import Any

from neo4j import Driver, ManagedTransaction, Session, SummaryCounters, unit_of_work
from neo4j.exceptions import TransientError

from graph import catalog
from graph.errors import database_errors
from schema import ddl
from schema.errors import ConfigError
from schema.kinds import CombineRule, Event, InteractionKind, combine
from schema.model import Role, check_item_label
from schema.rows import (
    AttributeRow,
    FollowRow,
    InteractionRow,
    ItemGenreRow,
    ItemPersonRow,
    ItemRow,
    ItemTagRow,
    UserRow,
)

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


@dataclass
class WriteStats:
    """How many rows one call wrote, in how many batches and how long it took, and what the writes did.

    ``changes`` holds what Neo4j reported for each batch at no extra cost (its result summary):
    ``nodes_created``, ``relationships_created`` and ``labels_added``; the bulk interaction load adds
    ``interactions_changed``, existing interactions whose values it replaced by different ones. Properties set on
    nodes and other relationships (an item's title, a tag's weight) are rewritten with the row's values and not
    compared, so they count nowhere.
    """

    rows: int = 0
    batches: int = 0
    seconds: float = 0.0
    changes: Counter[str] = field(default_factory=Counter)

    def add(self, other: WriteStats) -> None:
        """Count ``other``'s rows, batches, seconds and changes in these."""
        self.rows += other.rows
        self.batches += other.batches
        self.seconds += other.seconds
        self.changes.update(other.changes)


def _created(counters: SummaryCounters) -> Counter[str]:
    """What a write created, by Neo4j's summary counters (a MERGE that matched creates nothing)."""
    return Counter(
        nodes_created=counters.nodes_created,
        relationships_created=counters.relationships_created,
        labels_added=counters.labels_added,
    )


class BatchWriter:
    """Runs a write query over rows in batches of ``batch_size``.

    Args:
        driver: An open driver.
        database: Target database.
        batch_size: Rows per transaction. 5,000–20,000 keeps round trips few without large
            transaction state on a 1 GiB heap.
    """

    def __init__(self, driver: Driver, database: str = "neo4j", batch_size: int = 10_000) -> None:
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.driver = driver
        self.database = database
        self.batch_size = batch_size

    def write(
        self,
        query: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        params: Mapping[str, Any] | None = None,
        progress: ProgressFn | None = None,
    ) -> WriteStats:
        """Write ``rows`` with ``query`` (which reads ``$rows``), batch by batch.

        Raises:
            DatabaseUnavailableError: Neo4j went away.
            KgrecError: Neo4j refused a batch (the message names the query's first line).
        """
        stats = WriteStats()
        start = time.perf_counter()
        extra = dict(params or {})
        with self.driver.session(database=self.database) as session:
            for offset in range(0, len(rows), self.batch_size):
                batch = list(rows[offset : offset + self.batch_size])
                with database_errors(
                    "write",
                    gone="Neo4j went away during a write",
                    refused=f"Neo4j refused a batch of {query.splitlines()[0]!r}",
                ):
                    counters = session.execute_write(_run_batch, query, batch, extra)
                stats.changes.update(_created(counters))
                stats.rows += len(batch)
                stats.batches += 1
                if progress is not None:
                    progress(len(batch))
        stats.seconds = time.perf_counter() - start
        return stats

    def write_returning(
        self,
        query: str,
        batches: Sequence[Sequence[Mapping[str, Any]]],
        *,
        retry_seconds: float | None = None,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Write ``batches`` (already cut by the caller) with ``query``, one transaction each; return its records.

        Args:
            query: The statement (reads ``$rows``).
            batches: The rows of each transaction.
            retry_seconds: How long a transaction that failed transiently (a deadlock between concurrent writers) is
                retried; an unreachable server fails at once. None: the driver's retry (which also waits for an
                unreachable server for its ``max_transaction_retry_time``).
            timeout: Seconds after which Neo4j ends each transaction (a write stuck on a lock or a stalled server
                then fails instead of holding its caller); None: the server's default.

        Raises:
            DatabaseUnavailableError: Neo4j went away.
            KgrecError: Neo4j refused a batch (the message names the query's first line).
        """
        records: list[dict[str, Any]] = []
        # With retry_seconds, each transaction is an explicit one and only transient errors are retried: the
        # driver's own retry also waits out an unreachable server, which would hold a request for that long.
        with self.driver.session(database=self.database) as session:
            for batch in batches:
                with database_errors(
                    "write",
                    gone="Neo4j went away during a write",
                    refused=f"Neo4j refused a batch of {query.splitlines()[0]!r}",
                ):
                    if retry_seconds is None:
                        work = unit_of_work(timeout=timeout)(_run_batch_returning)
                        records.extend(session.execute_write(work, query, list(batch)))
                    else:
                        records.extend(_retry_transient(session, query, list(batch), retry_seconds, timeout))
        return records


def _retry_transient(
    session: Session, query: str, rows: list[Mapping[str, Any]], seconds: float, timeout: float | None = None
) -> list[dict]:
    """Run one write transaction (ended by Neo4j after ``timeout`` s), again after a transient error (a deadlock, a
    lock wait timed out) for up to ``seconds``; any other error (Neo4j unreachable, a refused statement) is raised at
    once."""
    deadline = time.monotonic() + seconds
    delay = 0.05
    while True:
        try:
            with session.begin_transaction(timeout=timeout) as tx:
                records = [record.data() for record in tx.run(query, rows=rows)]
                tx.commit()
            return records
        except TransientError:
            if time.monotonic() + delay > deadline:
                raise
            log.info("write transaction failed transiently; retrying in %.2f s", delay)
            time.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not security
            delay = min(delay * 2, 1.0)


def _run_batch(
    tx: ManagedTransaction, query: str, rows: list[Mapping[str, Any]], params: dict[str, Any]
) -> SummaryCounters:
    return tx.run(query, rows=rows, **params).consume().counters


def _run_batch_returning(tx: ManagedTransaction, query: str, rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [record.data() for record in tx.run(query, rows=rows)]


def _dump(rows: Iterable[Any]) -> list[dict[str, Any]]:
    return [row.model_dump() for row in rows]


def write_users(writer: BatchWriter, rows: Sequence[UserRow], progress: ProgressFn | None = None) -> WriteStats:
    """MERGE (:User) nodes."""
    return writer.write(catalog.UPSERT_USERS, _dump(rows), progress=progress)


def write_items(
    writer: BatchWriter,
    rows: Sequence[ItemRow],
    domain_labels: Sequence[str] = (),
    progress: ProgressFn | None = None,
) -> WriteStats:
    """MERGE (:Item) nodes, set title/year, add domain labels (any PascalCase label that is not a model label)."""
    try:
        labels = [check_item_label(str(label)) for label in domain_labels]
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return writer.write(catalog.UPSERT_ITEMS, _dump(rows), params={"labels": labels}, progress=progress)


def write_interactions(
    writer: BatchWriter, rows: Sequence[InteractionRow], progress: ProgressFn | None = None
) -> WriteStats:
    """MERGE (:User)-[:INTERACTED]->(:Item); users and items must exist."""
    return writer.write(catalog.UPSERT_INTERACTIONS, _dump(rows), progress=progress)


def load_interactions(
    writer: BatchWriter, rows: Sequence[InteractionRow], progress: ProgressFn | None = None
) -> WriteStats:
    """The bulk load's interaction write: as :func:`write_interactions` (idempotent, ``interactionsRev`` bumped when
    something changed), with the rows of each batch grouped by user; a user without interactions yet gets them by
    CREATE (``load_interactions.cypher``). Rows must name each (user, item) pair once (the loader rejects repeats).
    The stats' changes count the users and interactions created and the existing interactions changed.
    """
    stats = WriteStats()
    start = time.perf_counter()
    with writer.driver.session(database=writer.database) as session:
        for offset in range(0, len(rows), writer.batch_size):
            batch = rows[offset : offset + writer.batch_size]
            groups: dict[str, list[dict[str, Any]]] = {}
            for row in batch:
                groups.setdefault(row.user_id, []).append(row.model_dump(exclude={"user_id"}))
            payload = [{"user_id": user, "rows": items} for user, items in groups.items()]
            with database_errors(
                "write", gone="Neo4j went away during a write", refused="Neo4j refused a batch of interactions"
            ):
                counters, changed = session.execute_write(_run_groups, payload)
            stats.changes.update(_created(counters))
            stats.changes["interactions_changed"] += changed
            stats.rows += len(batch)
            stats.batches += 1
            if progress is not None:
                progress(len(batch))
    stats.seconds = time.perf_counter() - start
    return stats


def _run_groups(tx: ManagedTransaction, groups: list[dict[str, Any]]) -> tuple[SummaryCounters, int]:
    """Run one batch of the bulk interaction load; its summary counters and the existing interactions it changed."""
    result = tx.run(catalog.LOAD_INTERACTIONS, groups=groups)
    record = result.single(strict=True)
    counters = result.consume().counters
    merged_created = counters.relationships_created - int(record["created"])  # see load_interactions.cypher
    return counters, int(record["changes"]) - merged_created


@dataclass(frozen=True)
class InteractionOutcome:
    """What writing one row of :func:`write_interaction_groups` did.

    Attributes:
        index: The row's index as the caller numbered it.
        status: ``created`` (a new interaction), ``updated`` (an existing one whose rating, weight or timestamp
            changed) or ``unchanged`` (the same row was stored already).
        created_user: The row's user did not exist before this write.
        before: The user's INTERACTED degree and ``interactionsRev`` just before this write's transaction changed
            them (the version a history read then would have: :class:`graph.reads.HeldHistory`).
        after: The same once the write is applied (read in its transaction, under the user's lock when it changed
            anything); equal to ``before`` when none of the user's rows changed anything.
    """

    index: int
    status: str
    created_user: bool
    before: tuple[int, int] = (0, 0)
    after: tuple[int, int] = (0, 0)


def write_interaction_groups(
    writer: BatchWriter,
    rows: Sequence[tuple[int, InteractionRow]],
    retry_seconds: float | None = 30.0,
    timeout: float | None = None,
) -> dict[int, InteractionOutcome]:
    """Write numbered interaction rows grouped by user, one ``UNWIND`` per transaction, with an outcome per row.

    A user's rows always share one transaction (so its ``interactionsRev`` is bumped once per call at most);
    transactions hold about ``writer.batch_size`` rows. Users are created on first sight; rows whose item does
    not exist are not written and have no outcome (and a user with no other row is not created). The rows must
    name each (user, item) pair once.

    Args:
        writer: The batch writer (driver, database, batch size).
        rows: (index, row) pairs; the index comes back in the outcome.
        retry_seconds: How long a transaction that deadlocked with a concurrent writer is retried.
        timeout: Seconds after which Neo4j ends each transaction (None: the server's default).

    Returns:
        The outcome of each written row by index; rows with an unknown item are missing.

    Raises:
        DatabaseUnavailableError: Neo4j went away.
        KgrecError: Neo4j refused a batch.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for index, row in rows:
        groups.setdefault(row.user_id, []).append(
            {
                "index": index,
                "item_id": row.item_id,
                "rating": row.rating,
                "weight": row.weight,
                "timestamp": row.timestamp,
                "polarity": row.polarity,
            }
        )
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for user_id, user_rows in sorted(groups.items()):
        if current and size + len(user_rows) > writer.batch_size:
            batches.append(current)
            current, size = [], 0
        current.append({"user_id": user_id, "rows": user_rows})
        size += len(user_rows)
    if current:
        batches.append(current)
    records = writer.write_returning(
        catalog.UPSERT_INTERACTION_GROUPS, batches, retry_seconds=retry_seconds, timeout=timeout
    )
    # each user's rows share a transaction: it added their "created" rows and, when any row created or changed an
    # interaction, bumped the revision once
    user_of = {row["index"]: user_id for user_id, user_rows in groups.items() for row in user_rows}
    created: dict[str, int] = {}
    changed: set[str] = set()
    for r in records:
        user_id = user_of[r["index"]]
        created[user_id] = created.get(user_id, 0) + (r["status"] == "created")
        if r["status"] != "unchanged":
            changed.add(user_id)
    outcomes = {}
    for r in records:
        user_id = user_of[r["index"]]
        after = (int(r["interactions"]), int(r["rev"]))
        before = (after[0] - created[user_id], after[1] - (user_id in changed))
        outcomes[int(r["index"])] = InteractionOutcome(
            int(r["index"]), str(r["status"]), bool(r["created_user"]), before, after
        )
    return outcomes


#: The most items a user's exposure arrays keep (the most recently shown; ``KGREC_EXPOSURE_ITEMS`` in the API).
EXPOSURE_ITEMS = 500


@dataclass(frozen=True)
class ImpressionBatch:
    """One transaction of recorded impressions (``record_impressions.cypher``).

    Attributes:
        lists: ``{recommendation_id, user_id, variant, model_version, shown_at, item_ids}`` per served list: a
            ``(:Recommendation)`` node each.
        users: ``(user_id, lists, [(item_id, count, last_shown, list), ...])``: the exposure of each user summed
            over the lists recorded together (``lists`` of them; ``list``: the number, from 1, of the one that last
            showed the item), users in id order, each user's items by ``list`` then id (the order they join the
            user's exposure arrays in, the most recent last).
        items: ``(item_id, count)``: how often each item was shown in them, in id order.

    Users and items are positional tuples, the rows both stores send as they are (a writer that built maps, then
    the stores' rows from them, spent about a millisecond of a 50-list window in Python, holding the interpreter's
    lock from the requests being served).
    """

    lists: Sequence[Mapping[str, Any]]
    users: Sequence[tuple[str, int, list[tuple[str, int, int, int]]]]
    items: Sequence[tuple[str, int]]


#: A user's shown items ``(item_id, count, last_shown, list)`` by list, then id.
_BY_LIST_THEN_ID = itemgetter(3, 0)


class ImpressionWindow:
    """Served lists aggregated as they are queued, for :class:`ImpressionBatch` transactions.

    :meth:`add` sums a list into its user's exposure and the items' counts at once (a few microseconds a list), so
    that cutting the window into transactions (:meth:`batches`) is little work: the writer of a busy window otherwise
    aggregated thousands of lists in one stretch of Python, and held the interpreter's lock from the requests being
    served for tens of milliseconds (more on a loaded machine). Not thread-safe: its owner locks.

    A user's sums are dicts of strings and ints, which Python's cyclic collector never tracks: a busy window holds
    tens of thousands of (user, item) sums for up to ``KGREC_IMPRESSIONS_FLUSH_SECONDS``, and as lists (each tracked)
    every young collection in that time walked them while requests waited (docs/benchmarks.md §5).

    Attributes:
        rows: The lists, in the order added.
    """

    def __init__(self) -> None:
        self.rows: list[Mapping[str, Any]] = []
        # user -> [lists, {item: count}, {item: number of the list that last showed it}, {list number: shown_at}]
        self._users: dict[str, list[Any]] = {}
        self._items: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Mapping[str, Any]) -> None:
        """Add one served list (``recommendation_id``, ``user_id`` (None: nobody's list, whose items count but
        give no one exposure), ``variant``, ``model_version``, ``shown_at``, ``item_ids``)."""
        self.rows.append(row)
        items = self._items
        user_id = row["user_id"]
        if user_id is None:
            for item_id in row["item_ids"]:
                items[item_id] = items.get(item_id, 0) + 1
            return
        user = self._users.get(user_id)
        if user is None:
            user = self._users[user_id] = [0, {}, {}, {}]
        user[0] += 1
        number, counts, numbers = user[0], user[1], user[2]  # number: the list's among the user's of this window
        user[3][number] = row["shown_at"]
        for item_id in row["item_ids"]:
            counts[item_id] = counts.get(item_id, 0) + 1
            numbers[item_id] = number
            items[item_id] = items.get(item_id, 0) + 1

    def take(self, recommendation_id: str) -> ImpressionWindow | None:
        """Move one list out of this window into a new one, with every other list of its user (their exposure is
        summed together) and those lists' item counts; None when the list is not here."""
        row = next((r for r in self.rows if r["recommendation_id"] == recommendation_id), None)
        if row is None:
            return None
        user_id = row["user_id"]
        taken = ImpressionWindow()
        kept: list[Mapping[str, Any]] = []
        for r in self.rows:
            if r is row or (user_id is not None and r["user_id"] == user_id):
                taken.add(r)
                for item_id in r["item_ids"]:
                    left = self._items[item_id] - 1
                    if left:
                        self._items[item_id] = left
                    else:
                        del self._items[item_id]
            else:
                kept.append(r)
        self.rows = kept
        if user_id is not None:
            del self._users[user_id]
        return taken

    def batches(self, batch: int) -> Iterator[ImpressionBatch]:
        """The transactions that record this window: each list's node as it is, the exposure summed per (user, item)
        and per item, cut into transactions of at most ``batch`` lists and ``batch`` users (items in proportion),
        users and items in id order (every writer locks them in one order); one empty transaction for an empty
        window. Each transaction's rows are built when it is reached."""
        user_ids, item_ids = sorted(self._users), sorted(self._items)
        parts = max(-(-len(self.rows) // batch), -(-len(user_ids) // batch), 1)
        item_step = -(-len(item_ids) // parts) or 1
        for n in range(parts):
            users = []
            for user_id in user_ids[n * batch : (n + 1) * batch]:
                lists, counts, numbers, times = self._users[user_id]
                shown = [(i, counts[i], times[number], number) for i, number in numbers.items()]
                shown.sort(key=_BY_LIST_THEN_ID)  # oldest first
                users.append((user_id, lists, shown))
            counted = self._items
            yield ImpressionBatch(
                lists=self.rows[n * batch : (n + 1) * batch],
                users=users,
                items=[(i, counted[i]) for i in item_ids[n * item_step : (n + 1) * item_step]],
            )


def impression_batches(rows: Sequence[Mapping[str, Any]], batch: int) -> list[ImpressionBatch]:
    """The transactions that record ``rows`` (served lists, in the order served): :meth:`ImpressionWindow.batches`
    of a window holding them."""
    window = ImpressionWindow()
    for row in rows:
        window.add(row)
    return list(window.batches(batch))


def write_impressions(writer: BatchWriter, batch: ImpressionBatch, max_shown: int = EXPOSURE_ITEMS) -> WriteStats:
    """Record served lists in one transaction: their ``(:Recommendation)`` nodes, the users' exposure arrays (one
    ``SET`` per user, bounded to the ``max_shown`` most recently shown items) and ``listsShown``, the items'
    ``impressions`` (:class:`ImpressionBatch`), sent as positional rows (lists, not maps: the statement's
    parameters)."""
    started = time.perf_counter()
    parameters = impression_parameters(batch, max_shown)
    try:
        with (
            writer.driver.session(database=writer.database) as session,
            database_errors(
                "write", gone="Neo4j went away during a write", refused="Neo4j refused a batch of impressions"
            ),
        ):
            session.execute_write(_run_impressions, parameters)
    finally:
        release_parameters(parameters)
    return WriteStats(rows=len(batch.lists), batches=1, seconds=time.perf_counter() - started)


def release_parameters(parameters: dict[str, Any]) -> None:
    """Empty a finished transaction's list parameters, so that reference counting frees their rows at once.

    The driver keeps a transaction's parameters inside reference cycles of its own (its result, transaction and
    hydration objects), which only Python's cyclic collector frees: a busy impression window's parameters (tens of
    thousands of small lists) then waited for the collector, and every young collection meanwhile walked them while
    requests waited (docs/benchmarks.md §5). Emptied, only the driver's few objects a transaction are left to it."""
    for value in parameters.values():
        if isinstance(value, list):
            value.clear()


def impression_parameters(batch: ImpressionBatch, max_shown: int = EXPOSURE_ITEMS) -> dict[str, Any]:
    """``record_impressions.cypher``'s parameters for ``batch``: positional rows (lists, not maps)."""
    return {
        "lists": [
            [r["recommendation_id"], r["user_id"], r["variant"], r["model_version"], r["shown_at"], r["item_ids"]]
            for r in batch.lists
        ],
        "users": list(batch.users),  # tuples: the driver sends them as lists
        "items": list(batch.items),
        "maxShown": max_shown,
    }


def _run_impressions(tx: ManagedTransaction, parameters: dict[str, Any]) -> None:
    tx.run(catalog.RECORD_IMPRESSIONS, parameters).consume()


#: The (lists, users, items) sizes :func:`warm_impressions` plans ``record_impressions.cypher`` for: Neo4j caches a
#: plan per order of magnitude of each list parameter's size, so a window of one user's list, a few users', and the
#: full transactions of a busy window (``KGREC_IMPRESSIONS_BATCH`` 50 lists: 30 and 50 share a plan) each plan once.
IMPRESSION_WARM_SIZES = ((1, 1, 20), (5, 1, 20), (5, 5, 60), (30, 1, 20), (30, 5, 60), (30, 30, 300), (30, 30, 800))


def warm_impressions(driver: Driver, database: str = "neo4j") -> float:
    """Plan the impression statement before the first window is written (the API's start-up): one rolled-back
    transaction per :data:`IMPRESSION_WARM_SIZES`, with rows that match nothing (an empty user and item id) and list
    nodes that the rollback removes, so that the first windows of real traffic do not each wait for a plan (about a
    second each on the loaded 2-core machine, 0.2 s quiet). Returns the seconds it took.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the statement.
    """
    runs = (
        {
            "lists": [[f"kgrec-warm-{n}", "", "", "", 0, [""]] for n in range(lists)],
            "users": [["", 1, [["", 1, 0, 1]] * max(items // users, 1)] for _ in range(users)],
            "items": [["", 1]] * items,
            "maxShown": EXPOSURE_ITEMS,
        }
        for lists, users, items in IMPRESSION_WARM_SIZES
    )
    return _plan_rolled_back(driver, database, "impression", catalog.RECORD_IMPRESSIONS, runs)


def warm_interaction_writes(driver: Driver, database: str = "neo4j") -> float:
    """Plan the statement of :func:`write_interaction_groups` (``POST /interactions``) before the first post (the
    API's start-up): one rolled-back transaction with a row whose item matches nothing (an empty id), so that the
    first posts after a start of Neo4j do not wait for its plan (in the 3M workload's first run after a restart,
    the posts' p99 was 1.5–3.2 s, against 0.2 s in the runs after). Returns the seconds it took.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the statement.
    """
    row = {"index": 0, "item_id": "", "rating": None, "weight": None, "timestamp": None, "polarity": 1}
    runs = [{"rows": [{"user_id": "", "rows": [row]}]}]
    return _plan_rolled_back(driver, database, "interaction", catalog.UPSERT_INTERACTION_GROUPS, runs)


def _plan_rolled_back(
    driver: Driver, database: str, name: str, statement: str, runs: Iterable[dict[str, Any]]
) -> float:
    """Run ``statement`` once with each of ``runs``' parameters, each in a transaction rolled back (nothing is
    written), so that Neo4j has planned it for those parameter types; the seconds it took."""
    started = time.perf_counter()
    with (
        database_errors(f"warm_{name}", refused=f"Neo4j refused to plan the {name} statement"),
        driver.session(database=database) as session,
    ):
        for params in runs:
            tx = session.begin_transaction()
            try:
                tx.run(statement, params).consume()
            finally:
                tx.close()  # rolled back: nothing is written
    return time.perf_counter() - started


def convert_shown(
    driver: Driver, database: str = "neo4j", users_per_batch: int = 100, max_shown: int = EXPOSURE_ITEMS
) -> int:
    """Convert a graph's ``SHOWN`` relationships (exposure as recorded before the user's exposure arrays) into the
    arrays, ``users_per_batch`` users per transaction (``convert_shown.cypher``), then drop their ``shown_pair``
    index; returns how many ``SHOWN`` were converted (0 on a graph without any: one read of the relationship type's
    lookup index).

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused a statement.
    """
    converted = 0
    with database_errors("convert_shown", refused="Neo4j refused to convert the SHOWN relationships"):
        while True:
            records, _, _ = driver.execute_query(
                catalog.CONVERT_SHOWN,
                {"limit": users_per_batch, "maxShown": max_shown},
                database_=database,
                routing_="w",
            )
            record = records[0] if records else None
            if record is None or not record["users"]:
                break
            converted += int(record["converted"])
        if converted:
            driver.execute_query(ddl.DROP_SHOWN_PAIR_INDEX, database_=database, routing_="w")
            log.info("exposure converted to the users' arrays: %d SHOWN relationships", converted)
    return converted


def prune_recommendations(driver: Driver, before: int, limit: int = 1000, database: str = "neo4j") -> int:
    """Delete at most ``limit`` recorded lists (``(:Recommendation)`` nodes) shown before ``before`` (epoch seconds)
    in one transaction; the exposure aggregates (``SHOWN``, ``listsShown``, item impressions) stay. Returns how many
    were deleted.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the statement.
    """
    with database_errors("prune_recommendations", refused="Neo4j refused to prune recorded lists"):
        records, _, _ = driver.execute_query(
            catalog.PRUNE_RECOMMENDATIONS, {"before": before, "limit": limit}, database_=database, routing_="w"
        )
    return int(records[0]["deleted"]) if records else 0


@dataclass(frozen=True)
class FeedbackOutcome:
    """What :func:`write_feedback` did.

    Attributes:
        created_user: The user did not exist before.
        interaction: The pair's interaction as written (kinds combined).
        found: None without a recommendation id; else whether the list exists.
        shown: Whether that list was the user's and showed the item (the feedback is attributed to it).
        variant: The list's variant (None when not found).
        new_click: This feedback added a click of the item to the list.
        new_conversion: This feedback added a conversion of the item to the list.
        before: The user's INTERACTED degree and ``interactionsRev`` just before this write (as
            :class:`InteractionOutcome`; read under the user's lock); None when it wrote no interaction (an ignored
            impression).
        after: The same once the write is applied; None when it is not known for sure (see :func:`write_feedback`).
    """

    created_user: bool
    interaction: InteractionRow
    found: bool | None = None
    shown: bool = False
    variant: str | None = None
    new_click: bool = False
    new_conversion: bool = False
    before: tuple[int, int] | None = None
    after: tuple[int, int] | None = None


def write_feedback(
    driver: Driver,
    user_id: str,
    item_id: str,
    kind: InteractionKind,
    timestamp: int,
    *,
    kinds: Mapping[str, InteractionKind],
    rule: CombineRule = CombineRule.SUM,
    recommendation_id: str | None = None,
    click: bool = False,
    conversion: bool = False,
    database: str = "neo4j",
) -> FeedbackOutcome | None:
    """Record one feedback event of ``kind``: combine it into the pair's interaction and attribute it to its list.

    In one write transaction: the user is created on first sight and locked (:data:`graph.catalog.FEEDBACK_PAIR`);
    the pair's current events (rebuilt from its ``kinds``/``kindCounts`` with the weights of ``kinds``; an
    interaction without kinds counts as one event of kind ``interaction`` with its weight and polarity) and the new
    one are combined by ``rule`` (:func:`schema.kinds.combine`) and written by the interaction write path
    (``upsert_interactions.cypher``: ``interactionsRev`` bumped, so cached answers see it); with
    ``recommendation_id``, the feedback is attributed to that list when it showed the item to this user
    (``click``/``conversion``: what it counts as there).

    Returns:
        The outcome, or None when the item does not exist (nothing written).

    Raises:
        DatabaseUnavailableError: Neo4j went away.
    """

    def work(tx: ManagedTransaction) -> FeedbackOutcome | None:
        record = tx.run(catalog.FEEDBACK_PAIR, userId=user_id, itemId=item_id).single()
        if record is None:
            return None
        events: list[Event] = []
        if record["found"]:
            sign = -1 if record["polarity"] < 0 else 1
            old_kinds, old_counts = record["kinds"], record["kind_counts"]
            if old_kinds and old_counts and len(old_kinds) == len(old_counts):
                share = (record["weight"] or 0.0) / max(sum(old_counts), 1)
                for name, count in zip(old_kinds, old_counts, strict=True):
                    known = kinds.get(name)
                    weight, polarity = (known.weight, known.polarity.sign) if known else (share, sign)
                    events.extend(Event(name, weight, polarity, record["timestamp"]) for _ in range(int(count)))
            else:
                weight = record["weight"] if record["weight"] is not None else 1.0
                events.append(Event("interaction", float(weight), sign, record["timestamp"]))
        events.append(Event(kind.name, kind.weight, kind.polarity.sign, timestamp))
        combined = combine(events, rule)
        latest = max(t for t in (record["timestamp"], timestamp) if t is not None)
        row = InteractionRow(
            user_id=user_id,
            item_id=item_id,
            rating=record["rating"],
            weight=combined.weight,
            timestamp=latest,
            polarity=combined.polarity,
            kinds=combined.kinds,
            kind_counts=combined.counts,
        )
        tx.run(catalog.UPSERT_INTERACTIONS, rows=[row.model_dump()]).consume()
        outcome = _attributed(tx, bool(record["created_user"]), row, recommendation_id, click, conversion)
        interactions, rev = int(record["interactions"]), int(record["rev"])  # under the lock feedback_pair took
        # The upsert bumped the revision once more if it created or changed the pair: surely so when the pair is new
        # or its kind counts changed (the new event is counted: always, as schema.kinds.combine counts events);
        # otherwise the version after is not claimed (None), rather than guessed.
        old_counts = record["kind_counts"]
        bumped = not record["found"] or (
            row.kind_counts is not None and tuple(old_counts or ()) != tuple(row.kind_counts)
        )
        after = (interactions + (not record["found"]), rev + 1) if bumped else None
        return replace(outcome, before=(interactions, rev - 1), after=after)

    with (
        database_errors("write_feedback", gone="Neo4j is unreachable"),
        driver.session(database=database) as session,
    ):
        return session.execute_write(work)


def write_exposure_feedback(
    driver: Driver,
    user_id: str,
    item_id: str,
    kind: InteractionKind,
    timestamp: int,
    *,
    kinds: Mapping[str, InteractionKind] | None = None,
    rule: CombineRule = CombineRule.SUM,
    recommendation_id: str | None = None,
    click: bool = False,
    conversion: bool = False,
    database: str = "neo4j",
    max_shown: int = EXPOSURE_ITEMS,
    exposure: bool = True,
) -> FeedbackOutcome | None:
    """Record one feedback event that counts as an ignored impression (``record_skip.cypher``: the item's count in
    the user's exposure arrays bumped, bounded to ``max_shown`` items, no interaction written) and attribute it to its list as :func:`write_feedback` does.
    Takes :func:`write_feedback`'s arguments (``kinds`` and ``rule`` are not used: nothing is combined). ``exposure``
    False: the exposure is kept outside the graph (``skip_pair.cypher``: the user created on first sight, the pair
    read, nothing else written; graph/impressions.py counts the impression).

    Returns:
        The outcome (``interaction``: the pair's interaction as it stands, weight 0 when there is none), or None
        when the item does not exist (nothing written).

    Raises:
        DatabaseUnavailableError: Neo4j went away.
    """
    del kinds, rule  # nothing is combined: the pair's interaction is left as it is

    def work(tx: ManagedTransaction) -> FeedbackOutcome | None:
        record = tx.run(
            catalog.RECORD_SKIP if exposure else catalog.SKIP_PAIR,
            userId=user_id,
            itemId=item_id,
            timestamp=timestamp,
            maxShown=max_shown,
        ).single()
        if record is None:
            return None
        row = InteractionRow(
            user_id=user_id,
            item_id=item_id,
            rating=record["rating"],
            weight=record["weight"] if record["weight"] is not None else 0.0,
            timestamp=record["timestamp"],
            polarity=-1 if record["polarity"] < 0 else 1,
        )
        return _attributed(tx, bool(record["created_user"]), row, recommendation_id, click, conversion)

    log.debug("feedback %s of %s on %s recorded as an ignored impression", kind.name, user_id, item_id)
    with (
        database_errors("write_exposure_feedback", gone="Neo4j is unreachable"),
        driver.session(database=database) as session,
    ):
        return session.execute_write(work)


def delete_users(driver: Driver, user_ids: Sequence[str], database: str = "neo4j") -> int:
    """Delete the given users and their relationships; return how many existed.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable or refused the statement.
    """
    with database_errors("delete_users", gone="Neo4j is unreachable"):
        records, _, _ = driver.execute_query(catalog.DELETE_USERS, {"userIds": list(user_ids)}, database_=database)
    return int(records[0]["deleted"]) if records else 0


def write_item_genres(
    writer: BatchWriter, rows: Sequence[ItemGenreRow], progress: ProgressFn | None = None
) -> WriteStats:
    """MERGE (:Item)-[:IN_GENRE]->(:Genre)."""
    return writer.write(catalog.UPSERT_ITEM_GENRES, _dump(rows), progress=progress)


def write_item_people(
    writer: BatchWriter, rows: Sequence[ItemPersonRow], progress: ProgressFn | None = None
) -> WriteStats:
    """MERGE (:Person)-[:ACTED_IN|DIRECTED]->(:Item), one query variant per role."""
    total = WriteStats()
    for role, query in ((Role.ACTOR, catalog.UPSERT_ACTED_IN), (Role.DIRECTOR, catalog.UPSERT_DIRECTED)):
        subset = [{"item_id": r.item_id, "person_id": r.person_id, "name": r.name} for r in rows if r.role is role]
        if subset:
            total.add(writer.write(query, subset, progress=progress))
    return total


def write_item_tags(writer: BatchWriter, rows: Sequence[ItemTagRow], progress: ProgressFn | None = None) -> WriteStats:
    """MERGE (:Item)-[:HAS_TAG {weight}]->(:Tag); rows must already be one per (item, tag)."""
    return writer.write(catalog.UPSERT_ITEM_TAGS, _dump(rows), progress=progress)


def write_item_attributes(
    writer: BatchWriter, rows: Sequence[AttributeRow], progress: ProgressFn | None = None
) -> WriteStats:
    """MERGE (:Item)-[:HAS_ATTRIBUTE]->(:Attribute); items must exist."""
    return writer.write(catalog.UPSERT_ITEM_ATTRIBUTES, _dump(rows), progress=progress)


def write_user_attributes(
    writer: BatchWriter, rows: Sequence[AttributeRow], progress: ProgressFn | None = None
) -> WriteStats:
    """MERGE (:User)-[:HAS_ATTRIBUTE]->(:Attribute); users are created on first sight."""
    return writer.write(catalog.UPSERT_USER_ATTRIBUTES, _dump(rows), progress=progress)


def write_follows(writer: BatchWriter, rows: Sequence[FollowRow], progress: ProgressFn | None = None) -> WriteStats:
    """MERGE (:User)-[:FOLLOWS]->(:User)."""
    return writer.write(catalog.UPSERT_FOLLOWS, _dump(rows), progress=progress)


def wipe_graph(driver: Driver, database: str = "neo4j") -> None:
    """Delete every node and relationship (schema stays), in batches that commit one by one.

    Raises:
        DatabaseUnavailableError: Neo4j went away during the wipe (the graph may be partly wiped).
        KgrecError: Neo4j refused the wipe (the graph may be partly wiped).
    """
    again = "the graph may be partly wiped; run the load with --replace again"
    with (
        database_errors(
            "wipe_graph",
            gone=f"Neo4j went away while wiping the graph ({again})",
            refused=f"Neo4j refused to wipe the graph ({again})",
        ),
        driver.session(database=database) as session,
    ):
        session.run(catalog.WIPE_GRAPH).consume()


def read_graph_counts(driver: Driver, database: str = "neo4j") -> tuple[dict[str, int], dict[str, int]]:
    """Return (nodes per label, relationships per type) from the count store; key "*" is the total."""
    with database_errors("graph_counts", refused="Neo4j refused to count the graph"):
        records, _, _ = driver.execute_query(catalog.GRAPH_COUNTS, database_=database, routing_="r")
    nodes: dict[str, int] = {}
    rels: dict[str, int] = {}
    for record in records:
        target = nodes if record["kind"] == "node" else rels
        target[record["name"] or "*"] = int(record["count"])
    return nodes, rels


def read_item_ids(driver: Driver, database: str = "neo4j") -> set[str]:
    """Return the ids of every item in the graph."""
    with database_errors("item_ids", refused="Neo4j refused to read the item ids"):
        records, _, _ = driver.execute_query(catalog.ITEM_IDS, database_=database, routing_="r")
    return {record["item_id"] for record in records}


def create_user(
    driver: Driver, user_id: str, genres: Sequence[str] = (), database: str = "neo4j", attributes: Sequence[str] = ()
) -> tuple[bool, list[str]]:
    """Create a user with their preferred genres and attributes (onboarding).

    Args:
        attributes: Attribute ids (``"country:FR"``) to link; ids that are not in the graph are left out.

    Returns:
        (whether the user was new, the genre names that exist and were linked).

    Raises:
        DatabaseUnavailableError: Neo4j is not reachable or refused the statement.
    """
    with database_errors("create_user", gone="Neo4j is unreachable"):
        records, _, _ = driver.execute_query(
            catalog.CREATE_USER,
            {"userId": user_id, "genres": list(genres), "attributes": list(attributes)},
            database_=database,
        )
    return bool(records[0]["created"]), list(records[0]["genres"])


def _attributed(
    tx: ManagedTransaction,
    created_user: bool,
    row: InteractionRow,
    recommendation_id: str | None,
    click: bool,
    conversion: bool,
) -> FeedbackOutcome:
    """The outcome of a recorded feedback event, attributed to the list ``recommendation_id`` names (if any)."""
    if recommendation_id is None:
        return FeedbackOutcome(created_user=created_user, interaction=row)
    params = {"userId": row.user_id, "itemId": row.item_id, "click": click, "conversion": conversion}
    att = tx.run(catalog.ATTRIBUTE_FEEDBACK, recommendationId=recommendation_id, **params).single()
    return FeedbackOutcome(
        created_user=created_user,
        interaction=row,
        found=bool(att["found"]),
        shown=bool(att["shown"]),
        variant=att["variant"],
        new_click=bool(att["new_click"]),
        new_conversion=bool(att["new_conversion"]),
    )
