"""A per-client rate limit on the read routes: a token bucket per client, answering 429 with ``Retry-After``.

A client is the API key it sends, if that is the server's key (``KGREC_API_KEY``), else its IP address (behind a
proxy, run uvicorn with ``--forwarded-allow-ips`` so the address is the caller's). An unrecognised key counts as
anonymous, so rotating made-up keys does not buy fresh buckets. Each bucket holds ``KGREC_READ_BURST`` tokens and
refills at ``KGREC_READ_RATE`` per second; a read takes one. A bucket idle long enough to be full again is
forgotten (it would behave as a new one), and at most ``max_clients`` buckets are kept, the least recently used
dropped first, so memory stays bounded whatever the number of callers.

The buckets live in the process: with several API workers (``kgrec serve --workers N``) each counts on its own, so a
client may get up to N times the rate. That limit counts requests, not their cost; two bounds keep the service
answering when reads are costly or too many:

* **in-flight reads** (``KGREC_MAX_INFLIGHT_READS``): a read arriving while that many are being answered or wait for
  a thread is refused at once (503, ``Retry-After``), so a burst queues for a bounded time, never for seconds;
* **uncached work** (:class:`MissGate`): the answers computed rather than served from the answer cache run at most
  ``KGREC_MISS_CONCURRENCY`` at a time, with at most ``KGREC_MISS_QUEUE`` waiting, each for at most
  ``KGREC_MISS_WAIT_SECONDS`` (else 503, ``Retry-After``); and each client has a budget of uncached work in cost
  units (``KGREC_MISS_COST_RATE`` per second, bursts of ``KGREC_MISS_COST_BURST``), an uncached read costing
  ``max(k, 20) / 20`` units, half that without explanations (over budget: 429, ``Retry-After``). Cache hits cost
  nothing of either.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import RefusedError

MAX_CLIENTS = 100_000
#: The ``k`` an uncached read of cost 1 computes (the answer cache's pool by default).
COST_UNIT_ITEMS = 20


class TokenBuckets:
    """Thread-safe token buckets by client key.

    Args:
        rate: Tokens added per second (> 0).
        burst: Capacity of a bucket (≥ 1).
        max_clients: Most buckets kept; the least recently used go first beyond it.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self, rate: float, burst: int, max_clients: int = MAX_CLIENTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst and max_clients at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self.idle_after = self.burst / rate  # a bucket idle this long is full again: forgetting it changes nothing
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last update)
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens (at most a full bucket) for ``key``: 0.0 if granted, else the seconds until they are
        available (nothing is taken then)."""
        cost = min(cost, self.burst)
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self.rate
            self._buckets[key] = (tokens, now)  # most recently used last
            self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        while buckets:
            key, (_, last) = next(iter(buckets.items()))
            if len(buckets) > self.max_clients or now - last >= self.idle_after:
                del buckets[key]
            else:
                break

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


class ClientIds:
    """Who a request comes from: ``key:<hash>`` when it sends the server's API key, else ``ip:<address>``.

    Args:
        api_key: The server's key (None: every client is known by address).
    """

    def __init__(self, api_key: str | None = None) -> None:
        self._key = api_key.encode() if api_key else None
        self._key_id = "key:" + hashlib.sha256(self._key).hexdigest()[:16] if self._key else None

    def __call__(self, scope: Scope) -> str:
        if self._key is not None:
            for name, value in scope.get("headers", ()):
                if name == b"x-api-key":
                    if secrets.compare_digest(value, self._key):
                        return self._key_id or ""
                    break
        client = scope.get("client")
        return f"ip:{client[0]}" if client else "ip:unknown"


def miss_cost(k: int, explain: bool) -> float:
    """The cost units of one uncached read: ``max(k, 20) / 20``, half without explanations."""
    return max(k, COST_UNIT_ITEMS) / COST_UNIT_ITEMS * (1.0 if explain else 0.5)


class MissGate:
    """The bound on uncached work (module docstring): a client's cost budget, then a slot among ``concurrency``.

    Args:
        concurrency: Uncached answers computed at once (≥ 1).
        queue: Most requests waiting for a slot; one more is refused at once.
        wait: Longest a request waits for a slot (seconds) before it is refused.
        cost_rate: Cost units per second each client may spend (0 = no per-client budget).
        cost_burst: Cost units a client may spend at once.
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        concurrency: int,
        queue: int,
        wait: float,
        cost_rate: float = 0.0,
        cost_burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if concurrency < 1 or queue < 0 or wait < 0:
            raise ValueError("concurrency must be at least 1, queue and wait at least 0")
        self.concurrency = concurrency
        self.queue = queue
        self.wait = wait
        self.budgets = TokenBuckets(cost_rate, max(1, math.ceil(cost_burst)), clock=clock) if cost_rate > 0 else None
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._waiting = 0
        self._busy = 0

    @property
    def busy(self) -> int:
        """Uncached answers being computed now."""
        return self._busy

    @contextmanager
    def admit(self, client: str | None, cost: float) -> Iterator[None]:
        """Hold a slot for one uncached answer of ``cost`` units asked by ``client`` (None: the service's own work,
        such as warming the cache, which has no budget).

        Raises:
            RefusedError: 429 when the client is over its budget; 503 when the queue is full or the wait too long.
        """
        if client is not None and self.budgets is not None:
            wait = self.budgets.take(client, cost)
            if wait > 0:
                raise RefusedError(
                    f"budget of uncached work: at most {self.budgets.rate:g} cost units/s per client (a read of "
                    f"k={COST_UNIT_ITEMS} with explanations costs 1); retry in {max(1, math.ceil(wait))} s",
                    status=429,
                    retry_after=math.ceil(wait),
                    reason="client_budget",
                )
        if not self._slots.acquire(blocking=False):
            with self._lock:
                full = self._waiting >= self.queue
                if not full:
                    self._waiting += 1
            if full:
                raise _overloaded("queue_full")
            try:
                granted = self._slots.acquire(timeout=self.wait) if self.wait > 0 else False
            finally:
                with self._lock:
                    self._waiting -= 1
            if not granted:
                raise _overloaded("wait_too_long")
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
            self._slots.release()


def _overloaded(reason: str) -> RefusedError:
    return RefusedError(
        "the server is at its bound of uncached work; retry in 1 s", status=503, retry_after=1, reason=reason
    )


#: Request paths whose limited route :class:`ReadRateLimit` remembers.
MAX_MATCHES = 20_000
MAX_MATCHED_PATH = 200


class ReadRateLimit:
    """ASGI middleware on the requests that match one of ``routes``: at most ``max_inflight`` at once (beyond: 503),
    and each takes a token of its client's bucket (none left: 429); both answer at once with ``Retry-After``.

    Args:
        app: The application to wrap.
        routes: The routes to limit (the read routes); others pass untouched.
        rate: Requests per second per client; 0 disables the limit.
        burst: Requests a client may send at once.
        api_key: The server's key; a request sending it is limited by key rather than by address.
        max_inflight: Reads answered or waiting at once; 0 = no bound.
        on_refused: Called with the reason of each refusal (``inflight``, ``read_rate``), e.g. to count it.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        rate: float,
        burst: int,
        api_key: str | None = None,
        max_inflight: int = 0,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.routes = list(routes)
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None
        self.clients = ClientIds(api_key)
        self.max_inflight = max_inflight
        self.on_refused = on_refused
        self.inflight = 0  # touched only on the event loop
        self._matches: dict[tuple[str, str, str], BaseRoute | None] = {}  # likewise
        self._message = f"read rate limit: at most {rate:g} requests/s per client (bursts of {burst})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.buckets is None and self.max_inflight <= 0) or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        if self.max_inflight > 0 and self.inflight >= self.max_inflight:
            scope["route"] = route  # so the metrics count the refusal under its route
            detail = f"the server is answering its bound of {self.max_inflight} reads at once; retry in 1 s"
            await self._refuse(send, 503, 1, detail, "inflight")
            return
        wait = self.buckets.take(self.clients(scope)) if self.buckets is not None else 0.0
        if wait > 0:
            scope["route"] = route
            retry = max(1, math.ceil(wait))
            await self._refuse(send, 429, retry, f"{self._message}; retry in {retry} s", "read_rate")
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1

    def _route(self, scope: Scope) -> BaseRoute | None:
        """The limited route ``scope`` matches (None: none), remembered by method and path (a read's route depends on
        nothing else; at most MAX_MATCHES paths of at most MAX_MATCHED_PATH characters are remembered, then the memo starts
        again)."""
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        if key in self._matches:
            return self._matches[key]
        route = next((r for r in self.routes if r.matches(scope)[0] is Match.FULL), None)
        if len(key[2]) > MAX_MATCHED_PATH:
            return route
        if len(self._matches) >= MAX_MATCHES:
            self._matches.clear()
        self._matches[key] = route
        return route

    async def _refuse(self, send: Send, status: int, retry: int, detail: str, reason: str) -> None:
        if self.on_refused is not None:
            self.on_refused(reason)
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["COST_UNIT_ITEMS", "MAX_CLIENTS", "ClientIds", "MissGate", "ReadRateLimit", "TokenBuckets", "miss_cost"]
