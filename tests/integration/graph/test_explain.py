"""explain_items and user_context on small graphs with known answers, on the real Neo4j."""

from __future__ import annotations

from pathlib import Path

import pytest
from neo4j import Driver
from pydantic import ValidationError

from etl.dataset import Dataset
from etl.load import load_dataset
from graph import catalog
from graph.explain import (
    MAX_EXPLAIN_ITEMS,
    ExplainCaps,
    ExplainedItem,
    HeldUser,
    Neighbourhoods,
    explain_items,
    strongest_seeds,
)
from graph.query import NO_ID, ONE_BUCKET, run_read
from graph.reads import Interaction, user_context
from graph.recall import RecallFilters
from graph.writers import BatchWriter, create_user, impression_batches, read_graph_counts, write_impressions
from schema.errors import ConfigError
from schema.model import Role
from tests.fixtures import graphs
from tests.fixtures.graphs import DAY, NOW
from tests.fixtures.plans import plans_after
from tests.integration.graph.test_recall import assert_paths_exist, path_of

ALL = ["h", "t", "r", "c", "s", "w", "k", "a", "x", "z"]


def explain_world() -> Dataset:
    """A graph where each path kind has one known answer for user "me".

    me liked Heat (h, 5 stars) and Toy Story (t, 4 stars) — the seeds, in that order — and disliked Airplane! (a);
    me follows ana and prefers Comedy (added by the fixture). bob liked h, t, Ronin (r) and Se7en (s) (he shares
    two seeds with me); abe liked h, s and Thief (z); dan liked h and z and rated r 3 stars (not a like); cid liked
    t and r; ana liked r, Cast Away (w) and z (z without rating or timestamp). Heat and Collateral (c) share
    Michael Mann; Toy Story and w share Tom Hanks; t and Cars (k) the tag pixar. Genres (items): Crime (h r c s),
    Thriller (h c s), Animation (t k), Comedy (t a), Action (r), Drama (w), Musical (Xanadu x); z has none.
    """
    return graphs.build(
        "explain_world",
        [
            ("h", "Heat", 1995),
            ("t", "Toy Story", 1995),
            ("r", "Ronin", 1998),
            ("c", "Collateral", 2004),
            ("s", "Se7en", 1995),
            ("w", "Cast Away", 2000),
            ("k", "Cars", 2006),
            ("a", "Airplane!", 1980),
            ("x", "Xanadu", 1980),
            ("z", "Thief", 1981),
        ],
        [
            ("me", "h", 5.0, NOW),
            ("me", "t", 4.0, NOW - DAY),
            ("me", "a", 2.0, NOW),
            ("bob", "h", 5.0, NOW),
            ("bob", "t", 4.5, NOW),
            ("bob", "r", 5.0, NOW),
            ("bob", "s", 4.0, NOW),
            ("abe", "h", 5.0, NOW),
            ("abe", "s", 5.0, NOW),
            ("abe", "z", 4.0, NOW),
            ("dan", "h", 5.0, NOW),
            ("dan", "r", 3.0, NOW),
            ("dan", "z", 5.0, NOW),
            ("cid", "t", 5.0, NOW),
            ("cid", "r", 4.0, NOW),
            ("ana", "r", 5.0, NOW),
            ("ana", "w", 4.5, NOW),
            ("ana", "z", None, None),
        ],
        genres=[
            ("h", "Crime"),
            ("h", "Thriller"),
            ("r", "Crime"),
            ("r", "Action"),
            ("c", "Crime"),
            ("c", "Thriller"),
            ("s", "Crime"),
            ("s", "Thriller"),
            ("t", "Animation"),
            ("t", "Comedy"),
            ("k", "Animation"),
            ("a", "Comedy"),
            ("w", "Drama"),
            ("x", "Musical"),
        ],
        people=[
            ("h", "mann", "Michael Mann", Role.DIRECTOR),
            ("c", "mann", "Michael Mann", Role.DIRECTOR),
            ("t", "hanks", "Tom Hanks", Role.ACTOR),
            ("w", "hanks", "Tom Hanks", Role.ACTOR),
        ],
        tags=[("t", "pixar", 3.0), ("k", "pixar", 1.0)],
        follows=[("me", "ana")],
    )


@pytest.fixture
def world(clean_db: Driver, tmp_path: Path) -> Driver:
    load_dataset(clean_db, explain_world(), reject_dir=tmp_path)
    create_user(clean_db, "me", ["Comedy"])
    create_user(clean_db, "newbie", ["Comedy", "Drama"])
    return clean_db


def co(seed: str, via: str, item: str) -> tuple:
    return (
        [("User", "me"), ("Item", seed), ("User", via), ("Item", item)],
        [("INTERACTED", 0, 1), ("INTERACTED", 2, 1), ("INTERACTED", 2, 3)],
    )


def trait(seed: str, label: str, key: str, rel: str, item: str) -> tuple:
    person = label == "Person"
    return (
        [("User", "me"), ("Item", seed), (label, key), ("Item", item)],
        [("INTERACTED", 0, 1), (rel, 2, 1) if person else (rel, 1, 2), (rel, 2, 3) if person else (rel, 3, 2)],
    )


def followee(who: str, item: str) -> tuple:
    return ([("User", "me"), ("User", who), ("Item", item)], [("FOLLOWS", 0, 1), ("INTERACTED", 1, 2)])


def preferred(genre: str, item: str, user: str = "me") -> tuple:
    return ([("User", user), ("Genre", genre), ("Item", item)], [("PREFERS", 0, 1), ("IN_GENRE", 2, 1)])


#: The known answer for "me" with the default max_paths=2 (round-robin over kinds, best first).
EXPECTED = {
    "h": [co("t", "bob", "h")],  # h is a seed: never explained through itself; bob also liked t
    "t": [co("h", "bob", "t"), preferred("Comedy", "t")],
    "r": [co("h", "bob", "r"), trait("h", "Genre", "Crime", "IN_GENRE", "r")],  # dan's 3 stars are not a like
    "c": [trait("h", "Person", "mann", "DIRECTED", "c"), trait("h", "Genre", "Thriller", "IN_GENRE", "c")],
    "s": [co("h", "bob", "s"), trait("h", "Genre", "Thriller", "IN_GENRE", "s")],  # bob shares 2 seeds, abe 1
    "w": [trait("t", "Person", "hanks", "ACTED_IN", "w"), followee("ana", "w")],
    "k": [trait("t", "Tag", "pixar", "HAS_TAG", "k"), trait("t", "Genre", "Animation", "IN_GENRE", "k")],
    "a": [trait("t", "Genre", "Comedy", "IN_GENRE", "a"), preferred("Comedy", "a")],
    "x": [],
    "z": [co("h", "abe", "z"), followee("ana", "z")],  # abe and dan tie (one seed each): by user id
}

TITLES = {
    "h": "Heat",
    "t": "Toy Story",
    "r": "Ronin",
    "c": "Collateral",
    "s": "Se7en",
    "w": "Cast Away",
    "k": "Cars",
    "a": "Airplane!",
    "x": "Xanadu",
    "z": "Thief",
}


def paths(result: dict[str, ExplainedItem]) -> dict[str, list[tuple]]:
    return {item_id: [path_of(e) for e in item.explanations] for item_id, item in result.items()}


def test_explain_items_exact_paths_for_each_kind(world: Driver) -> None:
    result = explain_items(world, "me", ALL)
    assert list(result) == ALL
    assert paths(result) == EXPECTED
    assert {item_id: item.title for item_id, item in result.items()} == TITLES
    assert all(item.item_id == item_id for item_id, item in result.items())
    assert_paths_exist(world, list(result.values()), ("User", "me"))


def test_explain_items_sentences(world: Driver) -> None:
    result = explain_items(world, "me", ["r", "c", "w", "k", "a"])
    assert [e.text for e in result["r"].explanations] == [
        "Because users who liked Heat also liked Ronin",
        "Because you liked Heat, also in Crime",
    ]
    assert [e.text for e in result["c"].explanations][0] == "Because you liked Heat, also directed by Michael Mann"
    assert [e.text for e in result["w"].explanations] == [
        "Because you liked Toy Story, which also stars Tom Hanks",
        "Because user ana, whom you follow, liked Cast Away",
    ]
    assert result["k"].explanations[0].text == 'Because you liked Toy Story, also tagged "pixar"'
    assert result["a"].explanations[1].text == "Because you like Comedy"
    assert result["r"].explanations[0].model_dump(mode="json") == {
        "text": "Because users who liked Heat also liked Ronin",
        "nodes": [
            {"label": "User", "id": "me", "name": None},
            {"label": "Item", "id": "h", "name": "Heat"},
            {"label": "User", "id": "bob", "name": None},
            {"label": "Item", "id": "r", "name": "Ronin"},
        ],
        "relationships": [
            {"type": "INTERACTED", "start": 0, "end": 1},
            {"type": "INTERACTED", "start": 2, "end": 1},
            {"type": "INTERACTED", "start": 2, "end": 3},
        ],
    }


def test_explain_items_max_paths_round_robin(world: Driver) -> None:
    result = explain_items(world, "me", ["r", "c"], max_paths=4)
    assert [path_of(e) for e in result["r"].explanations] == [
        co("h", "bob", "r"),
        trait("h", "Genre", "Crime", "IN_GENRE", "r"),
        followee("ana", "r"),
        co("t", "cid", "r"),
    ]
    assert [path_of(e) for e in result["c"].explanations] == [
        trait("h", "Person", "mann", "DIRECTED", "c"),
        trait("h", "Genre", "Thriller", "IN_GENRE", "c"),
        trait("h", "Genre", "Crime", "IN_GENRE", "c"),
    ]
    assert_paths_exist(world, list(result.values()), ("User", "me"))
    one = explain_items(world, "me", ALL, max_paths=1)
    assert paths(one) == {item_id: expected[:1] for item_id, expected in EXPECTED.items()}
    none = explain_items(world, "me", ALL, max_paths=0)
    assert list(none) == ALL and all(item.explanations == [] for item in none.values())


def test_explain_items_is_deterministic_and_independent_of_the_other_items(world: Driver) -> None:
    whole = explain_items(world, "me", ALL)
    assert explain_items(world, "me", list(reversed(ALL))) == {i: whole[i] for i in reversed(ALL)}
    for item_id in ALL:
        assert explain_items(world, "me", [item_id]) == {item_id: whole[item_id]}


def test_explain_items_caps(world: Driver) -> None:
    # one seed (Heat): Toy Story's paths are gone, Heat itself has none left
    result = explain_items(world, "me", ["h", "w", "k", "r"], max_seeds=1)
    assert paths(result) == {
        "h": [],
        "w": [followee("ana", "w")],
        "k": [],
        "r": [co("h", "bob", "r"), trait("h", "Genre", "Crime", "IN_GENRE", "r")],
    }
    assert paths(explain_items(world, "me", ["k"], max_tags_per_seed=0)) == {
        "k": [trait("t", "Genre", "Animation", "IN_GENRE", "k")]
    }
    assert paths(explain_items(world, "me", ["w"], max_followees=0)) == {
        "w": [trait("t", "Person", "hanks", "ACTED_IN", "w")]
    }
    with pytest.raises(ConfigError, match="max_seeds"):
        explain_items(world, "me", ["r"], max_seeds=0)
    with pytest.raises(ConfigError, match="max_paths"):
        explain_items(world, "me", ["r"], max_paths=11)
    with pytest.raises(ConfigError, match="no_such_cap"):
        explain_items(world, "me", ["r"], no_such_cap=1)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (RecallFilters(exclude_items=["r", "c"]), ["h", "t", "s", "w", "k", "a", "x", "z"]),
        (RecallFilters(include_genres=["Animation"]), ["t", "k"]),
        (RecallFilters(include_genres=["Animation", "Drama"]), ["t", "w", "k"]),
        (RecallFilters(exclude_genres=["Crime"]), ["t", "w", "k", "a", "x", "z"]),
        (RecallFilters(year_min=2000), ["c", "w", "k"]),
        (RecallFilters(year_max=1981), ["a", "x", "z"]),
        (RecallFilters(year_min=1990, year_max=1999), ["h", "t", "r", "s"]),
        (RecallFilters(exclude_genres=["Comedy"], year_max=1990), ["x", "z"]),
        (RecallFilters(include_genres=["Western"]), []),
    ],
)
def test_explain_items_filters(world: Driver, filters: RecallFilters, expected: list[str]) -> None:
    result = explain_items(world, "me", ALL, filters=filters)
    assert list(result) == expected
    assert paths(result) == {item_id: EXPECTED[item_id] for item_id in expected}


def test_explain_items_unknown_items_and_users(world: Driver) -> None:
    result = explain_items(world, "me", ["nope", "r", "x", "also-missing", "r"])
    assert list(result) == ["r", "x"]
    assert explain_items(world, "me", ["nope"]) == {}
    assert explain_items(world, "me", []) == {}
    ghost = explain_items(world, "ghost", ALL)
    assert list(ghost) == ALL
    assert all(item.explanations == [] and item.title == TITLES[i] for i, item in ghost.items())
    # a new user with onboarding genres only
    newbie = explain_items(world, "newbie", ["a", "w", "r"], max_paths=3)
    assert paths(newbie) == {
        "a": [preferred("Comedy", "a", "newbie")],
        "w": [preferred("Drama", "w", "newbie")],
        "r": [],
    }
    assert_paths_exist(world, list(newbie.values()), ("User", "newbie"))


HOSTILE = [
    "",
    " ",
    "r' OR 1=1 //",
    '"}) MATCH (n) DETACH DELETE n //',
    "$itemIds",
    "\u0000",
    "r\n",
    "ř" * 10_000,
    "` ; DROP DATABASE neo4j",
    "{itemId: 'r'}",
]


def test_explain_items_hostile_ids(world: Driver) -> None:
    before = read_graph_counts(world)
    result = explain_items(world, "me", [*HOSTILE, "r"])
    assert list(result) == ["r"]
    assert paths(result) == {"r": EXPECTED["r"]}
    for user in HOSTILE:
        assert [e for item in explain_items(world, user, ALL).values() for e in item.explanations] == []
        assert user_context(world, user) is None
    named = [h for h in HOSTILE if h]  # a filter refuses the empty string (the queries' "no entry": to_params)
    assert explain_items(world, "me", ["r"], filters=RecallFilters(exclude_items=named, include_genres=named)) == {}
    with pytest.raises(ValidationError):
        RecallFilters(include_genres=[""])
    assert read_graph_counts(world) == before
    with pytest.raises(ConfigError, match="strings"):
        explain_items(world, "me", ["r", 7])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="strings"):
        explain_items(world, "me", ["r"], seed_ids=[None])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=str(MAX_EXPLAIN_ITEMS)):
        explain_items(world, "me", [str(n) for n in range(MAX_EXPLAIN_ITEMS + 1)])
    assert list(explain_items(world, "me", ["r"] * (MAX_EXPLAIN_ITEMS + 5))) == ["r"]  # duplicates count once


def test_explain_items_keeps_one_plan_with_filters_on_and_off(world: Driver) -> None:
    """Every filter parameter has one type whether it is set or not (RecallFilters.to_params), so the explanation
    query, whose planning costs Neo4j about a second, is planned once for requests with and without filters."""
    on = RecallFilters(
        exclude_items=["x"], include_genres=["Drama"], exclude_genres=["Horror"], year_min=1990, year_max=2030, now=NOW
    )
    once = plans_after(world, lambda: explain_items(world, "me", ["r", "c"]))
    both = plans_after(world, lambda: [explain_items(world, "me", ["r", "c"], filters=f) for f in (None, on)])
    assert once >= 1
    assert both == once


def test_explain_items_with_seeds_from_the_user_context(world: Driver) -> None:
    context = user_context(world, "me")
    assert context is not None
    assert strongest_seeds(context) == ["h", "t"]
    assert strongest_seeds(context, max_seeds=1) == ["h"]
    assert explain_items(world, "me", ALL, seed_ids=strongest_seeds(context)) == explain_items(world, "me", ALL)
    # only positives of the user are kept as seeds, in the caller's order: here Toy Story alone
    result = explain_items(world, "me", ["r", "k", "h"], seed_ids=["a", "nope", "r", "t", "t"])
    assert paths(result) == {
        "r": [co("t", "bob", "r"), followee("ana", "r")],  # bob and cid tie on Toy Story: by user id
        "k": [trait("t", "Tag", "pixar", "HAS_TAG", "k"), trait("t", "Genre", "Animation", "IN_GENRE", "k")],
        "h": [co("t", "bob", "h")],
    }
    assert_paths_exist(world, list(result.values()), ("User", "me"))
    assert [
        e
        for item in explain_items(world, "me", ALL, seed_ids=[]).values()
        for e in item.explanations
        if e.nodes[1].label == "Item"
    ] == []
    assert explain_items(world, "ghost", ["r"], seed_ids=["h", "t"]) == {"r": ExplainedItem(item_id="r", title="Ronin")}


def test_explain_items_with_seeds_checked_by_the_caller(world: Driver) -> None:
    context = user_context(world, "me")
    assert context is not None
    seeds = strongest_seeds(context)
    assert explain_items(world, "me", ALL, seed_ids=seeds, seeds_checked=True) == explain_items(world, "me", ALL)
    # unchecked, a seed the user never liked is taken as given (the caller vouches for it); checked, it is dropped
    unchecked = explain_items(world, "me", ALL, seed_ids=["a", "r"], seeds_checked=True)
    checked = explain_items(world, "me", ALL, seed_ids=["a", "r"])
    via = {e.nodes[1].id for item in unchecked.values() for e in item.explanations if e.nodes[1].label == "Item"}
    assert via and via <= {"a", "r"}
    assert [e for item in checked.values() for e in item.explanations if e.nodes[1].label == "Item"] == []


def test_explain_items_keeps_neighbourhoods(world: Driver) -> None:
    kept = Neighbourhoods(size=1000, seconds=3600)
    context = user_context(world, "me")
    assert context is not None
    seeds = strongest_seeds(context)
    first = explain_items(world, "me", ALL, seed_ids=seeds, neighbourhoods=kept)
    assert first == explain_items(world, "me", ALL) and paths(first) == EXPECTED
    # every item's side and every seed's side, the user's followees and their one followee's side (ana's positives)
    assert kept.hits == 0 and len(kept) == len(ALL) + len(seeds) + 2
    again = explain_items(world, "me", ALL, seed_ids=seeds, neighbourhoods=kept)
    assert again == first and kept.hits == len(ALL) + len(seeds) + 2  # nothing read again
    # a side is the node's alone: another user explained through the same items gets their own paths, as uncached
    other = user_context(world, "bob")
    assert other is not None
    bob = strongest_seeds(other)
    assert explain_items(world, "bob", ALL, seed_ids=bob, neighbourhoods=kept) == explain_items(world, "bob", ALL)
    assert_paths_exist(world, list(again.values()), ("User", "me"))

    # with every side held, the query reads no neighbourhood
    params = {
        "userId": "me",
        "itemIds": ALL,
        "seedIds": seeds,
        "checkSeeds": True,
        "readSeeds": [],
        "readItems": [],
        "heldFollowees": ["ana"],
        **ExplainCaps(max_paths=2).to_params(),
        **RecallFilters().to_params(),
    }
    with world.session() as session:
        plan = session.run("PROFILE " + catalog.EXPLAIN_ITEMS, params).consume().profile
    expands = [(details, rows) for op, details, rows, _ in _profile_rows(plan, []) if op.startswith("Expand(All)")]
    sides = [rows for details, rows in expands if details.startswith(("(s)", "(item)", "(f)"))]
    assert len(sides) >= 9 and not any(sides), expands  # the user's followees are still read, not their sides

    # the catalogue or the model changing drops every side; stale sides are read again; the size is bounded
    kept.keep_for(("revision", 1))
    assert len(kept) == 0
    stale = Neighbourhoods(size=1000, seconds=1e-9)
    explain_items(world, "me", ALL, seed_ids=seeds, neighbourhoods=stale)
    assert explain_items(world, "me", ALL, seed_ids=seeds, neighbourhoods=stale) == first and stale.hits == 0
    small = Neighbourhoods(size=3, seconds=3600)
    assert explain_items(world, "me", ALL, seed_ids=seeds, neighbourhoods=small) == first and len(small) == 3
    titles_only = Neighbourhoods(size=1000, seconds=3600)  # without paths nothing is read, nothing kept
    assert explain_items(world, "me", ALL, max_paths=0, neighbourhoods=titles_only) and len(titles_only) == 0
    off = Neighbourhoods(size=0, seconds=3600)
    assert explain_items(world, "me", ALL, seed_ids=seeds, neighbourhoods=off) == first and len(off) == 0


def test_explain_items_from_held_sides_runs_no_query(world: Driver) -> None:
    me = user_context(world, "me")
    assert me is not None and me.follows == 1 and HeldUser.of(me) == HeldUser(("Comedy",), 1)
    held, seeds = HeldUser.of(me), strongest_seeds(me)
    kept = Neighbourhoods(size=1000, seconds=3600)
    queries: list[str] = []

    def explain(**options: object) -> dict[str, ExplainedItem]:
        return explain_items(
            world,
            "me",
            ALL,
            seed_ids=seeds,
            seeds_checked=True,
            neighbourhoods=kept,
            on_timing=lambda name, _seconds: queries.append(name),
            **{"held_user": held, **options},  # type: ignore[arg-type]
        )

    first = explain()
    assert queries == ["explain"]  # nothing held yet
    followed = explain()
    assert queries == ["explain"]  # every side held, the followee's too: joined without a query
    assert followed == first == explain_items(world, "me", ALL) and list(followed) == list(first)
    assert paths(followed) == EXPECTED  # the followee paths (ana's) among them, from her held side
    # a follow added since the followees were read: they are not the user's any more, the query runs
    world.execute_query("MATCH (me:User {userId: 'me'}), (bob:User {userId: 'bob'}) CREATE (me)-[:FOLLOWS]->(bob)")
    try:
        more = user_context(world, "me")
        assert more is not None and more.follows == 2
        assert explain(held_user=HeldUser.of(more)) == explain_items(world, "me", ALL) and len(queries) == 2
    finally:
        world.execute_query("MATCH (:User {userId: 'me'})-[f:FOLLOWS]->(:User {userId: 'bob'}) DELETE f")
    world.execute_query("MATCH (:User {userId: 'me'})-[f:FOLLOWS]->() DELETE f")
    me = user_context(world, "me")
    assert me is not None and me.follows == 0 and HeldUser.of(me) == HeldUser(("Comedy",), 0)
    held = HeldUser.of(me)
    queries.clear()
    again = explain()
    assert queries == []  # a user who follows nobody now: every side held, no followee, joined without a query
    first = explain_items(world, "me", ALL)
    assert again == first and list(again) == list(first) and again != followed
    assert any(e.nodes[1].label == "Genre" for item in again.values() for e in item.explanations)  # held preferred
    assert_paths_exist(world, list(again.values()), ("User", "me"))
    # excluded items are left out without a query; a genre or year filter is the query's to apply
    excluded = RecallFilters(exclude_items=["r", "w"])
    assert explain(filters=excluded) == explain_items(world, "me", ALL, filters=excluded) and queries == []
    crime = RecallFilters(include_genres=["Crime"])
    assert explain(filters=crime) == explain_items(world, "me", ALL, filters=crime) and len(queries) == 1
    # an item whose side is not held (here: unknown) sends the whole request to the query
    assert (
        explain_items(
            world,
            "me",
            [*ALL, "nope"],
            seed_ids=seeds,
            seeds_checked=True,
            neighbourhoods=kept,
            held_user=held,
            on_timing=lambda name, _s: queries.append(name),
        )
        == first
    )
    assert len(queries) == 2


def test_explain_items_timing_callback(world: Driver) -> None:
    timings: list[tuple[str, float]] = []
    explain_items(world, "me", ["r"], on_timing=lambda name, seconds: timings.append((name, seconds)))
    assert [name for name, _ in timings] == ["explain"] and 0 < timings[0][1] < 60


# --- bounded for a heavy user ---------------------------------------------------------------------------------


def heavy_world() -> Dataset:
    """hv liked 120 items (p0..p119), each also liked by 30 of 40 other users; "goal" is liked by all 40 of them."""
    others = [f"o{n:02d}" for n in range(40)]
    items = [(f"p{n}", f"Item {n}", 2000) for n in range(120)] + [("goal", "Goal", 2000)]
    ratings = [("hv", f"p{n}", 5.0, NOW - n) for n in range(120)]
    ratings += [(o, f"p{n}", 5.0, NOW) for n in range(120) for o in others[n % 10 : n % 10 + 30]]
    ratings += [(o, "goal", 5.0, NOW) for o in others]
    return graphs.build("heavy_world", items, ratings)


def _profile_rows(plan: dict, out: list[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
    out.append(
        (
            plan["operatorType"].split("@")[0],
            plan.get("args", {}).get("Details", ""),
            plan.get("rows", 0),
            plan.get("dbHits", 0),
        )
    )
    for child in plan.get("children", []):
        _profile_rows(child, out)
    return out


def test_explain_items_is_bounded_for_a_heavy_user(clean_db: Driver, tmp_path: Path) -> None:
    load_dataset(clean_db, heavy_world(), reject_dir=tmp_path)
    caps = {"max_seeds": 5, "max_co_raters_per_seed": 3, "max_raters_per_item": 4}
    result = explain_items(clean_db, "hv", ["goal", "p0"], **caps)
    assert list(result) == ["goal", "p0"]
    assert_paths_exist(clean_db, list(result.values()), ("User", "hv"))
    assert all(len(item.explanations) <= 2 for item in result.values())
    # the seeds are hv's strongest, most recent positives: p0..p4
    assert {e.nodes[1].id for item in result.values() for e in item.explanations} <= {"p0", "p1", "p2", "p3", "p4"}

    params = {
        "userId": "hv",
        "itemIds": ["goal", "p0"],
        "seedIds": None,
        "checkSeeds": True,
        "readSeeds": None,
        "readItems": None,
        "heldFollowees": [],
        **ExplainCaps(**caps).to_params(),
        **RecallFilters().to_params(),
    }
    with clean_db.session() as session:
        plan = session.run("PROFILE " + catalog.EXPLAIN_ITEMS, params).consume().profile
    expands = [(details, rows) for op, details, rows, _ in _profile_rows(plan, []) if op.startswith("Expand")]
    seed_side = sum(rows for details, rows in expands if details.startswith("(s)<-[r:INTERACTED]-(v)"))
    item_side = sum(rows for details, rows in expands if details.startswith("(item)<-[r:INTERACTED]-(v)"))
    user_side = sum(rows for details, rows in expands if details.startswith("(u)-[r:INTERACTED]->(s)"))
    assert user_side == 120  # reading the user's own interactions once is the only degree-sized step
    assert 0 < seed_side <= 5 * (3 + 1)  # at most one extra row per seed: hv, skipped
    assert 0 < item_side <= 2 * 4
    total_hits = sum(hits for _, _, _, hits in _profile_rows(plan, []))
    # expanding hv's neighbourhood (120 items x 30 co-raters, reading each rating) alone would cost > 7,000
    assert total_hits < 2_500, total_hits

    # seeds picked by the caller from the context it already read: hv's interactions are not scanned again
    context = user_context(clean_db, "hv")
    assert context is not None and len(context.interactions) == 120
    seeds = strongest_seeds(context, max_seeds=5)
    assert seeds == ["p0", "p1", "p2", "p3", "p4"]
    assert explain_items(clean_db, "hv", ["goal", "p0"], seed_ids=seeds, **caps) == result
    with clean_db.session() as session:
        plan = session.run("PROFILE " + catalog.EXPLAIN_ITEMS, {**params, "seedIds": seeds}).consume().profile
    rows = _profile_rows(plan, [])
    scans = [n for op, details, n, _ in rows if op == "Expand(All)" and details.startswith("(u)-[r:INTERACTED]->(s)")]
    assert scans == [0]  # only an Expand(Into) checks that each given seed is a positive of hv
    assert sum(hits for _, _, _, hits in rows) < total_hits


# --- user context ---------------------------------------------------------------------------------------------


def test_user_context_known_users(world: Driver) -> None:
    me = user_context(world, "me")
    assert me is not None
    assert me.user_id == "me"
    assert me.interactions == (
        Interaction("a", 2.0, 1.0, NOW),
        Interaction("h", 5.0, 1.0, NOW),
        Interaction("t", 4.0, 1.0, NOW - DAY),
    )
    assert me.preferred_genres == ("Comedy",)
    ana = user_context(world, "ana")
    assert ana is not None
    assert ana.interactions == (
        Interaction("r", 5.0, 1.0, NOW),
        Interaction("w", 4.5, 1.0, NOW),
        Interaction("z", None, 1.0, None),
    )
    assert ana.preferred_genres == ()
    newbie = user_context(world, "newbie")
    assert newbie is not None and newbie.interactions == () and newbie.preferred_genres == ("Comedy", "Drama")


def test_user_context_unknown_user(world: Driver) -> None:
    assert user_context(world, "ghost") is None
    assert user_context(world, "") is None


def test_user_context_shown_leaves_out_interacted_items(clean_db: Driver, tmp_path: Path) -> None:
    load_dataset(clean_db, explain_world(), reject_dir=tmp_path)
    lists = [("l1", ["h", "r", "x"]), ("l2", ["r", "a"])]  # "me" interacted with h and a, not with r and x
    rows = [
        {
            "recommendation_id": rid,
            "user_id": "me",
            "variant": "default",
            "model_version": "m-1",
            "shown_at": NOW,
            "item_ids": items,
        }
        for rid, items in lists
    ]
    for part in impression_batches(rows, len(rows)):
        write_impressions(BatchWriter(clean_db), part)
    me = user_context(clean_db, "me")
    assert me is not None and me.lists_shown == 2
    assert {item_id: count for item_id, (count, _) in me.shown.items()} == {"r": 2, "x": 1}


def test_explain_queries_are_catalogued() -> None:
    for constant in ("EXPLAIN_ITEMS", "USER_CONTEXT"):
        assert getattr(catalog, constant) == catalog.all_queries()[constant]
    # one row of joins; the paths are ranked and built in Python (graph/explain.py)
    last = catalog.EXPLAIN_ITEMS[catalog.EXPLAIN_ITEMS.rindex("\nRETURN ") :]
    columns = [line.strip().rstrip(",").split(" AS ")[-1].split(", ") for line in last.strip().splitlines()]
    assert sum(columns, []) == [
        "items",
        "seeds",
        "seed_sides",
        "item_sides",
        "followees",
        "followee_sides",
        "follows",
        "preferred",
    ]


def test_explain_items_sends_its_id_lists_in_one_length_bucket(world: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neo4j plans a query once per parameter *types*, and by default a list's type includes its length's power-of-ten
    bucket (an empty list is one apart): every id list of the query is padded with the sentinel id into the bucket of
    11–100, so the query keeps one plan however many items, seeds and sides there are, and the answers are those
    read without held sides."""
    sent: list[dict] = []

    def spy(name: str, query: str, params: dict, driver: Driver, database: str) -> tuple:
        sent.append(dict(params))
        return run_read(name, query, params, driver, database)

    monkeypatch.setattr("graph.explain.run_read", spy)
    kept = Neighbourhoods(size=1000, seconds=3600)
    context = user_context(world, "me")
    assert context is not None
    seeds = strongest_seeds(context)
    first = explain_items(world, "me", ALL[:5], seed_ids=seeds, neighbourhoods=kept)  # nothing held yet
    again = explain_items(world, "me", ALL, seed_ids=seeds, neighbourhoods=kept)  # every seed side held, half the items
    assert first == explain_items(world, "me", ALL[:5]) and again == explain_items(world, "me", ALL)
    names = ("itemIds", "seedIds", "readSeeds", "readItems", "heldFollowees")
    lists = [[p[name] for name in names] for p in sent if p["readItems"] is not None]
    assert len(lists) == 2 and all(
        isinstance(ids, list) and ONE_BUCKET <= len(ids) <= 100 and all(isinstance(i, str) for i in ids)
        for row in lists
        for ids in row
    ), lists
    given = [[[i for i in ids if i != NO_ID] for ids in row] for row in lists]
    assert given[0][0] == ALL[:5] and given[1][0] == ALL and given[0][1] == given[1][1] == list(seeds)
    assert given[1][2:] == [[], ALL[5:], ["ana"]]
    assert given[0][4] == []  # no followee side held yet: the sentinels alone
