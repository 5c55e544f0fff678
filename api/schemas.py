"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from api.variants import DEFAULT_VARIANT
from graph.paths import Explanation

#: Longest id or genre name a body may carry.
MAX_NAME_LENGTH = 256
#: Most genres and items an onboarding body may list.
MAX_LIKED_GENRES = 50
MAX_LIKED_ITEMS = 200
#: Interaction timestamps are Unix seconds from 1970-01-01 up to the end of year 9999 (2^63 or more would overflow
#: Neo4j's integers; anything past year 9999 is no date).
MAX_TIMESTAMP = 253_402_300_799
#: The largest interaction weight (play counts and the like; a finite number Neo4j stores and sums exactly enough).
MAX_WEIGHT = 1_000_000.0
#: Ids the API creates (user ids) are read back as one URL path segment: no "/", no control characters, and not "."
#: or ".." (clients and proxies resolve those segments away, so such a user could never be read).
CREATED_ID_PATTERN = r"^(?:[^/\x00-\x1f\x7f.]|\.[^/\x00-\x1f\x7f.]|\.\.[^/\x00-\x1f\x7f])[^/\x00-\x1f\x7f]*$"

_ID = Field(min_length=1, max_length=MAX_NAME_LENGTH)
_CREATED_ID = Field(
    min_length=1,
    max_length=MAX_NAME_LENGTH,
    pattern=CREATED_ID_PATTERN,
    description=(
        "1 to 256 characters, no '/', no control characters, not '.' or '..' (it is read back as a URL path segment)."
    ),
)
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]


class RecommendedItem(BaseModel):
    """One recommended item with its blended score, per-source scores and explanation paths."""

    item_id: str
    title: str | None = None
    score: float = Field(
        description="The item's relevance (higher is more relevant): on the graph path the blend of its sources' "
        "normalised scores, on the model path the model's score for the user. The list's order is the ranking, and "
        "it is not always score order: diversity re-ranking (MMR, KGREC_MMR_LAMBDA) and the new-arrival position can "
        "put an item above one with a higher score. Use the position to order; with KGREC_MMR_LAMBDA=1 and no "
        "new-arrival position the model path's order is score order too."
    )
    sources: dict[str, float] = Field(description="Normalised score from each recall source that found the item.")
    explanations: list[Explanation] = Field(default_factory=list)


class RecommendationsResponse(BaseModel):
    """A ranked list: ``items`` in the order to show them (best first)."""

    user_id: str
    model_version: str
    degraded: bool = Field(
        False,
        description="True when Neo4j (or some recall source) was unreachable and the list is a fallback "
        "(from the model alone: no paths, no titles).",
    )
    variant: str = Field(
        DEFAULT_VARIANT,
        description="The A/B variant that answered (KGREC_VARIANTS; 'default' without variants): a stable hash of the "
        "user id assigns it.",
    )
    recommendation_id: str = Field(
        "",
        description="This list's unique id (a new one for every response, cached or not): send it with POST /feedback "
        "to attribute a click or purchase to the list.",
    )
    items: list[RecommendedItem] = Field(description="Best first: the order to show them (see each item's score).")

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "user_id": "42",
                "model_version": "graph-recall-v1",
                "degraded": False,
                "variant": "default",
                "recommendation_id": "01a24edc822372118880185c604e0c23",
                "items": [
                    {
                        "item_id": "3114",
                        "title": "Toy Story 2 (1999)",
                        "score": 1.32,
                        "sources": {"collaborative": 1.0, "knowledge": 0.53},
                        "explanations": [
                            {
                                "text": "Because you liked Toy Story (1995), which also stars Tom Hanks",
                                "nodes": [
                                    {"label": "User", "id": "42", "name": None},
                                    {"label": "Item", "id": "1", "name": "Toy Story (1995)"},
                                    {"label": "Person", "id": "tom_hanks", "name": "Tom Hanks"},
                                    {"label": "Item", "id": "3114", "name": "Toy Story 2 (1999)"},
                                ],
                                "relationships": [
                                    {"type": "INTERACTED", "start": 0, "end": 1},
                                    {"type": "ACTED_IN", "start": 2, "end": 1},
                                    {"type": "ACTED_IN", "start": 2, "end": 3},
                                ],
                            }
                        ],
                    }
                ],
            }
        }
    )


#: Most members a group request may name.
MAX_GROUP_MEMBERS = 20


class GroupRecommendationsIn(BaseModel):
    """One list for a group of users (friends watching together)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {"user_ids": ["42", "7"], "k": 10, "aggregation": "least_misery", "explain": True}
        },
    )

    user_ids: list[Name] = Field(
        min_length=2,
        max_length=MAX_GROUP_MEMBERS,
        json_schema_extra={"uniqueItems": True},
        description=f"2 to {MAX_GROUP_MEMBERS} distinct user ids, each an existing user (unknown: 404 naming it).",
    )
    k: int | None = Field(None, ge=1, description="Number of items (default KGREC_DEFAULT_K, at most KGREC_MAX_K).")
    aggregation: Literal["average", "least_misery", "most_pleasure"] = Field(
        "average",
        description="How the members' normalised scores combine: their mean (average), their minimum (least_misery: "
        "nobody is left unhappy) or their maximum (most_pleasure: someone loves it).",
    )
    explain: bool = Field(True, description="Include each member's explanation paths.")

    @field_validator("user_ids")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        doubled = sorted({u for u in value if value.count(u) > 1})
        if doubled:
            raise ValueError(f"user_ids must be distinct: {', '.join(repr(u) for u in doubled)} appear more than once")
        return value


class GroupMemberScore(BaseModel):
    """What one member of the group thinks of an item."""

    user_id: str
    score: float = Field(
        description="The member's normalised score of the item: a z-score over the group's candidate items (0 is the "
        "member's mean, 1 one standard deviation above it)."
    )
    serves: bool = Field(description="The item serves this member: their score is at or above their mean (>= 0).")
    explanations: list[Explanation] = Field(
        default_factory=list, description="Paths from this member to the item (only for members it serves)."
    )


class GroupItem(BaseModel):
    """One item of a group list, with every member's score and the paths of the members it serves."""

    item_id: str
    title: str | None = None
    score: float = Field(description="The aggregation of the members' normalised scores (the list's order).")
    members: list[GroupMemberScore] = Field(description="Every member, those the item serves first, best first.")


class GroupRecommendationsResponse(BaseModel):
    """A ranked list for a group: ``items`` in the order to show them (best first)."""

    user_ids: list[str]
    aggregation: str
    model_version: str
    degraded: bool = Field(
        False, description="True when Neo4j was unreachable and the list comes from the model alone (no paths)."
    )
    items: list[GroupItem]
    variant: str = Field(
        DEFAULT_VARIANT,
        description="The A/B variant that answered: assigned by a stable hash of the sorted member ids.",
    )


class SimilarItemsResponse(BaseModel):
    item_id: str
    items: list[RecommendedItem]
    recommendation_id: str | None = Field(
        None,
        description="This list's id, new for every answer: the list is recorded (variant 'similar', no user) when "
        "KGREC_IMPRESSIONS is on; a POST /feedback naming it attributes a click on one of its items, by any user.",
    )


def _whole_number(value: object) -> object:
    """A JSON number with no fractional part (``1700000000.0``) is the integer JSON Schema says it is; anything else
    (``true``, ``1.5``, a string) is left to the strict integer check, which refuses it."""
    if isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
        return int(value)
    return value


class InteractionIn(BaseModel):
    """A new interaction; written to Neo4j and reflected in the user's next recommendations. Ids lose surrounding
    white space, as every loaded row's do (schema.rows): an id of white space alone is refused, not written."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"example": {"user_id": "42", "item_id": "1", "rating": 4.5, "timestamp": 1700000000}},
    )

    user_id: str = _CREATED_ID
    item_id: str = _ID
    rating: float | None = Field(None, ge=0.0, le=10.0, strict=True, allow_inf_nan=False)
    weight: float | None = Field(
        None, ge=0.0, le=MAX_WEIGHT, strict=True, allow_inf_nan=False, description="Default 1.0."
    )
    timestamp: Annotated[int | None, BeforeValidator(_whole_number)] = Field(
        None,
        ge=0,
        le=MAX_TIMESTAMP,
        strict=True,
        description="Unix seconds, 0 (1970) to 253402300799 (the end of year 9999); default: now.",
    )


class InteractionOut(BaseModel):
    user_id: str
    item_id: str
    created_user: bool = False


class FeedbackIn(BaseModel):
    """A feedback event of a user on an item: its type (view, click, like, purchase, dislike, skip, or those of
    KGREC_FEEDBACK_KINDS) is combined into the pair's interaction with the type's weight and polarity. A negative
    type (dislike) makes the item a negative for training; any feedback hides the item from the user's lists for
    good. With the ``recommendation_id`` of the list that showed the item, a click or purchase counts for that list
    and its variant."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "user_id": "42",
                "item_id": "1",
                "type": "click",
                "recommendation_id": "01a24edc822372118880185c604e0c23",
            }
        },
    )

    user_id: str = _CREATED_ID
    item_id: str = _ID
    type: str = Field(
        min_length=1,
        max_length=64,
        description="The feedback type; unknown: 422 (the defaults: view, click, like, purchase, dislike, skip).",
    )
    timestamp: Annotated[int | None, BeforeValidator(_whole_number)] = Field(
        None,
        ge=0,
        le=MAX_TIMESTAMP,
        strict=True,
        description="Unix seconds, 0 (1970) to 253402300799 (the end of year 9999); default: now.",
    )
    recommendation_id: str | None = Field(
        None, min_length=1, max_length=MAX_NAME_LENGTH, description="The list that showed the item (attribution)."
    )


class FeedbackOut(BaseModel):
    """What the feedback did: the pair's interaction as combined, and whether it was attributed to a list."""

    user_id: str
    item_id: str
    type: str
    created_user: bool = False
    polarity: int = Field(description="The pair's polarity after this feedback: 1 positive, -1 negative.")
    weight: float = Field(description="The pair's combined weight after this feedback.")
    attributed: bool = Field(
        description="The feedback counts for the list of recommendation_id (it exists, was this user's and showed "
        "the item)."
    )
    attribution: str = Field(
        description="none (no recommendation_id), attributed, unknown_recommendation (no such list: never served, "
        "or its record was lost) or not_shown (the list is another user's or did not show this item); the feedback is "
        "recorded in every case."
    )
    variant: str | None = Field(None, description="The attributed list's variant.")


class NewUserIn(BaseModel):
    """Onboarding: a new user with the genres and items they say they like and their attributes. Every genre, item
    and attribute must exist: an unknown one is a 422 naming it (``loc`` ``["body", "liked_genres", index]``,
    ``type`` ``unknown_genre``, ``unknown_item`` or ``unknown_attribute``), and nothing is written."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"user_id": "new-user-1", "liked_genres": ["Comedy"], "liked_items": ["1"]}},
    )

    user_id: str = _CREATED_ID
    liked_genres: list[Name] = Field(default_factory=list, max_length=MAX_LIKED_GENRES)
    liked_items: list[Name] = Field(default_factory=list, max_length=MAX_LIKED_ITEMS)
    attributes: list[Name] = Field(
        default_factory=list,
        max_length=MAX_LIKED_GENRES,
        description="Attribute ids '<kind>:<value>' the user has (e.g. 'age:25-34', 'country:FR'), among those a load "
        "created: popularity among users sharing them ranks the user's first lists.",
    )


class NewUserOut(BaseModel):
    user_id: str
    liked_genres: list[str] = Field(description="The genres linked (PREFERS).")
    liked_items: list[str] = Field(description="The items recorded as positives (each once).")
    attributes: list[str] | None = Field(
        None, description="The attributes linked (HAS_ATTRIBUTE); only when the body named attributes."
    )


class Health(BaseModel):
    status: str
    model_version: str | None = Field(None, description="The learned model serving, if any.")


class ModelInfo(BaseModel):
    kind: str | None = Field(description="blend, lightgcn or graphsage; null when no model is promoted.")
    version: str | None
    changed: bool = Field(description="Whether this reload swapped the model.")


class Ready(BaseModel):
    status: str
    neo4j: str
    detail: str | None = None


class FieldError(BaseModel):
    """One reason a request was refused."""

    loc: list[str | int] = Field(
        description='Where: ["body", "timestamp"], ["query", "k"], ["body"] for the whole body.'
    )
    msg: str = Field(description="What is wrong, in words.")
    type: str = Field(description="A stable code (pydantic's error types, e.g. less_than_equal, int_type).")


class ValidationErrorBody(BaseModel):
    """The body of every 422: pydantic's checks and the server's own (k above KGREC_MAX_K, an unknown source)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "detail": [
                    {
                        "loc": ["query", "k"],
                        "msg": "Input should be less than or equal to 100",
                        "type": "less_than_equal",
                    }
                ]
            }
        }
    )

    detail: list[FieldError]


class ErrorBody(BaseModel):
    """The body of the other refusals (401, 403, 404, 409, 413, 415, 503)."""

    detail: str
