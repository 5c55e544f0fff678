"""Explain items a ranker chose: concrete graph paths from a user to each of a given set of items.

The API ranks items in-process (embeddings, item-item models) and asks Neo4j only *why*: one call to
:func:`explain_items` per request explains up to :data:`MAX_EXPLAIN_ITEMS` items in one round trip
(``graph/queries/explain_items.cypher``). Before ranking it reads what it needs about the user with
:func:`graph.reads.user_context` (``graph/queries/user_context.cypher``), also one round trip.

Paths have the same model and sentences as recall's (:mod:`graph.paths`); their kinds, best first:
co-interaction, shared trait (people and tags before genres, rarest first), followee, preferred genre.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from neo4j import Driver
from pydantic import BaseModel, ConfigDict, Field

from graph import catalog
from graph.paths import Explanation, explanation_from_path
from graph.query import Caps, parse_caps, run_read
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
    params = {
        "userId": user_id,
        "itemIds": wanted,
        "seedIds": seeds,
        **limits.to_params(),
        **(filters or RecallFilters()).to_params(),
    }
    records, seconds = run_read("explain", catalog.EXPLAIN_ITEMS, params, driver, database)
    if on_timing is not None:
        on_timing("explain", seconds)
    found = {
        record["item_id"]: ExplainedItem(
            item_id=record["item_id"],
            title=record["title"],
            explanations=[explanation_from_path(path) for path in record["paths"]],
        )
        for record in records
    }
    return {item_id: found[item_id] for item_id in wanted if item_id in found}


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
    positives = [i for i in context.interactions if i.positive(min_rating)]
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
    "explain_items",
    "strongest_seeds",
]
