"""Batch ingestion of interactions (``POST /interactions/batch``): parsing, per-row validation, batched writes.

Each row is validated like a ``POST /interactions`` body (:class:`api.schemas.InteractionIn`) and defaults the same
way (weight 1.0, timestamp: when the request arrived). Rows are written grouped by user through
:func:`graph.writers.write_interaction_groups`, so each user's ``interactionsRev`` moves once per request and the
answer cache sees the change. A row that cannot be written (invalid, unknown item, superseded by a later row for
the same user and item) is answered ``rejected`` with its reason; the request itself fails only when the body is
not a list, or is too large. Writing the same rows again answers ``unchanged`` for each and changes nothing, as a
repeated ``POST /interactions`` does — provided the rows carry their timestamps (a missing one is "now").
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal, cast

from neo4j import Driver
from pydantic import BaseModel, Field, ValidationError

from api.cache import HeldHistories
from api.schemas import InteractionIn
from graph.writers import BatchWriter, write_interaction_groups
from schema.rows import InteractionRow

NDJSON = "application/x-ndjson"

RowStatus = Literal["created", "updated", "unchanged", "rejected"]


class TooLargeError(Exception):
    """The body holds more rows or bytes than the settings allow (→ 413)."""


class MalformedBodyError(Exception):
    """The body is not a JSON list of objects or NDJSON (→ 422)."""


class BatchRowResult(BaseModel):
    """What became of one row of the batch."""

    index: int = Field(description="Position of the row in the body (0-based; NDJSON: non-empty line number).")
    status: RowStatus = Field(
        description="created: a new interaction; updated: an existing one changed; unchanged: the same row was "
        "stored already; rejected: not written (see reason)."
    )
    user_id: str | None = None
    item_id: str | None = None
    created_user: bool = Field(False, description="The user did not exist before this request.")
    reason: str | None = Field(None, description="Why a row was rejected.")


class BatchOut(BaseModel):
    """Counts by status and one result per row, in the order of the body."""

    received: int
    created: int
    updated: int
    unchanged: int
    rejected: int
    results: list[BatchRowResult]


def parse_rows(raw: bytes, content_type: str, max_rows: int) -> list[Any]:
    """Split a body into rows: a JSON list, or NDJSON (one JSON value per non-empty line).

    An NDJSON line that is not JSON becomes a row that validation rejects; a JSON body that is not a list fails.

    Raises:
        MalformedBodyError: A JSON body that is not valid JSON or not a list.
        TooLargeError: More than ``max_rows`` rows.
    """
    if content_type.split(";")[0].strip().lower() == NDJSON:
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) > max_rows:
            raise TooLargeError(f"at most {max_rows} interactions per request, got {len(lines)}")
        rows: list[Any] = []
        for line in lines:
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                rows.append(_Unparsed(f"not JSON: {exc}"))
        return rows
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise MalformedBodyError(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, list):
        raise MalformedBodyError("the body must be a JSON list of interactions (or NDJSON, one per line)")
    if len(body) > max_rows:
        raise TooLargeError(f"at most {max_rows} interactions per request, got {len(body)}")
    return body


class _Unparsed:
    """An NDJSON line that did not parse, carried to validation to be rejected with its reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _validation_reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())[:500]


def ingest_rows(
    driver: Driver, rows: list[Any], database: str = "neo4j", histories: HeldHistories | None = None
) -> BatchOut:
    """Validate and write the rows of one batch; answer a result per row.

    Args:
        driver: An open driver.
        rows: The parsed rows (:func:`parse_rows`).
        database: Target database.
        histories: The users' histories this process holds, to which the written rows are applied
            (:meth:`api.cache.HeldHistories.apply_rows`); None: none held.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    now = int(time.time())
    results: list[BatchRowResult] = []
    valid: dict[tuple[str, str], tuple[int, InteractionRow]] = {}
    for index, raw in enumerate(rows):
        if isinstance(raw, _Unparsed):
            results.append(BatchRowResult(index=index, status="rejected", reason=raw.reason))
            continue
        if not isinstance(raw, dict):
            results.append(BatchRowResult(index=index, status="rejected", reason="row: not a JSON object"))
            continue
        try:
            body = InteractionIn.model_validate(raw)
        except ValidationError as exc:
            results.append(BatchRowResult(index=index, status="rejected", reason=_validation_reason(exc)))
            continue
        results.append(BatchRowResult(index=index, status="rejected", user_id=body.user_id, item_id=body.item_id))
        row = InteractionRow(
            user_id=body.user_id,
            item_id=body.item_id,
            rating=body.rating,
            weight=body.weight if body.weight is not None else 1.0,
            timestamp=body.timestamp if body.timestamp is not None else now,
        )
        earlier = valid.pop((row.user_id, row.item_id), None)
        if earlier is not None:
            results[earlier[0]].reason = f"superseded by row {index} (same user and item; the last one is written)"
        valid[(row.user_id, row.item_id)] = (index, row)
    outcomes = write_interaction_groups(BatchWriter(driver, database), list(valid.values())) if valid else {}
    if histories is not None:
        histories.apply_rows((row, outcomes[index]) for index, row in valid.values() if index in outcomes)
    for index, _ in valid.values():
        result = results[index]
        outcome = outcomes.get(index)
        if outcome is None:
            result.reason = f"unknown item {result.item_id!r}"
        else:
            result.status = cast(RowStatus, outcome.status)
            result.created_user = outcome.created_user
    counts = {status: 0 for status in ("created", "updated", "unchanged", "rejected")}
    for result in results:
        counts[result.status] += 1
    return BatchOut(received=len(rows), results=results, **counts)


__all__ = [
    "NDJSON",
    "BatchOut",
    "BatchRowResult",
    "MalformedBodyError",
    "TooLargeError",
    "ingest_rows",
    "parse_rows",
]
