"""Reads of one user or one item (or a few items): whether they exist, a user's history and onboarding genres, titles.

Each is one catalogued query (``graph/queries/<name>.cypher``); they raise only kgrec's errors
(:mod:`graph.errors`). The API reads the user's fingerprint (its answer cache key) and context before ranking.
"""

from __future__ import annotations

import bisect
import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from neo4j import Driver

from graph import catalog
from graph.errors import database_errors
from graph.query import run_read
from schema.rows import InteractionRow


class Interaction(NamedTuple):
    """One of the user's interactions (a tuple: thousands of them are read per request for heavy users)."""

    item_id: str
    rating: float | None
    weight: float | None
    timestamp: int | None
    polarity: int = 1  # -1: a negative interaction (a return, a dislike): never a positive, still seen

    def positive(self, min_rating: float) -> bool:
        """Whether this interaction is a positive: not negative, and rated at least ``min_rating`` or unrated."""
        return self.polarity > 0 and (self.rating is None or self.rating >= min_rating)


_INTERACTION = functools.partial(tuple.__new__, Interaction)


def float_column(values: Sequence[float | int | None]) -> np.ndarray:
    """``[n]`` float64 of ``values``, NaN for None (one conversion in C, no Python call per value)."""
    return np.array(values, dtype=np.float64).reshape(-1)


class InteractionColumns:
    """A user's interactions as one array per field (most recent first, those without timestamp last, then by item
    id): what the model path reads of a history, so that a heavy user's thousands of interactions cost array
    operations, not a Python call each. :meth:`rows` gives them as :class:`Interaction` tuples, built on first use.

    Attributes:
        item_ids: ``[n]`` object array of item ids.
        ratings: ``[n]`` float64, NaN where there is no rating.
        weights: ``[n]`` float64, NaN where there is no weight.
        timestamps: ``[n]`` float64 epoch seconds, NaN where there is none (a float: null needs no sentinel, and
            seconds stay exact).
        polarities: ``[n]`` int64, 1 or -1 (:attr:`Interaction.polarity`).
    """

    __slots__ = ("_fields", "_order", "_rows", "_seen", "item_ids", "polarities", "ratings", "timestamps", "weights")

    def __init__(
        self,
        item_ids: Sequence[str],
        ratings: Sequence[float | None],
        weights: Sequence[float | None],
        timestamps: Sequence[int | None],
        polarities: Sequence[int],
    ) -> None:
        """The columns of parallel sequences, as read (None where a field is null)."""
        self._fields = (item_ids, ratings, weights, timestamps, polarities)
        self._order: np.ndarray | None = None  # the positions in _fields of the arrays' rows (None: the same)
        self._rows: tuple[Interaction, ...] | None = None
        self._seen: frozenset[str] | None = None
        self.item_ids = np.array(item_ids, dtype=object).reshape(-1)
        self.ratings = float_column(ratings)
        self.weights = float_column(weights)
        self.timestamps = float_column(timestamps)
        self.polarities = np.array(polarities, dtype=np.int64).reshape(-1)

    @classmethod
    def recent_first(cls, *fields: Sequence[Any]) -> InteractionColumns:
        """The columns of parallel sequences (the constructor's five, in its order) read in any order, put in the
        columns' order (most recent first, those without timestamp last, then by item id; interactions equal in both
        keep the order read).

        user_context.cypher leaves the order to this: Neo4j's ORDER BY over a heavy user's interactions cost it more
        than the rest of the read (6,779 interactions: about 40-58 ms of its CPU with the sort, 17 ms without),
        and here it is one sort of the timestamps plus a sort by item id of each run of equal times only; the arrays
        are put in that order, the values as read only when :meth:`rows` or :meth:`row` asks for them."""
        columns = cls(*fields)
        if len(columns) > 1:
            order = _recent_first(columns.item_ids, columns.timestamps)
            columns._order = order
            for name in ("item_ids", "ratings", "weights", "timestamps", "polarities"):
                setattr(columns, name, getattr(columns, name)[order])
        return columns

    @classmethod
    def of(cls, interactions: Sequence[Interaction]) -> InteractionColumns:
        """The columns of ``interactions``."""
        columns = cls(*zip(*interactions, strict=True)) if interactions else cls((), (), (), (), ())
        columns._rows = tuple(interactions)
        return columns

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self) -> tuple[Interaction, ...]:
        """Every interaction as a tuple (built once, without a Python call per row)."""
        if self._rows is None:
            fields = self._fields
            if self._order is not None:
                permute = operator.itemgetter(*self._order.tolist())  # two positions at least: tuples of the values
                fields = tuple(permute(field) for field in fields)
            self._rows = tuple(map(_INTERACTION, zip(*fields, strict=True)))
        return self._rows

    @property
    def seen(self) -> frozenset[str]:
        """Every item interacted with (positive, negative or below any rating), built once: the read, exposure and
        ranking each exclude them."""
        if self._seen is None:
            self._seen = frozenset(self._fields[0])
        return self._seen

    def row(self, position: int) -> Interaction:
        """The interaction at ``position`` (without building the others)."""
        at = position if self._order is None else int(self._order[position])
        return _INTERACTION(field[at] for field in self._fields)

    def positive(self, min_rating: float) -> np.ndarray:
        """``[n]`` bool: :meth:`Interaction.positive` of each interaction."""
        return (self.polarities > 0) & (np.isnan(self.ratings) | (self.ratings >= min_rating))

    def written(self, interactions: Sequence[Interaction]) -> InteractionColumns:
        """These columns once ``interactions`` are written over them: each replaces the interaction with its item or
        is added (the last of one item wins), in the columns' order, as :meth:`recent_first` puts a read of them.

        A post adds or replaces one interaction of a history that may hold thousands, so the arrays are not built
        again from the values (about 10 ms of the API's CPU for 6,779 interactions under load, more than reading
        them): a replaced interaction's row is deleted, each written one is inserted at the place a binary search of
        the times (then of the item ids among equal times) finds, and the values as read are kept with the new ones
        appended, :attr:`_order` pointing into them (a replaced value stays there unreferenced; its item id is
        written again, so :attr:`seen` holds)."""
        latest = {interaction.item_id: interaction for interaction in interactions}
        if not latest:
            return self
        arrays = [self.item_ids, self.ratings, self.weights, self.timestamps, self.polarities]
        order = self._order if self._order is not None else np.arange(len(self))
        replaced = [item for item in latest if item in self.seen]
        if replaced:
            keep = functools.reduce(operator.and_, (self.item_ids != item for item in replaced))
            arrays, order = [array[keep] for array in arrays], order[keep]
        fields = [list(field) for field in self._fields]
        for interaction in latest.values():
            key = np.inf if interaction.timestamp is None else -float(interaction.timestamp)
            times = np.where(np.isnan(arrays[3]), np.inf, -arrays[3])  # ascending: the columns' order
            low, high = np.searchsorted(times, key, "left"), np.searchsorted(times, key, "right")
            at = int(low) + bisect.bisect_left(arrays[0][low:high].tolist(), interaction.item_id)
            values = (
                interaction.item_id,
                *(np.nan if v is None else v for v in interaction[1:4]),
                interaction.polarity,
            )
            arrays = [np.insert(array, at, value) for array, value in zip(arrays, values, strict=True)]
            order = np.insert(order, at, len(fields[0]))
            for column, value in zip(fields, interaction, strict=True):
                column.append(value)
        columns = InteractionColumns.__new__(InteractionColumns)
        columns._fields = tuple(fields)
        columns._order = order if len(order) > 1 else None  # rows() permutes two positions at least
        columns._rows = None
        columns._seen = None
        columns.item_ids, columns.ratings, columns.weights, columns.timestamps, columns.polarities = arrays
        if columns._order is None and len(order) == 1:
            columns._fields = tuple([column[int(order[0])]] for column in fields)
        return columns


def _recent_first(item_ids: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """The positions of :meth:`InteractionColumns.recent_first`'s order."""
    key = np.where(np.isnan(timestamps), np.inf, -timestamps)  # most recent first, without timestamp last
    order = np.argsort(key)  # not a stable sort (five times faster): the ties are ordered below
    ordered = key[order]
    # the runs of equal times (flags of a position equal to the next), each sorted by item id, then as read
    edges = np.flatnonzero(np.diff(np.r_[0, (ordered[1:] == ordered[:-1]).view(np.int8), 0]))
    for start, stop in zip(edges[0::2].tolist(), (edges[1::2] + 1).tolist(), strict=True):
        order[start:stop] = sorted(order[start:stop].tolist(), key=lambda position: (item_ids[position], position))
    return order


class HeldHistory(NamedTuple):
    """A user's interactions as :func:`user_context` read them, with the version they were read at: what a caller
    may hold between requests and give back to :func:`user_context`, which reads them again only when that version
    has changed.

    Attributes:
        columns: The interactions (:attr:`UserContext.columns`).
        interactions: The user's INTERACTED degree when they were read.
        rev: The user's ``interactionsRev`` when they were read.
    """

    columns: InteractionColumns
    interactions: int
    rev: int

    def written(self, interactions: Sequence[Interaction], version: tuple[int, int]) -> HeldHistory:
        """This history once a write of ``interactions`` (:meth:`InteractionColumns.written`) has left the user at
        ``version`` (INTERACTED degree, ``interactionsRev``): what a read would give after that write, provided the
        write was the only change since this history was read (the caller checks that the version before the write
        was this one's)."""
        return HeldHistory(self.columns.written(interactions), *version)


def written_interaction(row: InteractionRow) -> Interaction:
    """The interaction a read gives back for a written ``row`` (:func:`user_context`: its rating, weight and
    timestamp as written, polarity 1 or -1)."""
    return Interaction(row.item_id, row.rating, row.weight, row.timestamp, -1 if row.polarity < 0 else 1)


@dataclass(frozen=True, slots=True)
class UserContext:
    """What the API reads about a user before ranking.

    Attributes:
        user_id: External user id.
        columns: Every interaction, most recent first (those without timestamp last), then by item id, as columns
            (:attr:`interactions` as tuples).
        preferred_genres: Genre names the user chose at onboarding (PREFERS), sorted.
        rev: The user's ``interactionsRev`` (0 when never bumped).
        attributes: The user's attribute ids (``"<kind>:<value>"``: age band, country, ...), sorted.
        shown: Exposure of the items recorded lists showed the user and that they have not interacted with:
            ``{item_id: (times shown, the user's list number when last shown)}``.
        lists_shown: How many lists were recorded for the user (``listsShown``).
        follows: How many users the user follows (their FOLLOWS degree).
        history: The interactions with the version they were read at (what a caller may hold: :class:`HeldHistory`).
    """

    user_id: str
    columns: InteractionColumns
    preferred_genres: tuple[str, ...]
    rev: int = 0
    attributes: tuple[str, ...] = ()
    shown: dict[str, tuple[int, int]] = field(default_factory=dict)
    lists_shown: int = 0
    follows: int = 0
    history: HeldHistory | None = None

    @property
    def interactions(self) -> tuple[Interaction, ...]:
        """Every interaction as a tuple, in :attr:`columns`' order."""
        return self.columns.rows()

    @property
    def fingerprint(self) -> tuple[int, int, int, int]:
        """The same ``(interactions, rev, preferred genres, lists shown)`` as :func:`user_fingerprint`, from this
        read."""
        return len(self.columns), self.rev, len(self.preferred_genres), self.lists_shown


def user_context(
    driver: Driver, user_id: str, database: str = "neo4j", held: HeldHistory | None = None
) -> UserContext | None:
    """Read a user's interactions, preferred genres, attributes and interaction fingerprint in one round trip.

    The interactions come as parallel lists, one per field (a heavy user's thousands decode as five lists, not a list
    each), and are kept as :class:`InteractionColumns`. With ``held`` (the user's :attr:`UserContext.history` from an
    earlier read) they are not read or decoded again while the user's INTERACTED degree and ``interactionsRev`` are
    still those ``held`` was read at: every kgrec write that adds or changes an interaction (a post, a feedback, a
    dislike) changes one of them, as it changes :func:`user_fingerprint`. Everything else (preferred genres,
    attributes, exposure, follows) is read every time.

    Args:
        driver: An open driver.
        user_id: External user id.
        database: Neo4j database.
        held: The user's interactions as read before, or None.

    Returns:
        The user's context, or None when no user has this id.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the query.
    """
    # a pair in both cases (no degree is -1): a null would be a parameter type of its own, and a plan (graph.query)
    version = [-1, -1] if held is None else [held.interactions, held.rev]
    records, _ = run_read("user_context", catalog.USER_CONTEXT, {"userId": user_id, "held": version}, driver, database)
    if not records:
        return None
    record = records[0]
    interactions, rev = int(record["interactions"]), int(record["rev"])
    if held is not None and [interactions, rev] == version:
        history = held
    else:
        columns = InteractionColumns.recent_first(
            record["item_ids"], record["ratings"], record["weights"], record["timestamps"], record["polarities"]
        )
        history = HeldHistory(columns, interactions, rev)
    seen = history.columns.seen
    return UserContext(
        user_id=user_id,
        columns=history.columns,
        preferred_genres=tuple(record["preferred_genres"]),
        rev=rev,
        attributes=tuple(record["attributes"]),
        shown={
            item: (int(count or 0), int(last or 0))
            for item, count, last in zip(
                record["shown_items"], record["shown_counts"], record["shown_lists"], strict=False
            )
            if item not in seen
        },
        lists_shown=int(record["lists_shown"]),
        follows=int(record["follows"]),
        history=history,
    )


def user_fingerprint(driver: Driver, user_id: str, database: str = "neo4j") -> tuple[int, int, int, int] | None:
    """A cheap fingerprint of the user's interactions: their INTERACTED degree, ``interactionsRev``, PREFERS degree
    and ``listsShown`` (lists recorded for them, which exposure fatigue and rotation read).

    Every kgrec write that creates or changes an interaction bumps ``interactionsRev``
    (``upsert_interactions.cypher``) and any writer that adds or removes one changes the degree, so the
    fingerprint changes whenever the history does, at the cost of one index seek: the API keys its
    answer cache on it.

    Returns:
        ``(interactions, rev, preferred genres, lists shown)``, or None when no user has this id.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    records, _ = run_read("user_fingerprint", catalog.USER_FINGERPRINT, {"userId": user_id}, driver, database)
    if not records:
        return None
    r = records[0]
    return int(r["n"]), int(r["rev"]), int(r["preferred"]), int(r["lists"])


def user_exists(driver: Driver, user_id: str, database: str = "neo4j") -> bool:
    """Whether a user with this id is in the graph.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    return bool(run_read("user_exists", catalog.USER_EXISTS, {"userId": user_id}, driver, database)[0][0]["exists"])


def item_exists(driver: Driver, item_id: str, database: str = "neo4j") -> bool:
    """Whether an item with this id is in the graph.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    return bool(run_read("item_exists", catalog.ITEM_EXISTS, {"itemId": item_id}, driver, database)[0][0]["exists"])


def most_active_users(driver: Driver, limit: int, database: str = "neo4j") -> list[str]:
    """The ``limit`` users with the most interactions, most first (ties by user id).

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    records, _ = run_read("most_active_users", catalog.MOST_ACTIVE_USERS, {"limit": int(limit)}, driver, database)
    return [record["user_id"] for record in records]


def read_user_preferred_genres(driver: Driver, user_id: str, database: str = "neo4j") -> list[str]:
    """Genres the user chose at onboarding.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable or refused the query.
    """
    with database_errors("user_preferred_genres"):
        records, _, _ = driver.execute_query(
            catalog.USER_PREFERRED_GENRES, {"userId": user_id}, database_=database, routing_="r"
        )
    return [r["genre"] for r in records]


def read_item_titles(driver: Driver, item_ids: Sequence[str], database: str = "neo4j") -> dict[str, str | None]:
    """Titles of the items that exist among ``item_ids``.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable or refused the query.
    """
    with database_errors("item_titles"):
        records, _, _ = driver.execute_query(
            catalog.ITEM_TITLES, {"itemIds": list(item_ids)}, database_=database, routing_="r"
        )
    return {r["item_id"]: r["title"] for r in records}


def read_existing_genres(driver: Driver, names: Sequence[str], database: str = "neo4j") -> set[str]:
    """The names among ``names`` that are genres in the graph.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable or refused the query.
    """
    with database_errors("genre_names"):
        records, _, _ = driver.execute_query(
            catalog.GENRE_NAMES, {"names": list(names)}, database_=database, routing_="r"
        )
    return {r["name"] for r in records}


def read_genre_names(driver: Driver, database: str = "neo4j") -> frozenset[str]:
    """Every genre's name in the graph.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable or refused the query.
    """
    with database_errors("all_genres"):
        records, _, _ = driver.execute_query(catalog.ALL_GENRES, database_=database, routing_="r")
    return frozenset(r["name"] for r in records)


def read_existing_attributes(driver: Driver, ids: Sequence[str], database: str = "neo4j") -> set[str]:
    """The ids among ``ids`` that are attributes in the graph (``"<kind>:<value>"``).

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable or refused the query.
    """
    with database_errors("attribute_ids"):
        records, _, _ = driver.execute_query(
            catalog.ATTRIBUTE_IDS, {"ids": list(ids)}, database_=database, routing_="r"
        )
    return {r["id"] for r in records}


@dataclass(frozen=True, slots=True)
class VariantFigures:
    """The online figures of one variant (:func:`variant_report`): lists served, items shown in them, and the
    distinct shown items clicked and converted (a conversion is a click too) by feedback attributed to them."""

    variant: str
    lists: int
    impressions: int
    clicks: int
    conversions: int


def variant_report(driver: Driver, since: int = 0, database: str = "neo4j") -> list[VariantFigures]:
    """Per variant, the figures of the lists recorded at or after ``since`` (epoch seconds), by variant name.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    records, _ = run_read("variant_report", catalog.VARIANT_REPORT, {"since": int(since)}, driver, database)
    return [
        VariantFigures(
            str(r["variant"]), int(r["lists"]), int(r["impressions"]), int(r["clicks"]), int(r["conversions"])
        )
        for r in records
    ]


def read_item_exposure(driver: Driver, database: str = "neo4j") -> dict[str, tuple[int, int]]:
    """Impressions and attributed clicks of every item recorded lists have shown: ``{item_id: (impressions,
    clicks)}`` (exploration's counts).

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable or refused the query.
    """
    with database_errors("item_exposure"):
        records, _, _ = driver.execute_query(catalog.ITEM_EXPOSURE, database_=database, routing_="r")
    return {r["item_id"]: (int(r["impressions"]), int(r["clicks"])) for r in records}


__all__ = [
    "HeldHistory",
    "Interaction",
    "InteractionColumns",
    "VariantFigures",
    "UserContext",
    "float_column",
    "item_exists",
    "most_active_users",
    "read_existing_attributes",
    "read_existing_genres",
    "read_genre_names",
    "read_item_exposure",
    "read_item_titles",
    "read_user_preferred_genres",
    "user_context",
    "user_exists",
    "user_fingerprint",
    "variant_report",
    "written_interaction",
]
