"""Validated rows: what ETL hands to the graph writers.

Each model is one fact of the canonical graph. Transforms build them from raw source rows; a row
that fails validation becomes a reject with the reason pydantic gives, never a silent drop.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schema.model import Role

_ID = Field(min_length=1, max_length=256)


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class UserRow(_Row):
    """A user (:User {userId})."""

    user_id: str = _ID


class ItemRow(_Row):
    """An item (:Item {itemId, title, year?}) with an optional domain label such as Movie."""

    item_id: str = _ID
    title: str | None = Field(default=None, max_length=1000)
    year: int | None = Field(default=None, ge=1800, le=2100)
    imdb_id: str | None = Field(default=None, pattern=r"^\d{1,10}$", description="IMDb number, leading zeros kept.")


class InteractionRow(_Row):
    """(:User)-[:INTERACTED {rating?, weight, timestamp?, polarity?, kinds?, kindCounts?}]->(:Item).

    One row per (user, item) pair. ``polarity`` is -1 for a negative interaction (a return, a dislike, a low rating)
    and 1 otherwise; ``kinds`` and ``kind_counts`` list the interaction kinds combined into the pair (sorted, see
    :mod:`schema.kinds`) and how often each occurred; both are None for data without kinds.
    """

    user_id: str = _ID
    item_id: str = _ID
    rating: float | None = None
    weight: float = Field(default=1.0, ge=0.0)
    timestamp: int | None = Field(default=None, ge=0, description="Unix epoch seconds.")
    polarity: int = Field(default=1, description="1 positive, -1 negative.")
    kinds: tuple[str, ...] | None = None
    kind_counts: tuple[int, ...] | None = None

    @field_validator("polarity")
    @classmethod
    def _sign(cls, value: int) -> int:
        if value not in (1, -1):
            raise ValueError("polarity must be 1 or -1")
        return value

    @field_validator("rating", "weight")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ItemGenreRow(_Row):
    """(:Item)-[:IN_GENRE]->(:Genre {name})."""

    item_id: str = _ID
    genre: str = Field(min_length=1, max_length=200)


class ItemPersonRow(_Row):
    """(:Person {personId, name})-[:ACTED_IN|DIRECTED]->(:Item)."""

    item_id: str = _ID
    person_id: str = _ID
    name: str = Field(min_length=1, max_length=500)
    role: Role


class ItemTagRow(_Row):
    """(:Item)-[:HAS_TAG {weight}]->(:Tag {name}); weights of repeated pairs are summed before writing."""

    item_id: str = _ID
    tag: str = Field(min_length=1, max_length=500)
    weight: float = Field(default=1.0, gt=0.0)


class FollowRow(_Row):
    """(:User)-[:FOLLOWS]->(:User): one direction; a friendship is two rows."""

    follower_id: str = _ID
    followee_id: str = _ID


class AttributeRow(_Row):
    """(:Item|User)-[:HAS_ATTRIBUTE]->(:Attribute {attributeId: "kind:value", kind, value}): a brand, a category, a
    price band of an item; an age band, a country, an occupation of a user. ``owner_id`` is the item's or the user's
    id, as the row's list in the dataset says (item attributes or user attributes)."""

    owner_id: str = _ID
    kind: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    value: str = Field(min_length=1, max_length=500)
