"""Request and response bodies of the item routes (``POST /items``, ``PATCH /items/{item_id}``)."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.schemas import CREATED_ID_PATTERN, MAX_NAME_LENGTH, MAX_TIMESTAMP, _whole_number
from schema.model import RESERVED_ITEM_LABELS, Role, check_item_label

#: Most genres, people, tags and attributes one item body may list.
MAX_ITEM_TRAITS = 200
#: The earliest bound of an availability window: 0001-01-01T00:00:00Z (the earliest ISO-8601 date) in epoch seconds.
MIN_MOMENT = -62_135_596_800
#: An RFC 3339 date-time (what the schema's ``format: date-time`` promises): date, time with seconds, zone.
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _moment(value: object) -> object:
    """Epoch seconds from a whole number (``1700000000`` or ``1700000000.0``) or an RFC 3339 date-time
    (``2026-01-31T18:00:00Z``, ``2026-01-31T19:00:00+01:00``); anything else is refused."""
    if isinstance(value, bool):
        raise PydanticCustomError("moment_type", "must be epoch seconds (an integer) or an ISO-8601 date/time")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise PydanticCustomError("moment_type", "epoch seconds must be a whole number")
        return int(value)
    if isinstance(value, str):
        try:
            if not _DATE_TIME.match(value):
                raise ValueError(value)
            moment = datetime.fromisoformat(value.upper().replace(" ", "T").replace("Z", "+00:00"))
        except ValueError:
            raise PydanticCustomError(
                "moment_parsing", "not an RFC 3339 date-time (e.g. 2026-01-31T18:00:00Z) nor epoch seconds"
            ) from None
        # RFC 3339 reaches a little past the ends of the integer range (year 1 at +23:59): those are its ends
        return min(max(math.floor(moment.timestamp()), MIN_MOMENT), MAX_TIMESTAMP)
    return value


#: A moment of an availability window: epoch seconds or an ISO-8601 date/time, stored as epoch seconds.
Moment = Annotated[
    int,
    BeforeValidator(_moment),
    Field(strict=True, ge=MIN_MOMENT, le=MAX_TIMESTAMP),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": MIN_MOMENT, "maximum": MAX_TIMESTAMP},
                {"type": "string", "format": "date-time"},
            ],
            "description": "Epoch seconds, or an RFC 3339 date-time such as 2026-01-31T18:00:00Z.",
        }
    ),
]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]


class PersonIn(BaseModel):
    """Someone who made the item: linked as ``(:Person)-[:ACTED_IN|DIRECTED]->(:Item)``, created on first sight (an
    existing person keeps the name it has)."""

    model_config = ConfigDict(extra="forbid")

    person_id: _Name
    name: str = Field(min_length=1, max_length=500)
    role: Role = Field(description="actor or director.")


class TagIn(BaseModel):
    """A tag of the item (``HAS_TAG {weight}``), created on first sight; weights of a repeated tag are summed."""

    model_config = ConfigDict(extra="forbid")

    tag: str = Field(min_length=1, max_length=500)
    weight: float = Field(1.0, gt=0.0, le=1_000_000.0, allow_inf_nan=False, strict=True)


class AttributeIn(BaseModel):
    """An attribute of the item (brand, category, price band, ...): the shared node ``kind:value``."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    value: str = Field(min_length=1, max_length=500)


class ItemIn(BaseModel):
    """A new item of the catalogue. Its genres must exist (an unknown one is a 422 naming it, type
    ``unknown_genre``, and nothing is written); people, tags and attributes are created on first sight. Posting the
    same body again is a 200 that changes nothing; another body for an existing item id is a 409."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "item_id": "new-film-1",
                "title": "Night Run (2026)",
                "year": 2026,
                "genres": ["Crime", "Thriller"],
                "people": [{"person_id": "michael_mann", "name": "Michael Mann", "role": "director"}],
                "tags": [{"tag": "heist", "weight": 1.0}],
                "attributes": [{"kind": "studio", "value": "Forward Pass"}],
                "available_from": "2026-01-31T00:00:00Z",
            }
        },
    )

    item_id: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        pattern=CREATED_ID_PATTERN,
        description="1 to 256 characters, no '/', no control characters, not '.' or '..' (read back as a URL path "
        "segment).",
    )
    title: str = Field(min_length=1, max_length=1000)
    label: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Z][A-Za-z0-9]{0,63}$",
        description="Domain label besides Item (PascalCase, e.g. Movie, Product; not one of the model's own labels "
        "such as User or Genre); default: the label most items of the catalogue carry.",
        json_schema_extra={"not": {"enum": sorted(RESERVED_ITEM_LABELS)}},
    )
    year: Annotated[int | None, BeforeValidator(_whole_number)] = Field(None, ge=1800, le=2100, strict=True)
    genres: list[_Name] = Field(default_factory=list, max_length=MAX_ITEM_TRAITS)
    people: list[PersonIn] = Field(default_factory=list, max_length=MAX_ITEM_TRAITS)
    tags: list[TagIn] = Field(default_factory=list, max_length=MAX_ITEM_TRAITS)
    attributes: list[AttributeIn] = Field(default_factory=list, max_length=MAX_ITEM_TRAITS)
    hidden: bool = Field(False, strict=True, description="Added hidden: never recommended until a PATCH shows it.")
    available_from: Moment | None = Field(None, description="Not recommended before this moment (default: now).")
    available_until: Moment | None = Field(
        None, description="Not recommended from this moment on (default: no end); after available_from."
    )

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        return None if value is None else check_item_label(value)

    @model_validator(mode="after")
    def _window(self) -> ItemIn:
        reason = window_error(self.available_from, self.available_until)
        if reason is not None:
            raise PydanticCustomError(EMPTY_WINDOW, reason)
        return self


class ItemPatch(BaseModel):
    """Changes to an item: only the fields present change. ``null`` for a bound removes it; an empty body changes
    nothing. The resulting window must not be empty (available_from before available_until), else 422."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"hidden": True, "available_until": 1767225600}}
    )

    title: str | None = Field(None, min_length=1, max_length=1000, description="A new title (null: no change).")
    hidden: bool | None = Field(
        None, strict=True, description="true: never recommended; false: recommendable again (null: no change)."
    )
    available_from: Moment | None = Field(None, description="Not recommended before this moment; null: no start.")
    available_until: Moment | None = Field(None, description="Not recommended from this moment on; null: no end.")


class ItemOut(BaseModel):
    """An item of the catalogue with its visibility and availability window."""

    item_id: str
    title: str | None = None
    hidden: bool
    available_from: int | None = Field(None, description="Epoch seconds; null: no start.")
    available_until: int | None = Field(None, description="Epoch seconds; null: no end.")
    available: bool = Field(description="Whether the item may be recommended now (not hidden, inside its window).")


#: The error type of an empty availability window (422).
EMPTY_WINDOW = "empty_availability_window"


def window_error(start: int | None, end: int | None) -> str | None:
    """Why the window ``[start, end)`` is empty, or None when it is not."""
    if start is not None and end is not None and start >= end:
        return f"the availability window is empty: available_from {start} is not before available_until {end}"
    return None


__all__ = [
    "EMPTY_WINDOW",
    "AttributeIn",
    "ItemIn",
    "ItemOut",
    "ItemPatch",
    "Moment",
    "PersonIn",
    "TagIn",
    "window_error",
]
