"""The write requests: recording an interaction (``POST /interactions``) and onboarding a user (``POST /users``).

Both only write to the graph; the next recommendation request reflects them at once, because answers are cached
under the user's interaction fingerprint (:func:`graph.reads.user_fingerprint`).
"""

from __future__ import annotations

import time

from neo4j import Driver

from api.errors import UnknownEntityError, UnknownNamesError, UserExistsError
from api.schemas import InteractionIn, InteractionOut, NewUserIn, NewUserOut
from graph.reads import (
    interaction_targets,
    read_existing_attributes,
    read_existing_genres,
    read_item_titles,
    user_exists,
)
from graph.writers import BatchWriter, create_user, write_interactions
from schema.rows import InteractionRow


def record_interaction(driver: Driver, body: InteractionIn, database: str = "neo4j") -> InteractionOut:
    """Record one interaction of a user (created if new) with an existing item.

    A missing weight counts 1.0 and a missing timestamp is now.

    Raises:
        UnknownEntityError: The item does not exist.
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    item_found, existed = interaction_targets(driver, body.user_id, body.item_id, database)
    if not item_found:
        raise UnknownEntityError(f"unknown item {body.item_id!r}")
    row = InteractionRow(
        user_id=body.user_id,
        item_id=body.item_id,
        rating=body.rating,
        weight=body.weight if body.weight is not None else 1.0,
        timestamp=body.timestamp if body.timestamp is not None else int(time.time()),
    )
    write_interactions(BatchWriter(driver, database), [row])
    return InteractionOut(user_id=body.user_id, item_id=body.item_id, created_user=not existed)


def onboard_user(driver: Driver, body: NewUserIn, database: str = "neo4j") -> NewUserOut:
    """Create a new user with the genres they like and an interaction (now, weight 1) with each item they like.

    A genre or item that is not in the graph refuses the whole body (nothing is written), naming each unknown one, so
    that a misspelt genre is not dropped without a word.

    Raises:
        UserExistsError: The user exists already.
        UnknownNamesError: Some liked genres, items or attributes do not exist.
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    if user_exists(driver, body.user_id, database=database):
        raise UserExistsError(f"user {body.user_id!r} exists already")
    titles = read_item_titles(driver, body.liked_items, database)
    known_genres = read_existing_genres(driver, body.liked_genres, database)
    unknown = [("liked_genres", n, "genre", g) for n, g in enumerate(body.liked_genres) if g not in known_genres]
    unknown += [("liked_items", n, "item", i) for n, i in enumerate(body.liked_items) if i not in titles]
    if body.attributes:
        known = read_existing_attributes(driver, body.attributes, database)
        unknown += [("attributes", n, "attribute", a) for n, a in enumerate(body.attributes) if a not in known]
    if unknown:
        raise UnknownNamesError(unknown)
    _, genres = create_user(driver, body.user_id, body.liked_genres, database, attributes=body.attributes)
    known_items = [i for i in dict.fromkeys(body.liked_items) if i in titles]
    now = int(time.time())
    rows = [InteractionRow(user_id=body.user_id, item_id=i, weight=1.0, timestamp=now) for i in known_items]
    if rows:
        write_interactions(BatchWriter(driver, database), rows)
    return NewUserOut(
        user_id=body.user_id,
        liked_genres=genres,
        liked_items=known_items,
        attributes=sorted(set(body.attributes)) if body.attributes else None,
    )


__all__ = ["onboard_user", "record_interaction"]
