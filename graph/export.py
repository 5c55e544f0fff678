"""Export of the graph for training: interactions and knowledge edges as columns, in one read transaction.

Every export query returns one record per node of the smaller side (a user with the lists of their
interactions, a genre with its items, ...), so the driver decodes a few thousand records of lists instead
of one record per edge: ml-latest-small (100k interactions) comes out in well under a second, and neither
side holds more than one node's lists besides the columns being built. Ids stay external strings here;
``gnn.data`` turns them into contiguous indices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import repeat

import numpy as np
import pandas as pd
from neo4j import Driver, ManagedTransaction, Record
from neo4j.exceptions import Neo4jError, ServiceUnavailable

from graph import catalog
from schema.errors import DatabaseUnavailableError, KgrecError

log = logging.getLogger(__name__)

#: Timestamp value of an interaction without one (timestamps are epoch seconds >= 0).
NO_TIMESTAMP = -1
#: Year value of an item without a known release year.
NO_YEAR = -1


@dataclass(frozen=True)
class GraphExport:
    """The graph's training-relevant facts as columns of external ids.

    Attributes:
        users: Every user id in the graph (also users without interactions).
        items: Every item id in the graph (also items without interactions).
        interactions: Columns ``user_id, item_id`` (str), ``rating`` (float64, NaN = no rating),
            ``weight`` (float64), ``timestamp`` (int64 epoch seconds, ``NO_TIMESTAMP`` = none), ``polarity``
            (int8: 1, or -1 for a negative interaction, which is never a positive).
        item_genres: Columns ``item_id, genre``.
        item_people: Columns ``item_id, person_id, role`` (``"actor"`` | ``"director"``).
        item_tags: Columns ``item_id, tag, weight`` (float64).
        follows: Columns ``follower_id, followee_id``.
        user_genres: Columns ``user_id, genre`` (genres chosen at onboarding).
        item_years: Columns ``item_id`` (str), ``year`` (int64 release year, ``NO_YEAR`` = unknown); items
            without a row have no known year.
        item_attributes: Columns ``item_id, attribute`` (the attribute's id, ``"<kind>:<value>"``).
        user_attributes: Columns ``user_id, attribute`` (age band, country, occupation, ...: ``"<kind>:<value>"``).
        seconds: Wall time of the export.
    """

    users: list[str]
    items: list[str]
    interactions: pd.DataFrame
    item_genres: pd.DataFrame
    item_people: pd.DataFrame
    item_tags: pd.DataFrame
    follows: pd.DataFrame
    user_genres: pd.DataFrame
    item_years: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"item_id": [], "year": []}).astype({"item_id": object, "year": "int64"})
    )
    item_attributes: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"item_id": [], "attribute": []}, dtype=object)
    )
    user_attributes: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"user_id": [], "attribute": []}, dtype=object)
    )
    seconds: float = field(default=0.0, compare=False)

    def counts(self) -> dict[str, int]:
        """Rows per part, e.g. for logs and tests."""
        return {
            "users": len(self.users),
            "items": len(self.items),
            "interactions": len(self.interactions),
            "item_genres": len(self.item_genres),
            "item_people": len(self.item_people),
            "item_tags": len(self.item_tags),
            "follows": len(self.follows),
            "user_genres": len(self.user_genres),
            "item_attributes": len(self.item_attributes),
            "user_attributes": len(self.user_attributes),
        }


def export_graph(driver: Driver, database: str = "neo4j") -> GraphExport:
    """Read every part of the training snapshot from Neo4j in one read transaction.

    Args:
        driver: An open driver.
        database: Database to read.

    Returns:
        The export; rows come in store order (``gnn.data`` sorts them).

    Raises:
        DatabaseUnavailableError: Neo4j went away.
        KgrecError: Neo4j refused a query.
    """
    started = time.perf_counter()
    try:
        with driver.session(database=database, default_access_mode="READ") as session:
            export = session.execute_read(_read_all)
    except ServiceUnavailable as exc:
        raise DatabaseUnavailableError(f"Neo4j went away during the training export: {exc}") from exc
    except Neo4jError as exc:
        raise KgrecError(f"Neo4j refused the training export: {exc}") from exc
    seconds = time.perf_counter() - started
    log.info("exported %s in %.2fs", export.counts(), seconds)
    return replace(export, seconds=seconds)


def _read_all(tx: ManagedTransaction) -> GraphExport:
    users, interactions = _interactions(tx)
    items = tx.run(catalog.EXPORT_ITEMS).single(strict=True)
    return GraphExport(
        users=users,
        items=list(items["item_ids"]),
        item_years=pd.DataFrame(
            {"item_id": list(items["item_ids"]), "year": np.array(items["years"], dtype=np.int64).reshape(-1)}
        ),
        interactions=interactions,
        item_genres=_expand(tx.run(catalog.EXPORT_ITEM_GENRES), ("genre", "item_id"), ("item_id", "genre")),
        item_people=_expand(
            tx.run(catalog.EXPORT_ITEM_PEOPLE), ("item_id", "person_id", "role"), ("item_id", "person_id", "role")
        ),
        item_tags=_expand(tx.run(catalog.EXPORT_ITEM_TAGS), ("tag", "item_id", "weight"), ("item_id", "tag", "weight")),
        follows=_expand(tx.run(catalog.EXPORT_FOLLOWS), ("follower_id", "followee_id"), ("follower_id", "followee_id")),
        user_genres=_expand(tx.run(catalog.EXPORT_USER_GENRES), ("genre", "user_id"), ("user_id", "genre")),
        item_attributes=_expand(
            tx.run(catalog.EXPORT_ITEM_ATTRIBUTES), ("attribute", "item_id"), ("item_id", "attribute")
        ),
        user_attributes=_expand(
            tx.run(catalog.EXPORT_USER_ATTRIBUTES), ("attribute", "user_id"), ("user_id", "attribute")
        ),
    )


def _interactions(tx: ManagedTransaction) -> tuple[list[str], pd.DataFrame]:
    users: list[str] = []
    user_col: list[str] = []
    item_col: list[str] = []
    ratings: list[float | None] = []
    weights: list[float] = []
    stamps: list[int | None] = []
    polarities: list[int] = []
    for user_id, rows in tx.run(catalog.EXPORT_INTERACTIONS):
        users.append(user_id)
        user_col.extend(repeat(user_id, len(rows)))
        for item_id, rating, weight, stamp, polarity in rows:
            item_col.append(item_id)
            ratings.append(rating)
            weights.append(weight)
            stamps.append(stamp)
            polarities.append(polarity)
    frame = pd.DataFrame(
        {
            "user_id": user_col,
            "item_id": item_col,
            "rating": np.array(ratings, dtype=np.float64),  # None -> NaN
            "weight": np.array(weights, dtype=np.float64),
            "timestamp": _timestamps(stamps),
            "polarity": np.array(polarities, dtype=np.int8),
        }
    )
    return users, frame


def _timestamps(stamps: list[int | None]) -> np.ndarray:
    if None not in stamps:
        return np.array(stamps, dtype=np.int64)
    return np.array([NO_TIMESTAMP if s is None else s for s in stamps], dtype=np.int64)


def _expand(records: Iterable[Record], names: tuple[str, ...], order: tuple[str, ...]) -> pd.DataFrame:
    """Turn records ``(scalar, [values], [aligned values]...)`` into one row per list element.

    Args:
        records: A query result whose first column is a scalar and whose other columns are aligned lists.
        names: Column names in record order.
        order: Column order of the frame (the relationship's start node first).
    """
    columns: list[list[object]] = [[] for _ in names]
    for record in records:
        size = len(record[1])
        columns[0].extend(repeat(record[0], size))
        for column, values in zip(columns[1:], record[1:], strict=True):
            column.extend(values)
    data = {
        name: np.array(column, dtype=np.float64) if name == "weight" else column
        for name, column in zip(names, columns, strict=True)
    }
    return pd.DataFrame(data)[list(order)]
