"""The answer cache: computed answers with their JSON already rendered, keyed by the request and the user's
interaction fingerprint (:func:`graph.reads.user_fingerprint`)."""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict

from api.metrics import Metrics
from api.schemas import RecommendationsResponse


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


__all__ = ["Answer", "ResponseCache"]
