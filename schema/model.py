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
    ATTRIBUTE = "Attribute"
    RECOMMENDATION = "Recommendation"


class RelType(StrEnum):
    """Relationship types (UPPER_SNAKE)."""

    INTERACTED = "INTERACTED"
    IN_GENRE = "IN_GENRE"
    ACTED_IN = "ACTED_IN"
    DIRECTED = "DIRECTED"
    HAS_TAG = "HAS_TAG"
    FOLLOWS = "FOLLOWS"
    PREFERS = "PREFERS"
    HAS_ATTRIBUTE = "HAS_ATTRIBUTE"
    SHOWN = "SHOWN"


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


class Polarity(StrEnum):
    """Whether an interaction says the user wants the item (positive) or does not (negative: a return, a dislike).

    Stored on INTERACTED as ``polarity`` = -1 for a negative interaction and left unset for a positive one (so graphs
    loaded before polarity existed read as positive): readers test ``coalesce(r.polarity, 1) > 0``. A negative
    interaction is never a positive for recall, explanations or training, and still hides the item from its user
    (every interacted item is "seen").
    """

    POSITIVE = "positive"
    NEGATIVE = "negative"

    @property
    def sign(self) -> int:
        return -1 if self is Polarity.NEGATIVE else 1


#: Domain labels shipped loaders give items besides :Item; a mapping may name any other PascalCase label that is
#: not one of the model's own labels (:func:`check_item_label`).
ITEM_DOMAIN_LABELS: frozenset[Label] = frozenset({Label.MOVIE, Label.ARTIST})

#: Labels an item may never carry: the model's own node kinds.
RESERVED_ITEM_LABELS: frozenset[str] = frozenset(str(label) for label in Label) - {str(x) for x in ITEM_DOMAIN_LABELS}


def check_item_label(label: str) -> str:
    """Return ``label`` if items may carry it (PascalCase letters and digits, not a model label), else raise ValueError."""
    import re

    if not re.fullmatch(r"[A-Z][A-Za-z0-9]{0,63}", label):
        raise ValueError(f"item label {label!r} must be PascalCase letters and digits, e.g. Product or Book")
    if label in RESERVED_ITEM_LABELS:
        raise ValueError(
            f"item label {label!r} is one of the model's own labels ({', '.join(sorted(RESERVED_ITEM_LABELS))})"
        )
    return label


#: The key property of each keyed label: external ids, stored as strings.
NODE_KEYS: dict[Label, str] = {
    Label.USER: "userId",
    Label.ITEM: "itemId",
    Label.GENRE: "name",
    Label.TAG: "name",
    Label.PERSON: "personId",
    Label.ATTRIBUTE: "attributeId",
    Label.RECOMMENDATION: "recommendationId",
}

#: Properties per label (key first), for documentation and `kgrec schema show`.
NODE_PROPERTIES: dict[Label, tuple[str, ...]] = {
    Label.USER: (
        "userId",
        "interactionsRev",
        "listsShown",
        "shownItems",
        "shownCounts",
        "shownTimes",
        "shownLists",
    ),  # interactionsRev: bumped by every interaction write that changes something; listsShown: lists recorded;
    # shown*: the user's exposure, parallel arrays from the least to the most recently shown item, bounded (item ids,
    # times shown, last shown in epoch seconds, the user's listsShown after the list that last showed it)
    # hidden, availableFrom, availableUntil (epoch seconds): the run-time catalogue (POST/PATCH /items); an item
    # hidden or outside its availability window is never recommended. addedAt: when the API added it (epoch seconds).
    # impressions, clicks: times recorded lists showed the item, and clicks attributed to them (exploration's counts).
    Label.ITEM: (
        "itemId",
        "title",
        "year",
        "imdbId",
        "hidden",
        "availableFrom",
        "availableUntil",
        "addedAt",
        "impressions",
        "clicks",
    ),
    Label.GENRE: ("name",),
    Label.TAG: ("name",),
    Label.PERSON: ("personId", "name"),
    Label.ATTRIBUTE: ("attributeId", "kind", "value"),  # attributeId = "<kind>:<value>", e.g. "brand:Acme"
    # one per list served (append-only): itemIds in the order shown (position = index); clickedItemIds and
    # convertedItemIds: the shown items a feedback attributed to this list clicked or converted (each once)
    Label.RECOMMENDATION: (
        "recommendationId",
        "userId",
        "variant",
        "modelVersion",
        "shownAt",
        "itemIds",
        "clickedItemIds",
        "convertedItemIds",
    ),
}

#: (start label, type, end label, properties) for every relationship of the model.
RELATIONSHIPS: tuple[tuple[Label, RelType, Label, tuple[str, ...]], ...] = (
    # polarity: -1 for a negative interaction, unset = positive; kinds/kindCounts: the interaction kinds seen for the
    # pair (sorted) and how often each occurred, unset for data without kinds
    (Label.USER, RelType.INTERACTED, Label.ITEM, ("rating", "weight", "timestamp", "polarity", "kinds", "kindCounts")),
    (Label.ITEM, RelType.IN_GENRE, Label.GENRE, ()),
    (Label.PERSON, RelType.ACTED_IN, Label.ITEM, ()),
    (Label.PERSON, RelType.DIRECTED, Label.ITEM, ()),
    (Label.ITEM, RelType.HAS_TAG, Label.TAG, ("weight",)),
    (Label.USER, RelType.FOLLOWS, Label.USER, ()),
    (Label.USER, RelType.PREFERS, Label.GENRE, ()),
    (Label.ITEM, RelType.HAS_ATTRIBUTE, Label.ATTRIBUTE, ()),
    (Label.USER, RelType.HAS_ATTRIBUTE, Label.ATTRIBUTE, ()),
    # exposure as graphs recorded before the users' exposure arrays held it (count, lastShown, lastList = the user's
    # listsShown when last shown; userId, itemId: the pair's key): converted once into the arrays and deleted
    # (graph/queries/convert_shown.cypher); nothing writes it any more
    (Label.USER, RelType.SHOWN, Label.ITEM, ("count", "lastShown", "lastList", "userId", "itemId")),
)


def attribute_id(kind: str, value: str) -> str:
    """The key of an attribute node: ``brand`` + ``Acme`` → ``brand:Acme``."""
    return f"{kind}:{value}"
