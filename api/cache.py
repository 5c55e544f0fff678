"""The answer cache: computed answers with their JSON already rendered, keyed by the request and the user's
interaction fingerprint (:func:`graph.reads.user_fingerprint`); and the users' histories held between requests
(:class:`HeldHistories`), which :func:`graph.reads.user_context` reads again only when they have changed."""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence

from api.metrics import Metrics
from api.schemas import RecommendationsResponse
from graph.reads import HeldHistory, Interaction, written_interaction
from graph.writers import InteractionOutcome
from schema.rows import InteractionRow


class Answer:
    """A computed answer with its JSON already rendered, item by item, so that any first ``k`` items are served
    by joining bytes (a cache hit costs no model validation or serialisation).

    Args:
        response: The full answer (its items are the cached pool, best first).
    """

    __slots__ = ("response", "_head", "_items", "item_ids")

    def __init__(self, response: RecommendationsResponse) -> None:
        self.response = response
        # b'{"user_id":..,"degraded":false,"variant":"default"}': the recommendation id and the items are joined in
        head = response.model_dump_json(exclude={"items", "recommendation_id"}).encode()
        self._head = head[:-1] + b',"recommendation_id":"'
        self._items = [item.model_dump_json().encode() for item in response.items]
        self.item_ids = [item.item_id for item in response.items]

    def first(self, k: int, recommendation_id: str = "") -> RecommendationsResponse:
        """The answer cut to its first ``k`` items, with ``recommendation_id``."""
        return self.response.model_copy(
            update={"items": self.response.items[:k], "recommendation_id": recommendation_id}
        )

    def json(self, k: int, recommendation_id: str = "") -> bytes:
        """The JSON body of :meth:`first` (``k``, ``recommendation_id``: letters and digits), exactly as FastAPI would
        render it, without re-rendering."""
        return self._head + recommendation_id.encode() + b'","items":[' + b",".join(self._items[:k]) + b"]}"


class ResponseCache:
    """Answers (model and graph path), keyed by the request *and the user's interaction fingerprint as just read*.

    A new interaction changes the key, so it is reflected at once; what can age (for at most ``ttl``
    seconds) is only what other users did since: the explanation paths through them and nothing else.
    Thread-safe LRU; ``size`` 0 (or ``ttl`` 0) disables it. It also counts its entries per user, so that a request
    that cannot be a hit (:meth:`may_hold` is False) skips the fingerprint read and goes straight to the computation.
    """

    def __init__(self, size: int, ttl: float, metrics: Metrics | None = None) -> None:
        self.size = size if ttl > 0 else 0
        self.ttl = ttl
        self.metrics = metrics
        self._entries: OrderedDict[tuple, tuple[float, Answer, str]] = OrderedDict()
        self._users: Counter[str] = Counter()
        self._lock = threading.Lock()

    def may_hold(self, user_id: str) -> bool:
        """Whether some answer for ``user_id`` is held (it may be stale or for other options): False means that
        any lookup for this user now is a miss."""
        return self.size > 0 and self._users.get(user_id, 0) > 0

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
        if self.metrics is not None:
            self.metrics.cache.labels("hit" if hit is not None else "miss").inc()
        return hit

    def put(self, key: tuple, value: Answer, user_id: str) -> None:
        """Hold ``value`` under ``key`` (an answer for ``user_id``)."""
        if self.size <= 0:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic(), value, user_id)
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


__all__ = ["Answer", "HeldHistories", "ResponseCache"]
