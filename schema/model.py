"""The canonical graph model: labels, relationship types and property keys.

This module is the single place where graph vocabulary is spelled. Cypher files use the same
spellings; tests check that every DDL statement and query names only members of these enums.
"""

from __future__ import annotations

from enum import StrEnum


class Label(StrEnum):
    """Node labels (PascalCase, singular)."""

    USER = "User"
    ITEM = "Item"
    MOVIE = "Movie"
    ARTIST = "Artist"
    GENRE = "Genre"
    TAG = "Tag"
    PERSON = "Person"
    ACTOR = "Actor"
    DIRECTOR = "Director"


class RelType(StrEnum):
    """Relationship types (UPPER_SNAKE)."""

    INTERACTED = "INTERACTED"
    IN_GENRE = "IN_GENRE"
    ACTED_IN = "ACTED_IN"
    DIRECTED = "DIRECTED"
    HAS_TAG = "HAS_TAG"
    FOLLOWS = "FOLLOWS"
    PREFERS = "PREFERS"


class Role(StrEnum):
    """What a person did for an item; decides the relationship type and the extra label."""

    ACTOR = "actor"
    DIRECTOR = "director"

    @property
    def rel_type(self) -> RelType:
        return RelType.ACTED_IN if self is Role.ACTOR else RelType.DIRECTED

    @property
    def label(self) -> Label:
        return Label.ACTOR if self is Role.ACTOR else Label.DIRECTOR


#: Domain labels an item may carry besides :Item.
ITEM_DOMAIN_LABELS: frozenset[Label] = frozenset({Label.MOVIE, Label.ARTIST})

#: The key property of each keyed label: external ids, stored as strings.
NODE_KEYS: dict[Label, str] = {
    Label.USER: "userId",
    Label.ITEM: "itemId",
    Label.GENRE: "name",
    Label.TAG: "name",
    Label.PERSON: "personId",
}

#: Properties per label (key first), for documentation and `kgrec schema show`.
NODE_PROPERTIES: dict[Label, tuple[str, ...]] = {
    Label.USER: (
        "userId",
        "interactionsRev",
    ),  # interactionsRev: bumped by every interaction write that changes something
    Label.ITEM: ("itemId", "title", "year", "imdbId"),
    Label.GENRE: ("name",),
    Label.TAG: ("name",),
    Label.PERSON: ("personId", "name"),
}

#: (start label, type, end label, properties) for every relationship of the model.
RELATIONSHIPS: tuple[tuple[Label, RelType, Label, tuple[str, ...]], ...] = (
    (Label.USER, RelType.INTERACTED, Label.ITEM, ("rating", "weight", "timestamp")),
    (Label.ITEM, RelType.IN_GENRE, Label.GENRE, ()),
    (Label.PERSON, RelType.ACTED_IN, Label.ITEM, ()),
    (Label.PERSON, RelType.DIRECTED, Label.ITEM, ()),
    (Label.ITEM, RelType.HAS_TAG, Label.TAG, ("weight",)),
    (Label.USER, RelType.FOLLOWS, Label.USER, ()),
    (Label.USER, RelType.PREFERS, Label.GENRE, ()),
)
