"""Files in the shapes of public datasets (MovieLens-100k, CiaoDVD, RetailRocket) load as they come, with exact
counts, and a second load changes nothing; ``--dry-run`` validates the same files and writes nothing."""

import re
from pathlib import Path

import pytest
from neo4j import Driver
from typer.testing import CliRunner

from etl.load import load_dataset
from etl.sources import read_mapping_dataset
from graph.settings import Neo4jSettings
from graph.writers import read_graph_counts
from kgrec.cli import app
from tests.fixtures.public_shapes import Shape, write_ciao, write_ml100k, write_retailrocket

runner = CliRunner()
SHAPES = {"ml100k": write_ml100k, "ciaodvd": write_ciao, "retailrocket": write_retailrocket}


def _state(driver: Driver) -> tuple:
    records, _, _ = driver.execute_query(
        "MATCH ()-[r]->() RETURN count(r) AS n, sum(coalesce(r.weight, 0.0) + coalesce(r.rating, 0.0)) AS w, "
        "collect(DISTINCT r.kindCounts) AS counts"
    )
    revs, _, _ = driver.execute_query("MATCH (u:User) RETURN sum(coalesce(u.interactionsRev, 0)) AS revs")
    return (*records[0].values(), revs[0]["revs"], read_graph_counts(driver))


@pytest.mark.parametrize("name", list(SHAPES))
def test_public_shape_loads_as_it_comes_with_exact_counts(name: str, clean_db: Driver, tmp_path: Path) -> None:
    shape: Shape = SHAPES[name](tmp_path / name)
    ds, _ = read_mapping_dataset(shape.mapping)
    report = load_dataset(clean_db, ds, reject_dir=tmp_path / "rejects")
    for label, count in shape.nodes.items():
        assert report.nodes.get(label) == count, (label, report.nodes)
    for rel, count in shape.relationships.items():
        assert report.relationships.get(rel) == count, (rel, report.relationships)
    assert report.rejects == shape.rejects, [r.reason for r in ds.rejects]

    before = _state(clean_db)
    again = load_dataset(clean_db, read_mapping_dataset(shape.mapping)[0], reject_dir=tmp_path / "rejects")
    assert (again.nodes, again.relationships) == (report.nodes, report.relationships)
    assert _state(clean_db) == before  # not even interactionsRev moved


def test_ml100k_flags_years_user_attributes_and_negative_ratings(clean_db: Driver, tmp_path: Path) -> None:
    shape = write_ml100k(tmp_path)
    load_dataset(clean_db, read_mapping_dataset(shape.mapping)[0], reject_dir=tmp_path)
    genres, _, _ = clean_db.execute_query(
        "MATCH (i:Item {itemId: '5'})-[:IN_GENRE]->(g) RETURN collect(g.name) AS names"
    )
    assert sorted(genres[0]["names"]) == ["Crime", "Drama", "Mystery", "Thriller"]
    years, _, _ = clean_db.execute_query("MATCH (i:Item) WHERE i.year IS NOT NULL RETURN i.year AS y, count(*) AS n")
    assert {r["y"]: r["n"] for r in years} == shape.extra["years"]
    negative, _, _ = clean_db.execute_query("MATCH ()-[r:INTERACTED {polarity: -1}]->() RETURN count(r) AS n")
    assert negative[0]["n"] == shape.extra["negative"]
    attrs, _, _ = clean_db.execute_query(
        "MATCH (:User {userId: '196'})-[:HAS_ATTRIBUTE]->(a:Attribute) RETURN a.kind AS kind, a.value AS value"
    )
    assert {(r["kind"], r["value"]) for r in attrs} == {
        ("age_band", "45-50"),
        ("gender", "M"),
        ("occupation", "writer"),
    }


def test_ciao_iso_dates_and_trust_network(clean_db: Driver, tmp_path: Path) -> None:
    shape = write_ciao(tmp_path)
    ds, _ = read_mapping_dataset(shape.mapping)
    load_dataset(clean_db, ds, reject_dir=tmp_path)
    first, _, _ = clean_db.execute_query(
        "MATCH (:User {userId: '1'})-[r:INTERACTED]->(:Item {itemId: '101'}) RETURN r.timestamp AS t"
    )
    assert first[0]["t"] == shape.extra["first_timestamp"]
    reasons = sorted(r.reason for r in ds.rejects)
    assert reasons[0].startswith("timestamp 'not-a-date' is not a number (epoch seconds) or an ISO-8601 date")
    labels, _, _ = clean_db.execute_query("MATCH (i:Dvd) RETURN count(i) AS n")
    assert labels[0]["n"] == 4


def test_retailrocket_kinds_combine_into_one_interaction_per_pair(clean_db: Driver, tmp_path: Path) -> None:
    shape = write_retailrocket(tmp_path)
    load_dataset(clean_db, read_mapping_dataset(shape.mapping)[0], reject_dir=tmp_path)
    user, item, weight, kinds, counts, last = shape.extra["pair"]
    rows, _, _ = clean_db.execute_query(
        "MATCH (:User {userId: $u})-[r:INTERACTED]->(:Item {itemId: $i}) "
        "RETURN r.weight AS w, r.kinds AS kinds, r.kindCounts AS counts, r.timestamp AS t, r.polarity AS p",
        u=user,
        i=item,
    )
    assert len(rows) == 1
    assert (rows[0]["w"], rows[0]["kinds"], rows[0]["counts"], rows[0]["t"], rows[0]["p"]) == (
        weight,
        kinds,
        counts,
        last,
        None,
    )


def test_retailrocket_category_tree_expands_ancestors_and_rejects_a_broken_tree(
    clean_db: Driver, tmp_path: Path
) -> None:
    def categories(item: str) -> list[str]:
        rows, _, _ = clean_db.execute_query(
            "MATCH (:Item {itemId: $i})-[:HAS_ATTRIBUTE]->(a:Attribute {kind: 'category'}) RETURN a.value AS v", i=item
        )
        return sorted(r["v"] for r in rows)

    shape = write_retailrocket(tmp_path / "clean")
    load_dataset(clean_db, read_mapping_dataset(shape.mapping)[0], reject_dir=tmp_path)
    assert categories("355908") == ["1173", "231", "395"] and categories("318965") == ["231", "491"]
    assert categories("253185") == ["1277"]

    broken = write_retailrocket(tmp_path / "broken", broken_tree=True)
    ds, _ = read_mapping_dataset(broken.mapping)
    tree = sorted(r.reason for r in ds.rejects if r.source == "tree:categories")
    assert tree == [
        "'10' is on a cycle of parents: 10 → 11 → 10",
        "'11' is on a cycle of parents: 10 → 11 → 10",
        "'395' is listed twice (first at line 3)",
        "parent '8888' of '9' is not in the tree",
    ]
    assert ds.source_rows["tree:categories"] == 9 and len(ds.rejects) == broken.rejects
    attributes = {(r.owner_id, r.value) for r in ds.item_attributes}
    assert {v for o, v in attributes if o == "253185"} == {"1277", "10"}  # up to the cycle, which is cut
    assert {v for o, v in attributes if o == "355908"} == {"1173", "395", "231"}  # the first 395 row holds


def test_parents_file_must_be_listed_and_combine_with_values_only(tmp_path: Path) -> None:
    from etl.mapping import load_mapping
    from schema.errors import ConfigError

    shape = write_retailrocket(tmp_path)
    text = shape.mapping.read_text()
    shape.mapping.write_text(text.replace("parents: {file: categories", "parents: {file: nowhere"))
    with pytest.raises(ConfigError, match=r"parents.file: file 'nowhere' is not listed"):
        load_mapping(shape.mapping)
    shape.mapping.write_text(text.replace("    parents:", "    path: true\n    split: '>'\n    parents:"))
    with pytest.raises(ConfigError, match="do not combine it with path"):
        load_mapping(shape.mapping)


def test_cli_dry_run_validates_and_writes_nothing(cli_env: Neo4jSettings, clean_db: Driver, tmp_path: Path) -> None:
    shape = write_retailrocket(tmp_path)
    result = runner.invoke(app, ["load", "mapping", str(shape.mapping), "--dry-run", "--no-progress"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "dry run of retailrocket: nothing was written to Neo4j" in text
    assert re.search(r"interactions\s*│\s*5\b", text) and re.search(r"item_attributes\s*│\s*9\b", text), text
    assert "rejected 1 rows" in text
    nodes, rels = read_graph_counts(clean_db)
    assert nodes.get("*", 0) == 0 and rels.get("*", 0) == 0

    ciao = write_ciao(tmp_path / "ciao")  # 2 rejects of 29 source rows: past the default 5%
    failed = runner.invoke(app, ["load", "mapping", str(ciao.mapping), "--dry-run", "--no-progress"])
    assert failed.exit_code == 4, failed.output
    assert "error: rejected 2 of 29 rows (6.9%) > --max-reject-rate 5%" in failed.stderr
    assert read_graph_counts(clean_db)[0].get("*", 0) == 0


def test_cli_mapping_error_is_plain_words_with_the_yaml_path(cli_env: Neo4jSettings, tmp_path: Path) -> None:
    mapping = tmp_path / "bad.yaml"
    mapping.write_text(
        "name: bad\nfiles: {a: {path: a.csv}}\n"
        "interactions: [{file: a, user: u, item: i, timestamp_format: weird, colour: red}]\n"
    )
    result = runner.invoke(app, ["load", "mapping", str(mapping), "--dry-run", "--no-progress"])
    assert result.exit_code == 1
    out = " ".join((result.stderr or result.output).split())
    assert "interactions[0].timestamp_format: 'weird' is not a timestamp format" in out
    assert "interactions[0]: unknown key 'colour'" in out
    assert "pydantic" not in out and "errors.pydantic.dev" not in out
