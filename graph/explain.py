"""Explain items a ranker chose: concrete graph paths from a user to each of a given set of items.

The API ranks items in-process (embeddings, item-item models) and asks Neo4j only *why*: one call to
:func:`explain_items` per request explains up to :data:`MAX_EXPLAIN_ITEMS` items in one round trip
(``graph/queries/explain_items.cypher``). Before ranking it reads what it needs about the user with
:func:`graph.reads.user_context` (``graph/queries/user_context.cypher``), also one round trip.

Paths have the same model and sentences as recall's (:mod:`graph.paths`); their kinds, best first:
co-interaction, shared trait (people and tags before genres, rarest first), followee, preferred genre.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from neo4j import Driver
from pydantic import BaseModel, ConfigDict, Field

from graph import catalog
from graph.paths import Explanation, PathNode, constructed, display_name, path_rel, shared_trait_sentence
from graph.query import Caps, parse_caps, run_read, typed_ids
from graph.reads import UserContext
from graph.recall import RecallFilters, TimingFn
from schema.errors import ConfigError

#: Most item ids one :func:`explain_items` call accepts (one query, bounded cost).
MAX_EXPLAIN_ITEMS = 100


class ExplainCaps(Caps):
    """Fan-out caps of :func:`explain_items` (``max_paths`` defaults to 2 here)."""

    max_paths: int = Field(2, ge=0, le=10, description="Explanation paths kept per item.")
    max_seeds: int = Field(20, ge=1, description="The user's strongest, most recent positives used as seeds.")
    max_co_raters_per_seed: int = Field(20, ge=1, description="Co-raters read per seed (positives, store order).")
    max_raters_per_item: int = Field(
        30, ge=1, description="Raters read per item to explain (store order; positives count)."
    )
    max_tags_per_seed: int = Field(5, ge=0, description="Heaviest tags of each seed used as traits.")
    max_tags_per_item: int = Field(10, ge=0, description="Tags read per item to explain (store order).")
    max_followees: int = Field(50, ge=0, description="Followees of the user read (by user id).")
    max_items_per_followee: int = Field(100, ge=1, description="Positives read per followee (store order).")


class ExplainedItem(BaseModel):
    """One item the caller asked about that exists and passes the filters.

    Attributes:
        item_id: External item id.
        title: Item title, when the graph has one.
        explanations: Up to ``max_paths`` paths from the user to this item, best first; empty when none was found.
    """

    model_config = ConfigDict(frozen=True)

    item_id: str
    title: str | None = None
    explanations: list[Explanation] = Field(default_factory=list)


class Neighbourhoods:
    """A bounded, thread-safe LRU of the seed and item sides :func:`explain_items` reads (a node's first raters, its
    traits with their degrees), which depend on the node alone and not on the user asking, so that the next request
    explaining through the same items reads only the others.

    An entry is used for at most ``seconds``: the paths it gives are graph paths read from Neo4j at most that long ago
    (a rater added since may be missing from them, as in a cached answer). :meth:`clear` drops every entry (the
    caller does it when the catalogue or the model changes).

    Args:
        size: Most entries held (0 = off).
        seconds: Age after which an entry is read again (0 = off).
    """

    def __init__(self, size: int, seconds: float) -> None:
        self.size = size if seconds > 0 else 0
        self.seconds = seconds
        self._entries: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._token: object = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def keep_for(self, token: object) -> None:
        """Drop every entry when ``token`` (what the entries were read under: e.g. the catalogue revision and the
        model version) differs from the last one given."""
        with self._lock:
            if token != self._token:
                self._entries.clear()
                self._token = token

    def get(self, keys: Sequence[tuple]) -> dict[tuple, Any]:
        """The fresh entries of ``keys`` that are held."""
        if self.size <= 0:
            return {}
        now = time.monotonic()
        out = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and now - entry[0] <= self.seconds:
                    self._entries.move_to_end(key)
                    out[key] = entry[1]
            self.hits += len(out)
            self.misses += len(keys) - len(out)
        return out

    def put(self, values: Mapping[tuple, Any]) -> None:
        if self.size <= 0 or not values:
            return
        now = time.monotonic()
        with self._lock:
            for key, value in values.items():
                self._entries[key] = (now, value)
                self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


def explain_items(
    driver: Driver,
    user_id: str,
    item_ids: list[str] | tuple[str, ...],
    *,
    max_paths: int = 2,
    filters: RecallFilters | None = None,
    seed_ids: Sequence[str] | None = None,
    database: str = "neo4j",
    on_timing: TimingFn | None = None,
    neighbourhoods: Neighbourhoods | None = None,
    seeds_checked: bool = False,
    held_user: HeldUser | None = None,
    **caps: Any,
) -> dict[str, ExplainedItem]:
    """Explain why each of ``item_ids`` suits ``user_id``, in one query.

    Items that are not in the graph or fail ``filters`` are absent from the result; every other item is
    present, with an empty ``explanations`` list when no path was found (or the user is unknown), so the
    caller gets titles for all surviving items. Items the user already interacted with are not filtered
    out (the caller has them from :func:`graph.reads.user_context`). Every path exists in the graph and runs
    from the user to the item.

    Args:
        driver: An open driver.
        user_id: External user id.
        item_ids: External item ids (at most :data:`MAX_EXPLAIN_ITEMS` distinct; duplicates are ignored).
        max_paths: Paths kept per item (0–10), best first: the best path of each kind in the order
            co-interaction, shared trait, followee, preferred genre, then the second best of each, ...
        filters: Business filters; None = none.
        seed_ids: The user's items to explain from, best first (e.g. :func:`strongest_seeds` of the
            :func:`graph.reads.user_context` the caller already read, which then gives the same result); ids
            that are not positives of the user are dropped. None = the query picks the user's strongest positives
            itself, reading all of their interactions (costly for heavy users).
        database: Neo4j database.
        on_timing: Optional callback receiving ("explain", query seconds).
        neighbourhoods: Where the seed and item sides read before are kept (:class:`Neighbourhoods`); the query
            reads only the sides it does not hold. None = every side is read.
        seeds_checked: ``seed_ids`` are positives of the user the caller has just read (e.g. with
            :func:`graph.reads.user_context`): they are not checked again.
        held_user: What the query would read about the user, as the caller has just read it (:class:`HeldUser`),
            and the caller's word that ``item_ids`` may be shown now (not hidden, inside their availability
            window). With it, ``seeds_checked``, no genre or year filter and every seed's and item's side (with its
            title) held in ``neighbourhoods``, and for a user who follows somebody their followees (read at the
            user's present FOLLOWS degree) and each followee's side, the paths are joined from those sides without a
            query: the same paths the query would give, read from Neo4j at most ``neighbourhoods.seconds`` ago.
            Otherwise it is ignored.
        **caps: Overrides of the other :class:`ExplainCaps` fields.

    Returns:
        The explained items by item id, in the order of ``item_ids``.

    Raises:
        ConfigError: Too many item ids, an item or seed id that is not a string, or an invalid cap.
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the query.
    """
    wanted = list(dict.fromkeys(item_ids))
    seeds = None if seed_ids is None else list(seed_ids)
    if not all(isinstance(item_id, str) for item_id in [*wanted, *(seeds or [])]):
        raise ConfigError("item ids and seed ids must be strings")
    if len(wanted) > MAX_EXPLAIN_ITEMS:
        raise ConfigError(f"at most {MAX_EXPLAIN_ITEMS} item ids can be explained at once, got {len(wanted)}")
    limits = parse_caps(ExplainCaps, {**caps, "max_paths": max_paths})
    if not wanted:
        return {}
    seed_caps = ("seed", limits.min_rating, limits.max_co_raters_per_seed, limits.max_tags_per_seed)
    item_caps = ("item", limits.min_rating, limits.max_raters_per_item, limits.max_tags_per_item)
    followee_caps = ("followee", limits.min_rating, limits.max_items_per_followee)
    followees_key = ("followees", limits.max_followees, user_id)
    held: dict[tuple, Any] = {}
    read_seeds: list[str] | None = None
    read_items: list[str] | None = None
    held_followees: list[str] = []
    if neighbourhoods is not None and limits.max_paths > 0:
        keys = [(*item_caps, i) for i in wanted] + [(*seed_caps, s) for s in seeds or []] + [followees_key]
        held = neighbourhoods.get(keys)
        # the user's followees as last read: the query reads the sides of the others (it reads the followees too)
        listed = held.get(followees_key)
        if listed is not None and listed[1]:
            held.update(neighbourhoods.get([(*followee_caps, f) for f in listed[1]]))
            held_followees = [f for f in listed[1] if (*followee_caps, f) in held]
        # without a query only while the user's FOLLOWS degree is still the one they were read at
        followees = (
            listed[1] if listed is not None and held_user is not None and listed[0] == held_user.follows else None
        )
        read_items = [i for i in wanted if (*item_caps, i) not in held]
        read_seeds = None if seeds is None else [s for s in seeds if (*seed_caps, s) not in held]
        if (
            held_user is not None
            and seeds_checked
            and seeds is not None
            and not read_items
            and not read_seeds
            and (held_user.follows == 0 or (followees is not None and len(held_followees) == len(followees)))
            and not (filters is not None and filters.narrows)
        ):
            user_followees = followees if held_user.follows else ()
            return _explained_from_held(
                user_id,
                wanted,
                seeds,
                held,
                (seed_caps, item_caps, followee_caps),
                user_followees,
                held_user,
                limits,
                filters,
            )
    params = {
        "userId": user_id,
        # every id list padded to one length bucket: one parameter type, one plan in Neo4j's cache (typed_ids)
        "itemIds": typed_ids(wanted),
        "seedIds": None if seeds is None else typed_ids(seeds),
        "checkSeeds": not seeds_checked,
        "readSeeds": None if read_seeds is None else typed_ids(read_seeds),
        "readItems": None if read_items is None else typed_ids(read_items),
        "heldFollowees": typed_ids(held_followees),
        **limits.to_params(),
        **(filters or RecallFilters()).to_params(),
    }
    records, seconds = run_read("explain", catalog.EXPLAIN_ITEMS, params, driver, database)
    if on_timing is not None:
        on_timing("explain", seconds)
    if not records:
        return {}
    record = records[0]
    # a side is kept with its node's title, so that a request holding every side needs no query (_explained_from_held)
    titles = {row[0]: row[1] for row in (*record["seeds"], *record["items"])}
    read = {
        (*seed_caps, side[0]): _held_side(side[1], side[2], titles.get(side[0]), False) for side in record["seed_sides"]
    }
    read.update(
        {
            (*item_caps, side[0]): _held_side(side[1], side[2], titles.get(side[0]), True)
            for side in record["item_sides"]
        }
    )
    read.update({(*followee_caps, side[0]): tuple(side[1]) for side in record["followee_sides"]})
    if neighbourhoods is not None:
        # the user's followees with the degree they were read at (without paths the query reads neither)
        user_side = {followees_key: (record["follows"], tuple(record["followees"]))} if limits.max_paths > 0 else {}
        neighbourhoods.put({**read, **user_side})
    sides = {**held, **read}
    seed_sides = [sides.get((*seed_caps, seed[0]), _NO_SIDE) for seed in record["seeds"]]
    item_sides = [sides.get((*item_caps, item[0]), _NO_SIDE) for item in record["items"]]
    followed = _followed(record["items"], record["followees"], sides, followee_caps)
    found = _explained(
        user_id,
        record["items"],
        record["seeds"],
        followed,
        record["preferred"],
        seed_sides,
        item_sides,
        limits,
    )
    return {item_id: found[item_id] for item_id in wanted if item_id in found}


#: The side of a node nobody read (no raters, no traits, no title).
_NO_SIDE: tuple[tuple[str, ...], tuple[Any, ...], None] = ((), (), None)


class HeldUser(NamedTuple):
    """What :func:`explain_items` reads about the user, as the caller has just read it (with
    :func:`graph.reads.user_context`), so that explaining from held sides needs no query.

    Attributes:
        preferred_genres: The genres the user prefers (PREFERS).
        follows: The user's FOLLOWS degree: the followees held for the user (and their sides) are used while it is
            the degree they were read at.
    """

    preferred_genres: tuple[str, ...]
    follows: int = 0

    @classmethod
    def of(cls, context: UserContext) -> HeldUser:
        """The held user of ``context``."""
        return cls(context.preferred_genres, context.follows)


def _followed(
    items: Sequence[Sequence[Any]], followees: Sequence[str], sides: Mapping[tuple, Any], followee_caps: tuple
) -> list[tuple[str, str]]:
    """``(item id, followee)`` for each of ``items`` (rows of item id first) among the positives of each followee's side
    (the query's followee part, joined here so that a followee's side can be held)."""
    wanted = {item[0] for item in items}
    return [
        (item_id, followee)
        for followee in followees
        for item_id in sides.get((*followee_caps, followee), ())
        if item_id in wanted
    ]


def _explained_from_held(
    user_id: str,
    wanted: list[str],
    seeds: list[str],
    held: Mapping[tuple, Any],
    caps: tuple[tuple, tuple, tuple],
    followees: Sequence[str],
    user: HeldUser,
    limits: ExplainCaps,
    filters: RecallFilters | None,
) -> dict[str, ExplainedItem]:
    """What the query and :func:`_explained` would give when every side is held: the items (``exclude_items`` left
    out; the caller vouches for the rest), the first ``max_seeds`` distinct seeds, the held ``followees`` (none when
    the user follows nobody) and the preferred genres the caller read. ``caps``: the seed, item and followee sides'
    key prefixes."""
    seed_caps, item_caps, followee_caps = caps
    excluded = set(filters.exclude_items) if filters is not None else set()
    items = [[i, held[(*item_caps, i)][2]] for i in wanted if i not in excluded]
    seed_rows = [[s, held[(*seed_caps, s)][2]] for s in list(dict.fromkeys(seeds))[: limits.max_seeds]]
    seed_sides = [held[(*seed_caps, s)] for s, _ in seed_rows]
    item_sides = [held[(*item_caps, i)] for i, _ in items]
    followed = _followed(items, followees, held, followee_caps)
    found = _explained(user_id, items, seed_rows, followed, user.preferred_genres, seed_sides, item_sides, limits)
    return {item_id: found[item_id] for item_id in wanted if item_id in found}


#: The trait relationships whose stored direction runs from the trait to the item (people), not the other way.
_FROM_TRAIT = frozenset({"ACTED_IN", "DIRECTED"})
#: A trait's label in a path by the relationship type that links it to items.
_TRAIT_LABEL = {"ACTED_IN": "Person", "DIRECTED": "Person", "HAS_TAG": "Tag", "HAS_ATTRIBUTE": "Attribute"}
#: Shared-trait paths: people first, then tags and attributes, then genres.
_TRAIT_RANK = {"IN_GENRE": 2, "HAS_TAG": 1, "HAS_ATTRIBUTE": 1}


class _Interner:
    """Integer ids of the user ids (raters) and ``(type, key)`` traits of the sides, so that a request joins its sides
    with integer arrays. Append-only and thread-safe; :func:`_interner` starts a new one past
    :data:`MAX_INTERNED` values (sides made with an older one are converted again when used)."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {}
        self.values: list[Any] = []
        self._lock = threading.Lock()

    def of(self, values: Sequence[Any]) -> np.ndarray:
        ids = self.ids
        if any(v not in ids for v in values):
            with self._lock:
                for v in values:
                    if v not in ids:
                        self.values.append(v)
                        ids[v] = len(self.values) - 1
        return np.array([ids[v] for v in values], dtype=np.int64)


#: Most values one interner holds (user ids and traits met in sides; each a few dozen bytes).
MAX_INTERNED = 2_000_000
_INTERNED = [_Interner()]


def _interner() -> _Interner:
    """The current interner (a new one once the current holds :data:`MAX_INTERNED` values)."""
    current = _INTERNED[0]
    if len(current.values) > MAX_INTERNED:
        current = _INTERNED[0] = _Interner()
    return current


class _SideArrays(NamedTuple):
    """A side's raters and traits as integer ids of ``interner``; for an item side also each trait's rank of kind
    (people 0, tags and attributes 1, genres 2), its degree and whether it is a genre."""

    interner: _Interner
    raters: np.ndarray
    traits: np.ndarray
    rank: np.ndarray | None = None
    degree: np.ndarray | None = None
    genre: np.ndarray | None = None


def _side_arrays(
    raters: Sequence[str], traits: Sequence[Sequence[Any]], item: bool, interner: _Interner
) -> _SideArrays:
    keys = [(t[0], t[1]) for t in traits]
    if not item:
        return _SideArrays(interner, interner.of(raters), interner.of(keys))
    return _SideArrays(
        interner,
        interner.of(raters),
        interner.of(keys),
        np.array([_TRAIT_RANK.get(t[0], 0) for t in traits], dtype=np.int64),
        np.array([t[3] for t in traits], dtype=np.int64),
        np.array([t[0] == "IN_GENRE" for t in traits], dtype=bool),
    )


def _held_side(raters: Sequence[str], traits: Sequence[Sequence[Any]], title: str | None, item: bool) -> tuple:
    """A side as held and joined: (raters, traits, title, its arrays)."""
    return (raters, traits, title, _side_arrays(raters, traits, item, _interner()))


def _arrays_of(sides: Sequence[Any], item: bool, interner: _Interner) -> list[_SideArrays]:
    return [
        side[3] if len(side) > 3 and side[3].interner is interner else _side_arrays(side[0], side[1], item, interner)
        for side in sides
    ]


_EMPTY = np.zeros(0, dtype=np.int64)


def _concat(parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The parts end to end, and the index of the part each value came from."""
    if not parts:
        return _EMPTY, _EMPTY
    lengths = [len(part) for part in parts]
    return np.concatenate(parts), np.repeat(np.arange(len(parts), dtype=np.int64), lengths)


def _reach(values: np.ndarray, vias: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct value of ``values`` (each reached from seed row ``vias``, ascending within a value's rows
    when ``vias`` is sorted): the sorted distinct values, how many rows hold each, the first via and the first via
    after it (-1: none) — the fallback when the first is the item itself."""
    order = np.lexsort((vias, values))
    sorted_values, sorted_vias = values[order], vias[order]
    # the runs of equal values in the sorted arrays (what np.unique would sort again to find)
    starts = _run_starts(sorted_values)
    distinct = sorted_values[starts]
    counts = np.diff(np.append(starts, len(sorted_values)))
    first = sorted_vias[starts]
    group = np.repeat(np.arange(len(distinct)), counts)
    later = np.flatnonzero(sorted_vias != first[group])  # ascending, so each group's first later row leads its run
    second = np.full(len(distinct), -1, dtype=np.int64)
    leads = later[_run_starts(group[later])]
    second[group[leads]] = sorted_vias[leads]
    return distinct, counts, first, second


def _run_starts(values: np.ndarray) -> np.ndarray:
    """The positions where a run of equal values starts in sorted ``values`` (``np.unique``'s ``return_index`` of an
    array already sorted, without sorting it again)."""
    if not len(values):
        return _EMPTY
    starts = np.empty(len(values), dtype=bool)
    starts[0] = True
    np.not_equal(values[1:], values[:-1], out=starts[1:])
    return np.flatnonzero(starts)


def _found(
    distinct: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    wanted: np.ndarray,
    rows: np.ndarray,
    self_via: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The positions in ``wanted`` (of item ``rows``) whose value is among ``distinct``, their index in it, and the
    via that reaches each: the first, or the next when the first is the item itself (a seed never explains
    itself); values with no such via are left out."""
    if not len(distinct) or not len(wanted):
        return _EMPTY, _EMPTY, _EMPTY
    at = np.minimum(np.searchsorted(distinct, wanted), len(distinct) - 1)
    hit = np.flatnonzero(distinct[at] == wanted)
    at = at[hit]
    via = first[at]
    via = np.where(via == self_via[rows[hit]], second[at], via)
    kept = via >= 0
    return hit[kept], at[kept], via[kept]


def _name_ranks(ids: np.ndarray, interner: _Interner) -> np.ndarray:
    """The rank of each of ``ids`` by its value's own order (user ids and traits compare as strings and tuples)."""
    distinct = np.sort(ids)
    distinct = distinct[_run_starts(distinct)]  # np.unique(ids)
    values = interner.values
    names = [values[i] for i in distinct.tolist()]
    ranks = np.empty(len(names), dtype=np.int64)
    ranks[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    return ranks[np.searchsorted(distinct, ids)]


def _leading(rows: np.ndarray, keep: int) -> np.ndarray:
    """Of sorted ``rows``, the positions of the first ``keep`` of each row."""
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    return np.flatnonzero(rank < keep)


def _self_vias(item_ids: Sequence[str], seeds: Sequence[Sequence[Any]]) -> np.ndarray:
    """The seed row of each item that is also a seed (-1: none)."""
    at = {seed[0]: x for x, seed in enumerate(seeds)}
    return np.array([at.get(item_id, -1) for item_id in item_ids], dtype=np.int64)


def _joined_co(
    user_id: str,
    item_ids: Sequence[str],
    seeds: Sequence[Sequence[Any]],
    seed_sides: Sequence[Any],
    item_sides: Sequence[Any],
    limits: ExplainCaps,
) -> list[tuple[int, int, str]]:
    """The co-interaction paths kept, as (item row, seed row, co-rater), by item then seed row (:func:`_explained`'s
    rules): one vectorised join of the seeds' first co-raters with the items' raters."""
    interner = _interner()
    seed_raters, seed_rows = _concat([a.raters for a in _arrays_of(seed_sides, False, interner)])
    item_raters, item_rows = _concat([a.raters for a in _arrays_of(item_sides, True, interner)])
    if not len(seed_raters) or not len(item_raters):
        return []
    user = interner.ids.get(user_id, -1)
    kept = seed_raters != user
    seed_raters, seed_rows = seed_raters[kept], seed_rows[kept]
    kept = _leading(seed_rows, limits.max_co_raters_per_seed)  # each seed's first co-raters other than the user
    distinct, counts, first, second = _reach(seed_raters[kept], seed_rows[kept])
    hit, at, via = _found(distinct, first, second, item_raters, item_rows, _self_vias(item_ids, seeds))
    if not len(hit):
        return []
    rows, raters = item_rows[hit], item_raters[hit]
    order = np.lexsort((_name_ranks(raters, interner), -counts[at], via, rows))
    rows, via, raters = rows[order], via[order], raters[order]
    # the best co-rater of each (item, seed), then each item's first max_paths seeds
    best = np.flatnonzero(np.r_[True, (rows[1:] != rows[:-1]) | (via[1:] != via[:-1])])
    rows, via, raters = rows[best], via[best], raters[best]
    kept = _leading(rows, limits.max_paths)
    values = interner.values
    return [
        (n, x, values[v])
        for n, x, v in zip(rows[kept].tolist(), via[kept].tolist(), raters[kept].tolist(), strict=True)
    ]


def _joined_traits(
    item_ids: Sequence[str],
    seeds: Sequence[Sequence[Any]],
    seed_sides: Sequence[Any],
    item_sides: Sequence[Any],
    preferred_genres: Sequence[str],
    max_paths: int,
) -> tuple[list[tuple[int, int, Sequence[Any]]], list[tuple[int, str]]]:
    """The shared-trait paths kept, as (item row, seed row, the item's trait row), and the preferred-genre paths kept,
    as (item row, genre), each by item then rank (:func:`_explained`'s rules), in one vectorised join."""
    interner = _interner()
    item_arrays = _arrays_of(item_sides, True, interner)
    seed_traits, seed_rows = _concat([a.traits for a in _arrays_of(seed_sides, False, interner)])
    traits, rows = _concat([a.traits for a in item_arrays])
    if not len(traits):
        return [], []
    rank = np.concatenate([a.rank for a in item_arrays])
    degree = np.concatenate([a.degree for a in item_arrays])
    trait_rows = [t for side in item_sides for t in side[1]]
    shared: list[tuple[int, int, Sequence[Any]]] = []
    if len(seed_traits):
        distinct, _, first, second = _reach(seed_traits, seed_rows)
        hit, _, via = _found(distinct, first, second, traits, rows, _self_vias(item_ids, seeds))
        if len(hit):
            order = np.lexsort((_name_ranks(traits[hit], interner), via, degree[hit], rank[hit], rows[hit]))
            hit, via = hit[order], via[order]
            kept = _leading(rows[hit], max_paths)
            shared = [
                (n, x, trait_rows[j])
                for n, x, j in zip(rows[hit][kept].tolist(), via[kept].tolist(), hit[kept].tolist(), strict=True)
            ]
    genres: list[tuple[int, str]] = []
    liked = [interner.ids[g] for g in (("IN_GENRE", name) for name in preferred_genres) if g in interner.ids]
    if liked:
        genre = np.concatenate([a.genre for a in item_arrays])
        hit = np.flatnonzero(genre & np.isin(traits, liked))
        if len(hit):
            hit = hit[np.lexsort((_name_ranks(traits[hit], interner), degree[hit], rows[hit]))]
            kept = hit[_leading(rows[hit], max_paths)]
            genres = [(n, trait_rows[j][1]) for n, j in zip(rows[kept].tolist(), kept.tolist(), strict=True)]
    return shared, genres


def _explained(
    user_id: str,
    items: list[list[Any]],
    seeds: list[list[Any]],
    followed_rows: Sequence[Sequence[str]],
    preferred_genres: Sequence[str],
    seed_sides: list[Any],
    item_sides: list[Any],
    limits: ExplainCaps,
) -> dict[str, ExplainedItem]:
    """The explained items of one row of ``explain_items.cypher`` and the sides of its seeds and items (held or
    read): the seed side joined with the item side on the node in between, each item's paths of every kind ranked,
    then taken round-robin (the best of each kind in kind order, then the second best, ...) up to ``max_paths``.

    The rules: co-interaction — v among the seed's first ``max_co_raters_per_seed`` positive raters other than the
    user and among the item's positive raters read; for each item, the seeds (strongest first) that reach it, a seed
    never explaining itself; per seed the v who co-rated the most seeds, then the smallest userId. Shared trait — a
    trait of the seed and of the item by the same relationship type; people before tags and attributes before
    genres, then the rarest (fewest items), the strongest seed, the type, the key. Followee — by userId. Preferred
    genre — the rarest, then by name.

    The join is one vectorised step over the request's sides (:func:`_joined`): each side's raters and traits are
    integer arrays (:class:`_SideArrays`, made once when the side is read and held with it); only the paths kept are
    built in Python.
    """
    max_paths = limits.max_paths
    # each item's candidate paths of each kind, as (builder, arguments): only the ones kept are built
    kinds: list[dict[int, list[tuple[Any, tuple]]]] = [{}, {}, {}, {}]
    if max_paths > 0 and items:
        item_ids = [item[0] for item in items]
        for n, via, v in _joined_co(user_id, item_ids, seeds, seed_sides, item_sides, limits):
            kinds[0].setdefault(n, []).append((_co_path, (seeds[via], v, items[n])))
        traits, genres = _joined_traits(item_ids, seeds, seed_sides, item_sides, preferred_genres, max_paths)
        for n, via, (kind, key, name, _) in traits:
            kinds[1].setdefault(n, []).append((_trait_path, (seeds[via], kind, key, name, items[n])))
        for n, genre in genres:
            kinds[3].setdefault(n, []).append((_genre_path, (genre, items[n])))
        if followed_rows:
            followed: dict[str, list[str]] = {}
            for item_id, followee in followed_rows:
                followed.setdefault(item_id, []).append(followee)
            for n, item_id in enumerate(item_ids):
                if item_id in followed:
                    kinds[2][n] = [(_followee_path, (f, items[n])) for f in sorted(followed[item_id])[:max_paths]]
    return _built(user_id, items, kinds, max_paths)


def _built(
    user_id: str, items: list[list[Any]], kinds: list[dict[int, list[tuple[Any, tuple]]]], max_paths: int
) -> dict[str, ExplainedItem]:
    """The explained items from each item's candidate paths of each kind (``kinds[kind][item row]``, best first, as
    (builder, arguments)): taken round-robin over the kinds up to ``max_paths``, only those built."""
    out: dict[str, ExplainedItem] = {}
    if len(_NODES) > MAX_HELD_NODES:
        _NODES.clear()
    nodes_seen = _NODES
    user_node = _node(nodes_seen, "User", user_id, None)
    for n, (item_id, title) in enumerate(items):
        ranked = [kind.get(n, []) for kind in kinds]
        paths = [paths[rank] for rank in range(max_paths) for paths in ranked if rank < len(paths)]
        out[item_id] = constructed(
            ExplainedItem,
            {
                "item_id": item_id,
                "title": title,
                "explanations": [build(nodes_seen, user_node, *args) for build, args in paths[:max_paths]],
            },
        )
    return out


#: Path nodes made so far by (label, key, name), shared between the paths of every request (the models are frozen,
#: and a node is its three values: a changed title is another key); emptied when it holds more than MAX_HELD_NODES.
_NODES: dict[tuple, PathNode] = {}
MAX_HELD_NODES = 200_000


def _node(seen: dict[tuple, PathNode], label: str, key: str, name: str | None) -> PathNode:
    """The path node (label, key, name), made once and shared between paths (the models are frozen)."""
    made = seen.get((label, key, name))
    if made is None:
        made = seen[(label, key, name)] = constructed(PathNode, {"label": label, "id": key, "name": name})
    return made


#: The relationships of each path shape (shared: the models are frozen).
_CO_RELS = [path_rel("INTERACTED", 0, 1), path_rel("INTERACTED", 2, 1), path_rel("INTERACTED", 2, 3)]
_FOLLOWEE_RELS = [path_rel("FOLLOWS", 0, 1), path_rel("INTERACTED", 1, 2)]
_GENRE_RELS = [path_rel("PREFERS", 0, 1), path_rel("IN_GENRE", 2, 1)]


def _co_path(seen: dict[tuple, PathNode], user: PathNode, seed: list[Any], v: str, item: list[Any]) -> Explanation:
    """A co-interaction path: user -> seed <- v -> item (the sentence :func:`graph.paths.describe_path` writes)."""
    first, last = _node(seen, "Item", seed[0], seed[1]), _node(seen, "Item", item[0], item[1])
    return constructed(
        Explanation,
        {
            "text": f"Because users who liked {display_name(first)} also liked {display_name(last)}",
            "nodes": [user, first, _node(seen, "User", v, None), last],
            "relationships": _CO_RELS,
        },
    )


def _followee_path(seen: dict[tuple, PathNode], user: PathNode, followee: str, item: list[Any]) -> Explanation:
    """A followee path: user -> followee -> item."""
    who, last = _node(seen, "User", followee, None), _node(seen, "Item", item[0], item[1])
    return constructed(
        Explanation,
        {
            "text": f"Because {display_name(who)}, whom you follow, liked {display_name(last)}",
            "nodes": [user, who, last],
            "relationships": _FOLLOWEE_RELS,
        },
    )


def _genre_path(seen: dict[tuple, PathNode], user: PathNode, genre: str, item: list[Any]) -> Explanation:
    """A preferred-genre path: user -> genre <- item."""
    middle = _node(seen, "Genre", genre, genre)
    return constructed(
        Explanation,
        {
            "text": f"Because you like {display_name(middle)}",
            "nodes": [user, middle, _node(seen, "Item", item[0], item[1])],
            "relationships": _GENRE_RELS,
        },
    )


def _trait_path(
    seen: dict[tuple, PathNode],
    user: PathNode,
    seed: list[Any],
    kind: str,
    key: str,
    name: str | None,
    item: list[Any],
) -> Explanation:
    """A shared-trait path: user -> seed, seed and item both linked to one trait by ``kind``."""
    if kind in _FROM_TRAIT:
        rels = [path_rel("INTERACTED", 0, 1), path_rel(kind, 2, 1), path_rel(kind, 2, 3)]
    else:
        rels = [path_rel("INTERACTED", 0, 1), path_rel(kind, 1, 2), path_rel(kind, 3, 2)]
    first, trait = _node(seen, "Item", seed[0], seed[1]), _node(seen, _TRAIT_LABEL.get(kind, "Genre"), key, name)
    return constructed(
        Explanation,
        {
            "text": shared_trait_sentence(first, kind, trait),
            "nodes": [user, first, trait, _node(seen, "Item", item[0], item[1])],
            "relationships": rels,
        },
    )


def strongest_seeds(context: UserContext, max_seeds: int = 20, min_rating: float = 4.0) -> list[str]:
    """The seeds :func:`explain_items` picks itself, computed from an already-read context.

    Positives (rating >= ``min_rating`` or no rating) by rating (else weight) descending, then most recent
    first (no timestamp last), then item id.

    Args:
        context: The user's context from :func:`graph.reads.user_context`.
        max_seeds: How many to keep (``ExplainCaps.max_seeds``).
        min_rating: Threshold of a positive (``ExplainCaps.min_rating``).

    Returns:
        Item ids, best first.
    """
    # Only the interactions that can be among the first ``max_seeds`` are sorted in Python (a heavy user has
    # thousands): those whose (strength, time) is at least the ``max_seeds``-th best's, ties included, found with
    # array operations; the item id, the last key, orders the ties among them.
    columns = context.columns
    strength = np.where(
        np.isnan(columns.ratings), np.where(np.isnan(columns.weights), np.inf, columns.weights), columns.ratings
    )
    moment = np.nan_to_num(columns.timestamps, nan=0.0)  # ``i.timestamp or 0``
    rows = np.flatnonzero(columns.positive(min_rating))
    if len(rows) > max_seeds > 0:
        order = rows[np.lexsort((-moment[rows], -strength[rows]))]
        last = order[max_seeds - 1]
        rows = rows[
            (strength[rows] > strength[last]) | ((strength[rows] == strength[last]) & (moment[rows] >= moment[last]))
        ]
    positives = [columns.row(r) for r in rows.tolist()]
    positives.sort(key=lambda i: i.item_id)
    positives.sort(
        key=lambda i: (
            i.rating
            if i.rating is not None
            else (i.weight if i.weight is not None else float("inf")),  # Cypher: null first
            i.timestamp or 0,
        ),
        reverse=True,
    )
    return [i.item_id for i in positives[:max_seeds]]


__all__ = [
    "MAX_EXPLAIN_ITEMS",
    "ExplainCaps",
    "ExplainedItem",
    "HeldUser",
    "Neighbourhoods",
    "explain_items",
    "strongest_seeds",
]
