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
    """(:User)-[:INTERACTED {rating?, weight, timestamp?}]->(:Item)."""

    user_id: str = _ID
    item_id: str = _ID
    rating: float | None = None
    weight: float = Field(default=1.0, ge=0.0)
    timestamp: int | None = Field(default=None, ge=0, description="Unix epoch seconds.")

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
