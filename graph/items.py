"""The run-time catalogue in the graph: adding an item, changing its visibility and availability window, reading the
items the catalogue restricts, and knowledge recall among new items.

An item is *available* at time ``now`` unless it is hidden (``hidden``) or outside its availability window
(``availableFrom <= now < availableUntil``, either bound optional; epoch seconds). Every recall, similar-items and
explain query applies that rule in Cypher (``$now``, :class:`graph.recall.RecallFilters`); the API also keeps the
restricted items in memory (:func:`read_restricted_items`) for the model's ranking, which does not ask the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from neo4j import Driver

from graph import catalog
from graph.errors import database_errors
from graph.paths import explanation_from_path
from graph.query import run_read
from graph.recall import Candidate, KnowledgeCaps, RecallFilters


@dataclass(frozen=True)
class CatalogueItem:
    """An item as the run-time catalogue sees it (:func:`read_catalogue_item`)."""

    item_id: str
    title: str | None
    year: int | None
    labels: tuple[str, ...]
    genres: frozenset[str]
    people: frozenset[tuple[str, str, str]]  # (person_id, name, role)
    tags: frozenset[tuple[str, float]]
    attributes: frozenset[tuple[str, str]]
    hidden: bool
    available_from: int | None
    available_until: int | None


@dataclass(frozen=True)
class Restriction:
    """One item the catalogue restricts or added (:func:`read_restricted_items`)."""

    item_id: str
    hidden: bool
    available_from: int | None
    available_until: int | None
    added_at: int | None

    def available(self, now: int) -> bool:
        """Whether the item may be recommended at ``now`` (epoch seconds)."""
        if self.hidden:
            return False
        if self.available_from is not None and now < self.available_from:
            return False
        return self.available_until is None or now < self.available_until


def read_catalogue_item(driver: Driver, item_id: str, database: str = "neo4j") -> CatalogueItem | None:
    """The item ``item_id`` with its genres, people, tags, attributes and availability; None when it does not exist.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    records, _ = run_read("catalogue_item", catalog.CATALOGUE_ITEM, {"itemId": item_id}, driver, database)
    if not records:
        return None
    r = records[0]
    return CatalogueItem(
        item_id=r["item_id"],
        title=r["title"],
        year=r["year"],
        labels=tuple(sorted(r["labels"])),
        genres=frozenset(r["genres"]),
        people=frozenset((p["person_id"], p["name"], p["role"]) for p in r["people"]),
        tags=frozenset((t["tag"], float(t["weight"] if t["weight"] is not None else 1.0)) for t in r["tags"]),
        attributes=frozenset((a["kind"], a["value"]) for a in r["attributes"]),
        hidden=bool(r["hidden"]),
        available_from=r["available_from"],
        available_until=r["available_until"],
    )


def create_item(driver: Driver, params: dict[str, Any], database: str = "neo4j") -> bool:
    """Add (or re-add, unchanged) one item with its traits in one transaction (``create_item.cypher``).

    Args:
        params: The query's parameters (``itemId``, ``title``, ``year``, ``labels``, ``genres``, ``people``,
            ``tags``, ``attributes``, ``hidden``, ``availableFrom``, ``availableUntil``, ``addedAt``).

    Returns:
        Whether the item was created (False: it existed).

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    with database_errors("create_item", gone="Neo4j went away during a write"):
        records, _, _ = driver.execute_query(catalog.CREATE_ITEM, params, database_=database, routing_="w")
    return bool(records[0]["created"])


def update_item(
    driver: Driver, item_id: str, changes: dict[str, Any], database: str = "neo4j"
) -> dict[str, Any] | None:
    """Change the fields of ``changes`` (``title``, ``hidden``, ``available_from``, ``available_until``; None removes
    a bound) of one item.

    Returns:
        The item's ``item_id``, ``title``, ``hidden``, ``available_from``, ``available_until`` after the change; None
        when it does not exist.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    params = {
        "itemId": item_id,
        "fields": sorted(changes),
        "title": changes.get("title"),
        "hidden": changes.get("hidden"),
        "availableFrom": changes.get("available_from"),
        "availableUntil": changes.get("available_until"),
    }
    with database_errors("update_item", gone="Neo4j went away during a write"):
        records, _, _ = driver.execute_query(catalog.UPDATE_ITEM, params, database_=database, routing_="w")
    return records[0].data() if records else None


def read_restricted_items(driver: Driver, database: str = "neo4j") -> list[Restriction]:
    """Every hidden item, item with an availability window, and item added through the API.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    records, _ = run_read("restricted_items", catalog.RESTRICTED_ITEMS, {}, driver, database)
    found: dict[str, Restriction] = {}
    for r in records:
        found[r["item_id"]] = Restriction(
            item_id=r["item_id"],
            hidden=bool(r["hidden"]),
            available_from=r["available_from"],
            available_until=r["available_until"],
            added_at=r["added_at"],
        )
    return list(found.values())


def recall_new_arrivals(
    driver: Driver,
    user_id: str,
    item_ids: Sequence[str],
    seed_ids: Sequence[str],
    *,
    k: int,
    max_paths: int = 3,
    filters: RecallFilters | None = None,
    database: str = "neo4j",
) -> list[Candidate]:
    """Knowledge recall among ``item_ids`` (new items no model knows): those sharing a trait with ``seed_ids`` (the
    user's strongest positives), best first, each with up to ``max_paths`` ``new_arrival`` paths; the trait weights
    are :class:`graph.recall.KnowledgeCaps`'s.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    if not item_ids or not seed_ids or k < 1:
        return []
    caps = KnowledgeCaps()
    params = {
        "userId": user_id,
        "itemIds": list(item_ids),
        "seedIds": list(seed_ids),
        "k": int(k),
        "maxSeeds": caps.max_seeds,
        "maxPaths": int(max_paths),
        "directorWeight": caps.director_weight,
        "actorWeight": caps.actor_weight,
        "tagWeight": caps.tag_weight,
        "genreWeight": caps.genre_weight,
        "attributeWeight": caps.attribute_weight,
        **(filters or RecallFilters()).to_params(),
    }
    records, _ = run_read("new_arrivals", catalog.NEW_ARRIVALS, params, driver, database)
    return [
        Candidate(
            item_id=r["item_id"],
            title=r["title"],
            score=float(r["score"]),
            source="knowledge",
            explanations=[explanation_from_path(path) for path in r["paths"]],
        )
        for r in records
    ]


__all__ = [
    "CatalogueItem",
    "Restriction",
    "create_item",
    "read_catalogue_item",
    "read_restricted_items",
    "recall_new_arrivals",
    "update_item",
]
