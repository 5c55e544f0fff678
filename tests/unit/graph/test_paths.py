"""Explanation models and their sentences (no database)."""

import pytest
from pydantic import ValidationError

from graph.paths import (
    Explanation,
    PathNode,
    PathRel,
    PathShapeError,
    Reason,
    describe_path,
    display_name,
    explanation_from_path,
)
from schema.model import Label, RelType

USER = {"label": "User", "id": "42", "name": None}
TOY_STORY = {"label": "Item", "id": "1", "name": "Toy Story"}
CAST_AWAY = {"label": "Item", "id": "3", "name": "Cast Away"}


def _path(reason: str, nodes: list[dict], rels: list[tuple[str, int, int]]) -> dict:
    return {"reason": reason, "nodes": nodes, "rels": [{"type": t, "start": s, "end": e} for t, s, e in rels]}


def _trait(kind: str, node: dict) -> dict:
    person = kind in ("ACTED_IN", "DIRECTED")
    return _path(
        "shared_trait",
        [USER, TOY_STORY, node, CAST_AWAY],
        [("INTERACTED", 0, 1), (kind, 2, 1) if person else (kind, 1, 2), (kind, 2, 3) if person else (kind, 3, 2)],
    )


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (
            _trait("ACTED_IN", {"label": "Person", "id": "tom_hanks", "name": "Tom Hanks"}),
            "Because you liked Toy Story, which also stars Tom Hanks",
        ),
        (
            _trait("DIRECTED", {"label": "Person", "id": "jl", "name": "John Lasseter"}),
            "Because you liked Toy Story, also directed by John Lasseter",
        ),
        (
            _trait("HAS_TAG", {"label": "Tag", "id": "pixar", "name": "pixar"}),
            'Because you liked Toy Story, also tagged "pixar"',
        ),
        (
            _trait("IN_GENRE", {"label": "Genre", "id": "Animation", "name": "Animation"}),
            "Because you liked Toy Story, also in Animation",
        ),
        (
            _path(
                "co_interaction",
                [
                    USER,
                    {"label": "Item", "id": "6", "name": "Heat"},
                    {"label": "User", "id": "7"},
                    {"label": "Item", "id": "7", "name": "Ronin"},
                ],
                [("INTERACTED", 0, 1), ("INTERACTED", 2, 1), ("INTERACTED", 2, 3)],
            ),
            "Because users who liked Heat also liked Ronin",
        ),
        (
            _path(
                "followee", [USER, {"label": "User", "id": "ana"}, CAST_AWAY], [("FOLLOWS", 0, 1), ("INTERACTED", 1, 2)]
            ),
            "Because user ana, whom you follow, liked Cast Away",
        ),
        (
            _path(
                "followee_of_followee",
                [USER, {"label": "User", "id": "ana"}, {"label": "User", "id": "ben"}, CAST_AWAY],
                [("FOLLOWS", 0, 1), ("FOLLOWS", 1, 2), ("INTERACTED", 2, 3)],
            ),
            "Because user ben, whom user ana follows, liked Cast Away",
        ),
        (_path("popular", [], []), "Popular lately"),
        (_path("popular_overall", [], []), "Popular overall"),
        (
            _path(
                "popular_overall_in_genre",
                [USER, {"label": "Genre", "id": "Comedy", "name": "Comedy"}, CAST_AWAY],
                [("PREFERS", 0, 1), ("IN_GENRE", 2, 1)],
            ),
            "Popular in Comedy",
        ),
        (
            _path(
                "popular_in_genre",
                [USER, TOY_STORY, {"label": "Genre", "id": "Comedy", "name": "Comedy"}, CAST_AWAY],
                [("INTERACTED", 0, 1), ("IN_GENRE", 1, 2), ("IN_GENRE", 3, 2)],
            ),
            "Popular in Comedy lately",
        ),
        (
            _path(
                "popular_in_genre",
                [USER, {"label": "Genre", "id": "Comedy", "name": "Comedy"}, CAST_AWAY],
                [("PREFERS", 0, 1), ("IN_GENRE", 2, 1)],
            ),
            "Popular in Comedy lately",
        ),
        (
            _path(
                "preferred_genre",
                [USER, {"label": "Genre", "id": "Comedy", "name": "Comedy"}, CAST_AWAY],
                [("PREFERS", 0, 1), ("IN_GENRE", 2, 1)],
            ),
            "Because you like Comedy",
        ),
        (
            _path(
                "similar_co_interaction",
                [TOY_STORY, {"label": "User", "id": "9"}, CAST_AWAY],
                [("INTERACTED", 1, 0), ("INTERACTED", 1, 2)],
            ),
            "Users who liked Toy Story also liked Cast Away",
        ),
        (
            _path(
                "similar_trait",
                [TOY_STORY, {"label": "Person", "id": "th", "name": "Tom Hanks"}, CAST_AWAY],
                [("ACTED_IN", 1, 0), ("ACTED_IN", 1, 2)],
            ),
            "Also stars Tom Hanks",
        ),
        (
            _path(
                "similar_trait",
                [TOY_STORY, {"label": "Genre", "id": "Drama", "name": "Drama"}, CAST_AWAY],
                [("IN_GENRE", 0, 1), ("IN_GENRE", 2, 1)],
            ),
            "Also in Drama",
        ),
    ],
)
def test_explanation_text_per_reason(raw: dict, text: str) -> None:
    explanation = explanation_from_path(raw)
    assert explanation.text == text
    assert [n.model_dump() for n in explanation.nodes] == [
        {"label": n["label"], "id": n["id"], "name": n.get("name")} for n in raw["nodes"]
    ]
    assert [(r.type, r.start, r.end) for r in explanation.relationships] == [
        (r["type"], r["start"], r["end"]) for r in raw["rels"]
    ]


def test_every_reason_has_a_sentence() -> None:
    assert {r.value for r in Reason} == {
        "co_interaction",
        "shared_trait",
        "followee",
        "followee_of_followee",
        "popular",
        "popular_in_genre",
        "popular_with_peers",
        "popular_overall",
        "popular_overall_in_genre",
        "similar_co_interaction",
        "similar_trait",
        "preferred_genre",
        "taste_match",
        "new_arrival",
    }


def test_new_arrival_sentence_says_new_and_names_the_shared_trait() -> None:
    user = PathNode(label="User", id="u9")
    seed = PathNode(label="Item", id="1", name="Heat")
    genre = PathNode(label="Genre", id="Crime", name="Crime")
    item = PathNode(label="Item", id="n1", name="Night Run")
    rels = [
        PathRel(type="INTERACTED", start=0, end=1),
        PathRel(type="IN_GENRE", start=1, end=2),
        PathRel(type="IN_GENRE", start=3, end=2),
    ]
    assert describe_path(Reason.NEW_ARRIVAL, [user, seed, genre, item], rels) == (
        "New: because you liked Heat, also in Crime"
    )


def test_attribute_sentences_name_the_kind() -> None:
    user, peer = PathNode(label="User", id="u9"), PathNode(label="User", id="u1")
    country = PathNode(label="Attribute", id="country:FR", name="FR")
    item = PathNode(label="Item", id="p1", name="Trail Shoe")
    rels = [PathRel(type="HAS_ATTRIBUTE", start=0, end=1), PathRel(type="HAS_ATTRIBUTE", start=2, end=1)]
    assert describe_path(Reason.POPULAR_WITH_PEERS, [user, country, peer, item], rels) == (
        "Popular with users who share your country FR"
    )
    band = PathNode(label="Attribute", id="price_band:10-50", name="10-50")
    trait = [PathRel(type="INTERACTED", start=0, end=1), PathRel(type="HAS_ATTRIBUTE", start=1, end=2)] * 2
    seed = PathNode(label="Item", id="p2", name="Road Shoe")
    assert describe_path(Reason.SHARED_TRAIT, [user, seed, band, item], trait[:3]) == (
        "Because you liked Road Shoe, also price band 10-50"
    )


def test_display_name_falls_back_to_ids() -> None:
    assert display_name(PathNode(label="Item", id="7")) == "item 7"
    assert display_name(PathNode(label="User", id="42")) == "user 42"
    assert display_name(PathNode(label="Genre", id="Drama")) == "Drama"
    assert display_name(PathNode(label="Item", id="7", name="Heat")) == "Heat"


def test_labels_and_types_are_schema_vocabulary() -> None:
    assert set(PathNode.model_fields["label"].annotation.__args__) <= {str(label) for label in Label}
    assert set(PathRel.model_fields["type"].annotation.__args__) <= {str(rel) for rel in RelType}


def test_relationship_indexes_must_point_at_nodes() -> None:
    with pytest.raises(ValidationError, match="points outside"):
        Explanation(
            text="x", nodes=[PathNode(label="User", id="1")], relationships=[PathRel(type="FOLLOWS", start=0, end=1)]
        )


@pytest.mark.parametrize(
    "raw",
    [
        {"reason": "telepathy", "nodes": [], "rels": []},
        _path("followee", [USER, CAST_AWAY], [("INTERACTED", 0, 1)]),
        _path(
            "shared_trait",
            [USER, TOY_STORY, {"label": "Genre", "id": "x", "name": "x"}, CAST_AWAY],
            [("INTERACTED", 0, 1), ("FOLLOWS", 1, 2), ("FOLLOWS", 3, 2)],
        ),
        _path("popular_in_genre", [USER, CAST_AWAY], [("INTERACTED", 0, 1)]),
        _path("preferred_genre", [USER, TOY_STORY, CAST_AWAY], [("INTERACTED", 0, 1), ("INTERACTED", 1, 2)]),
        {"reason": "popular", "nodes": [{"label": "Movie", "id": "1"}], "rels": []},
        {"nodes": [], "rels": []},
    ],
)
def test_malformed_paths_are_rejected(raw: dict) -> None:
    with pytest.raises(PathShapeError):
        explanation_from_path(raw)


def test_describe_path_needs_the_trait_relationship() -> None:
    nodes = [PathNode(label="Item", id="1"), PathNode(label="Tag", id="t"), PathNode(label="Item", id="2")]
    with pytest.raises(ValueError, match="relationships"):
        describe_path(Reason.SIMILAR_TRAIT, nodes, [])
