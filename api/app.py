"""The FastAPI application factory.

The lifespan opens the Neo4j driver (without requiring Neo4j to be up: the service starts, answers
/health, and says 503 on /ready until Neo4j is reachable) and a thread pool for parallel recall.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from neo4j import GraphDatabase
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from api.errors import (
    EmptyWindowError,
    ItemExistsError,
    RefusedError,
    UnknownEntityError,
    UnknownNamesError,
    UnknownSourceError,
    UserExistsError,
)
from api.feedback import FeedbackConfig, UnknownFeedbackTypeError
from api.heap import freeze_heap, log_collection, switch_interval, thaw_heap, time_collections, young_threshold
from api.ingest_routes import ingest_router
from api.item_routes import item_router
from api.lean import LeanRecommendations
from api.limits import ClientIds, ReadRateLimit
from api.metrics import Metrics
from api.model import ModelHolder
from api.routes import RECOMMENDATIONS_PATH, SOURCES_PATTERN, reads, router
from api.service import Recommender
from api.settings import ApiSettings, get_api_settings
from api.variants import Variants, load_variants
from api.workers import mark_when_warmed
from api.writes import InteractionWriter
from gnn.serving import find_version, limit_scoring_threads
from graph.settings import Neo4jSettings, get_neo4j_settings
from schema.errors import ConfigError, DatabaseUnavailableError, KgrecError

log = logging.getLogger(__name__)

DESCRIPTION = """
Recommendations from a knowledge graph in Neo4j, each with the paths that explain it.

* **Reads** (`GET`) are open unless `KGREC_READ_REQUIRES_KEY` is set.
* **Writes** (`POST`) need the key from `KGREC_API_KEY` in the `X-API-Key` header.
* Unknown users or items answer **404**, invalid parameters **422**, and an unreachable Neo4j **503**.
* Every 422 has the same body, `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`, one entry per fault.
* A write's body must be JSON (`Content-Type: application/json`, else **415**) without `NaN` or `Infinity`, and at
  most `KGREC_MAX_BODY_BYTES` long (else **413**).
"""

#: What a 503 says to the client; the driver's reason (which names the Neo4j address) goes to the log only.
UNAVAILABLE = "Neo4j is unreachable"
#: What a 413 says.
TOO_LARGE = "Content Too Large"
#: Where the Swagger UI files of /docs are served from: the installed swagger-ui-bundle-v2 package, never a CDN,
#: so the page works on a machine without internet.
SWAGGER_STATIC = "/docs-static"


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors in the documented shape (``api.schemas.FieldError``), without the input they refused.

    The input is left out: it may be huge, or a float (NaN, infinity) that JSON cannot carry.
    """
    return [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in errors
    ]


def _openapi_with_limits(
    app: FastAPI, max_k: int, read_requires_key: bool = False, feedback_types: list[str] | None = None
) -> dict[str, Any]:
    """The OpenAPI schema with the bounds the server enforces: ``k``'s maximum set to KGREC_MAX_K, the names
    ``sources`` may list, the feedback types configured (KGREC_FEEDBACK_KINDS), and the API key required of reads
    (GET, and POST /groups/recommendations) only when KGREC_READ_REQUIRES_KEY says so."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        feedback = schema.get("components", {}).get("schemas", {}).get("FeedbackIn")
        if feedback is not None and feedback_types:
            feedback["properties"]["type"]["enum"] = feedback_types
        read_operations = {(r.path, m.lower()) for r in reads.routes for m in getattr(r, "methods", ())}
        for url, path in schema.get("paths", {}).items():
            for method, operation in path.items():
                if (method == "get" or (url, method) in read_operations) and not read_requires_key:
                    operation.pop("security", None)
                for parameter in operation.get("parameters", []):
                    if parameter.get("name") == "sources" and parameter.get("in") == "query":
                        for option in parameter["schema"].get("anyOf", [parameter["schema"]]):
                            if option.get("type") == "string":
                                option["pattern"] = SOURCES_PATTERN
                    if parameter.get("name") == "k" and parameter.get("in") == "query":
                        for option in parameter["schema"].get("anyOf", [parameter["schema"]]):
                            if option.get("type") == "integer":
                                option["maximum"] = max_k
        group = schema.get("components", {}).get("schemas", {}).get("GroupRecommendationsIn", {})
        for option in group.get("properties", {}).get("k", {}).get("anyOf", []):
            if option.get("type") == "integer":
                option["maximum"] = max_k
        app.openapi_schema = schema
    return app.openapi_schema


def _local_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the files of the installed swagger-ui-bundle-v2 package (FastAPI's default page
    loads them from a CDN, a blank page offline). ReDoc has no local copy, so there is no ``/redoc``."""
    app.mount(SWAGGER_STATIC, StaticFiles(directory=swagger_ui_path), name="swagger-ui")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{SWAGGER_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_STATIC}/favicon-32x32.png",
            oauth2_redirect_url=oauth2_redirect,
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


async def _watch(models: ModelHolder, every: float) -> None:
    """Pick up a newly promoted model (the promotion pointer changed) without a restart."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(models.reload, False)
        except Exception:  # noqa: BLE001 - the watcher must survive anything; the holder logs load failures
            log.exception("model watch failed")


class MetricsMiddleware:
    """Requests and latency per route (plain ASGI: no per-request task or body wrapping on the hot path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics: Metrics | None = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
            if metrics is not None:
                path = getattr(scope.get("route"), "path", "unmatched")
                method = scope["method"]
                metrics.requests.labels(path, method, str(status_code)).inc()
                metrics.latency.labels(path, method).observe(time.perf_counter() - started)


class BodyLimitMiddleware:
    """Refuse a request body larger than the limit with 413 (JSON, like every error body).

    A declared Content-Length above the limit is answered at once, the body unread; a body without one (chunked) is
    counted as it is read, and the read that crosses the limit raises the 413 (FastAPI passes an ``HTTPException``
    raised while reading the body through to its handler).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.overrides = dict(overrides or {})  # path → its own limit (the batch ingestion route's is larger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_body_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            too_large = JSONResponse({"detail": TOO_LARGE}, status_code=status.HTTP_413_CONTENT_TOO_LARGE)
            await too_large(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, TOO_LARGE)
            return message

        await self.app(scope, counted, send)


def check_variants(api_settings: ApiSettings) -> Variants:
    """The variants of ``KGREC_VARIANTS`` (:func:`api.variants.load_variants`), with every model version they name
    present under the artifacts root.

    Raises:
        ConfigError: The file is broken, or a variant names a version that does not exist (the message names both),
            or names one while KGREC_SERVE_MODEL=none.
    """
    variants = load_variants(api_settings.variants)
    named = [v for v in variants.variants if v.model_version]
    if named and api_settings.serve_model == "none":
        raise ConfigError(
            f"KGREC_VARIANTS: variant {named[0].name} names model version {named[0].model_version!r} but "
            "KGREC_SERVE_MODEL=none serves no model"
        )
    kind = api_settings.serve_model
    for variant in named:
        if find_version(api_settings.artifacts_dir, variant.model_version or "", kind) is None:
            kinds = "any model kind" if kind == "auto" else f"model kind {kind}"
            raise ConfigError(
                f"KGREC_VARIANTS: variant {variant.name}: model version {variant.model_version!r} does not exist under "
                f"{api_settings.artifacts_dir} (for {kinds})"
            )
    return variants


def create_app(api_settings: ApiSettings | None = None, neo4j_settings: Neo4jSettings | None = None) -> FastAPI:
    """Build the app; settings default to the environment's."""
    api_settings = api_settings or get_api_settings()
    neo4j_settings = neo4j_settings or get_neo4j_settings()
    variants = check_variants(api_settings)  # a broken variants file, or a missing version, stops the service here

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        driver = GraphDatabase.driver(
            neo4j_settings.uri,
            auth=(neo4j_settings.user, neo4j_settings.password.get_secret_value()),
            connection_timeout=3.0,
            connection_acquisition_timeout=5.0,
            max_transaction_retry_time=2.0,
            max_connection_pool_size=64,
            notifications_min_severity="OFF",
        )
        executor = ThreadPoolExecutor(max_workers=api_settings.recall_workers, thread_name_prefix="kgrec-recall")
        limit_scoring_threads(api_settings.scoring_threads)
        metrics = Metrics()
        models = None
        if api_settings.serve_model != "none":
            models = ModelHolder(
                api_settings.artifacts_dir,
                api_settings.serve_model,
                variants.model_versions,
                api_settings.candidates(),
            )
            try:
                loaded = await asyncio.to_thread(models.reload)
            except ConfigError as exc:  # a variant names a model version that is not there: refuse to start
                driver.close()
                executor.shutdown(wait=False)
                named = [v.name for v in variants.variants if v.model_version and repr(v.model_version) in str(exc)]
                raise ConfigError(f"KGREC_VARIANTS: variant {', '.join(named)}: {exc}") from exc
            if loaded.version is None:
                log.info(
                    "no promoted model under %s: ranking with graph recall only (run kgrec retrain)",
                    api_settings.artifacts_dir,
                )
        app.state.driver = driver
        app.state.metrics = metrics
        app.state.api_settings = api_settings
        app.state.recommender = Recommender(
            driver, api_settings, executor, metrics, neo4j_settings.database, models=models, variants=variants
        )
        recommender = app.state.recommender
        app.state.interaction_writer = InteractionWriter(
            driver,
            neo4j_settings.database,
            api_settings.write_group_rows,
            metrics=metrics,
            timeout=api_settings.write_timeout_seconds,
            histories=recommender.histories,
        )
        stop_warming = threading.Event()

        reloads = 0  # warmings after a model change: the first is the start's

        def warm() -> None:
            nonlocal reloads
            reloaded, reloads = reloads > 0, reloads + 1
            try:
                recommender.warm_cache(api_settings.cache_warm_users, stop_warming, api_settings.cache_warm_ready_users)
            except KgrecError as exc:  # Neo4j refused a query: one line, not a traceback
                log.warning("warming the answer cache failed: %s", exc)
            except Exception:  # noqa: BLE001 - warming is an optimisation; never take the service down
                log.exception("warming the answer cache failed")
            if api_settings.gc_freeze and not stop_warming.is_set():
                # the warmed answers join the frozen heap; after a reload, the old model's cycles are collected first
                freeze_heap(collect=reloaded)  # (api/heap.py)

        warmers: list[threading.Thread] = []

        def on_reload(changed: bool) -> None:
            if changed and api_settings.cache_warm_users > 0 and not stop_warming.is_set():
                thread = threading.Thread(target=warm, name="kgrec-cache-warm", daemon=True)
                warmers.append(thread)
                thread.start()

        if models is not None:
            models.on_change = on_reload
        on_reload(True)  # warm for whichever path serves: the model's, or graph recall's when there is none
        if not warmers:
            recommender.warmed.set()  # nothing to warm: /ready needs only Neo4j
        warmed_mark = mark_when_warmed(recommender.warmed, stop_warming)  # several workers: /ready waits for all
        watcher = None
        if models is not None and api_settings.model_watch_seconds > 0:
            watcher = asyncio.create_task(_watch(models, api_settings.model_watch_seconds))
        if api_settings.gc_freeze:
            freeze_heap()  # full collections walk only what requests allocate (api/heap.py)
        # fewer young collections per miss (api/heap.py); the process's threshold is given back at shutdown
        default_young = young_threshold(api_settings.gc_young_threshold) if api_settings.gc_young_threshold else None
        default_switch = switch_interval(api_settings.gil_switch_ms) if api_settings.gil_switch_ms else None
        untime = time_collections(log_collection) if api_settings.debug_timeline else None
        # /ready waits for the warming (KGREC_CACHE_WARM_READY_USERS): say so, not "ready" while it answers 503
        log.info(
            "kgrec API started; Neo4j at %s%s",
            neo4j_settings.uri,
            "; warming the answer cache, /ready answers 503 until it is warm" if warmers else "",
        )
        try:
            yield
        finally:
            stop_warming.set()
            if warmed_mark is not None:
                warmed_mark.unlink(missing_ok=True)
            for thread in warmers:
                thread.join(timeout=30)  # the driver closes below: let a warming request finish first
            if watcher is not None:
                watcher.cancel()
            executor.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(recommender.close)  # write the impressions still queued
            await asyncio.to_thread(app.state.interaction_writer.close)
            driver.close()
            if api_settings.gc_freeze:
                thaw_heap()
            if default_young is not None:
                young_threshold(default_young)
            if default_switch is not None:
                switch_interval(default_switch)
            if untime is not None:
                untime()

    app = FastAPI(
        title="kgrec", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    _local_docs(app)
    app.include_router(router)
    app.include_router(ingest_router)
    app.include_router(item_router)
    key = api_settings.api_key.get_secret_value() if api_settings.api_key else None
    app.state.clients = ClientIds(key)  # who a read comes from, for its budget of uncached work
    app.state.feedback = FeedbackConfig.load(api_settings.feedback_kinds)  # a bad file stops the start, with its reason

    def count_refusal(reason: str) -> None:
        metrics: Metrics | None = getattr(app.state, "metrics", None)
        if metrics is not None:
            metrics.refused.labels(reason).inc()

    recommendations = next(r for r in reads.routes if isinstance(r, APIRoute) and r.path == RECOMMENDATIONS_PATH)
    app.add_middleware(LeanRecommendations, route=recommendations)  # innermost: inside the limits and the metrics
    app.add_middleware(  # inside the metrics middleware, which counts its 429s and 503s
        ReadRateLimit,
        routes=reads.routes,
        rate=api_settings.read_rate,
        burst=api_settings.read_burst,
        api_key=key,
        max_inflight=api_settings.max_inflight_reads,
        on_refused=count_refusal,
    )
    app.openapi = lambda: _openapi_with_limits(  # type: ignore[method-assign]
        app, api_settings.max_k, api_settings.read_requires_key, sorted(app.state.feedback.kinds)
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=api_settings.max_body_bytes,
        overrides={"/interactions/batch": api_settings.ingest_max_bytes},
    )
    app.add_middleware(MetricsMiddleware)

    @app.exception_handler(UnknownEntityError)
    async def not_found(_request: Request, exc: UnknownEntityError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _field_errors(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers a body it cannot decode (bytes that are not UTF-8 JSON) with a bare 400; the API documents
        # every unreadable body as its 422
        if exc.status_code == status.HTTP_400_BAD_REQUEST:
            detail = _field_errors([{"loc": ("body",), "msg": "the body is not readable JSON", "type": "json_invalid"}])
            return JSONResponse({"detail": detail}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(UnknownSourceError)
    async def bad_source(_request: Request, exc: UnknownSourceError) -> JSONResponse:
        detail = _field_errors([{"loc": ("query", "sources"), "msg": str(exc), "type": "unknown_source"}])
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(UnknownNamesError)
    async def unknown_names(_request: Request, exc: UnknownNamesError) -> JSONResponse:
        detail = _field_errors(
            [
                {"loc": ("body", field, index), "msg": f"unknown {kind} {name!r}", "type": f"unknown_{kind}"}
                for field, index, kind, name in exc.unknown
            ]
        )
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RefusedError)
    async def refused(_request: Request, exc: RefusedError) -> JSONResponse:
        count_refusal(exc.reason)
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(UnknownFeedbackTypeError)
    async def unknown_feedback_type(_request: Request, exc: UnknownFeedbackTypeError) -> JSONResponse:
        detail = _field_errors([{"loc": ("body", "type"), "msg": str(exc), "type": "unknown_feedback_type"}])
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(UserExistsError)
    async def user_exists(_request: Request, exc: UserExistsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(ItemExistsError)
    async def item_exists(_request: Request, exc: ItemExistsError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(EmptyWindowError)
    async def empty_window(_request: Request, exc: EmptyWindowError) -> JSONResponse:
        detail = _field_errors([{"loc": ("body",), "msg": str(exc), "type": "empty_availability_window"}])
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(DatabaseUnavailableError)
    async def unavailable(request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": UNAVAILABLE}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(KgrecError)
    async def kgrec_error(_request: Request, exc: KgrecError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)

    return app
