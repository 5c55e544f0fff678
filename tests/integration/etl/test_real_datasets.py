"""Acceptance checks on the real datasets of KGREC_DATASETS (read, never copied)."""

import random
import shutil
from pathlib import Path

from neo4j import Driver

from etl.load import load_dataset
from etl.sources import lastfm_variables, movielens_variables, read_mapping_dataset, shipped_mapping_path
from tests.conftest import dataset_dir


def _movielens(directory: Path, with_knowledge: bool = True):
    actors = dataset_dir("ml-small-actors-tomasonjo") / "movies.csv" if with_knowledge else None
    hetrec = dataset_dir("hetrec2011-movielens-2k") if with_knowledge else None
    return read_mapping_dataset(shipped_mapping_path("movielens"), movielens_variables(directory, actors, hetrec))[0]


def test_ml_latest_small_with_knowledge_exact_and_idempotent(clean_db: Driver, tmp_path: Path) -> None:
    ds = _movielens(dataset_dir("ml-latest-small"))
    first = load_dataset(clean_db, ds, reject_dir=tmp_path)
    assert first.nodes["User"] == 610
    assert first.nodes["Item"] == 9742 and first.nodes["Movie"] == 9742
    assert first.relationships["INTERACTED"] == 100_836
    assert first.relationships["ACTED_IN"] == 27_785
    assert first.rejects == 0
    records, _, _ = clean_db.execute_query(
        "MATCH ()-[r:INTERACTED]->() RETURN count(r.rating) AS rated, count(r.timestamp) AS timed"
    )
    assert dict(records[0]) == {"rated": 100_836, "timed": 100_836}
    second = load_dataset(clean_db, _movielens(dataset_dir("ml-latest-small")), reject_dir=tmp_path)
    assert (second.nodes, second.relationships) == (first.nodes, first.relationships)
    assert first.changes["relationships_created"] == first.relationships["*"] and not first.unchanged
    assert second.unchanged, +second.changes  # nothing created or changed, as the writes reported


def test_ratings_with_1000_broken_rows_loads_every_good_row(clean_db: Driver, tmp_path: Path) -> None:
    source = dataset_dir("ml-latest-small")
    work = tmp_path / "ml"
    work.mkdir()
    for name in ("movies.csv", "tags.csv", "links.csv"):
        shutil.copy(source / name, work / name)
    lines = (source / "ratings.csv").read_text(encoding="utf-8").splitlines()
    header, good = lines[0], lines[1:]
    kinds = [
        lambda u, i: f"{u},{i},four stars,964982703",  # bad number
        lambda u, i: f"{u},{i},7.5,964982703",  # rating out of range
        lambda u, i: f",{i},4.0,964982703",  # missing user id
        lambda u, i: f"{u},{i},4.0",  # wrong column count
        lambda u, i: f"{u},999999{i},4.0,964982703",  # item that does not exist
    ]
    rng = random.Random(42)
    broken = [kinds[k % 5](rng.randint(1, 610), rng.randint(1, 9000)) for k in range(1000)]
    mixed = good + broken
    rng.shuffle(mixed)
    (work / "ratings.csv").write_text("\n".join([header, *mixed]) + "\n", encoding="utf-8")

    ds = _movielens(work, with_knowledge=False)
    report = load_dataset(clean_db, ds, reject_dir=tmp_path / "rejects")
    assert report.relationships["INTERACTED"] == 100_836
    assert report.rejects == 1000
    assert len(report.reject_file.read_text(encoding="utf-8").splitlines()) == 1001
    reasons = {reason.split(": ", 1)[1] for reason in report.rejects_by_reason}
    assert len(reasons) == 5
    assert all(count == 200 for count in report.rejects_by_reason.values())


def test_lastfm_exact_counts(clean_db: Driver, tmp_path: Path) -> None:
    variables = lastfm_variables(dataset_dir("hetrec2011-lastfm-2k"))
    ds, _ = read_mapping_dataset(shipped_mapping_path("lastfm"), variables)
    report = load_dataset(clean_db, ds, reject_dir=tmp_path)
    assert report.nodes["User"] == 1892
    assert report.nodes["Item"] == 17_632 and report.nodes["Artist"] == 17_632
    assert report.relationships["INTERACTED"] == 92_834
    assert report.relationships["FOLLOWS"] == 25_434
    records, _, _ = clean_db.execute_query(
        "MATCH ()-[r:INTERACTED]->() RETURN count(r.weight) AS n, min(r.weight) AS lo"
    )
    assert records[0]["n"] == 92_834 and records[0]["lo"] >= 1
