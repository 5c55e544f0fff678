"""A lean path for the hottest request, ``GET /users/{user_id}/recommendations`` with at most ``k`` and ``explain``.

FastAPI spends about 2 ms of the event loop's time on each request around the handler (routing through the included
routers, solving the dependencies and parameter models, the exception and exit-stack middlewares, the response's
wrapping), as much for a cached answer as for a computed one. :class:`LeanRecommendations` sits in front of that,
innermost of the app's own middlewares (so the metrics, the body limit and the read rate limit see the request as
before): a well-formed request it is sure of is answered by calling the route's own function,
:func:`api.routes.get_recommendations`, in the thread pool as FastAPI does, and its exceptions are answered by the
app's exception handlers, so the bytes, status and headers are FastAPI's. Anything else (another parameter, a value
FastAPI might read differently or refuse, a read key that is missing or wrong, FastAPI's telemetry on) is passed to
FastAPI untouched: its validation errors, 401s and 403s stay its own.
"""

from __future__ import annotations

import inspect
import secrets
from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.routes import get_recommendations
from api.settings import ApiSettings

_PREFIX = "/users/"
_SUFFIX = "/recommendations"
#: The strings pydantic reads as a bool (any letter case), and their value.
_BOOLS = {
    **dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
    **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False),
}
#: Longest ``k`` read here (digits); a longer one is FastAPI's to refuse.
_MAX_K_DIGITS = 6


class LeanRecommendations:
    """ASGI middleware answering the common ``GET /users/{user_id}/recommendations`` itself (module docstring).

    Args:
        app: The rest of the application (FastAPI's middlewares and router), which answers everything else.
        route: The FastAPI route of the recommendations; the request's ``scope["route"]`` is set to it, as FastAPI's
            router does, so the metrics count the request under the same route.
    """

    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user_id = self._user_id(scope)
        state = scope["app"].state if user_id is not None else None
        query = self._query(scope, state.api_settings) if state is not None else None
        if query is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        scope["path_params"] = {"user_id": user_id}
        request = Request(scope, receive, send)
        try:
            response = await run_in_threadpool(
                get_recommendations, request, user_id, state.recommender, state.api_settings, **query
            )
        except Exception as exc:  # noqa: BLE001 - answered by the app's handler of its type, else raised on as before
            await _handle(request, exc, send)
            return
        await response(scope, receive, send)

    @staticmethod
    def _user_id(scope: Scope) -> str | None:
        """The user id of a GET of the route's path (as the route's pattern reads it), else None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if not path.startswith(_PREFIX) or not path.endswith(_SUFFIX):
            return None
        user_id = path[len(_PREFIX) : -len(_SUFFIX)]
        return user_id if user_id and "/" not in user_id else None

    @staticmethod
    def _query(scope: Scope, settings: ApiSettings) -> dict[str, Any] | None:
        """The route's ``k`` and ``explain`` when the request is one this path answers: no other parameter, each at
        most once, values FastAPI reads the same way and accepts, the read key right when reads need it, FastAPI's
        telemetry off. Else None."""
        if scope.get("fastapi.telemetry") is not None:
            return None
        if settings.read_requires_key and not _key_matches(scope, settings):
            return None
        query: dict[str, Any] = {}
        raw: bytes = scope.get("query_string", b"")
        if not raw:
            return query
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):  # as Starlette's QueryParams
            if name in query:
                return None
            if name == "k":
                if not (value.isascii() and value.isdigit() and len(value) <= _MAX_K_DIGITS):
                    return None
                k = int(value)
                if not 1 <= k <= settings.max_k:
                    return None
                query["k"] = k
            elif name == "explain":
                explain = _BOOLS.get(value.lower()) if value.isascii() else None
                if explain is None:
                    return None
                query["explain"] = explain
            else:
                return None
        return query


def _key_matches(scope: Scope, settings: ApiSettings) -> bool:
    """The request's first ``X-API-Key`` header is the server's key, compared as ``api.deps.require_read_key`` does
    (the header read as latin-1, both encoded as UTF-8)."""
    if settings.api_key is None:
        return False
    for name, value in scope.get("headers", ()):
        if name == b"x-api-key":
            given = value.decode("latin-1").encode()
            return bool(given) and secrets.compare_digest(given, settings.api_key.get_secret_value().encode())
    return False


async def _handle(request: Request, exc: Exception, send: Send) -> None:
    """Answer ``exc`` with the app's handler of it, as Starlette's exception middleware does with the handlers
    FastAPI gives it (those of 500 and ``Exception`` are the outer error middleware's): an HTTPException's status
    handler first, then the handler of the nearest class of its type; without one, raise it on."""
    handlers: dict[Any, Any] = request.app.exception_handlers
    handler = None
    if isinstance(exc, HTTPException) and exc.status_code != 500:
        handler = handlers.get(exc.status_code)
    if handler is None:
        handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers and c is not Exception), None)
    if handler is None:
        raise exc
    if inspect.iscoroutinefunction(handler):
        response = await handler(request, exc)
    else:
        response = await run_in_threadpool(handler, request, exc)
    if response is not None:
        await response(request.scope, request.receive, send)
    exc.__traceback__ = None  # an exception instance raised again must not gather tracebacks (as Starlette)


__all__ = ["LeanRecommendations"]
