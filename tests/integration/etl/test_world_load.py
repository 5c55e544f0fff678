"""A synthetic world at size, written to CSV (etl/world.py) and loaded through its mapping: exact counts, a reload
that changes nothing, a reload of changed rows that merges them, and repeated rows rejected with their first line."""

from __future__ import annotations

import csv
from pathlib import Path

from neo4j import Driver

from etl.load import LoadReport, load_stream
from etl.sources import read_mapping_dataset, shipped_mapping_path
from etl.world import write_world
from graph.reads import user_fingerprint
from schema.model import Label


def _load(driver: Driver, folder: Path, tmp_path: Path, batch_size: int = 500) -> LoadReport:
    variables = {"world": str(folder.resolve())}
    return load_stream(
        driver,
        lambda sink: read_mapping_dataset(shipped_mapping_path("world"), variables, sink=sink)[0],
        item_labels=[Label.MOVIE],
        batch_size=batch_size,
        reject_dir=tmp_path / "rejects",
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _state(driver: Driver) -> list[tuple]:
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[r:INTERACTED]->(i:Item) RETURN u.userId AS u, i.itemId AS i, r.rating AS rating, "
        "r.timestamp AS ts, r.weight AS w, r.polarity AS p, u.interactionsRev AS rev ORDER BY u, i"
    )
    return [tuple(r.values()) for r in records]


def test_world_loads_exactly_and_a_reload_changes_nothing(clean_db: Driver, tmp_path: Path) -> None:
    folder = tmp_path / "world"
    summary = write_world(folder, users=150, items=120, interactions=3000, seed=4)
    report = _load(clean_db, folder, tmp_path, batch_size=256)  # batches split users: CREATE then MERGE
    assert report.rejects == 0
    assert report.relationships["INTERACTED"] == summary.interactions
    assert report.nodes["User"] == 150 and report.nodes["Movie"] == 120
    assert report.relationships["FOLLOWS"] == summary.follows
    assert report.relationships["DIRECTED"] == 120
    stored = _state(clean_db)
    files = {
        (r["userId"], r["itemId"]): (float(r["rating"]), int(r["timestamp"]))
        for r in _rows(folder / "interactions.csv")
    }
    assert {(u, i): (rating, ts) for u, i, rating, ts, *_ in stored} == files
    assert all(w == 1.0 and p is None and rev >= 1 for *_, w, p, rev in stored)

    created = report.changes
    assert created["nodes_created"] == report.nodes["*"]  # clean_db starts empty
    assert created["relationships_created"] == report.relationships["*"] and created["interactions_changed"] == 0
    assert not report.unchanged

    again = _load(clean_db, folder, tmp_path, batch_size=1000)
    assert _state(clean_db) == stored  # not even interactionsRev moved
    assert (again.nodes, again.relationships) == (report.nodes, report.relationships)
    assert again.unchanged and again.rows_written == report.rows_written  # the writes said so themselves


def test_a_reload_with_changed_and_new_rows_merges_them(clean_db: Driver, tmp_path: Path) -> None:
    folder = tmp_path / "world"
    write_world(folder, users=40, items=60, interactions=600, seed=8)
    _load(clean_db, folder, tmp_path)
    rows = _rows(folder / "interactions.csv")
    user = rows[0]["userId"]
    before = user_fingerprint(clean_db, user)
    mine = {r["itemId"] for r in rows if r["userId"] == user}
    new_item = next(f"i{n}" for n in range(1, 61) if f"i{n}" not in mine)
    changed = [{**rows[0], "rating": "1" if rows[0]["rating"] != "1" else "2"}, {**rows[0], "itemId": new_item}]
    with (folder / "interactions.csv").open("w", encoding="utf-8", newline="") as handle:
        out = csv.DictWriter(handle, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(changed + rows[1:])
    report = _load(clean_db, folder, tmp_path)
    assert report.relationships["INTERACTED"] == len(rows) + 1
    assert not report.unchanged
    assert +report.changes == {"relationships_created": 1, "interactions_changed": 1}
    after = user_fingerprint(clean_db, user)
    assert after[0] == before[0] + 1 and after[1] > before[1]
    records, _, _ = clean_db.execute_query(
        "MATCH (:User {userId: $u})-[r:INTERACTED]->(:Item {itemId: $i}) RETURN r.rating AS rating",
        u=user,
        i=rows[0]["itemId"],
    )
    assert records[0]["rating"] == float(changed[0]["rating"])


def test_a_repeated_pair_is_rejected_naming_its_first_line(clean_db: Driver, tmp_path: Path) -> None:
    folder = tmp_path / "world"
    write_world(folder, users=20, items=40, interactions=200, seed=2)
    rows = _rows(folder / "interactions.csv")
    with (folder / "interactions.csv").open("a", encoding="utf-8", newline="") as handle:
        csv.DictWriter(handle, fieldnames=list(rows[0])).writerow({**rows[3], "rating": "2"})
    report = _load(clean_db, folder, tmp_path)
    assert report.rejects == 1 and report.relationships["INTERACTED"] == len(rows)
    reason = next(iter(report.rejects_by_reason))
    assert "duplicate interaction of user" in reason
    text = report.reject_file.read_text(encoding="utf-8")
    assert "(first at interactions.csv line 5)" in text  # the header is line 1
