"""Recall strategies on small named graphs with known answers (tests/fixtures/graphs.py), on the real Neo4j."""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest
from neo4j import Driver, GraphDatabase

from etl.dataset import Dataset
from etl.load import load_dataset
from graph import catalog, reads, recall
from graph.paths import Explanation
from graph.recall import Candidate, RecallFilters
from schema.errors import DatabaseUnavailableError
from tests.fixtures import graphs

LN4 = math.log(4.0)
KEYS = {"User": "userId", "Item": "itemId", "Genre": "name", "Tag": "name", "Person": "personId"}

#: Test-only check that every relationship of a path is stored between those two nodes in that direction.
_REL_EXISTS = """
UNWIND $rels AS rel
OPTIONAL MATCH (a)-[r]->(b)
WHERE rel.startLabel IN labels(a) AND a[rel.startKey] = rel.startId
  AND rel.endLabel IN labels(b) AND b[rel.endKey] = rel.endId AND type(r) = rel.type
RETURN rel.index AS index, count(r) AS found
ORDER BY index
"""
_NODE_NAMES = """
UNWIND $nodes AS node
OPTIONAL MATCH (n) WHERE node.label IN labels(n) AND n[node.key] = node.id
RETURN node.index AS index, count(n) AS found, collect(coalesce(n.title, n.name))[0] AS name
ORDER BY index
"""

Loader = Callable[[str], Driver]


@pytest.fixture
def load(clean_db: Driver, tmp_path: Path) -> Loader:
    """Load a named graph of tests/fixtures/graphs.py into the wiped test database."""

    def _load(name: str) -> Driver:
        load_dataset(clean_db, graphs.GRAPHS[name](), reject_dir=tmp_path)
        return clean_db

    return _load


def ids(candidates: list[Candidate]) -> list[str]:
    return [c.item_id for c in candidates]


def path_of(explanation: Explanation) -> tuple[list[tuple[str, str]], list[tuple[str, int, int]]]:
    return (
        [(n.label, n.id) for n in explanation.nodes],
        [(r.type, r.start, r.end) for r in explanation.relationships],
    )


def assert_paths_exist(driver: Driver, candidates: list[Candidate], anchor: tuple[str, str]) -> None:
    """Every path starts at the anchor, ends at its candidate, names real nodes and follows stored relationships."""
    for candidate in candidates:
        for explanation in candidate.explanations:
            if not explanation.nodes:
                assert explanation.text in ("Popular lately", "Popular overall") and not explanation.relationships
                continue
            nodes = explanation.nodes
            assert (nodes[0].label, nodes[0].id) == anchor, explanation
            assert (nodes[-1].label, nodes[-1].id) == ("Item", candidate.item_id), explanation
            assert len(explanation.relationships) == len(nodes) - 1, explanation
            node_rows = [{"index": i, "label": n.label, "key": KEYS[n.label], "id": n.id} for i, n in enumerate(nodes)]
            records, _, _ = driver.execute_query(_NODE_NAMES, {"nodes": node_rows})
            for record, node in zip(records, nodes, strict=True):
                assert record["found"] == 1, node
                assert node.name == (None if node.label == "User" else record["name"]), node
            rel_rows = [
                {
                    "index": i,
                    "type": r.type,
                    "startLabel": nodes[r.start].label,
                    "startKey": KEYS[nodes[r.start].label],
                    "startId": nodes[r.start].id,
                    "endLabel": nodes[r.end].label,
                    "endKey": KEYS[nodes[r.end].label],
                    "endId": nodes[r.end].id,
                }
                for i, r in enumerate(explanation.relationships)
            ]
            records, _, _ = driver.execute_query(_REL_EXISTS, {"rels": rel_rows})
            assert [r["found"] for r in records] == [1] * len(rel_rows), explanation
            # consecutive nodes of a path are joined by its relationships, one per step
            steps = {frozenset((r.start, r.end)) for r in explanation.relationships}
            assert steps == {frozenset((i, i + 1)) for i in range(len(nodes) - 1)}, explanation


def seen_items(driver: Driver, user_id: str) -> set[str]:
    records, _, _ = driver.execute_query(
        "MATCH (:User {userId: $userId})-[:INTERACTED]->(i:Item) RETURN i.itemId AS id", {"userId": user_id}
    )
    return {r["id"] for r in records}


# --- the catalogue -------------------------------------------------------------------------------------------


def test_every_recall_query_is_catalogued() -> None:
    files = [p.name for p in resources.files("graph.queries").iterdir() if p.name.endswith(".cypher")]
    recall_files = sorted(f for f in files if f.startswith("recall_"))
    assert recall_files == [
        "recall_collaborative.cypher",
        "recall_embedding.cypher",
        "recall_knowledge.cypher",
        "recall_popularity.cypher",
        "recall_social.cypher",
    ]
    for name in [*recall_files, "similar_items.cypher", "user_exists.cypher", "item_exists.cypher"]:
        constant = name[: -len(".cypher")].upper()
        assert getattr(catalog, constant) == catalog.all_queries()[constant], constant
    for constant in ("RECALL_COLLABORATIVE", "RECALL_KNOWLEDGE", "RECALL_SOCIAL", "RECALL_POPULARITY", "SIMILAR_ITEMS"):
        assert catalog.all_queries()[constant].rstrip().splitlines()[-1].startswith("ORDER BY score DESC, item_id ASC")
        assert "LIMIT $k" in catalog.all_queries()[constant]


def test_strategy_registry_names() -> None:
    assert list(recall.STRATEGIES) == ["collaborative", "knowledge", "social", "popularity"]


# --- collaborative ---------------------------------------------------------------------------------------------


def test_collaborative_co_rated_pair_exact(load: Loader) -> None:
    driver = load("co_rated_pair")
    result = recall.recall_collaborative(driver, "u1", k=10)
    assert ids(result) == ["3", "5"]
    sim_u2, sim_u3 = (1 / LN4) / math.sqrt(3), (1 / LN4) / math.sqrt(2)
    assert [c.score for c in result] == pytest.approx([2 * sim_u2 / math.log(3), sim_u3 / math.log(3)])
    assert [c.source for c in result] == ["collaborative", "collaborative"]
    assert result[0].title == "Ronin"
    [ronin], [aliens] = result[0].explanations, result[1].explanations
    assert path_of(ronin) == (
        [("User", "u1"), ("Item", "1"), ("User", "u2"), ("Item", "3")],
        [("INTERACTED", 0, 1), ("INTERACTED", 2, 1), ("INTERACTED", 2, 3)],
    )
    assert ronin.text == "Because users who liked Heat also liked Ronin"
    assert path_of(aliens)[0] == [("User", "u1"), ("Item", "2"), ("User", "u3"), ("Item", "5")]
    assert_paths_exist(driver, result, ("User", "u1"))


def test_collaborative_checkerboard_breaks_ties_by_item_id(load: Loader) -> None:
    driver = load("checkerboard")
    first = recall.recall_collaborative(driver, "u0", k=10)
    assert ids(first) == ["i2", "i4"]
    assert first[0].score == first[1].score
    assert ids(recall.recall_collaborative(driver, "u0", k=1)) == ["i2"]
    assert recall.recall_collaborative(driver, "u0", k=10) == first
    for user in ("u1", "u2", "u3"):
        assert recall.recall_collaborative(driver, user, k=10) == []


def test_collaborative_two_communities_stays_in_community(load: Loader) -> None:
    driver = load("two_communities")
    result = recall.recall_collaborative(driver, "a3", k=10)
    assert ids(result) == ["c2"]
    # both neighbours share the same seed, so one path (one per seed) explains it
    assert [path_of(e)[0] for e in result[0].explanations] == [
        [("User", "a3"), ("Item", "c1"), ("User", "a1"), ("Item", "c2")]
    ]
    assert recall.recall_collaborative(driver, "ghost", k=10) == []
    assert recall.recall_collaborative(driver, "newbie", k=10) == []


def test_collaborative_caps_bound_the_neighbours(load: Loader) -> None:
    driver = load("co_rated_pair")
    # u3 is the closer neighbour (lighter rater); with one neighbour only Aliens is reachable
    assert ids(recall.recall_collaborative(driver, "u1", k=10, max_neighbours=1)) == ["5"]
    # with one seed (Heat, the strongest positive) only u2 is a neighbour
    assert ids(recall.recall_collaborative(driver, "u1", k=10, max_seeds=1)) == ["3"]


def _wide_fan_out(clean_db: Driver, tmp_path: Path) -> Driver:
    """me likes S and follows r1; r1..r5 like S, r1 also likes x1..x6, r2..r5 each like one y item."""
    items = [("S", "Seed", 2000), *((f"x{n}", f"X {n}", 2000) for n in range(1, 7))]
    items += [(f"y{n}", f"Y {n}", 2000) for n in range(2, 6)]
    ratings: list[graphs.Rating] = [("me", "S", 5.0, graphs.NOW)]
    ratings += [(f"r{n}", "S", 5.0, graphs.NOW) for n in range(1, 6)]
    ratings += [("r1", f"x{n}", 5.0, graphs.NOW + n) for n in range(1, 7)]
    ratings += [(f"r{n}", f"y{n}", 5.0, graphs.NOW) for n in range(2, 6)]
    load_dataset(clean_db, graphs.build("wide", items, ratings, follows=[("me", "r1")]), reject_dir=tmp_path)
    return clean_db


def test_scan_caps_bound_what_collaborative_and_social_read(clean_db: Driver, tmp_path: Path) -> None:
    """Caps on what is read, whatever the store order: a seed's raters, a neighbour's and a person's interactions."""
    driver = _wide_fan_out(clean_db, tmp_path)
    everything = set(ids(recall.recall_collaborative(driver, "me", k=20)))
    assert everything == {"x1", "x2", "x3", "x4", "x5", "x6", "y2", "y3", "y4", "y5"}
    # two of S's six raters read (me among them, perhaps): one or two neighbours, never five
    two_raters = recall.recall_collaborative(driver, "me", k=20, max_raters_scanned_per_seed=2)
    neighbours = {p.nodes[2].id for c in two_raters for p in c.explanations}
    assert 1 <= len(neighbours) <= 2 and set(ids(two_raters)) < everything
    # two of r1's seven interactions read: at most two of its six unseen positives
    few_items = set(ids(recall.recall_collaborative(driver, "me", k=20, max_items_scanned_per_neighbour=2)))
    assert len(few_items & {"x1", "x2", "x3", "x4", "x5", "x6"}) <= 2 and {"y2", "y3", "y4", "y5"} <= few_items
    assert set(ids(recall.recall_social(driver, "me", k=20))) == {"x1", "x2", "x3", "x4", "x5", "x6"}
    assert len(recall.recall_social(driver, "me", k=20, max_items_scanned_per_person=2)) <= 2


def test_collaborative_walk_is_shared_by_the_seeds(clean_db: Driver, tmp_path: Path) -> None:
    """``max_raters_scanned`` bounds the raters read over all seeds: each seed reads its share (here one seed, S,
    with six raters), never fewer than ``max_co_raters_per_seed`` nor more than ``max_raters_scanned_per_seed``."""
    driver = _wide_fan_out(clean_db, tmp_path)
    context = reads.user_context(driver, "me")
    assert context is not None
    history = recall.History(context)
    everything = set(ids(recall.recall_collaborative(driver, "me", k=20, history=history)))
    assert len(everything) == 10
    bounded = {"max_raters_scanned": 2, "max_co_raters_per_seed": 2}
    two = recall.recall_collaborative(driver, "me", k=20, history=history, **bounded)
    neighbours = {p.nodes[2].id for c in two for p in c.explanations}
    assert 1 <= len(neighbours) <= 2 and set(ids(two)) < everything
    # the same share when the query reads the seeds itself and max_seeds is the one seed
    own = recall.recall_collaborative(driver, "me", k=20, max_seeds=1, **bounded)
    assert ids(own) == ids(two)
    # a larger total reads every rater again; the per-seed cap still bounds it
    assert (
        set(ids(recall.recall_collaborative(driver, "me", k=20, history=history, max_raters_scanned=6))) == everything
    )
    capped = {"max_raters_scanned": 100, "max_raters_scanned_per_seed": 2, "max_co_raters_per_seed": 2}
    assert set(ids(recall.recall_collaborative(driver, "me", k=20, history=history, **capped))) < everything


def test_collaborative_share_per_seed() -> None:
    caps = recall.CollaborativeCaps()
    assert [caps.raters_per_seed(n) for n in (0, 1, 5, 12, 13, 50, 200)] == [500, 500, 500, 500, 462, 120, 50]
    assert "maxRatersScanned" not in caps.to_params() and caps.to_params()["maxRatersScannedPerSeed"] == 500


# --- knowledge -------------------------------------------------------------------------------------------------


def test_knowledge_shared_actor_exact(load: Loader) -> None:
    driver = load("shared_actor")
    result = recall.recall_knowledge(driver, "42", k=10)
    assert ids(result) == ["4", "3", "6", "5"]
    assert [c.score for c in result] == pytest.approx([3.5 * LN4, 2 * LN4, LN4, 0.5 * LN4])
    collateral, cast_away = result[0], result[1]
    assert [path_of(e) for e in collateral.explanations] == [
        (
            [("User", "42"), ("Item", "2"), ("Person", "michael_mann"), ("Item", "4")],
            [("INTERACTED", 0, 1), ("DIRECTED", 2, 1), ("DIRECTED", 2, 3)],
        ),
        (
            [("User", "42"), ("Item", "2"), ("Genre", "Crime"), ("Item", "4")],
            [("INTERACTED", 0, 1), ("IN_GENRE", 1, 2), ("IN_GENRE", 3, 2)],
        ),
    ]
    assert [e.text for e in collateral.explanations] == [
        "Because you liked Heat, also directed by Michael Mann",
        "Because you liked Heat, also in Crime",
    ]
    assert [e.text for e in cast_away.explanations] == ["Because you liked Toy Story, which also stars Tom Hanks"]
    assert cast_away.explanations[0].nodes[2].name == "Tom Hanks"
    assert [e.text for e in result[2].explanations] == ['Because you liked Toy Story, also tagged "pixar"']
    assert_paths_exist(driver, result, ("User", "42"))


@pytest.mark.parametrize(
    ("filters", "k", "expected"),
    [
        (RecallFilters(exclude_genres=["Crime"]), 10, ["3", "6", "5"]),
        (RecallFilters(include_genres=["Animation"]), 10, ["5"]),
        (RecallFilters(include_genres=["Animation", "Drama"]), 10, ["3", "5"]),
        (RecallFilters(year_min=2001), 10, ["4", "6", "5"]),
        (RecallFilters(year_max=2003), 10, ["3", "5"]),
        (RecallFilters(year_min=2001, year_max=2005), 10, ["4", "5"]),
        (RecallFilters(exclude_items=["4"]), 10, ["3", "6", "5"]),
        (RecallFilters(exclude_items=["4"]), 2, ["3", "6"]),
        (RecallFilters(exclude_genres=["Crime"], year_min=2001), 2, ["6", "5"]),
        (RecallFilters(include_genres=["Western"]), 10, []),
    ],
)
def test_knowledge_filters_apply_before_k(load: Loader, filters: RecallFilters, k: int, expected: list[str]) -> None:
    driver = load("shared_actor")
    assert ids(recall.recall_knowledge(driver, "42", k=k, filters=filters)) == expected


def test_knowledge_trait_weights_change_the_order(load: Loader) -> None:
    driver = load("shared_actor")
    result = recall.recall_knowledge(driver, "42", k=10, director_weight=0.0, genre_weight=0.0, actor_weight=5.0)
    assert ids(result)[:2] == ["3", "6"]


# --- social ----------------------------------------------------------------------------------------------------


def test_social_friend_of_friend_exact(load: Loader) -> None:
    driver = load("friend_of_friend")
    result = recall.recall_social(driver, "me", k=10)
    assert ids(result) == ["20", "10"]
    assert [c.score for c in result] == pytest.approx([3.0, 1.0])
    ronin, up = result
    assert [path_of(e) for e in ronin.explanations] == [
        ([("User", "me"), ("User", "ana"), ("Item", "20")], [("FOLLOWS", 0, 1), ("INTERACTED", 1, 2)]),
        (
            [("User", "me"), ("User", "ana"), ("User", "ben"), ("Item", "20")],
            [("FOLLOWS", 0, 1), ("FOLLOWS", 1, 2), ("INTERACTED", 2, 3)],
        ),
    ]
    assert [e.text for e in ronin.explanations] == [
        "Because user ana, whom you follow, liked Ronin",
        "Because user ben, whom user ana follows, liked Ronin",
    ]
    assert [path_of(e)[0] for e in up.explanations] == [
        [("User", "me"), ("User", "ana"), ("User", "ben"), ("Item", "10")]
    ]
    assert_paths_exist(driver, result, ("User", "me"))


def test_social_hop_decay_and_caps(load: Loader) -> None:
    driver = load("friend_of_friend")
    assert [c.score for c in recall.recall_social(driver, "me", k=10, hop_decay=1.0)] == pytest.approx([4.0, 2.0])
    assert ids(recall.recall_social(driver, "me", k=10, max_people=1)) == ["20"]
    # ana follows ben and me (whose Heat she has seen); cleo is ben's followee
    result = recall.recall_social(driver, "ana", k=10)
    assert ids(result) == ["10", "40"]
    assert_paths_exist(driver, result, ("User", "ana"))


def test_social_without_follows_is_empty(load: Loader) -> None:
    driver = load("co_rated_pair")
    assert recall.recall_social(driver, "u1", k=10) == []
    assert recall.recall_social(driver, "nobody", k=10) == []


# --- popularity ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", ["ghost", "newbie"])
def test_popularity_for_unknown_and_new_users(load: Loader, user_id: str) -> None:
    driver = load("two_communities")
    assert reads.user_exists(driver, user_id) is (user_id == "newbie")
    result = recall.recall_popularity(driver, user_id, k=10)
    assert ids(result) == ["d1", "c1", "d2", "c3", "c2"]
    assert [c.score for c in result] == pytest.approx([4.0, 3.0, 2.0, 1.0, 2 * 0.5 ** (365 / 180)])
    assert all(e.text == "Popular lately" and e.nodes == [] for c in result for e in c.explanations)
    assert all(len(c.explanations) == 1 for c in result)


def test_popularity_boosts_preferred_genres_and_breaks_ties_by_id(load: Loader) -> None:
    driver = load("two_communities")
    result = recall.recall_popularity(driver, "a1", k=10)
    assert ids(result) == ["d1", "c3", "d2"]
    assert [c.score for c in result] == pytest.approx([4.0, 2.0, 2.0])
    [hot_shots] = result[1].explanations
    assert path_of(hot_shots) == (
        [("User", "a1"), ("Item", "c1"), ("Genre", "Comedy"), ("Item", "c3")],
        [("INTERACTED", 0, 1), ("IN_GENRE", 1, 2), ("IN_GENRE", 3, 2)],
    )
    assert hot_shots.text == "Popular in Comedy lately"
    assert [e.text for e in result[0].explanations] == ["Popular lately"]
    assert_paths_exist(driver, result, ("User", "a1"))
    assert ids(recall.recall_popularity(driver, "b3", k=10)) == ["d2", "c1", "c3", "c2"]
    assert ids(recall.recall_popularity(driver, "a1", k=10, genre_boost=0.0)) == ["d1", "d2", "c3"]


@pytest.mark.parametrize(
    ("filters", "k", "expected"),
    [
        (RecallFilters(include_genres=["Comedy"]), 10, ["c1", "c3", "c2"]),
        (RecallFilters(exclude_genres=["Comedy"]), 10, ["d1", "d2"]),
        (RecallFilters(exclude_items=["d1"]), 10, ["c1", "d2", "c3", "c2"]),
        (RecallFilters(exclude_genres=["Drama"]), 2, ["c1", "c3"]),
        (RecallFilters(year_min=1990), 10, ["d1", "d2", "c3"]),
        (RecallFilters(year_max=1990), 10, ["c1", "c2"]),
    ],
)
def test_popularity_filters(load: Loader, filters: RecallFilters, k: int, expected: list[str]) -> None:
    driver = load("two_communities")
    assert ids(recall.recall_popularity(driver, "ghost", k=k, filters=filters)) == expected


def test_popularity_window_and_half_life(load: Loader) -> None:
    driver = load("two_communities")
    # a 30-day half-life makes last year's Clue all but vanish; a window of the 4 newest interactions
    # (all "now", store order among equal timestamps) keeps fewer items
    result = recall.recall_popularity(driver, "ghost", k=10, half_life_days=30.0)
    assert result[-1].item_id == "c2" and result[-1].score == pytest.approx(2 * 0.5 ** (365 / 30))
    # the window ranks first: items outside it come after every item inside it, as "popular overall"
    windowed = recall.recall_popularity(driver, "ghost", k=10, window=4)
    texts = [c.explanations[0].text for c in windowed]
    inside = texts.count("Popular lately")
    assert 0 < inside < len(windowed) == 5 and set(texts[inside:]) == {"Popular overall"}
    assert min(c.score for c in windowed[:inside]) > max(c.score for c in windowed[inside:])
    # a recent window that holds enough items is not widened
    assert len(recall.recall_popularity(driver, "ghost", k=inside, window=4)) == inside


def test_popularity_without_timestamps_counts_interactions(clean_db: Driver, tmp_path: Path) -> None:
    ds = graphs.build(
        "no_timestamps",
        [("a", "Alpha", None), ("b", "Beta", None), ("c", "Gamma", None)],
        [
            ("u1", "a", None, None),
            ("u2", "a", None, None),
            ("u2", "b", None, None),
            ("u3", "c", 5.0, None),
            ("u3", "a", None, None),
        ],
    )
    load_dataset(clean_db, ds, reject_dir=tmp_path)
    result = recall.recall_popularity(clean_db, "u1", k=10)
    assert ids(result) == ["b", "c"]
    assert [c.score for c in result] == pytest.approx([1.0, 1.0])
    assert ids(recall.recall_popularity(clean_db, "ghost", k=10)) == ["a", "b", "c"]
    assert {e.text for c in result for e in c.explanations} == {"Popular overall"}


def test_popularity_falls_back_to_every_interaction_when_the_recent_ones_are_thin(
    clean_db: Driver, tmp_path: Path
) -> None:
    """A catalogue loaded without timestamps (Last.fm) plus two interactions posted just now: a new user still gets
    k items, the just-posted ones first ("popular lately"), then the most liked of the rest ("popular overall")."""
    items = [(f"i{n}", f"Item {n}", None) for n in range(8)]
    loaded = [(f"u{u}", f"i{n}", None, None) for n in range(8) for u in range(8 - n)]  # i0 liked most, i7 least
    posted = [("fresh", "i6", None, 1_700_000_000), ("fresh", "i7", None, 1_700_000_000)]
    load_dataset(clean_db, graphs.build("thin_recent", items, loaded + posted), reject_dir=tmp_path)
    result = recall.recall_popularity(clean_db, "newcomer", k=5)
    assert ids(result) == ["i6", "i7", "i0", "i1", "i2"]
    assert [c.explanations[0].text for c in result] == ["Popular lately"] * 2 + ["Popular overall"] * 3
    assert [c.score for c in result] == sorted((c.score for c in result), reverse=True)
    assert len(recall.recall_popularity(clean_db, "newcomer", k=20)) == 8  # all the catalogue has


# --- similar items ---------------------------------------------------------------------------------------------


def test_similar_items_shared_actor_exact(load: Loader) -> None:
    driver = load("shared_actor")
    result = recall.similar_items(driver, "1", k=10)
    assert ids(result) == ["2", "3", "6", "5"]
    assert [c.score for c in result] == pytest.approx([1.0, 1.0, 0.5, 0.25])
    assert [c.source for c in result] == ["similar"] * 4
    assert [path_of(e) for e in result[0].explanations] == [
        ([("Item", "1"), ("User", "42"), ("Item", "2")], [("INTERACTED", 1, 0), ("INTERACTED", 1, 2)])
    ]
    assert result[0].explanations[0].text == "Users who liked Toy Story also liked Heat"
    assert [path_of(e) for e in result[1].explanations] == [
        ([("Item", "1"), ("Person", "tom_hanks"), ("Item", "3")], [("ACTED_IN", 1, 0), ("ACTED_IN", 1, 2)])
    ]
    assert [e.text for e in result[1].explanations] == ["Also stars Tom Hanks"]
    assert [e.text for e in result[2].explanations] == ['Also tagged "pixar"']
    assert [e.text for e in result[3].explanations] == ["Also in Animation"]
    assert_paths_exist(driver, result, ("Item", "1"))
    assert ids(recall.similar_items(driver, "1", k=10, co_weight=0.0)) == ["3", "6", "5"]
    assert ids(recall.similar_items(driver, "1", k=10, filters=RecallFilters(exclude_genres=["Crime"]))) == [
        "3",
        "6",
        "5",
    ]


def test_similar_items_co_rated_pair_ties_and_self(load: Loader) -> None:
    driver = load("co_rated_pair")
    result = recall.similar_items(driver, "1", k=10)
    assert ids(result) == ["3", "2", "4"]
    assert [c.score for c in result] == pytest.approx([1.0, 1 / math.sqrt(2), 1 / math.sqrt(2)])
    assert "1" not in ids(result)
    assert_paths_exist(driver, result, ("Item", "1"))
    assert recall.similar_items(driver, "no-such-item", k=10) == []


# --- properties on every graph ---------------------------------------------------------------------------------


def _dataset_users_items(ds: Dataset) -> tuple[list[str], list[str]]:
    return [u.user_id for u in ds.users], [i.item_id for i in ds.items]


@pytest.mark.parametrize("graph", sorted(graphs.GRAPHS))
def test_every_strategy_on_every_graph(load: Loader, graph: str) -> None:
    driver = load(graph)
    users, items = _dataset_users_items(graphs.GRAPHS[graph]())
    for user in users:
        seen = seen_items(driver, user)
        for name, strategy in recall.STRATEGIES.items():
            result = strategy(driver, user, k=3)
            assert len(result) <= 3
            assert not seen & set(ids(result)), (graph, user, name)
            assert [(-c.score, c.item_id) for c in result] == sorted((-c.score, c.item_id) for c in result)
            assert all(c.source == name and 0 < len(c.explanations) <= 3 for c in result), (graph, user, name)
            assert_paths_exist(driver, result, ("User", user))
            assert strategy(driver, user, k=3) == result  # deterministic
    for item in items:
        result = recall.similar_items(driver, item, k=5)
        assert item not in ids(result)
        assert_paths_exist(driver, result, ("Item", item))


# --- existence, timing, errors ---------------------------------------------------------------------------------


def test_user_and_item_exist(load: Loader) -> None:
    driver = load("shared_actor")
    assert reads.user_exists(driver, "42") and not reads.user_exists(driver, "43")
    assert reads.item_exists(driver, "1") and not reads.item_exists(driver, "7")


def test_on_timing_receives_each_query_time(load: Loader) -> None:
    driver = load("shared_actor")
    timings: list[tuple[str, float]] = []
    for strategy in recall.STRATEGIES.values():
        strategy(driver, "42", k=5, on_timing=lambda name, seconds: timings.append((name, seconds)))
    recall.similar_items(driver, "1", k=5, on_timing=lambda name, seconds: timings.append((name, seconds)))
    assert [name for name, _ in timings] == ["collaborative", "knowledge", "social", "popularity", "similar"]
    assert all(0 < seconds < 60 for _, seconds in timings)


def test_unreachable_neo4j_raises_database_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = GraphDatabase.driver(f"bolt://127.0.0.1:{port}", auth=("neo4j", "x" * 8), max_transaction_retry_time=0)
    try:
        with pytest.raises(DatabaseUnavailableError, match="unreachable"):
            recall.recall_popularity(driver, "42", k=5)
        with pytest.raises(DatabaseUnavailableError):
            reads.user_exists(driver, "42")
    finally:
        driver.close()


# --- one history read per request, one popularity window for every user -----------------------------------------


@pytest.mark.parametrize("graph", sorted(graphs.GRAPHS))
def test_a_given_history_and_held_window_answer_as_the_queries_reading_them(load: Loader, graph: str) -> None:
    """The API reads a user's history once and gives it to every strategy, and holds popularity's window: the answers
    are those of the queries reading both themselves, for every user of every graph, with other caps and filters."""
    driver = load(graph)
    users = [r["id"] for r in driver.execute_query("MATCH (u:User) RETURN u.userId AS id ORDER BY id")[0]]
    window = recall.PopularityWindow(3600.0)
    narrow = RecallFilters(exclude_genres=["Drama"], year_min=1990)
    for user in users:
        context = reads.user_context(driver, user)
        assert context is not None
        history = recall.History(context)
        for name, strategy in recall.STRATEGIES.items():
            extra: dict = {"popular": window} if name == "popularity" else {}
            for caps, filters in (({}, None), ({"max_seeds": 1}, None), ({}, narrow)):
                if name == "social" and caps:
                    continue
                own = strategy(driver, user, k=10, filters=filters, **caps)
                given = strategy(driver, user, k=10, filters=filters, history=history, **extra, **caps)
                assert given == own, (graph, user, name, caps, filters)


def test_the_queries_read_the_given_history_not_the_users_interactions(load: Loader) -> None:
    driver = load("shared_actor")
    context = reads.user_context(driver, "42")
    assert context is not None and recall.recall_knowledge(driver, "42", k=10)
    nothing = recall.History(replace(context, columns=reads.InteractionColumns.of(())))
    assert recall.recall_knowledge(driver, "42", k=10, history=nothing) == []  # no seeds given: no traits
    # the seen items given are never returned, whatever the user's own interactions say
    found = ids(recall.recall_knowledge(driver, "42", k=10))
    more = recall.History(
        replace(
            context,
            columns=reads.InteractionColumns.of((*context.interactions, reads.Interaction(found[0], 1.0, None, None))),
        )
    )
    assert found[0] not in ids(recall.recall_knowledge(driver, "42", k=10, history=more))


def test_the_popularity_window_is_held_for_its_seconds(load: Loader) -> None:
    driver = load("two_communities")
    held, fresh = recall.PopularityWindow(3600.0), recall.PopularityWindow(0.0)
    caps = recall.PopularityCaps()
    assert fresh.get(driver, caps) is None  # 0 seconds: never held, the query computes it
    before = held.get(driver, caps)
    assert before and before == sorted(before, key=lambda pair: (-pair[1], pair[0]))
    first = recall.recall_popularity(driver, "nobody", k=5, popular=held)
    assert first == recall.recall_popularity(driver, "nobody", k=5)
    newest = driver.execute_query("MATCH ()-[r:INTERACTED]->() RETURN max(r.timestamp) AS t")[0][0]["t"]
    driver.execute_query(
        "MATCH (i:Item) WHERE NOT i.itemId IN $top WITH i ORDER BY i.itemId LIMIT 1 "
        "MATCH (u:User) CREATE (u)-[:INTERACTED {rating: 5.0, weight: 5.0, timestamp: $t}]->(i)",
        {"top": [c.item_id for c in first], "t": newest + 1},
    )
    assert recall.recall_popularity(driver, "nobody", k=5, popular=held) == first  # held: as read an hour ago
    assert recall.recall_popularity(driver, "nobody", k=5) != first  # read now: the new favourite is in
