"""Explanation paths: the pydantic models recall returns, and the sentences that describe them.

Recall queries return each path as a plain map ``{reason, nodes: [{label, id, name}], rels: [{type,
start, end}]}``; :func:`explanation_from_path` validates it into an :class:`Explanation` and writes its
text. A node's ``id`` is the key of its label (userId, itemId, personId, the name of a Genre or Tag, the attributeId
of an Attribute, whose name is its value);
a relationship's ``start``/``end`` index into ``nodes`` in the direction the relationship is stored.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schema.errors import KgrecError

NodeLabel = Literal["User", "Item", "Genre", "Tag", "Person", "Attribute"]
RelationshipType = Literal[
    "INTERACTED", "IN_GENRE", "ACTED_IN", "DIRECTED", "HAS_TAG", "FOLLOWS", "PREFERS", "HAS_ATTRIBUTE"
]


class Reason(StrEnum):
    """Why a recall query produced a path; decides the sentence."""

    CO_INTERACTION = "co_interaction"
    SHARED_TRAIT = "shared_trait"
    FOLLOWEE = "followee"
    FOLLOWEE_OF_FOLLOWEE = "followee_of_followee"
    POPULAR = "popular"
    POPULAR_IN_GENRE = "popular_in_genre"
    POPULAR_WITH_PEERS = "popular_with_peers"
    POPULAR_OVERALL = "popular_overall"
    POPULAR_OVERALL_IN_GENRE = "popular_overall_in_genre"
    SIMILAR_CO_INTERACTION = "similar_co_interaction"
    SIMILAR_TRAIT = "similar_trait"
    PREFERRED_GENRE = "preferred_genre"
    TASTE_MATCH = "taste_match"
    NEW_ARRIVAL = "new_arrival"


class PathNode(BaseModel):
    """One node of a path: its label, its key and a display name (title or name; None for users)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: NodeLabel
    id: str
    name: str | None = None


class PathRel(BaseModel):
    """One relationship of a path, as indexes into the path's nodes in its stored direction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: RelationshipType
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class Explanation(BaseModel):
    """A readable reason with the concrete graph path behind it (empty for plain popularity)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    nodes: list[PathNode] = Field(default_factory=list)
    relationships: list[PathRel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _indexes_point_at_nodes(self) -> Explanation:
        for rel in self.relationships:
            if rel.start >= len(self.nodes) or rel.end >= len(self.nodes):
                where = f"{rel.type} {rel.start}->{rel.end}"
                raise ValueError(f"relationship {where} points outside the {len(self.nodes)} nodes")
        return self


M = TypeVar("M", bound=BaseModel)


def constructed(cls: type[M], values: dict[str, Any]) -> M:
    """``cls.model_construct(**values)`` for ``values`` that give every field of ``cls`` in its order, right by
    construction: the same instance (fields, fields set, equality, JSON), made without ``model_construct``'s per-call
    walk over the fields and their defaults (a miss builds a few hundred path models). ``values`` becomes the
    instance's ``__dict__``: do not reuse it."""
    made = cls.__new__(cls)
    object.__setattr__(made, "__dict__", values)
    object.__setattr__(made, "__pydantic_fields_set__", set(values))
    object.__setattr__(made, "__pydantic_extra__", None)
    object.__setattr__(made, "__pydantic_private__", None)
    return made


class PathShapeError(KgrecError):
    """A recall query returned a path whose shape does not fit its reason (a bug in the query)."""


def explanation_from_path(raw: Mapping[str, Any]) -> Explanation:
    """Validate one path map returned by a recall query and describe it in a sentence.

    Args:
        raw: ``{reason, nodes: [{label, id, name}], rels: [{type, start, end}]}``.

    Returns:
        The explanation with its text.

    Raises:
        PathShapeError: Unknown reason, or nodes/relationships that do not fit it.
    """
    try:
        reason = Reason(raw["reason"])
        nodes = [PathNode.model_validate(node) for node in raw.get("nodes") or []]
        rels = [PathRel.model_validate(rel) for rel in raw.get("rels") or []]
        return Explanation(text=describe_path(reason, nodes, rels), nodes=nodes, relationships=rels)
    except (KeyError, ValueError, IndexError) as exc:
        raise PathShapeError(f"malformed explanation path {dict(raw)!r}: {exc}") from exc


def built_explanation(raw: Mapping[str, Any], nodes_seen: dict[tuple, PathNode] | None = None) -> Explanation:
    """:func:`explanation_from_path` for a path map built in Python from ids the graph returned
    (:mod:`graph.explain`), whose shape is right by construction: the same explanation, without validating it again.
    ``nodes_seen``: the nodes already made (by label, id and name), shared between paths (the models are frozen).
    """
    seen = nodes_seen if nodes_seen is not None else {}
    nodes = []
    for node in raw["nodes"]:
        key = (node["label"], node["id"], node["name"])
        made = seen.get(key)
        if made is None:
            made = seen[key] = PathNode.model_construct(label=key[0], id=key[1], name=key[2])
        nodes.append(made)
    rels = [_rel(rel["type"], rel["start"], rel["end"]) for rel in raw["rels"]]
    text = describe_path(Reason(raw["reason"]), nodes, rels)
    return Explanation.model_construct(text=text, nodes=nodes, relationships=rels)


@functools.cache
def path_rel(kind: str, start: int, end: int) -> PathRel:
    """A relationship of a path, for paths built from ids the graph returned (a frozen model: one instance per type
    and indexes, shared)."""
    return PathRel.model_construct(type=kind, start=start, end=end)


_rel = path_rel


def shared_trait_sentence(seed: PathNode, kind: str, trait: PathNode) -> str:
    """The sentence of a shared-trait path from ``seed`` through ``trait``, linked to items by ``kind``: "Because you
    liked Heat, also directed by Michael Mann".

    Raises:
        ValueError: ``kind`` does not link an item to a trait.
    """
    template = _SHARED_TRAIT[_trait_type(kind)]
    return f"Because you liked {display_name(seed)}, " + template.format(
        trait=display_name(trait), kind=_attribute_kind(trait)
    )


def display_name(node: PathNode) -> str:
    """How a node is named in a sentence: its title or name, else ``user 42`` / ``item 7``."""
    if node.name:
        return node.name
    return f"{node.label.lower()} {node.id}" if node.label in ("User", "Item") else node.id


def describe_path(reason: Reason, nodes: Sequence[PathNode], rels: Sequence[PathRel]) -> str:
    """Write the sentence for a path of the given reason.

    Args:
        reason: What kind of path it is.
        nodes: The path's nodes, in path order (shapes are documented in each recall query).
        rels: The path's relationships; for trait paths the type of the trait relationship matters.

    Returns:
        A short sentence such as "Because you liked Heat, also directed by Michael Mann".

    Raises:
        ValueError: The nodes do not fit the reason.
    """
    names = [display_name(node) for node in nodes]
    if reason is Reason.POPULAR:
        return "Popular lately"
    if reason is Reason.POPULAR_OVERALL:
        return "Popular overall"
    if reason is Reason.TASTE_MATCH:
        return "People with tastes like yours liked it"
    if reason in (Reason.POPULAR_IN_GENRE, Reason.POPULAR_OVERALL_IN_GENRE):
        genre = next((node for node in nodes if node.label == "Genre"), None)
        if genre is None:
            raise ValueError(f"a {reason} path needs a Genre node")
        return f"Popular in {display_name(genre)}" + (" lately" if reason is Reason.POPULAR_IN_GENRE else "")
    if reason is Reason.POPULAR_WITH_PEERS:
        _expect(nodes, ("User", "Attribute", "User", "Item"))
        return f"Popular with users who share your {_attribute_kind(nodes[1])} {names[1]}"
    if reason is Reason.CO_INTERACTION:
        _expect(nodes, ("User", "Item", "User", "Item"))
        return f"Because users who liked {names[1]} also liked {names[3]}"
    if reason is Reason.SHARED_TRAIT:
        _expect(nodes, ("User", "Item", None, "Item"), rels, 3)
        return shared_trait_sentence(nodes[1], rels[1].type, nodes[2])
    if reason is Reason.NEW_ARRIVAL:
        _expect(nodes, ("User", "Item", None, "Item"), rels, 3)
        trait = _SHARED_TRAIT[_trait_type(rels[1].type)]
        return f"New: because you liked {names[1]}, " + trait.format(trait=names[2], kind=_attribute_kind(nodes[2]))
    if reason is Reason.FOLLOWEE:
        _expect(nodes, ("User", "User", "Item"))
        return f"Because {names[1]}, whom you follow, liked {names[2]}"
    if reason is Reason.FOLLOWEE_OF_FOLLOWEE:
        _expect(nodes, ("User", "User", "User", "Item"))
        return f"Because {names[2]}, whom {names[1]} follows, liked {names[3]}"
    if reason is Reason.PREFERRED_GENRE:
        _expect(nodes, ("User", "Genre", "Item"))
        return f"Because you like {names[1]}"
    if reason is Reason.SIMILAR_CO_INTERACTION:
        _expect(nodes, ("Item", "User", "Item"))
        return f"Users who liked {names[0]} also liked {names[2]}"
    _expect(nodes, ("Item", None, "Item"), rels, 2)
    return _SIMILAR_TRAIT[_trait_type(rels[0].type)].format(trait=names[1], kind=_attribute_kind(nodes[1]))


def _attribute_kind(node: PathNode) -> str:
    """The kind of an Attribute node in words (its id is ``<kind>:<value>``: ``price_band:…`` → ``price band``)."""
    return node.id.split(":", 1)[0].replace("_", " ") if node.label == "Attribute" else ""


#: "Because you liked <seed>, ..." for each relationship that links an item to a trait.
_SHARED_TRAIT = {
    "ACTED_IN": "which also stars {trait}",
    "DIRECTED": "also directed by {trait}",
    "HAS_TAG": 'also tagged "{trait}"',
    "IN_GENRE": "also in {trait}",
    "HAS_ATTRIBUTE": "also {kind} {trait}",
}
_SIMILAR_TRAIT = {
    "ACTED_IN": "Also stars {trait}",
    "DIRECTED": "Also directed by {trait}",
    "HAS_TAG": 'Also tagged "{trait}"',
    "IN_GENRE": "Also in {trait}",
    "HAS_ATTRIBUTE": "Also {kind} {trait}",
}


def _trait_type(rel_type: str) -> str:
    if rel_type not in _SHARED_TRAIT:
        raise ValueError(f"{rel_type} does not link an item to a trait")
    return rel_type


def _expect(
    nodes: Sequence[PathNode], labels: tuple[str | None, ...], rels: Sequence[PathRel] = (), min_rels: int = 0
) -> None:
    actual = tuple(node.label for node in nodes)
    if len(actual) != len(labels) or any(
        want is not None and want != got for want, got in zip(labels, actual, strict=True)
    ):
        raise ValueError(f"expected nodes {labels}, got {actual}")
    if len(rels) < min_rels:
        raise ValueError(f"expected {min_rels} relationships, got {len(rels)}")
