"""The answer cache: computed answers with their JSON already rendered, keyed by the request and the user's
interaction fingerprint (:func:`graph.reads.user_fingerprint`); and the users' histories held between requests
(:class:`HeldHistories`), which :func:`graph.reads.user_context` reads again only when they have changed."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from api.metrics import Metrics
from api.schemas import RecommendationsResponse
from graph.reads import HeldHistory, Interaction, written_interaction
from graph.writers import InteractionOutcome
from schema.rows import InteractionRow

log = logging.getLogger(__name__)


class Answer:
    """A computed answer with its JSON already rendered, item by item, so that any first ``k`` items are served
    by joining bytes (a cache hit costs no model validation or serialisation).

    Args:
        response: The full answer (its items are the cached pool, best first).
    """

    __slots__ = ("_response", "_head", "_items", "item_ids", "model_version", "variant", "degraded")

    #: What closes the rendered head: the recommendation id follows it.
    _ID_OPEN = b',"recommendation_id":"'

    def __init__(self, response: RecommendationsResponse) -> None:
        self._response: RecommendationsResponse | None = response
        # b'{"user_id":..,"degraded":false,"variant":"default"}': the recommendation id and the items are joined in
        head = response.model_dump_json(exclude={"items", "recommendation_id"}).encode()
        self._head = head[:-1] + self._ID_OPEN
        self._items = [item.model_dump_json().encode() for item in response.items]
        self.item_ids = [item.item_id for item in response.items]
        self.model_version, self.variant, self.degraded = response.model_version, response.variant, response.degraded

    @classmethod
    def of_parts(cls, head: bytes, items: bytes, item_ids: str) -> Answer:
        """The answer whose :meth:`parts` these are. Its head's fields are read from the head alone (a few hundred
        bytes); the whole response, items included, only when first asked for (:attr:`response`)."""
        answer = cls.__new__(cls)
        answer._response = None
        answer._head = head
        answer._items = items.split(b"\n") if items else []
        answer.item_ids = json.loads(item_ids)
        fields = json.loads(head[: -len(cls._ID_OPEN)] + b"}")
        answer.model_version, answer.variant, answer.degraded = (
            fields["model_version"],
            fields["variant"],
            fields["degraded"],
        )
        return answer

    def parts(self) -> tuple[bytes, bytes, str]:
        """The rendered head, the rendered items (one a line: JSON escapes line breaks inside its strings) and the
        item ids as JSON: what :meth:`of_parts` takes back."""
        return self._head, b"\n".join(self._items), json.dumps(self.item_ids)

    @property
    def response(self) -> RecommendationsResponse:
        """The full answer (for an answer read back from its parts, parsed from its JSON once)."""
        if self._response is None:
            self._response = RecommendationsResponse.model_validate_json(self.json(len(self._items)))
        return self._response

    def first(self, k: int, recommendation_id: str = "") -> RecommendationsResponse:
        """The answer cut to its first ``k`` items, with ``recommendation_id``."""
        return self.response.model_copy(
            update={"items": self.response.items[:k], "recommendation_id": recommendation_id}
        )

    def json(self, k: int, recommendation_id: str = "") -> bytes:
        """The JSON body of :meth:`first` (``k``, ``recommendation_id``: letters and digits), exactly as FastAPI would
        render it, without re-rendering."""
        return self._head + recommendation_id.encode() + b'","items":[' + b",".join(self._items[:k]) + b"]}"


_SHARED_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key BLOB PRIMARY KEY, user_id TEXT NOT NULL, stored REAL NOT NULL, head BLOB NOT NULL, items BLOB NOT NULL,
    item_ids TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_user ON answers (user_id, stored);
CREATE INDEX IF NOT EXISTS answers_stored ON answers (stored);
CREATE TABLE IF NOT EXISTS warming (
    version TEXT NOT NULL, user_id TEXT NOT NULL, claimed REAL NOT NULL, PRIMARY KEY (version, user_id)
);
"""


class SharedAnswers:
    """The answers the worker processes of one ``kgrec serve --workers N`` share: a SQLite file in the directory that
    serve gives them (:func:`api.workers.shared_answers_path`), so that a list one worker computed is a hit in the
    others (each worker otherwise holds only what it computed, and a user's requests reach any worker).

    A key is the digest of the :class:`ResponseCache` key, whose parts are the same in every worker for the same
    request, user state, catalogue (a digest of it, :mod:`api.catalogue`) and model version; the file is new with each
    ``kgrec serve`` and removed with it, so it never serves another run's answers. Rows older than ``ttl`` are not
    read and are deleted now and then with the oldest beyond ``size``. It is a cache: a statement that fails (a
    locked or broken file) is counted and logged, and the request goes on as a miss, or without sharing its answer; a
    file that cannot be created or opened leaves it off (:attr:`enabled`), the worker keeping its own answers only.

    The workers also split the warming of their caches through it (:meth:`claim`): each computes the users it claims
    first and leaves the others' to them, so N workers warm a set in about an Nth of the time one takes.

    Args:
        path: The file (created).
        ttl: Seconds an answer is reused (``KGREC_RESPONSE_CACHE_SECONDS``, as in each worker).
        size: Most answers kept (``KGREC_RESPONSE_CACHE_SIZE``).
        metrics: Counts each read and write by outcome (``kgrec_shared_answers_total``).
        busy_seconds: Longest a statement waits for another worker's write.
    """

    #: Writes between two sweeps of the expired and surplus rows.
    SWEEP_EVERY = 512

    def __init__(
        self, path: Path, ttl: float, size: int, metrics: Metrics | None = None, busy_seconds: float = 0.1
    ) -> None:
        self.path = Path(path)
        self.ttl = ttl
        self.size = size
        self.metrics = metrics
        self.busy_seconds = busy_seconds
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writes = 0
        self._warned = False
        #: False when the file could not be created or opened: the workers then keep their own answers only.
        self.enabled = False
        with self._errors("create"):
            self._db().executescript(_SHARED_SCHEMA)
            self.enabled = True

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_seconds, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")  # a cache: a crash may lose the last answers, nothing else
            except sqlite3.Error:
                db.close()
                raise
            self._local.db = db
            with self._lock:
                self._connections.append(db)
        return db

    @staticmethod
    def digest(key: tuple) -> bytes:
        """The file's key of a :class:`ResponseCache` key (its parts are strings, numbers and tuples of them: their
        ``repr`` is the same in every worker)."""
        return hashlib.blake2b(repr(key).encode(), digest_size=16).digest()

    def get(self, key: tuple) -> tuple[float, Answer, str] | None:
        """``(age in seconds, answer, user id)`` of the answer stored under ``key`` within ``ttl``, else None."""
        row, read = None, False
        with self._errors("read"):  # a read that fails is counted as failed, not as a miss
            row = (
                self._db()
                .execute(
                    "SELECT stored, head, items, item_ids, user_id FROM answers WHERE key = ? AND stored >= ?",
                    (self.digest(key), time.time() - self.ttl),
                )
                .fetchone()
            )
            read = True
        if read:
            self._count("hit" if row is not None else "miss")
        if row is None:
            return None
        stored, head, items, item_ids, user_id = row
        return max(0.0, time.time() - stored), Answer.of_parts(head, items, item_ids), user_id

    def holds(self, user_id: str) -> bool:
        """Whether some answer for ``user_id`` is stored within ``ttl``."""
        with self._errors("read"):
            return (
                self._db()
                .execute(
                    "SELECT 1 FROM answers WHERE user_id = ? AND stored >= ? LIMIT 1", (user_id, time.time() - self.ttl)
                )
                .fetchone()
                is not None
            )
        return False

    def claim(self, version: str, user_id: str) -> bool:
        """Claim the warming of ``user_id``'s answer by the model ``version``: True for the first worker that claims
        it (and when the file fails: the worker then warms it itself), False for the others."""
        with self._errors("claim"):
            return (
                self._db()
                .execute("INSERT OR IGNORE INTO warming VALUES (?, ?, ?)", (version, user_id, time.time()))
                .rowcount
                == 1
            )
        return True

    def put(self, key: tuple, answer: Answer, user_id: str) -> None:
        """Store ``answer`` under ``key`` (one short write transaction; a sweep every :attr:`SWEEP_EVERY` writes)."""
        with self._lock:
            self._writes += 1
            sweep = self._writes % self.SWEEP_EVERY == 0
        with self._errors("write"):
            db = self._db()
            db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                (self.digest(key), user_id, time.time(), *answer.parts()),
            )
            self._count("stored")
            if sweep:
                self.sweep()

    def sweep(self) -> int:
        """Delete the rows older than ``ttl`` and the oldest beyond ``size``, and the warming claims older than ``ttl``;
        returns how many answers went."""
        with self._errors("sweep"):
            db = self._db()
            db.execute("DELETE FROM warming WHERE claimed < ?", (time.time() - self.ttl,))
            gone = db.execute("DELETE FROM answers WHERE stored < ?", (time.time() - self.ttl,)).rowcount
            gone += db.execute(
                "DELETE FROM answers WHERE key IN (SELECT key FROM answers ORDER BY stored DESC LIMIT -1 OFFSET ?)",
                (self.size,),
            ).rowcount
            return gone
        return 0

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shared_answers.labels(outcome).inc()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """A failing statement is counted (``failed``) and logged once a process; the caller goes on without it."""
        try:
            yield
        except sqlite3.Error as exc:
            self._count("failed")
            if not self._warned:
                self._warned = True
                log.warning(
                    "shared answers: %s of %s failed (%s); this request goes on without them", what, self.path, exc
                )


class ResponseCache:
    """Answers (model and graph path), keyed by the request *and the user's interaction fingerprint as just read*.

    A new interaction changes the key, so it is reflected at once; what can age (for at most ``ttl``
    seconds) is only what other users did since: the explanation paths through them and nothing else.
    Thread-safe LRU; ``size`` 0 (or ``ttl`` 0) disables it. It also counts its entries per user, so that a request
    that cannot be a hit (:meth:`may_hold` is False) skips the fingerprint read and goes straight to the computation.
    """

    def __init__(self, size: int, ttl: float, metrics: Metrics | None = None, shared: Path | None = None) -> None:
        self.size = size if ttl > 0 else 0
        self.ttl = ttl
        self.metrics = metrics
        #: The answers of the other workers of this `kgrec serve`, in the file ``shared`` (None: without one, with the
        #: cache off, or when the file cannot be opened: this process's own only).
        self.shared = SharedAnswers(shared, ttl, self.size, metrics) if shared is not None and self.size > 0 else None
        if self.shared is not None and not self.shared.enabled:
            self.shared.close()
            self.shared = None
        self._entries: OrderedDict[tuple, tuple[float, Answer, str]] = OrderedDict()
        self._users: Counter[str] = Counter()
        self._lock = threading.Lock()

    def may_hold(self, user_id: str) -> bool:
        """Whether some answer for ``user_id`` is held, here or by another worker (it may be stale or for other
        options): False means that any lookup for this user now is a miss."""
        if self.size <= 0:
            return False
        return self._users.get(user_id, 0) > 0 or (self.shared is not None and self.shared.holds(user_id))

    def get(self, key: tuple) -> Answer | None:
        if self.size <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] <= self.ttl:
                self._entries.move_to_end(key)
                hit = entry[1]
            else:
                hit = None
                if entry is not None:
                    self._drop(key)
        if hit is None and self.shared is not None:
            found = self.shared.get(key)
            if found is not None:  # held here for what is left of its time
                age, hit, user_id = found
                self._hold(key, now - age, hit, user_id)
        if self.metrics is not None:
            self.metrics.cache.labels("hit" if hit is not None else "miss").inc()
        return hit

    def put(self, key: tuple, value: Answer, user_id: str) -> None:
        """Hold ``value`` under ``key`` (an answer for ``user_id``), and offer it to the other workers."""
        if self.size <= 0:
            return
        self._hold(key, time.monotonic(), value, user_id)
        if self.shared is not None:
            self.shared.put(key, value, user_id)

    def claim(self, version: str, user_id: str) -> bool:
        """Whether this worker warms ``user_id``'s answer by the model ``version`` (:meth:`SharedAnswers.claim`;
        always True without a shared file)."""
        return self.shared is None or self.shared.claim(version, user_id)

    def close(self) -> None:
        """Close the shared file's connections (the app's shutdown)."""
        if self.shared is not None:
            self.shared.close()

    def _hold(self, key: tuple, stored: float, value: Answer, user_id: str) -> None:
        """Hold ``value`` under ``key`` as stored at monotonic time ``stored``."""
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (stored, value, user_id)
            self._users[user_id] += 1
            while len(self._entries) > self.size:
                self._drop(next(iter(self._entries)))
            entries = len(self._entries)
        if self.metrics is not None:
            self.metrics.cache_entries.set(entries)

    def _drop(self, key: tuple) -> None:
        """Remove ``key`` (held) and its count (under the lock)."""
        _, _, user_id = self._entries.pop(key)
        self._users[user_id] -= 1
        if self._users[user_id] <= 0:
            del self._users[user_id]


class HeldHistories:
    """Users' interactions as last read (:class:`graph.reads.HeldHistory`: the decoded columns with the INTERACTED
    degree and ``interactionsRev`` they were read at), so that a user who comes back, for an answer the answer cache
    does not hold, costs Neo4j no walk of their interactions and the API no decoding of them.

    A held history is only a proposal: :func:`graph.reads.user_context` reads the user's degree and revision in the
    same query and reads the interactions again when either has changed (a post, a feedback, a dislike: whatever
    changes the answer cache's fingerprint), so a new interaction is seen at once. What can age, for at most
    ``ttl`` seconds as in the answer cache, is what a writer other than kgrec's changes without bumping the revision.
    The process that writes an interaction applies it to the history it holds (:meth:`written`), so that the user's
    next read finds it current instead of reading it all again.
    Thread-safe LRU bounded by the interactions held, summed over users (a history longer than the bound is not
    held); ``size`` 0 (or ``ttl`` 0) disables it.

    Args:
        size: Most interactions held, summed over users (0 = off).
        ttl: Age in seconds after which a history is read again.
    """

    def __init__(self, size: int, ttl: float) -> None:
        self.size = size if ttl > 0 else 0
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, HeldHistory]] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def interactions(self) -> int:
        """Interactions held, summed over users."""
        return self._held

    def get(self, user_id: str) -> HeldHistory | None:
        """``user_id``'s history if one is held and younger than ``ttl``."""
        if self.size <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is None:
                return None
            if now - entry[0] > self.ttl:
                self._drop(user_id)
                return None
            self._entries.move_to_end(user_id)
            return entry[1]

    def put(self, user_id: str, history: HeldHistory) -> None:
        """Hold ``history`` for ``user_id`` (replacing any other; its age restarts only when it was read anew)."""
        if self.size <= 0:
            return
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None and entry[1] is history:
                self._entries.move_to_end(user_id)
                return
            if entry is not None:
                self._drop(user_id)
            self._hold(user_id, time.monotonic(), history)

    def written(
        self,
        user_id: str,
        interactions: Sequence[Interaction],
        before: tuple[int, int],
        after: tuple[int, int] | None,
    ) -> None:
        """A write of ``interactions`` of ``user_id`` moved them from version ``before`` to ``after`` (INTERACTED
        degree, ``interactionsRev``; :class:`graph.writers.InteractionOutcome`): the history held at ``before`` gets
        them (:meth:`graph.reads.HeldHistory.written`) and ``after``, so that the next read finds it current; one
        held at another version missed a change of another writer (another process, a concurrent write) and is
        dropped, to be read again, as is any when ``after`` is not known (None). Its age is kept: the rest of it is
        no fresher than when it was read.

        The update is computed outside the lock and put only if the held history is still the one it was computed
        from (a read that put another meanwhile keeps it: any held history is right for its own version)."""
        if self.size <= 0 or before == after:
            return
        with self._lock:
            entry = self._entries.get(user_id)
        if entry is None:
            return
        read_at, held = entry
        at_before = (held.interactions, held.rev) == before
        updated = held.written(interactions, after) if after is not None and at_before else None
        with self._lock:
            current = self._entries.get(user_id)
            if current is None or current[1] is not held:
                return
            self._drop(user_id)
            if updated is not None:
                self._hold(user_id, read_at, updated)

    def apply_rows(self, written: Iterable[tuple[InteractionRow, InteractionOutcome]]) -> None:
        """Apply interaction rows that :func:`graph.writers.write_interaction_groups` wrote, with their outcomes, to the
        histories held of their users (:meth:`written`, once per user: a user's rows share a transaction)."""
        users: dict[str, tuple[list[Interaction], InteractionOutcome]] = {}
        for row, outcome in written:
            users.setdefault(row.user_id, ([], outcome))[0].append(written_interaction(row))
        for user_id, (interactions, outcome) in users.items():
            self.written(user_id, interactions, outcome.before, outcome.after)

    def _hold(self, user_id: str, read_at: float, history: HeldHistory) -> None:
        """Hold ``history`` (none held for ``user_id``; under the lock), read at ``read_at``, within the bound."""
        if len(history.columns) > self.size:
            return
        self._entries[user_id] = (read_at, history)
        self._held += len(history.columns)
        while self._held > self.size:
            self._drop(next(iter(self._entries)))

    def _drop(self, user_id: str) -> None:
        """Remove ``user_id``'s history (held; under the lock)."""
        _, history = self._entries.pop(user_id)
        self._held -= len(history.columns)


__all__ = ["Answer", "HeldHistories", "ResponseCache", "SharedAnswers"]
