"""HTTP routes."""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import (
    DriverDep,
    InteractionWriterDep,
    RecommenderDep,
    SettingsDep,
    require_json_body,
    require_read_key,
    require_write_key,
)
from api.feedback import record_feedback
from api.genres import unknown_genre
from api.groups import recommend_group
from api.metrics import exposition
from api.schemas import (
    ErrorBody,
    FeedbackIn,
    FeedbackOut,
    GroupRecommendationsIn,
    GroupRecommendationsResponse,
    Health,
    InteractionIn,
    InteractionOut,
    ModelInfo,
    NewUserIn,
    NewUserOut,
    Ready,
    RecommendationsResponse,
    SimilarItemsResponse,
    ValidationErrorBody,
)
from api.service import MAX_ID_LENGTH, SOURCES, Recommender
from api.workers import workers_warmed
from api.writes import onboard_user, record_interaction
from graph.errors import reason
from graph.recall import RecallFilters

log = logging.getLogger(__name__)

router = APIRouter()
reads = APIRouter(dependencies=[Depends(require_read_key)])
writes = APIRouter(dependencies=[Depends(require_write_key), Depends(require_json_body)])

_INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ValidationErrorBody, "description": "Invalid input"}}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown user or item"},
    503: {"model": ErrorBody, "description": "Neo4j unreachable"},
    **_INVALID,
}
_KEY_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key"},
    403: {"model": ErrorBody, "description": "Wrong API key, or writes disabled"},
}
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    **_NOT_FOUND,
    **_KEY_ERRORS,  # only when KGREC_READ_REQUIRES_KEY is set
    429: {
        "model": ErrorBody,
        "description": "Too many reads (KGREC_READ_RATE) or too much uncached work (KGREC_MISS_COST_RATE) from this "
        "client; see Retry-After",
    },
}
_RECOMMEND_ERRORS: dict[int | str, dict[str, Any]] = {
    **_READ_ERRORS,
    503: {
        "model": ErrorBody,
        "description": "Neo4j unreachable, or the server at its bound of reads or uncached work; see Retry-After",
    },
}
_SOURCE_NAME = "|".join(re.escape(name) for name in SOURCES)
#: What ``sources`` accepts: a comma-separated list of recall source names (blank: every source). The server checks
#: the names itself (its 422 names the unknown ones); the OpenAPI schema states the same rule as this pattern.
SOURCES_PATTERN = rf"^(\s*({_SOURCE_NAME})\s*)?(,(\s*({_SOURCE_NAME})\s*)?)*$"
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "Body larger than KGREC_MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "Body not JSON (Content-Type must be application/json)"},
    **_INVALID,
}
#: The comma-separated list parameters (``exclude_items``, ``include_genres``, ``exclude_genres``): at most
#: MAX_LIST_ITEMS names of at most MAX_LIST_ITEM_LENGTH characters each, MAX_LIST_LENGTH characters in all (``sources``
#: too). The longest request the schema allows, every character percent-encoded, stays under the HTTP server's
#: 64 KiB request line (the fuzz test checks it).
MAX_LIST_ITEMS = 50
MAX_LIST_ITEM_LENGTH = 100
MAX_LIST_LENGTH = 1000
LIST_PATTERN = rf"^[^,]{{0,{MAX_LIST_ITEM_LENGTH}}}(,[^,]{{0,{MAX_LIST_ITEM_LENGTH}}}){{0,{MAX_LIST_ITEMS - 1}}}$"
_LIST_LIMITS = (
    f" At most {MAX_LIST_ITEMS} comma-separated names of at most {MAX_LIST_ITEM_LENGTH} characters, "
    f"{MAX_LIST_LENGTH} characters in all (else 422)."
)


def _list_query(description: str) -> Any:
    return Query(max_length=MAX_LIST_LENGTH, pattern=LIST_PATTERN, description=description + _LIST_LIMITS)


#: The description of every ``k``; the schema's maximum is KGREC_MAX_K's value (set by :func:`api.app.create_app`).
K_DESCRIPTION = "Number of items (default KGREC_DEFAULT_K, at most KGREC_MAX_K)."


def _check_k(k: int | None, settings: SettingsDep) -> int:
    """The requested k, or the default; above KGREC_MAX_K it is refused like any invalid parameter."""
    size = k or settings.default_k
    if size > settings.max_k:
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("query", "k"),
                    "msg": f"Input should be less than or equal to {settings.max_k}",
                }
            ]
        )
    return size


def _check_filters(filters: RecallFilters, recommender: Recommender) -> None:
    """Refuse, like any invalid parameter, a year range that holds no year and genres the graph does not have (one
    entry each, type ``empty_year_range`` or ``unknown_genre``): either would otherwise answer an empty list, as if
    the user had nothing to recommend. The genres are checked against the set held in memory (:mod:`api.genres`),
    not read per request; when no set is known (Neo4j away since the start, no model catalog) they are not checked."""
    errors: list[dict[str, Any]] = []
    if filters.year_min is not None and filters.year_max is not None and filters.year_min > filters.year_max:
        errors.append(
            {
                "type": "empty_year_range",
                "loc": ("query", "year_max"),
                "msg": f"year_max {filters.year_max} is below year_min {filters.year_min}: no year is in the range",
            }
        )
    named = {"include_genres": filters.include_genres, "exclude_genres": filters.exclude_genres}
    known = recommender.genre_names() if filters.include_genres or filters.exclude_genres else None
    if known is not None:
        errors.extend(
            {"type": "unknown_genre", "loc": ("query", field, index), "msg": unknown_genre(name, known)}
            for field, names in named.items()
            for index, name in enumerate(names)
            if name not in known
        )
    if errors:
        raise RequestValidationError(errors)


#: The path of the hottest route (:mod:`api.lean` answers its common requests without FastAPI's dispatch).
RECOMMENDATIONS_PATH = "/users/{user_id}/recommendations"


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@reads.get(
    RECOMMENDATIONS_PATH,
    response_model=RecommendationsResponse,
    responses={
        **_RECOMMEND_ERRORS,
        422: {
            "model": ValidationErrorBody,
            "description": "Invalid input; a year range that holds no year (year_min above year_max, type "
            "empty_year_range); genres the graph does not have in include_genres or exclude_genres (one entry each, "
            "type unknown_genre, its message naming the closest genres)",
        },
        200: {
            "links": {
                "RecordInteraction": {
                    "operationRef": "#/paths/~1interactions/post",
                    "requestBody": {"user_id": "$response.body#/user_id", "item_id": "$response.body#/items/0/item_id"},
                    "description": "Record that the user took the first item shown.",
                },
            }
        },
    },
    summary="Ranked, explained recommendations for a user",
)
def get_recommendations(
    request: Request,
    user_id: Annotated[str, Path(description="The user's external id (its userId in the graph); unknown: 404.")],
    recommender: RecommenderDep,
    settings: SettingsDep,
    k: Annotated[int | None, Query(ge=1, description=K_DESCRIPTION)] = None,
    explain: Annotated[bool, Query(description="Include explanation paths.")] = True,
    sources: Annotated[
        str | None,
        Query(
            max_length=MAX_LIST_LENGTH,
            description=f"Comma-separated recall sources (default all), {MAX_LIST_LENGTH} characters at most.",
            examples=["collaborative,knowledge"],
        ),
    ] = None,
    exclude_items: Annotated[str | None, _list_query("Comma-separated item ids to leave out.")] = None,
    include_genres: Annotated[
        str | None, _list_query("Only items in one of these genres (comma-separated; each a genre of the graph).")
    ] = None,
    exclude_genres: Annotated[
        str | None, _list_query("No items in these genres (comma-separated; each a genre of the graph).")
    ] = None,
    year_min: Annotated[
        int | None, Query(ge=0, le=3000, description="Only items whose year is known and at least this.")
    ] = None,
    year_max: Annotated[
        int | None,
        Query(ge=0, le=3000, description="Only items whose year is known and at most this (not below year_min)."),
    ] = None,
) -> Response:
    size = _check_k(k, settings)
    filters = RecallFilters(
        exclude_items=_csv(exclude_items),
        include_genres=_csv(include_genres),
        exclude_genres=_csv(exclude_genres),
        year_min=year_min,
        year_max=year_max,
    )
    _check_filters(filters, recommender)
    # The body is rendered by the recommender (a cached answer is already JSON): the schema above still documents it.
    client = request.app.state.clients(request.scope)  # whose budget of uncached work a miss spends
    body = recommender.serve(
        user_id, size, explain=explain, sources=_csv(sources) or None, filters=filters, client=client
    )
    return Response(body, media_type="application/json")


@reads.get(
    "/items/{item_id}/similar",
    response_model=SimilarItemsResponse,
    responses=_READ_ERRORS,
    summary="Items similar to an item (shared users and traits)",
)
def get_similar(
    item_id: Annotated[str, Path(description="The item's external id (its itemId in the graph); unknown: 404.")],
    recommender: RecommenderDep,
    settings: SettingsDep,
    k: Annotated[int | None, Query(ge=1, description=K_DESCRIPTION)] = None,
    explain: Annotated[bool, Query(description="Include explanation paths (shared users and traits).")] = True,
) -> SimilarItemsResponse:
    size = _check_k(k, settings)
    return recommender.similar(item_id, size, explain=explain)


@reads.post(
    "/groups/recommendations",
    response_model=GroupRecommendationsResponse,
    responses={
        **_RECOMMEND_ERRORS,
        404: {"model": ErrorBody, "description": "A member does not exist (the message names every unknown one)"},
        413: {"model": ErrorBody, "description": "Body larger than KGREC_MAX_BODY_BYTES"},
        415: {"model": ErrorBody, "description": "Body not JSON (Content-Type must be application/json)"},
        422: {
            "model": ValidationErrorBody,
            "description": "Invalid input: fewer than 2 or more than 20 members, a member named twice, k above "
            "KGREC_MAX_K, an unknown aggregation",
        },
    },
    dependencies=[Depends(require_json_body)],
    summary="One explained list for a group of users (average, least misery or most pleasure)",
)
def post_group_recommendations(
    request: Request, body: GroupRecommendationsIn, recommender: RecommenderDep, settings: SettingsDep
) -> GroupRecommendationsResponse:
    """Each member's scores (the model's, else graph recall's) become z-scores over the candidates, are aggregated,
    and the best items no member has interacted with are returned, each with every member's score and the paths of
    the members it serves (docs/api.md)."""
    if body.k is not None and body.k > settings.max_k:
        raise RequestValidationError(
            [
                {
                    "type": "less_than_equal",
                    "loc": ("body", "k"),
                    "msg": f"Input should be less than or equal to {settings.max_k}",
                }
            ]
        )
    client = request.app.state.clients(request.scope)
    return recommend_group(
        recommender, body.user_ids, body.k or settings.default_k, body.aggregation, explain=body.explain, client=client
    )


@writes.post(
    "/interactions",
    response_model=InteractionOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_KEY_ERRORS,
        **_NOT_FOUND,
        **_BODY_ERRORS,
        201: {
            "links": {
                "Recommendations": {
                    "operationRef": "#/paths/~1users~1{user_id}~1recommendations/get",
                    "parameters": {"path.user_id": "$response.body#/user_id"},
                    "description": "The user's recommendations, which reflect the interaction at once.",
                },
                "SimilarItems": {
                    "operationRef": "#/paths/~1items~1{item_id}~1similar/get",
                    "parameters": {"path.item_id": "$response.body#/item_id"},
                    "description": "Items similar to the item of the interaction.",
                },
            }
        },
    },
    summary="Record an interaction (reflected in the next recommendations at once)",
)
async def post_interaction(body: InteractionIn, writer: InteractionWriterDep) -> InteractionOut:
    return await record_interaction(writer, body)


@writes.post(
    "/feedback",
    response_model=FeedbackOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        **_KEY_ERRORS,
        **_NOT_FOUND,
        **_BODY_ERRORS,
        404: {"model": ErrorBody, "description": "Unknown item"},
        422: {
            "model": ValidationErrorBody,
            "description": "Invalid input, or a feedback type that is not configured (type unknown_feedback_type; "
            "nothing is written)",
        },
    },
    summary="Record a feedback event (view, click, like, purchase, dislike, skip), attributed to the list shown",
)
def post_feedback(request: Request, body: FeedbackIn, driver: DriverDep, recommender: RecommenderDep) -> FeedbackOut:
    """The event is combined into the user's interaction with the item (its type's weight and polarity; a dislike
    makes it negative, and the item never comes back to this user) and reflected in the next list at once. With a
    ``recommendation_id``, a click or purchase of a shown item counts for that list and its variant; an id that does
    not exist or did not show the item leaves the event recorded but unattributed (``attribution`` says why)."""
    return record_feedback(
        driver,
        body,
        request.app.state.feedback,
        request.app.state.metrics,
        recommender.impressions,
        recommender.database,
        on_click=recommender.count_click,
        max_shown=recommender.settings.exposure_items,
        histories=recommender.histories,
        store=recommender.impression_store,
    )


@writes.post(
    "/users",
    response_model=NewUserOut,
    response_model_exclude_none=True,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"model": ErrorBody, "description": "User exists"},
        503: {"model": ErrorBody, "description": "Neo4j unreachable"},
        **_KEY_ERRORS,
        **_BODY_ERRORS,
        422: {
            "model": ValidationErrorBody,
            "description": "Invalid input, or liked genres, items or attributes that do not exist (one entry each: "
            "type unknown_genre, unknown_item or unknown_attribute; nothing is written)",
        },
    },
    summary="Onboard a new user with liked genres and items (cold start)",
)
def post_user(body: NewUserIn, driver: DriverDep, recommender: RecommenderDep) -> NewUserOut:
    return onboard_user(driver, body, recommender.database)


@writes.post(
    "/admin/reload",
    response_model=ModelInfo,
    responses={409: {"model": ErrorBody, "description": "No model is served"}, **_KEY_ERRORS, **_BODY_ERRORS},
    summary="Load the newly promoted model now (requests keep being served during the swap)",
    description="Reloads the process that answers; with several worker processes the others load it at their next "
    "look for a new model (KGREC_MODEL_WATCH_SECONDS).",
)
def reload_model(recommender: RecommenderDep) -> ModelInfo:
    if recommender.models is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "this server runs without a model (KGREC_SERVE_MODEL=none)")
    result = recommender.models.reload(force=True)
    return ModelInfo(kind=result.kind, version=result.version, changed=result.changed)


@router.get("/health", response_model=Health, summary="The process is up (does not touch Neo4j)")
def health(recommender: RecommenderDep) -> Health:
    model = recommender.model
    return Health(status="ok", model_version=f"{model.kind}-{model.version}" if model else None)


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": Ready}},
    summary="Neo4j is reachable, the model loaded and the answer cache warmed",
)
def ready(driver: DriverDep, recommender: RecommenderDep) -> Response:
    """200 once the service can answer at its usual speed: the model loaded (before the server accepts requests),
    the first warming of the answer cache over (KGREC_CACHE_WARM_USERS) and Neo4j reachable; else 503. With several
    worker processes (`kgrec serve --workers N`), every worker's first warming."""
    warmed = workers_warmed()  # (warmed, workers) of the processes behind this port; None: this one alone
    if not recommender.warmed.is_set() or (warmed is not None and warmed[0] < warmed[1]):
        detail = "warming the answer cache (KGREC_CACHE_WARM_USERS)"
        if warmed is not None:
            detail += f": {warmed[0]} of {warmed[1]} workers warmed"
        body = Ready(status="warming", neo4j="unknown", detail=detail)
        return JSONResponse(
            body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "1"}
        )
    try:
        driver.verify_connectivity()
        driver.execute_query("RETURN 1", database_=recommender.database, routing_="r")  # any cluster member
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is logged, not answered
        log.warning("not ready: %s", reason(exc)[:500])
        body = Ready(status="unavailable", neo4j="unreachable", detail="Neo4j is unreachable")
        return JSONResponse(body.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(Ready(status="ready", neo4j="ok").model_dump())


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Counters and histograms of the service; with several worker processes (`kgrec serve --workers`), "
    "the sum over all of them.",
    response_class=Response,
)
def metrics(request: Request) -> Response:
    return Response(exposition(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


router.include_router(reads)
router.include_router(writes)

__all__ = [
    "LIST_PATTERN",
    "MAX_ID_LENGTH",
    "MAX_LIST_ITEMS",
    "MAX_LIST_ITEM_LENGTH",
    "MAX_LIST_LENGTH",
    "RECOMMENDATIONS_PATH",
    "router",
]
