"""Pure transforms: raw records → validated schema rows, or rejects with a reason.

Nothing here reads files or talks to Neo4j. Each ``to_*`` function takes one :class:`RawRecord`
and a section spec and returns rows or raises :class:`RowError` with a reason in words.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime

from pydantic import ValidationError

from etl.extract import RawRecord
from etl.mapping import (
    FLAG_TRUE,
    AttributesSpec,
    FollowsSpec,
    GenresSpec,
    InteractionsSpec,
    ItemsSpec,
    PeopleSpec,
    TagsSpec,
    UsersSpec,
)
from schema.rows import (
    AttributeRow,
    FollowRow,
    InteractionRow,
    ItemGenreRow,
    ItemPersonRow,
    ItemRow,
    ItemTagRow,
    UserRow,
)

_YEAR_IN_TITLE = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_YEAR_IN_DATE = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d|2100)(?!\d)")
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


def parse_timestamp(text: str, fmt: str = "auto", what: str = "timestamp") -> int:
    """Epoch seconds from a timestamp cell.

    ``fmt``: ``auto`` (a number is epoch seconds, anything else ISO-8601), ``s``, ``ms``, ``iso`` or a strptime
    format. Times without a zone are UTC; a date alone is its midnight (UTC).

    >>> parse_timestamp("2011-03-05T14:02:11Z")
    1299333731
    >>> parse_timestamp("1299333731000", "ms")
    1299333731
    >>> parse_timestamp("05/03/2011", "%d/%m/%Y")
    1299283200
    """
    if fmt in ("auto", "s", "ms"):
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:
            if not math.isfinite(number):
                raise RowError(f"{what} {text!r} is not a finite number")
            if number != int(number):
                raise RowError(f"{what} {text!r} is not a whole number")
            value = int(number) // 1000 if fmt == "ms" else int(number)
            if value < 0:
                raise RowError(f"{what} {int(number)} is negative")
            return value
        if fmt != "auto":
            raise RowError(
                f"{what} {text!r} is not a number (timestamp_format {fmt}: epoch {'milli' if fmt == 'ms' else ''}seconds)"
            )
    try:
        if "%" in fmt:
            moment = datetime.strptime(text, fmt)  # noqa: DTZ007 - a zone-less time is UTC, set below
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        expected = f"the format {fmt!r}" if "%" in fmt else "a number (epoch seconds) or an ISO-8601 date/time"
        raise RowError(f"{what} {text!r} is not {expected}; set timestamp_format") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    value = int(moment.timestamp())
    if value < 0:
        raise RowError(f"{what} {text!r} is before 1970")
    return value


def parse_year(text: str, fmt: str | None = None) -> int:
    """A year from a whole number (``1995``), a date in ``fmt`` (strptime), or any date that holds one 4-digit year.

    >>> parse_year("01-Jan-1995")
    1995
    >>> parse_year("2003-10-07")
    2003
    """
    if fmt is not None:
        try:
            return datetime.strptime(text, fmt).year  # noqa: DTZ007 - only the year is kept
        except ValueError:
            raise RowError(f"year {text!r} does not match year_format {fmt!r}") from None
    try:
        return _integer(text, "year")
    except RowError:
        pass
    years = set(_YEAR_IN_DATE.findall(text))
    if len(years) != 1:
        raise RowError(f"year {text!r} is neither a year nor a date holding one (set year_format)")
    return int(years.pop())


def flag_set(text: str | None) -> bool:
    """Whether a flag cell is set (1, true, yes, y, t, x; case-insensitive)."""
    return text is not None and text.strip().lower() in FLAG_TRUE


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
        year = parse_year(year_text, spec.year_format)
    elif spec.year_from_title and title:
        year = year_from_title(title)
    return _validated(ItemRow, item_id=item_id, title=title, year=year, imdb_id=imdb_id)


def interaction_kind(record: RawRecord, spec: InteractionsSpec) -> str | None:
    """The row's interaction kind (None without kinds); raises :class:`SkipRow` for a value mapped to null."""
    if spec.kind is not None:
        return spec.kind
    if spec.kind_column is None:
        return None
    value = _cell(record, spec.kind_column, "interaction kind")
    if not spec.kind_values:
        return value
    if value not in spec.kind_values:
        known = ", ".join(map(repr, spec.kind_values))
        raise RowError(f"interaction kind {value!r} is not among kind_values ({known})")
    kind = spec.kind_values[value]
    if kind is None:
        raise SkipRow(f"kind {value!r}")
    return kind


class SkipRow(Exception):  # noqa: N818 - a signal, not an error
    """A valid row the mapping says to leave out (counted as skipped, not rejected)."""


def to_interaction(record: RawRecord, spec: InteractionsSpec) -> InteractionRow:
    """One interaction row; with kinds, the caller combines the pair's rows (:mod:`schema.kinds`)."""
    user_id = _cell(record, spec.user, "user id")
    item_id = _cell(record, spec.item, "item id")
    rating: float | None = None
    polarity = 1
    if spec.rating is not None:
        text = _optional_cell(record, spec.rating) if spec.rating_optional else _cell(record, spec.rating, "rating")
        rating = None if text is None else _number(text, "rating")
    if rating is not None:
        if spec.rating_range is not None:
            low, high = spec.rating_range
            if not low <= rating <= high:
                raise RowError(f"rating {rating:g} outside [{low:g}, {high:g}]")
        if spec.negative_below is not None and rating < spec.negative_below:
            polarity = -1
    weight = 1.0
    if spec.weight is not None:
        weight = _number(_cell(record, spec.weight, "weight"), "weight")
        if weight < 0:
            raise RowError(f"weight {weight:g} is negative")
    timestamp: int | None = None
    if spec.timestamp is not None:
        timestamp = parse_timestamp(_cell(record, spec.timestamp, "timestamp"), spec.time_format)
    return _validated(
        InteractionRow,
        user_id=user_id,
        item_id=item_id,
        rating=rating,
        weight=weight,
        timestamp=timestamp,
        polarity=polarity,
    )


def to_genres(record: RawRecord, spec: GenresSpec) -> list[ItemGenreRow]:
    item_id = _cell(record, spec.item, "item id")
    ignore = set(spec.ignore)
    if spec.flags is not None:
        values = [value for column, value in spec.flags.items() if flag_set(record.fields.get(column))]
    else:
        values = split_values(_cell(record, spec.genre or "", "genre"), spec.split)
    return [_validated(ItemGenreRow, item_id=item_id, genre=g) for g in values if g not in ignore]


def band(value: float, bounds: list[float]) -> str:
    """The band of a number: bounds [18, 25] give '<18', '18-25' (18 ≤ x < 25) and '25+'.

    >>> band(30, [18, 25, 35])
    '25-35'
    """
    if value < bounds[0]:
        return f"<{bounds[0]:g}"
    for low, high in zip(bounds, bounds[1:], strict=False):
        if value < high:
            return f"{low:g}-{high:g}"
    return f"{bounds[-1]:g}+"


def to_attributes(
    record: RawRecord, spec: AttributesSpec, ancestors: dict[str, tuple[str, ...]] | None = None
) -> list[AttributeRow]:
    """Attribute rows of one item or user (``owner_id`` is the item's or the user's id); with ``ancestors`` (value →
    its parent, grandparent, ...: the spec's parent table, :func:`tree_ancestors`) each value brings its ancestors."""
    owner = _cell(record, spec.item or spec.user or "", "item id" if spec.item else "user id")
    if spec.flags is not None:
        values = [value for column, value in spec.flags.items() if flag_set(record.fields.get(column))]
    else:
        cell = _optional_cell(record, spec.value)
        if cell is None:
            return []  # no value: nothing to say about this owner
        values = split_values(cell, spec.split)
        if spec.path:
            values = [f" {spec.split} ".join(values[: n + 1]) for n in range(len(values))]
        if spec.bands is not None:
            values = [band(_number(v, spec.kind), spec.bands) for v in values]
    if ancestors is not None:
        values = list(dict.fromkeys(a for v in values for a in (v, *ancestors.get(v, ()))))
    ignore = set(spec.ignore)
    return [_validated(AttributeRow, owner_id=owner, kind=spec.kind, value=v) for v in values if v not in ignore]


def tree_ancestors(parents: dict[str, str | None]) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Each value's ancestors (parent first) from a child → parent table, and the values refused with a reason.

    A value whose parent is not in the table, and every value on a cycle of parents, is refused: its parent link is
    not used (the value is a root). A value under a refused one keeps its ancestors up to it.

    Returns:
        (value → ancestors, refused value → reason in words).
    """
    refused: dict[str, str] = {}
    for child, parent in parents.items():
        if parent is not None and parent not in parents:
            refused[child] = f"parent {parent!r} of {child!r} is not in the tree"
    state: dict[str, int] = {}  # 1: on the current walk, 2: done
    for start in parents:
        walk: list[str] = []
        node: str | None = start
        while node is not None and node not in refused and state.get(node) != 2:
            if state.get(node) == 1:
                cycle = walk[walk.index(node) :]
                for member in cycle:
                    refused[member] = f"{member!r} is on a cycle of parents: {' → '.join([*cycle, node])}"
                break
            state[node] = 1
            walk.append(node)
            node = parents[node]
        for member in walk:
            state[member] = 2
    out: dict[str, tuple[str, ...]] = {}
    for start in parents:
        chain: list[str] = []
        node = start
        while node not in refused and parents[node] is not None:
            node = parents[node]  # type: ignore[assignment]
            chain.append(node)
        out[start] = tuple(chain)
    return out, refused


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
