"""Graph recall: candidate items for a user (or an item page), each with the paths that explain it.

Every strategy is one catalogued Cypher query (``graph/queries/recall_<name>.cypher``) run in a read
transaction. The queries bound their fan-out with caps (seeds, neighbours, items per hop) so that a
heavy user does not expand the whole graph; the caps are typed per strategy below and can be
overridden per call as keyword arguments (``recall_collaborative(driver, "42", max_neighbours=50)``).
Filters are applied inside the queries, before ``LIMIT $k``, so ``k`` results still come back after
filtering when the graph has them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from neo4j import READ_ACCESS, Driver
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from graph import catalog
from graph.paths import Explanation, explanation_from_path
from schema.errors import ConfigError, DatabaseUnavailableError, KgrecError

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
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exclude_items: list[str] = Field(default_factory=list)
    include_genres: list[str] = Field(default_factory=list)
    exclude_genres: list[str] = Field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None

    @property
    def narrows(self) -> bool:
        """Whether a genre or year filter is set (beyond excluding named items)."""
        return bool(self.include_genres or self.exclude_genres or self.year_min is not None
                    or self.year_max is not None)

    def to_params(self) -> dict[str, Any]:
        """Query parameters (camelCase) of these filters."""
        return {
            "excludeItems": list(self.exclude_items),
            "includeGenres": list(self.include_genres),
            "excludeGenres": list(self.exclude_genres),
            "yearMin": self.year_min,
            "yearMax": self.year_max,
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


class _Caps(BaseModel):
    """Fan-out caps and weights of one strategy; sent to its query as camelCase parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    min_rating: float = Field(4.0, description="Ratings at or above this are positives; unrated interactions always are.")
    max_paths: int = Field(3, ge=0, le=10, description="Explanation paths kept per candidate.")

    def to_params(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)


class CollaborativeCaps(_Caps):
    """Caps of :func:`recall_collaborative`."""

    max_seeds: int = Field(50, ge=1, description="The user's strongest, most recent positives used as seeds.")
    max_co_raters_per_seed: int = Field(50, ge=1, description="Co-raters read per seed (store order).")
    max_neighbours: int = Field(30, ge=1, description="Most similar users kept.")
    max_items_per_neighbour: int = Field(30, ge=1, description="Positives read per neighbour (store order).")


class KnowledgeCaps(_Caps):
    """Caps and trait weights of :func:`recall_knowledge`."""

    max_seeds: int = Field(50, ge=1, description="The user's strongest, most recent positives used as seeds.")
    max_tags_per_seed: int = Field(5, ge=0, description="Heaviest tags of each seed used as traits.")
    max_trait_degree: int = Field(2000, ge=1, description="Traits linked to more items than this are skipped.")
    max_traits: int = Field(60, ge=1, description="Best-scoring shared traits expanded to items.")
    max_items_per_trait: int = Field(30, ge=1, description="Items read per trait (store order).")
    director_weight: float = Field(3.0, ge=0, description="Weight of a shared director.")
    actor_weight: float = Field(2.0, ge=0, description="Weight of a shared actor.")
    tag_weight: float = Field(1.0, ge=0, description="Weight of a shared tag.")
    genre_weight: float = Field(0.5, ge=0, description="Weight of a shared genre.")


class SocialCaps(_Caps):
    """Caps of :func:`recall_social`."""

    hop_decay: float = Field(0.5, ge=0, le=1, description="Weight of a friend of a friend; a followee weighs 1.")
    max_followees: int = Field(100, ge=1, description="Followees of the user read (by user id).")
    max_followees_per_followee: int = Field(20, ge=1, description="Followees of each followee read (by user id).")
    max_people: int = Field(50, ge=1, description="Best-weighted followees and friends of friends kept.")
    max_items_per_person: int = Field(50, ge=1, description="Positives read per person (store order).")


class PopularityCaps(_Caps):
    """Caps of :func:`recall_popularity`."""

    window: int = Field(3000, ge=1, description="Most recent timestamped interactions counted.")
    half_life_days: float = Field(180.0, gt=0, description="Age at which an interaction counts half.")
    max_seeds: int = Field(50, ge=1, description="Positives the preferred genres are read from.")
    max_genres: int = Field(3, ge=0, description="Preferred genres kept.")
    genre_boost: float = Field(1.0, ge=0, description="score = pop · (1 + boost · share of its preferred genres).")
    pool_size: int = Field(200, ge=1, description="Most popular unseen items re-scored by genre (at least k).")


class SimilarCaps(_Caps):
    """Caps and weights of :func:`similar_items`."""

    max_co_raters: int = Field(50, ge=1, description="Users with a positive on the item read (store order).")
    max_items_per_user: int = Field(20, ge=1, description="Positives read per such user (store order).")
    max_item_tags: int = Field(10, ge=0, description="Heaviest tags of the item used as traits.")
    max_trait_degree: int = Field(2000, ge=1, description="Traits linked to more items than this are skipped.")
    max_items_per_trait: int = Field(30, ge=1, description="Items read per trait (store order).")
    co_shrinkage: float = Field(3.0, ge=0, description="Co-interaction scores are scaled by n / (n + this), n = support.")
    co_weight: float = Field(1.0, ge=0, description="Weight of the (max-scaled) co-interaction part.")
    trait_weight: float = Field(1.0, ge=0, description="Weight of the (max-scaled) shared-trait part.")
    director_weight: float = Field(3.0, ge=0, description="Weight of a shared director.")
    actor_weight: float = Field(2.0, ge=0, description="Weight of a shared actor.")
    tag_weight: float = Field(1.0, ge=0, description="Weight of a shared tag.")
    genre_weight: float = Field(0.5, ge=0, description="Weight of a shared genre.")

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
        k: int = DEFAULT_K,
        filters: RecallFilters | None = None,
        database: str = "neo4j",
        *,
        on_timing: TimingFn | None = None,
        **caps: Any,
    ) -> list[Candidate]: ...


def recall_collaborative(
    driver: Driver,
    user_id: str,
    k: int = DEFAULT_K,
    filters: RecallFilters | None = None,
    database: str = "neo4j",
    *,
    on_timing: TimingFn | None = None,
    **caps: Any,
) -> list[Candidate]:
    """Items liked by the users most similar to ``user_id`` (see :class:`RecallStrategy`, :class:`CollaborativeCaps`).

    Paths: user -INTERACTED-> seed <-INTERACTED- neighbour -INTERACTED-> item.
    """
    return _recall(
        "collaborative", catalog.RECALL_COLLABORATIVE, _caps(CollaborativeCaps, caps),
        driver, {"userId": user_id}, k, filters, database, on_timing,
    )


def recall_knowledge(
    driver: Driver,
    user_id: str,
    k: int = DEFAULT_K,
    filters: RecallFilters | None = None,
    database: str = "neo4j",
    *,
    on_timing: TimingFn | None = None,
    **caps: Any,
) -> list[Candidate]:
    """Items sharing directors, actors, tags or genres with the user's positives (see :class:`KnowledgeCaps`).

    Paths: user -INTERACTED-> seed, then seed and item both linked to the same Person, Tag or Genre.
    """
    return _recall(
        "knowledge", catalog.RECALL_KNOWLEDGE, _caps(KnowledgeCaps, caps),
        driver, {"userId": user_id}, k, filters, database, on_timing,
    )


def recall_social(
    driver: Driver,
    user_id: str,
    k: int = DEFAULT_K,
    filters: RecallFilters | None = None,
    database: str = "neo4j",
    *,
    on_timing: TimingFn | None = None,
    **caps: Any,
) -> list[Candidate]:
    """Items liked by the people the user follows and, damped, by the people they follow (see :class:`SocialCaps`).

    Paths: user -FOLLOWS-> person -INTERACTED-> item, or user -FOLLOWS-> person -FOLLOWS-> person -INTERACTED-> item.
    """
    return _recall(
        "social", catalog.RECALL_SOCIAL, _caps(SocialCaps, caps),
        driver, {"userId": user_id}, k, filters, database, on_timing,
    )


def recall_popularity(
    driver: Driver,
    user_id: str,
    k: int = DEFAULT_K,
    filters: RecallFilters | None = None,
    database: str = "neo4j",
    *,
    on_timing: TimingFn | None = None,
    **caps: Any,
) -> list[Candidate]:
    """Time-decayed popularity, boosted in the user's preferred genres (see :class:`PopularityCaps`).

    The cold-start fallback: works for users without interactions and for ids not in the graph.
    Paths: "Popular lately" without nodes, or user -INTERACTED-> seed -IN_GENRE-> genre <-IN_GENRE- item,
    or user -PREFERS-> genre <-IN_GENRE- item.
    """
    limits = _caps(PopularityCaps, caps)
    if limits.pool_size < k:
        limits = limits.model_copy(update={"pool_size": k})
    return _recall(
        "popularity", catalog.RECALL_POPULARITY, limits, driver, {"userId": user_id}, k, filters, database, on_timing
    )


def similar_items(
    driver: Driver,
    item_id: str,
    k: int = DEFAULT_K,
    filters: RecallFilters | None = None,
    database: str = "neo4j",
    *,
    on_timing: TimingFn | None = None,
    **caps: Any,
) -> list[Candidate]:
    """Items similar to ``item_id`` through shared users and shared traits (see :class:`SimilarCaps`).

    Args:
        driver: An open driver.
        item_id: External id of the item on the page.
        k: Maximum number of candidates (at least 1).
        filters: Business filters; None = none.
        database: Neo4j database.
        on_timing: Optional callback receiving ("similar", query seconds).
        **caps: Overrides of :class:`SimilarCaps` fields.

    Returns:
        At most ``k`` items other than ``item_id``, best first (ties by item id); empty for an unknown
        item. Paths: item <-INTERACTED- user -INTERACTED-> similar item, or both linked to one trait.

    Raises:
        ConfigError: ``k`` < 1 or an invalid cap.
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the query.
    """
    return _recall(
        "similar", catalog.SIMILAR_ITEMS, _caps(SimilarCaps, caps),
        driver, {"itemId": item_id}, k, filters, database, on_timing,
    )


def user_exists(driver: Driver, user_id: str, database: str = "neo4j") -> bool:
    """Whether a user with this id is in the graph.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    return bool(_read("user_exists", catalog.USER_EXISTS, {"userId": user_id}, driver, database)[0][0]["exists"])


def most_active_users(driver: Driver, limit: int, database: str = "neo4j") -> list[str]:
    """The ``limit`` users with the most interactions, most first (ties by user id).

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    records, _ = _read("most_active_users", catalog.MOST_ACTIVE_USERS, {"limit": int(limit)}, driver, database)
    return [record["user_id"] for record in records]


def item_exists(driver: Driver, item_id: str, database: str = "neo4j") -> bool:
    """Whether an item with this id is in the graph.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    return bool(_read("item_exists", catalog.ITEM_EXISTS, {"itemId": item_id}, driver, database)[0][0]["exists"])


#: User recall strategies by name (the API's recall sources).
STRATEGIES: dict[str, RecallStrategy] = {
    "collaborative": recall_collaborative,
    "knowledge": recall_knowledge,
    "social": recall_social,
    "popularity": recall_popularity,
}


def _caps(model: type[_Caps], overrides: Mapping[str, Any]) -> _Caps:
    try:
        return model(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'caps'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid {model.__name__}: {problems}") from exc


def _recall(
    name: str,
    query: str,
    caps: _Caps,
    driver: Driver,
    anchor: dict[str, str],
    k: int,
    filters: RecallFilters | None,
    database: str,
    on_timing: TimingFn | None,
) -> list[Candidate]:
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    params = {**anchor, "k": int(k), **caps.to_params(), **(filters or RecallFilters()).to_params()}
    records, seconds = _read(name, query, params, driver, database)
    if on_timing is not None:
        on_timing(name, seconds)
    return [
        Candidate(
            item_id=record["item_id"],
            title=record["title"],
            score=float(record["score"]),
            source=name,
            explanations=[explanation_from_path(path) for path in record["paths"]],
        )
        for record in records
    ]


def _read(name: str, query: str, params: dict[str, Any], driver: Driver, database: str) -> tuple[list[Any], float]:
    started = time.perf_counter()
    try:
        # An auto-commit read: one round trip (a managed transaction adds a COMMIT), and no retry loop that
        # would hold a request for seconds while Neo4j is away; every query here is a single read statement.
        with driver.session(database=database, default_access_mode=READ_ACCESS) as session:
            records = list(session.run(query, params))
    except (ServiceUnavailable, SessionExpired) as exc:
        raise DatabaseUnavailableError(f"Neo4j is unreachable ({name}): {' '.join(str(exc).split())}") from exc
    except Neo4jError as exc:
        raise KgrecError(f"Neo4j refused the {name} query: {exc}") from exc
    return records, time.perf_counter() - started


__all__ = [
    "DEFAULT_K",
    "STRATEGIES",
    "Candidate",
    "CollaborativeCaps",
    "KnowledgeCaps",
    "PopularityCaps",
    "RecallFilters",
    "RecallStrategy",
    "SimilarCaps",
    "SocialCaps",
    "TimingFn",
    "item_exists",
    "most_active_users",
    "recall_collaborative",
    "recall_knowledge",
    "recall_popularity",
    "recall_social",
    "similar_items",
    "user_exists",
]
