"""Graph recall: candidate items for a user (or an item page), each with the paths that explain it.

Every strategy is one catalogued Cypher query (``graph/queries/recall_<name>.cypher``), declared below as a
:class:`CypherRecall` and run in a read transaction (:func:`graph.query.run_read`). The queries bound their
fan-out with caps (seeds, neighbours, items per hop) so that a heavy user does not expand the whole graph; the
caps are typed per strategy below and can be overridden per call as keyword arguments
(``recall_collaborative(driver, "42", max_neighbours=50)``). Filters are applied inside the queries, before
``LIMIT $k``, so ``k`` results still come back after filtering when the graph has them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Protocol

from neo4j import Driver
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graph import catalog
from graph.paths import Explanation, explanation_from_path
from graph.query import C, Caps, boxed, parse_caps, run_read, typed_ids
from graph.reads import UserContext
from schema.errors import ConfigError

log = logging.getLogger(__name__)

#: Candidates returned when the caller does not say.
DEFAULT_K = 20

#: ``on_timing(strategy, seconds)``: receives the wall time of each recall query (e.g. for Prometheus).
TimingFn = Callable[[str, float], None]


class RecallFilters(BaseModel):
    """Business filters applied inside the recall queries; empty lists and None mean "no filter".

    Attributes:
        exclude_items: Item ids never to return.
        include_genres: Only items in at least one of these genres.
        exclude_genres: No items in any of these genres.
        year_min: Only items whose year is known and at least this.
        year_max: Only items whose year is known and at most this.
        now: The clock of the availability rule (epoch seconds; None = the database server's clock): hidden items
            and items outside their availability window (``availableFrom <= now < availableUntil``) are never
            returned, whatever the other filters say.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # never empty strings: the queries take '' for "no entry" (to_params)
    exclude_items: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    include_genres: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    exclude_genres: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    now: int | None = None

    @property
    def narrows(self) -> bool:
        """Whether a genre or year filter is set (beyond excluding named items)."""
        return bool(
            self.include_genres or self.exclude_genres or self.year_min is not None or self.year_max is not None
        )

    def to_params(self) -> dict[str, Any]:
        """Query parameters (camelCase) of these filters, each of one parameter type whatever is set, so that a
        query keeps one plan in Neo4j's cache (graph/query.py): the id and genre lists padded with the empty string
        (``typed_ids``: a genre filter is off when its list is empty or led by ``''``), the year bounds and the clock
        as a list of one that holds null when unset (``boxed``: ``$yearMin[0]``)."""
        return {
            "excludeItems": typed_ids(self.exclude_items),
            "includeGenres": typed_ids(self.include_genres),
            "excludeGenres": typed_ids(self.exclude_genres),
            "yearMin": boxed(self.year_min),
            "yearMax": boxed(self.year_max),
            "now": boxed(self.now),
        }


class Candidate(BaseModel):
    """One recalled item.

    Attributes:
        item_id: External item id.
        title: Item title, when the graph has one.
        score: The strategy's score (higher is better; scales differ between strategies).
        source: Name of the strategy that found it ("collaborative", ..., "similar").
        explanations: Up to ``max_paths`` concrete paths from the user (or item) to this item.
    """

    model_config = ConfigDict(frozen=True)

    item_id: str
    title: str | None = None
    score: float
    source: str
    explanations: list[Explanation] = Field(default_factory=list)


@dataclass(eq=False, slots=True)
class History:
    """The user's history as the recall strategies use it, read once per request and given to every strategy, so
    that no recall query reads the user's interactions itself (a heavy user has thousands).

    Built from the context the API reads anyway (:func:`graph.reads.user_context`). The strategies send the seeds
    (the strongest positives, as many as their ``max_seeds``: rating, else weight, descending, then most recent,
    then item id) and the seen items (every item the user interacted with, which recall never returns) as the
    query parameters ``$seedIds`` and ``$seenIds``; called without a history, the queries read both themselves.

    Attributes:
        context: The user's context.
    """

    context: UserContext
    _seen: list[str] | None = field(default=None, init=False, repr=False)
    _seeds: dict[tuple[int, float], list[str]] = field(default_factory=dict, init=False, repr=False)

    def seen(self) -> list[str]:
        """Every item the user interacted with (positive, negative or below ``min_rating``)."""
        if self._seen is None:
            self._seen = self.context.columns.item_ids.tolist()
        return self._seen

    def seeds(self, max_seeds: int, min_rating: float) -> list[str]:
        """The ``max_seeds`` strongest positives, best first (the order the queries read them in)."""
        key = (max_seeds, min_rating)
        if key not in self._seeds:
            from graph.explain import strongest_seeds  # graph.explain imports this module

            self._seeds[key] = strongest_seeds(self.context, max_seeds=max_seeds, min_rating=min_rating)
        return self._seeds[key]

    def params(self, caps: Caps) -> dict[str, Any]:
        """``$seedIds`` (for ``caps.max_seeds``, when the strategy has seeds) and ``$seenIds``."""
        max_seeds = getattr(caps, "max_seeds", None)
        seeds = None if max_seeds is None else self.seeds(max_seeds, caps.min_rating)
        return {"seedIds": seeds, "seenIds": self.seen()}


#: The history parameters of a call without a history: the query reads the user's seeds and seen items itself.
NO_HISTORY: dict[str, Any] = {"seedIds": None, "seenIds": None}


class SeedCaps(Caps):
    """Caps of the strategies that start from the user's positives."""

    max_seeds: int = Field(50, ge=1, description="The user's strongest, most recent positives used as seeds.")


class TraitCaps(Caps):
    """Caps and weights of the strategies that expand shared traits (directors, actors, tags, genres) to items."""

    max_trait_degree: int = Field(2000, ge=1, description="Traits linked to more items than this are skipped.")
    max_items_per_trait: int = Field(30, ge=1, description="Items read per trait (the most rated first, then by id).")
    director_weight: float = Field(3.0, ge=0, description="Weight of a shared director.")
    actor_weight: float = Field(2.0, ge=0, description="Weight of a shared actor.")
    tag_weight: float = Field(1.0, ge=0, description="Weight of a shared tag.")
    genre_weight: float = Field(0.5, ge=0, description="Weight of a shared genre.")


class CollaborativeCaps(SeedCaps):
    """Caps of :data:`recall_collaborative`."""

    max_raters_scanned_per_seed: int = Field(
        500,
        ge=1,
        description="Raters of each seed read, in store order (latest written first in practice): bounds the cost "
        "of a popular seed. Above every item's raters on ml-latest-small (329 at most).",
    )
    max_raters_scanned: int = Field(
        6000,
        ge=1,
        description="Raters read over all seeds together, shared evenly: each seed reads min(max_raters_scanned_per_seed, "
        "max(max_co_raters_per_seed, ceil(this / seeds))), so a user whose 50 seeds are all popular reads 120 raters "
        "of each, not 500 (a third of the walk, on a world at size), and a user with few seeds up to 500 of each. "
        "Above every item's raters on the 120-user synthetic world; on ml-latest-small it binds on popular seeds. "
        "Without a History the seeds are counted as max_seeds (the query reads them itself).",
    )
    max_co_raters_per_seed: int = Field(
        50, ge=1, description="Co-raters kept per seed among those read (fewest interactions first, then by id)."
    )
    max_neighbours: int = Field(30, ge=1, description="Most similar users kept.")
    max_items_scanned_per_neighbour: int = Field(
        3000,
        ge=1,
        description="Interactions of each neighbour read, in store order: bounds the cost of a heavy neighbour. "
        "Above every user's interactions on ml-latest-small (2,698 at most).",
    )
    max_items_per_neighbour: int = Field(
        30, ge=1, description="Positives kept per neighbour among those read (highest rated, most recent, id)."
    )

    def raters_per_seed(self, seeds: int) -> int:
        """The raters each of ``seeds`` seeds reads (``max_raters_scanned`` shared evenly, within the per-seed caps)."""
        share = max(self.max_co_raters_per_seed, -(-self.max_raters_scanned // max(1, seeds)))
        return min(self.max_raters_scanned_per_seed, share)

    def to_params(self) -> dict[str, Any]:
        """Query parameters; the total walk is sent as its share per seed (``$maxRatersScannedPerSeed``), which the
        strategy sets from the user's seeds."""
        params = super().to_params()
        del params["maxRatersScanned"]
        return params


class KnowledgeCaps(SeedCaps, TraitCaps):
    """Caps and trait weights of :data:`recall_knowledge`."""

    max_tags_per_seed: int = Field(5, ge=0, description="Heaviest tags of each seed used as traits.")
    max_traits: int = Field(60, ge=1, description="Best-scoring shared traits expanded to items.")
    attribute_weight: float = Field(
        1.0, ge=0, description="Weight of a shared item attribute (brand, category, price band, ...)."
    )


class SocialCaps(Caps):
    """Caps of :data:`recall_social`."""

    hop_decay: float = Field(0.5, ge=0, le=1, description="Weight of a friend of a friend; a followee weighs 1.")
    max_followees: int = Field(100, ge=1, description="Followees of the user read (by user id).")
    max_followees_per_followee: int = Field(20, ge=1, description="Followees of each followee read (by user id).")
    max_people: int = Field(50, ge=1, description="Best-weighted followees and friends of friends kept.")
    max_items_scanned_per_person: int = Field(
        3000, ge=1, description="Interactions of each person read, in store order: bounds the cost of a heavy person."
    )
    max_items_per_person: int = Field(
        50, ge=1, description="Positives read per person (highest rated, most recent, id)."
    )


class PopularityCaps(Caps):
    """Caps of :data:`recall_popularity`."""

    window: int = Field(3000, ge=1, description="Most recent timestamped interactions counted.")
    half_life_days: float = Field(180.0, gt=0, description="Age at which an interaction counts half.")
    max_seeds: int = Field(50, ge=1, description="Positives the preferred genres are read from.")
    max_genres: int = Field(3, ge=0, description="Preferred genres kept.")
    genre_boost: float = Field(1.0, ge=0, description="score = pop · (1 + boost · share of its preferred genres).")
    pool_size: int = Field(200, ge=1, description="Most popular unseen items re-scored by genre (at least k).")
    max_peers_scanned_per_attribute: int = Field(
        1000,
        ge=1,
        description="Users of each of the user's attributes read, in store order: bounds the cost of a common "
        "attribute (a country of millions).",
    )
    max_peers_per_attribute: int = Field(
        100,
        ge=0,
        description="Users sharing each of the user's attributes (age band, country, ...) kept as peers (by id).",
    )
    max_items_per_peer: int = Field(50, ge=1, description="Positives read per peer (store order).")
    peer_boost: float = Field(1.0, ge=0, description="score += pop · boost · share of peers who liked the item.")


class SimilarCaps(TraitCaps):
    """Caps and weights of :data:`similar_items`."""

    max_co_raters: int = Field(
        50, ge=1, description="Users with a positive on the item read (fewest interactions first, id)."
    )
    max_items_per_user: int = Field(20, ge=1, description="Positives read per such user (strongest, most recent, id).")
    max_item_tags: int = Field(10, ge=0, description="Heaviest tags of the item used as traits.")
    co_shrinkage: float = Field(
        3.0, ge=0, description="Co-interaction scores are scaled by n / (n + this), n = support."
    )
    co_weight: float = Field(1.0, ge=0, description="Weight of the (max-scaled) co-interaction part.")
    trait_weight: float = Field(1.0, ge=0, description="Weight of the (max-scaled) shared-trait part.")

    @model_validator(mode="after")
    def _some_weight(self) -> SimilarCaps:
        if self.co_weight == 0 and self.trait_weight == 0:
            raise ValueError("co_weight and trait_weight cannot both be 0")
        return self


class RecallStrategy(Protocol):
    """The contract every user recall strategy follows.

    A strategy returns at most ``k`` candidates for ``user_id``, best first (score descending, ties by
    item id ascending), never an item the user already interacted with nor one of
    ``filters.exclude_items``, and only items that pass ``filters``. Each candidate carries up to
    ``max_paths`` explanation paths that exist in the graph. An unknown user gets an empty list
    (popularity: the global list); callers decide whether that is a 404.

    Args:
        driver: An open driver.
        user_id: External user id.
        k: Maximum number of candidates (at least 1).
        filters: Business filters; None = none.
        database: Neo4j database.
        on_timing: Optional callback receiving (strategy name, query seconds).
        history: The user's history read once for every strategy of a request (:class:`History`); None = the
            query reads the user's seeds and seen items itself. Strategies that do not use it ignore it.
        **caps: Overrides of the strategy's caps (snake_case field names of its ``*Caps`` model).

    Returns:
        The candidates, best first.

    Raises:
        ConfigError: ``k`` < 1, an unknown cap or an invalid cap value.
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the query.
    """

    def __call__(
        self,
        driver: Driver,
        user_id: str,
        /,
        k: int = DEFAULT_K,
        filters: RecallFilters | None = None,
        database: str = "neo4j",
        *,
        on_timing: TimingFn | None = None,
        history: History | None = None,
        **caps: Any,
    ) -> list[Candidate]: ...


class CypherRecall(Generic[C]):
    """A recall strategy that is one catalogued query: called as :class:`RecallStrategy` says.

    Args:
        name: The strategy's name (the candidates' ``source``, the timing's label).
        query: Its :mod:`graph.catalog` query, which reads the anchor, ``$k``, the caps and the filters.
        caps: Its caps model.
        doc: What it recalls and along which paths.
        anchor: The query parameter the id called with goes to (``userId``, or ``itemId`` for an item page).
        uses_history: The query reads ``$seedIds`` and ``$seenIds`` (:class:`History`; null: it reads them itself).
    """

    def __init__(
        self, name: str, query: str, caps: type[C], doc: str, anchor: str = "userId", uses_history: bool = False
    ) -> None:
        self.name = name
        self.query = query
        self.caps = caps
        self.anchor = anchor
        self.uses_history = uses_history
        self.__doc__ = doc

    def __call__(
        self,
        driver: Driver,
        anchor_id: str,
        /,
        k: int = DEFAULT_K,
        filters: RecallFilters | None = None,
        database: str = "neo4j",
        *,
        on_timing: TimingFn | None = None,
        history: History | None = None,
        **caps: Any,
    ) -> list[Candidate]:
        """Run the strategy as :class:`RecallStrategy` says, ``anchor_id`` being the user's id (the item's for an item
        page)."""
        return self._call(driver, anchor_id, k, filters, database, on_timing, history, caps)

    def _call(
        self,
        driver: Driver,
        anchor_id: str,
        k: int,
        filters: RecallFilters | None,
        database: str,
        on_timing: TimingFn | None,
        history: History | None,
        caps: dict[str, Any],
        extra: Callable[[C], dict[str, Any]] | None = None,
    ) -> list[Candidate]:
        limits, params = self.prepare(parse_caps(self.caps, caps), k, history)
        if self.uses_history:
            params = {**params, **(NO_HISTORY if history is None else history.params(limits))}
        if extra is not None:
            params = {**params, **extra(limits)}
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        params = {
            self.anchor: anchor_id,
            **params,
            "k": int(k),
            **limits.to_params(),
            **(filters or RecallFilters()).to_params(),
        }
        records, seconds = run_read(self.name, self.query, params, driver, database)
        if on_timing is not None:
            on_timing(self.name, seconds)
        return [
            Candidate(
                item_id=record["item_id"],
                title=record["title"],
                score=float(record["score"]),
                source=self.name,
                explanations=[explanation_from_path(path) for path in record["paths"]],
            )
            for record in records
        ]

    def prepare(self, caps: C, k: int, history: History | None = None) -> tuple[C, dict[str, Any]]:
        """The caps as sent for ``k`` items (and ``history``, when the request has read it) and the query's other
        parameters (none here)."""
        return caps, {}

    def __repr__(self) -> str:
        return f"<recall strategy {self.name}>"


class PopularityWindow:
    """The popularity window of :data:`recall_popularity` (``popularity_window.cypher``: the ``window`` most recent
    positives, time-decayed), the same for every user: read once and then every ``seconds`` instead of once per call.

    Refreshed in the background: a call that finds the held window older than ``seconds`` starts one refresh on a
    thread and goes on with the held one, so a request waits only for the first read (and for a window of other
    caps, read like the first). Thread-safe.

    Args:
        seconds: Age after which the window is read again; 0 = never held (every call reads the interactions).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self._held: dict[tuple, tuple[float, list[list[Any]]]] = {}
        self._refreshing: set[tuple] = set()
        self._lock = threading.Lock()

    def get(self, driver: Driver, caps: PopularityCaps, database: str = "neo4j") -> list[list[Any]] | None:
        """The window for ``caps`` (``[[item_id, pop], ...]``, most popular first), or None when not held.

        Raises:
            DatabaseUnavailableError: Neo4j is unreachable (only when nothing is held for these caps).
        """
        if self.seconds <= 0:
            return None
        key = (id(driver), database, caps.window, caps.half_life_days, caps.min_rating)
        with self._lock:
            held = self._held.get(key)
            stale = held is None or time.monotonic() - held[0] >= self.seconds
            start = held is not None and stale and key not in self._refreshing
            if start:
                self._refreshing.add(key)
        if held is None:
            return self._read(key, driver, caps, database)
        if start:
            threading.Thread(
                target=self._refresh, args=(key, driver, caps, database), name="popularity-window", daemon=True
            ).start()
        return held[1]

    def _read(self, key: tuple, driver: Driver, caps: PopularityCaps, database: str) -> list[list[Any]]:
        params = {"window": caps.window, "halfLifeDays": caps.half_life_days, "minRating": caps.min_rating}
        records, _ = run_read("popularity_window", catalog.POPULARITY_WINDOW, params, driver, database)
        recent = [list(pair) for pair in records[0]["recent"]] if records else []
        with self._lock:
            self._held[key] = (time.monotonic(), recent)
        return recent

    def _refresh(self, key: tuple, driver: Driver, caps: PopularityCaps, database: str) -> None:
        try:
            self._read(key, driver, caps, database)
        except Exception as exc:  # noqa: BLE001 - a failed refresh keeps the held window; the next call retries
            log.warning("popularity window not refreshed: %s", exc)
        finally:
            with self._lock:
                self._refreshing.discard(key)


class _PopularityRecall(CypherRecall[PopularityCaps]):
    def prepare(
        self, caps: PopularityCaps, k: int, history: History | None = None
    ) -> tuple[PopularityCaps, dict[str, Any]]:
        """The pool re-scored by genre holds at least ``k`` items."""
        if caps.pool_size < k:
            caps = caps.model_copy(update={"pool_size": k})
        return caps, {}

    def __call__(
        self,
        driver: Driver,
        anchor_id: str,
        /,
        k: int = DEFAULT_K,
        filters: RecallFilters | None = None,
        database: str = "neo4j",
        *,
        on_timing: TimingFn | None = None,
        history: History | None = None,
        popular: PopularityWindow | None = None,
        **caps: Any,
    ) -> list[Candidate]:
        """As :class:`RecallStrategy` says; ``popular``: the held popularity window (None: the query computes it)."""

        def recent(limits: PopularityCaps) -> dict[str, Any]:
            return {"recent": None if popular is None else popular.get(driver, limits, database)}

        return self._call(driver, anchor_id, k, filters, database, on_timing, history, caps, recent)


class _CollaborativeRecall(CypherRecall[CollaborativeCaps]):
    def prepare(
        self, caps: CollaborativeCaps, k: int, history: History | None = None
    ) -> tuple[CollaborativeCaps, dict[str, Any]]:
        """Each seed reads its share of ``max_raters_scanned`` (:meth:`CollaborativeCaps.raters_per_seed`, the seeds
        counted from ``history``, else as ``max_seeds``)."""
        seeds = caps.max_seeds if history is None else len(history.seeds(caps.max_seeds, caps.min_rating))
        return caps.model_copy(update={"max_raters_scanned_per_seed": caps.raters_per_seed(seeds)}), {}


recall_collaborative = _CollaborativeRecall(
    "collaborative",
    catalog.RECALL_COLLABORATIVE,
    CollaborativeCaps,
    uses_history=True,
    doc="""
    Items liked by the users most similar to the user (see :class:`RecallStrategy`, :class:`CollaborativeCaps`).

    Paths: user -INTERACTED-> seed <-INTERACTED- neighbour -INTERACTED-> item.
    """,
)

recall_knowledge = CypherRecall(
    "knowledge",
    catalog.RECALL_KNOWLEDGE,
    KnowledgeCaps,
    uses_history=True,
    doc="""
    Items sharing directors, actors, tags or genres with the user's positives (see :class:`KnowledgeCaps`).

    Paths: user -INTERACTED-> seed, then seed and item both linked to the same Person, Tag or Genre.
    """,
)

recall_social = CypherRecall(
    "social",
    catalog.RECALL_SOCIAL,
    SocialCaps,
    uses_history=True,
    doc="""
    Items liked by the people the user follows and, damped, by the people they follow (see :class:`SocialCaps`).

    Paths: user -FOLLOWS-> person -INTERACTED-> item, or user -FOLLOWS-> person -FOLLOWS-> person -INTERACTED-> item.
    """,
)

recall_popularity = _PopularityRecall(
    "popularity",
    catalog.RECALL_POPULARITY,
    PopularityCaps,
    uses_history=True,
    doc="""
    Time-decayed popularity, boosted in the user's preferred genres (see :class:`PopularityCaps`).

    The cold-start fallback: works for users without interactions and for ids not in the graph.
    Paths: "Popular lately" without nodes, or user -INTERACTED-> seed -IN_GENRE-> genre <-IN_GENRE- item,
    or user -PREFERS-> genre <-IN_GENRE- item.
    """,
)

similar_items = CypherRecall(
    "similar",
    catalog.SIMILAR_ITEMS,
    SimilarCaps,
    anchor="itemId",
    doc="""
    Items similar to an item through shared users and shared traits (see :class:`SimilarCaps`).

    Called like a :class:`RecallStrategy` with the external id of the item on the page instead of a user id; the
    timing's label is "similar". Returns at most ``k`` items other than that item, best first (ties by item id);
    empty for an unknown item. Paths: item <-INTERACTED- user -INTERACTED-> similar item, or both linked to one
    trait.
    """,
)

#: User recall strategies by name (the API's recall sources).
STRATEGIES: dict[str, RecallStrategy] = {
    "collaborative": recall_collaborative,
    "knowledge": recall_knowledge,
    "social": recall_social,
    "popularity": recall_popularity,
}


__all__ = [
    "DEFAULT_K",
    "History",
    "STRATEGIES",
    "NO_HISTORY",
    "Candidate",
    "CollaborativeCaps",
    "CypherRecall",
    "KnowledgeCaps",
    "PopularityCaps",
    "PopularityWindow",
    "RecallFilters",
    "RecallStrategy",
    "SeedCaps",
    "SimilarCaps",
    "SocialCaps",
    "TimingFn",
    "TraitCaps",
    "recall_collaborative",
    "recall_knowledge",
    "recall_popularity",
    "recall_social",
    "similar_items",
]
