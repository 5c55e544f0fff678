"""Hand-made graph exports for the GNN tests (no Neo4j needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from etl.dataset import Dataset
from graph.export import NO_TIMESTAMP, GraphExport
from schema.model import attribute_id


def make_export(
    interactions: Sequence[tuple[str, str, float | None, int | None]],
    *,
    users: Sequence[str] = (),
    items: Sequence[str] = (),
    item_genres: Sequence[tuple[str, str]] = (),
    item_people: Sequence[tuple[str, str, str]] = (),
    item_tags: Sequence[tuple[str, str, float]] = (),
    follows: Sequence[tuple[str, str]] = (),
    weights: Sequence[float] | None = None,
) -> GraphExport:
    """A GraphExport from (user_id, item_id, rating, timestamp) rows and optional knowledge rows; ``weights``: the
    rows' interaction weights (play counts; default 1 each)."""
    frame = pd.DataFrame(
        {
            "user_id": [r[0] for r in interactions],
            "item_id": [r[1] for r in interactions],
            "rating": [math.nan if r[2] is None else float(r[2]) for r in interactions],
            "weight": [1.0] * len(interactions) if weights is None else [float(w) for w in weights],
            "timestamp": pd.array([NO_TIMESTAMP if r[3] is None else r[3] for r in interactions], dtype="int64"),
        }
    )
    return GraphExport(
        users=sorted({*users, *(r[0] for r in interactions)}),
        items=sorted({*items, *(r[1] for r in interactions)}),
        interactions=frame,
        item_genres=pd.DataFrame(list(item_genres), columns=["item_id", "genre"]),
        item_people=pd.DataFrame(list(item_people), columns=["item_id", "person_id", "role"]),
        item_tags=pd.DataFrame(list(item_tags), columns=["item_id", "tag", "weight"]).astype({"weight": "float64"}),
        follows=pd.DataFrame(list(follows), columns=["follower_id", "followee_id"]),
        user_genres=pd.DataFrame([], columns=["user_id", "genre"]),
    )


def export_from_dataset(dataset: Dataset) -> GraphExport:
    """The GraphExport that loading ``dataset`` into Neo4j and exporting it would give (row order aside)."""
    return GraphExport(
        users=[u.user_id for u in dataset.users],
        items=[i.item_id for i in dataset.items],
        interactions=pd.DataFrame(
            {
                "user_id": [r.user_id for r in dataset.interactions],
                "item_id": [r.item_id for r in dataset.interactions],
                "rating": [math.nan if r.rating is None else r.rating for r in dataset.interactions],
                "weight": [r.weight for r in dataset.interactions],
                "timestamp": pd.array(
                    [NO_TIMESTAMP if r.timestamp is None else r.timestamp for r in dataset.interactions], dtype="int64"
                ),
            }
        ),
        item_genres=pd.DataFrame([(r.item_id, r.genre) for r in dataset.genres], columns=["item_id", "genre"]),
        item_people=pd.DataFrame(
            [(r.item_id, r.person_id, r.role.value) for r in dataset.people], columns=["item_id", "person_id", "role"]
        ),
        item_tags=pd.DataFrame(
            [(r.item_id, r.tag, r.weight) for r in dataset.tags], columns=["item_id", "tag", "weight"]
        ).astype({"weight": "float64"}),
        follows=pd.DataFrame(
            [(r.follower_id, r.followee_id) for r in dataset.follows], columns=["follower_id", "followee_id"]
        ),
        user_genres=pd.DataFrame([], columns=["user_id", "genre"]),
        item_years=pd.DataFrame(
            {
                "item_id": [i.item_id for i in dataset.items],
                "year": [-1 if i.year is None else int(i.year) for i in dataset.items],
            }
        ),
        user_attributes=pd.DataFrame(
            [(r.owner_id, attribute_id(r.kind, r.value)) for r in dataset.user_attributes],
            columns=["user_id", "attribute"],
        ),
    )


def two_communities(
    users_per_side: int = 12, items_per_side: int = 12, per_user: int = 6, seed: int = 0
) -> list[tuple[int, int]]:
    """(user_idx, item_idx) positives of two disjoint communities: users < n like items < m, the others the rest."""
    rng = np.random.default_rng(seed)
    pairs = []
    for side in (0, 1):
        for u in range(users_per_side):
            items = rng.choice(items_per_side, size=per_user, replace=False) + side * items_per_side
            pairs += [(u + side * users_per_side, int(i)) for i in items]
    return pairs
