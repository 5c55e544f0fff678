"""Loading into the real Neo4j: exact counts, idempotent reloads, rejects, --replace."""

from collections import Counter
from pathlib import Path

from neo4j import Driver

from etl.dataset import Dataset
from etl.load import load_dataset
from etl.sources import movielens_variables, read_mapping_dataset, shipped_mapping_path
from etl.synthetic import generate_world
from graph.settings import Neo4jSettings
from graph.writers import read_graph_counts

MINI = Path(__file__).parents[2] / "fixtures" / "mini_movielens"


def expected_counts(ds: Dataset) -> tuple[dict[str, int], dict[str, int]]:
    people = {p.person_id for p in ds.people}
    roles = Counter(p.role.value for p in ds.people)
    nodes = {
        "User": len(ds.users),
        "Item": len(ds.items),
        "Genre": len({g.genre for g in ds.genres}),
        "Tag": len({t.tag for t in ds.tags}),
        "Person": len(people),
    }
    rels = {
        "INTERACTED": len(ds.interactions),
        "IN_GENRE": len(ds.genres),
        "ACTED_IN": roles["actor"],
        "DIRECTED": roles["director"],
        "HAS_TAG": len(ds.tags),
        "FOLLOWS": len(ds.follows),
    }
    return nodes, rels


def test_synthetic_world_loads_exact_counts(clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    ds = generate_world(users=120, items=240, seed=7).dataset
    report = load_dataset(clean_db, ds, reject_dir=tmp_path)
    nodes, rels = expected_counts(ds)
    for label, count in nodes.items():
        assert report.nodes[label] == count, label
    for rel, count in rels.items():
        assert report.relationships[rel] == count, rel
    assert report.nodes["Movie"] == 240
    assert report.rejects == 0 and report.reject_file is None


def test_second_identical_load_changes_nothing(clean_db: Driver, tmp_path: Path) -> None:
    ds = generate_world(users=60, items=120, seed=11).dataset
    first = load_dataset(clean_db, ds, reject_dir=tmp_path)
    snapshot = _fingerprint(clean_db)
    second = load_dataset(clean_db, ds, reject_dir=tmp_path)
    assert (second.nodes, second.relationships) == (first.nodes, first.relationships)
    assert _fingerprint(clean_db) == snapshot


def test_replace_wipes_before_loading(clean_db: Driver, tmp_path: Path) -> None:
    load_dataset(clean_db, generate_world(users=60, items=120, seed=1).dataset, reject_dir=tmp_path)
    small = generate_world(users=10, items=20, seed=2).dataset
    report = load_dataset(clean_db, small, replace=True, reject_dir=tmp_path)
    assert report.nodes["User"] == 10 and report.nodes["Item"] == 20
    assert report.phases[0].name == "wipe"


def test_mini_movielens_loads_good_rows_and_writes_rejects(clean_db: Driver, tmp_path: Path) -> None:
    variables = movielens_variables(MINI, actors=MINI / "actors.csv", hetrec=MINI / "hetrec")
    ds, _ = read_mapping_dataset(shipped_mapping_path("movielens"), variables)
    report = load_dataset(clean_db, ds, reject_dir=tmp_path)
    assert report.relationships["INTERACTED"] == 8
    assert report.relationships["ACTED_IN"] == 6 and report.relationships["DIRECTED"] == 5
    assert report.nodes["Person"] == 10 and report.nodes["Movie"] == 5
    assert report.rejects == 8
    lines = report.reject_file.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "source,file,line,reason,raw" and len(lines) == 9

    records, _, _ = clean_db.execute_query(
        "MATCH (p:Person {personId: 'tom_hanks'})-[:ACTED_IN]->(i:Item) RETURN p.name AS name, labels(p) AS labels,"
        " collect(i.itemId) AS items"
    )
    assert records[0]["name"] == "Tom Hanks" and "Actor" in records[0]["labels"]
    assert sorted(records[0]["items"]) == ["1", "3"]
    records, _, _ = clean_db.execute_query(
        "MATCH (u:User {userId: '1'})-[r:INTERACTED]->(i:Item {itemId: '3'}) "
        "RETURN r.rating AS rating, r.timestamp AS ts, r.weight AS w, i.imdbId AS imdb, i.year AS year"
    )
    assert dict(records[0]) == {"rating": 5.0, "ts": 1000000200, "w": 1.0, "imdb": "0162222", "year": 2000}
    records, _, _ = clean_db.execute_query(
        "MATCH (:Item {itemId: '1'})-[r:HAS_TAG]->(t:Tag {name: 'pixar'}) RETURN r.weight AS w"
    )
    assert records[0]["w"] == 5.0


def _fingerprint(driver: Driver) -> tuple:
    records, _, _ = driver.execute_query(
        "MATCH ()-[r]->() RETURN count(r) AS n, sum(coalesce(r.weight, 0.0) + coalesce(r.rating, 0.0)) AS total_weight"
    )
    revs, _, _ = driver.execute_query("MATCH (u:User) RETURN sum(coalesce(u.interactionsRev, 0)) AS revs")
    nodes, rels = read_graph_counts(driver)
    return (
        records[0]["n"],
        records[0]["total_weight"],
        revs[0]["revs"],
        tuple(sorted(nodes.items())),
        tuple(sorted(rels.items())),
    )
