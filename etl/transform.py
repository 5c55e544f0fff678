"""Pure transforms: raw records → validated schema rows, or rejects with a reason.

Nothing here reads files or talks to Neo4j. Each ``to_*`` function takes one :class:`RawRecord`
and a section spec and returns rows or raises :class:`RowError` with a reason in words.
"""

from __future__ import annotations

import math
import re
import unicodedata

from pydantic import ValidationError

from etl.extract import RawRecord
from etl.mapping import FollowsSpec, GenresSpec, InteractionsSpec, ItemsSpec, PeopleSpec, TagsSpec, UsersSpec
from schema.rows import FollowRow, InteractionRow, ItemGenreRow, ItemPersonRow, ItemRow, ItemTagRow, UserRow

_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r"\s+")


class RowError(ValueError):
    """A record cannot become a row; the message is the reject reason."""


def _cell(record: RawRecord, column: str, what: str) -> str:
    value = record.fields.get(column)
    if value is None:
        raise RowError(f"missing column {column!r}")
    value = value.strip()
    if not value:
        raise RowError(f"missing {what} (column {column!r} is empty)")
    return value


def _optional_cell(record: RawRecord, column: str | None) -> str | None:
    if column is None:
        return None
    value = record.fields.get(column, "").strip()
    return value or None


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RowError(f"{what} {text!r} is not a finite number")
    return value


def _integer(text: str, what: str) -> int:
    value = _number(text, what)
    if value != int(value):
        raise RowError(f"{what} {text!r} is not a whole number")
    return int(value)


def _validated(model: type, **values: object):  # noqa: ANN202 - returns an instance of `model`
    try:
        return model(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RowError(f"{where}: {first['msg']}") from None


def split_values(text: str, separator: str | None) -> list[str]:
    """Split a multi-valued cell and drop empty parts; the whole cell when there is no separator."""
    parts = text.split(separator) if separator else [text]
    return [p.strip() for p in parts if p.strip()]


def slugify_name(name: str) -> str:
    """A stable person id from a name, so that sources naming the same person merge.

    Accents are folded ("Dörrie" → "dorrie"); anything but letters and digits becomes "_".
    Names with no Latin letters keep their own lower-cased characters.

    >>> slugify_name("Tom Hanks")
    'tom_hanks'
    >>> slugify_name("  Doris Dörrie ")
    'doris_dorrie'
    """
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    slug = _NON_ALNUM.sub("_", folded).strip("_")
    if slug:
        return slug
    return _SPACES.sub("_", name.strip().lower())


def normalize_tag(text: str) -> str:
    """Tags compare case- and whitespace-insensitively: 'Highly  quotable' == 'highly quotable'."""
    return _SPACES.sub(" ", text.strip().lower())


def year_from_title(title: str) -> int | None:
    """The year of a MovieLens-style title such as 'Toy Story (1995)', else None."""
    match = _YEAR_IN_TITLE.search(title)
    return int(match.group(1)) if match else None


def to_user(record: RawRecord, spec: UsersSpec) -> UserRow:
    return _validated(UserRow, user_id=_cell(record, spec.id, "user id"))


def to_item(record: RawRecord, spec: ItemsSpec, imdb_lookup: dict[str, str] | None = None) -> ItemRow:
    item_id = _cell(record, spec.id, "item id")
    imdb_id: str | None = None
    if imdb_lookup is not None:
        imdb_id = imdb_lookup.get(item_id)
    elif isinstance(spec.imdb_id, str):
        imdb_id = _optional_cell(record, spec.imdb_id)
    if imdb_id is not None:
        imdb_id = imdb_id.removeprefix("tt")
    title = _optional_cell(record, spec.title)
    year: int | None = None
    year_text = _optional_cell(record, spec.year)
    if year_text is not None:
        year = _integer(year_text, "year")
    elif spec.year_from_title and title:
        year = year_from_title(title)
    return _validated(ItemRow, item_id=item_id, title=title, year=year, imdb_id=imdb_id)


def to_interaction(record: RawRecord, spec: InteractionsSpec) -> InteractionRow:
    user_id = _cell(record, spec.user, "user id")
    item_id = _cell(record, spec.item, "item id")
    rating: float | None = None
    if spec.rating is not None:
        rating = _number(_cell(record, spec.rating, "rating"), "rating")
        if spec.rating_range is not None:
            low, high = spec.rating_range
            if not low <= rating <= high:
                raise RowError(f"rating {rating:g} outside [{low:g}, {high:g}]")
    weight = 1.0
    if spec.weight is not None:
        weight = _number(_cell(record, spec.weight, "weight"), "weight")
        if weight < 0:
            raise RowError(f"weight {weight:g} is negative")
    timestamp: int | None = None
    if spec.timestamp is not None:
        timestamp = _integer(_cell(record, spec.timestamp, "timestamp"), "timestamp")
        if timestamp < 0:
            raise RowError(f"timestamp {timestamp} is negative")
        if spec.timestamp_unit == "ms":
            timestamp //= 1000
    return _validated(
        InteractionRow, user_id=user_id, item_id=item_id, rating=rating, weight=weight, timestamp=timestamp
    )


def to_genres(record: RawRecord, spec: GenresSpec) -> list[ItemGenreRow]:
    item_id = _cell(record, spec.item, "item id")
    ignore = set(spec.ignore)
    genres = [g for g in split_values(_cell(record, spec.genre, "genre"), spec.split) if g not in ignore]
    return [_validated(ItemGenreRow, item_id=item_id, genre=g) for g in genres]


def to_people(record: RawRecord, spec: PeopleSpec) -> list[ItemPersonRow]:
    item_id = _cell(record, spec.item, "item id")
    names = split_values(_cell(record, spec.name, "person name"), spec.split)
    explicit_id = _optional_cell(record, spec.id)
    if explicit_id is not None and len(names) > 1:
        raise RowError("an id column cannot be combined with several names in one cell")
    return [
        _validated(
            ItemPersonRow, item_id=item_id, person_id=explicit_id or slugify_name(name), name=name, role=spec.role
        )
        for name in names
    ]


def to_tags(record: RawRecord, spec: TagsSpec, lookup: dict[str, str] | None = None) -> list[ItemTagRow]:
    item_id = _cell(record, spec.item, "item id")
    raw = _cell(record, spec.tag, "tag")
    if lookup is not None:
        if raw not in lookup:
            raise RowError(f"tag code {raw!r} is not in the lookup file")
        raw = lookup[raw]
    weight = 1.0
    if spec.weight is not None:
        weight = _number(_cell(record, spec.weight, "tag weight"), "tag weight")
        if weight <= 0:
            raise RowError(f"tag weight {weight:g} is not positive")
    tags = [normalize_tag(t) for t in split_values(raw, spec.split)]
    return [_validated(ItemTagRow, item_id=item_id, tag=t, weight=weight) for t in tags if t]


def to_follows(record: RawRecord, spec: FollowsSpec) -> list[FollowRow]:
    follower = _cell(record, spec.follower, "follower id")
    followee = _cell(record, spec.followee, "followee id")
    if follower == followee:
        raise RowError(f"user {follower!r} follows themself")
    rows = [_validated(FollowRow, follower_id=follower, followee_id=followee)]
    if spec.mutual:
        rows.append(_validated(FollowRow, follower_id=followee, followee_id=follower))
    return rows
