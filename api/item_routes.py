"""The item routes (write key required): ``POST /items`` adds an item to the catalogue, ``PATCH /items/{item_id}``
hides, shows, retitles it or sets its availability window. The work is in :mod:`api.catalogue`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response, status

from api.catalogue import add_item, patch_item
from api.deps import DriverDep, RecommenderDep, require_json_body, require_write_key
from api.item_schemas import ItemIn, ItemOut, ItemPatch
from api.schemas import ErrorBody, ValidationErrorBody

item_router = APIRouter(dependencies=[Depends(require_write_key), Depends(require_json_body)])

_COMMON: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key"},
    403: {"model": ErrorBody, "description": "Wrong API key, or writes disabled"},
    413: {"model": ErrorBody, "description": "Body larger than KGREC_MAX_BODY_BYTES"},
    415: {"model": ErrorBody, "description": "Body not JSON (Content-Type must be application/json)"},
    503: {"model": ErrorBody, "description": "Neo4j unreachable"},
}


@item_router.post(
    "/items",
    response_model=ItemOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ItemOut, "description": "The item exists already with this very content (a retry): unchanged"},
        409: {"model": ErrorBody, "description": "The item exists with other content (PATCH changes an item)"},
        422: {
            "model": ValidationErrorBody,
            "description": "Invalid input; genres that do not exist (one entry each, type unknown_genre; nothing is "
            "written); or an empty availability window (type empty_availability_window)",
        },
        **_COMMON,
    },
    summary="Add an item to the catalogue (recommendable at once, without a retrain)",
)
def post_item(body: ItemIn, response: Response, driver: DriverDep, recommender: RecommenderDep) -> ItemOut:
    item, created = add_item(driver, body, recommender.catalogue, recommender.database)
    if not created:
        response.status_code = status.HTTP_200_OK
    return item


@item_router.patch(
    "/items/{item_id}",
    response_model=ItemOut,
    responses={
        404: {"model": ErrorBody, "description": "Unknown item"},
        422: {
            "model": ValidationErrorBody,
            "description": "Invalid input, or a change that would leave the availability window empty (type "
            "empty_availability_window)",
        },
        **_COMMON,
    },
    summary="Hide or show an item, set or clear its availability window, change its title",
)
def patch_item_route(
    item_id: Annotated[str, Path(description="The item's external id (its itemId in the graph); unknown: 404.")],
    body: ItemPatch,
    driver: DriverDep,
    recommender: RecommenderDep,
) -> ItemOut:
    return patch_item(driver, item_id, body, recommender.catalogue, recommender.database)


__all__ = ["item_router"]
