"""The batch ingestion route, ``POST /interactions/batch`` (write key required); the work is in :mod:`api.ingest`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import DriverDep, RecommenderDep, SettingsDep, require_write_key
from api.ingest import NDJSON, BatchOut, MalformedBodyError, TooLargeError, ingest_rows, parse_rows
from api.schemas import ErrorBody, ValidationErrorBody

ingest_router = APIRouter(dependencies=[Depends(require_write_key)])

#: Rows are validated one by one against InteractionIn: a row that fails is rejected in the answer with its reason,
#: the others are written, so the request body itself is any list of objects.
_ROWS = {
    "type": "array",
    "items": {
        "description": "A POST /interactions body (InteractionIn), checked row by row: anything else is a rejected row."
    },
}


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"the body may be at most {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413, f"the body may be at most {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@ingest_router.post(
    "/interactions/batch",
    response_model=BatchOut,
    responses={
        401: {"description": "No API key", "model": ErrorBody},
        403: {"description": "Wrong API key", "model": ErrorBody},
        413: {
            "description": "More rows than KGREC_INGEST_MAX_ROWS or bytes than KGREC_INGEST_MAX_BYTES",
            "model": ErrorBody,
        },
        422: {"description": "The body is not a JSON list (or NDJSON)", "model": ValidationErrorBody},
        503: {"description": "Neo4j unreachable", "model": ErrorBody},
    },
    summary="Record many interactions at once, with a result per row (reflected in the next recommendations)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ROWS}, NDJSON: {"schema": _ROWS}},
        }
    },
)
async def post_interaction_batch(
    request: Request, driver: DriverDep, recommender: RecommenderDep, settings: SettingsDep
) -> BatchOut:
    """A JSON list (or NDJSON) of POST /interactions bodies; rows with unknown items or invalid fields are rejected
    one by one, and a retried batch (with its timestamps) changes nothing."""
    raw = await _read_capped(request, settings.ingest_max_bytes)
    try:
        rows = parse_rows(raw, request.headers.get("content-type", "application/json"), settings.ingest_max_rows)
    except TooLargeError as exc:
        raise HTTPException(413, str(exc)) from exc
    except MalformedBodyError as exc:
        raise RequestValidationError([{"loc": ("body",), "msg": str(exc), "type": "json_invalid"}]) from exc
    return await run_in_threadpool(ingest_rows, driver, rows, recommender.database, recommender.histories)


__all__ = ["ingest_router"]
