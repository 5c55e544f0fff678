"""A per-client rate limit on the read routes: a token bucket per client, answering 429 with ``Retry-After``.

A client is the API key it sends, if that is the server's key (``KGREC_API_KEY``), else its IP address (behind a
proxy, run uvicorn with ``--forwarded-allow-ips`` so the address is the caller's). An unrecognised key counts as
anonymous, so rotating made-up keys does not buy fresh buckets. Each bucket holds ``KGREC_READ_BURST`` tokens and
refills at ``KGREC_READ_RATE`` per second; a read takes one. A bucket idle long enough to be full again is
forgotten (it would behave as a new one), and at most ``max_clients`` buckets are kept, the least recently used
dropped first, so memory stays bounded whatever the number of callers.

The buckets live in the process: with several API workers (``kgrec serve --workers N``) each counts on its own, so a
client may get up to N times the rate. The limit counts requests, not their cost: it bounds a client that sends
many reads, not one whose few reads are each expensive (large ``k`` with new filters, every one a cache miss).
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

MAX_CLIENTS = 100_000


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

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if granted, else the seconds until one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
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


class ReadRateLimit:
    """ASGI middleware: requests that match one of ``routes`` take a token of their client's bucket or get 429.

    Args:
        app: The application to wrap.
        routes: The routes to limit (the read routes); others pass untouched.
        rate: Requests per second per client; 0 disables the limit.
        burst: Requests a client may send at once.
        api_key: The server's key; a request sending it is limited by key rather than by address.
    """

    def __init__(
        self, app: ASGIApp, routes: Sequence[BaseRoute], rate: float, burst: int, api_key: str | None = None
    ) -> None:
        self.app = app
        self.routes = list(routes)
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None
        self._key = api_key.encode() if api_key else None
        self._key_id = "key:" + hashlib.sha256(self._key).hexdigest()[:16] if self._key else None
        self._message = f"read rate limit: at most {rate:g} requests/s per client (bursts of {burst})"

    def _client(self, scope: Scope) -> str:
        if self._key is not None:
            for name, value in scope.get("headers", ()):
                if name == b"x-api-key":
                    if secrets.compare_digest(value, self._key):
                        return self._key_id or ""
                    break
        client = scope.get("client")
        return f"ip:{client[0]}" if client else "ip:unknown"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = next((r for r in self.routes if r.matches(scope)[0] is Match.FULL), None)
        if route is None:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(self._client(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # so the metrics count the refusal under its route
        retry = max(1, math.ceil(wait))
        body = json.dumps({"detail": f"{self._message}; retry in {retry} s"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["MAX_CLIENTS", "ReadRateLimit", "TokenBuckets"]
