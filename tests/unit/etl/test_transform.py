import pytest

from etl.extract import RawRecord
from etl.mapping import FollowsSpec, GenresSpec, InteractionsSpec, ItemsSpec, PeopleSpec, TagsSpec
from etl.transform import (
    RowError,
    normalize_tag,
    slugify_name,
    to_follows,
    to_genres,
    to_interaction,
    to_item,
    to_people,
    to_tags,
    year_from_title,
)
from schema.model import Role

RATINGS = InteractionsSpec(file="r", user="u", item="i", rating="r", rating_range=(0.5, 5.0), timestamp="t")


def rec(**fields: str) -> RawRecord:
    return RawRecord(line=7, fields=fields)


def test_slugify_name_merges_spellings() -> None:
    assert slugify_name("Tom Hanks") == slugify_name(" tom  hanks ") == "tom_hanks"
    assert slugify_name("Doris Dörrie") == "doris_dorrie"
    assert slugify_name("北野武") == "北野武"


def test_year_from_title() -> None:
    assert year_from_title("Toy Story (1995)") == 1995
    assert year_from_title("Babylon 5 (1994-1998)") == 1994
    assert year_from_title("Untitled Short") is None


def test_normalize_tag() -> None:
    assert normalize_tag("  Highly   Quotable ") == "highly quotable"


def test_to_interaction_good_row() -> None:
    row = to_interaction(rec(u="1", i="31", r="2.5", t="1260759144"), RATINGS)
    assert (row.user_id, row.item_id, row.rating, row.weight, row.timestamp) == ("1", "31", 2.5, 1.0, 1260759144)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"u": "1", "i": "31", "r": "four", "t": "1"}, "rating 'four' is not a number"),
        ({"u": "1", "i": "31", "r": "9.5", "t": "1"}, "rating 9.5 outside [0.5, 5]"),
        ({"u": "", "i": "31", "r": "4", "t": "1"}, "missing user id (column 'u' is empty)"),
        ({"u": "1", "i": "31", "r": "4", "t": "-3"}, "timestamp -3 is negative"),
        ({"u": "1", "i": "31", "r": "4", "t": "12.5"}, "timestamp '12.5' is not a whole number"),
        ({"u": "1", "i": "31", "r": "nan", "t": "1"}, "rating 'nan' is not a finite number"),
    ],
)
def test_to_interaction_rejects_with_reason(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(RowError) as info:
        to_interaction(rec(**fields), RATINGS)
    assert str(info.value) == reason


def test_to_interaction_weight_and_milliseconds() -> None:
    spec = InteractionsSpec(file="p", user="u", item="i", weight="w", timestamp="t", timestamp_unit="ms")
    row = to_interaction(rec(u="2", i="51", w="13883", t="1162160415000"), spec)
    assert (row.weight, row.timestamp, row.rating) == (13883.0, 1162160415, None)
    with pytest.raises(RowError, match="weight -1 is negative"):
        to_interaction(rec(u="2", i="51", w="-1", t="1"), spec)


def test_to_item_year_from_title_and_imdb_leading_zeros() -> None:
    spec = ItemsSpec(file="m", id="id", title="title", year_from_title=True, imdb_id="imdb")
    row = to_item(rec(id="1", title="Toy Story (1995)", imdb="0114709"), spec)
    assert (row.item_id, row.title, row.year, row.imdb_id) == ("1", "Toy Story (1995)", 1995, "0114709")


def test_to_item_rejects_out_of_range_year() -> None:
    spec = ItemsSpec(file="m", id="id", year="year")
    with pytest.raises(RowError, match="year"):
        to_item(rec(id="1", year="20201"), spec)


def test_to_genres_split_and_ignore() -> None:
    spec = GenresSpec(file="m", item="id", genre="g", split="|", ignore=["(no genres listed)"])
    assert [r.genre for r in to_genres(rec(id="1", g="Comedy|Drama|"), spec)] == ["Comedy", "Drama"]
    assert to_genres(rec(id="4", g="(no genres listed)"), spec) == []


def test_to_people_slug_ids_and_roles() -> None:
    spec = PeopleSpec(file="a", item="id", name="actors", split="|", role=Role.ACTOR)
    rows = to_people(rec(id="1", actors="Tom Hanks|Tim Allen"), spec)
    assert [(r.person_id, r.name, r.role) for r in rows] == [
        ("tom_hanks", "Tom Hanks", Role.ACTOR),
        ("tim_allen", "Tim Allen", Role.ACTOR),
    ]


def test_to_tags_lookup_and_weight() -> None:
    spec = TagsSpec(file="t", item="id", tag="tid", weight="w")
    rows = to_tags(rec(id="1", tid="13", w="2"), spec, {"13": "Café Society"})
    assert [(r.item_id, r.tag, r.weight) for r in rows] == [("1", "café society", 2.0)]
    with pytest.raises(RowError, match="tag code '99' is not in the lookup file"):
        to_tags(rec(id="1", tid="99", w="2"), spec, {"13": "x"})


def test_to_follows_mutual_and_self() -> None:
    spec = FollowsSpec(file="f", follower="a", followee="b", mutual=True)
    rows = to_follows(rec(a="1", b="2"), spec)
    assert [(r.follower_id, r.followee_id) for r in rows] == [("1", "2"), ("2", "1")]
    with pytest.raises(RowError, match="follows themself"):
        to_follows(rec(a="3", b="3"), spec)


def test_tree_ancestors_walk_up_and_refuse_unknown_parents_and_cycles() -> None:
    from etl.transform import tree_ancestors

    parents = {"root": None, "a": "root", "b": "a", "c": "b", "x": "ghost", "y": "x", "s": "s", "p": "q", "q": "p"}
    parents["under"] = "q"
    ancestors, refused = tree_ancestors(parents)
    assert ancestors["c"] == ("b", "a", "root") and ancestors["root"] == ()
    assert ancestors["y"] == ("x",) and ancestors["x"] == ()  # x's parent is unknown: x is a root
    assert ancestors["under"] == ("q",) and ancestors["p"] == () and ancestors["s"] == ()
    assert refused == {
        "x": "parent 'ghost' of 'x' is not in the tree",
        "s": "'s' is on a cycle of parents: s → s",
        "p": "'p' is on a cycle of parents: p → q → p",
        "q": "'q' is on a cycle of parents: p → q → p",
    }
