"""A user's exposure as arrays on the user node (record_impressions.cypher, record_skip.cypher): one SET per user per
window whichever writer made it, bounded to the most recent items, an older graph's SHOWN converted once, and no
relationship walked or written per (user, item) pair; with the timeline on, the recorder logs each transaction's start
and length; a written window leaves its rows to reference counting, not to the cyclic collector."""

from __future__ import annotations

import gc
import logging
import re
import time

import pytest
from neo4j import Driver

from api.impressions import ImpressionRecorder
from api.metrics import Metrics
from graph import catalog
from graph.reads import user_context
from graph.writers import (
    BatchWriter,
    convert_shown,
    impression_batches,
    impression_parameters,
    warm_impressions,
    write_exposure_feedback,
    write_impressions,
    write_items,
    write_users,
)
from schema.ddl import SHOWN_PAIR_INDEX
from schema.kinds import DEFAULT_FEEDBACK_KINDS
from schema.rows import ItemRow, UserRow

NOW = 1_700_000_000


def _record(driver: Driver, lists: list[tuple[str, str, list[str]]], at: int = NOW, max_shown: int = 500) -> None:
    rows = [
        {
            "recommendation_id": r,
            "user_id": u,
            "variant": "default",
            "model_version": "m",
            "shown_at": at,
            "item_ids": i,
        }
        for r, u, i in lists
    ]
    for part in impression_batches(rows, 50):
        write_impressions(BatchWriter(driver), part, max_shown)


def _exposure(driver: Driver, user_id: str) -> list[tuple[str, int, int, int]]:
    """The user's arrays as (item, count, last shown, list) rows, least recently shown first."""
    records, _, _ = driver.execute_query(
        "MATCH (u:User {userId: $u}) RETURN u.shownItems AS i, u.shownCounts AS c, u.shownTimes AS t, "
        "u.shownLists AS l",
        u=user_id,
    )
    r = records[0]
    return list(zip(r["i"] or [], r["c"] or [], r["t"] or [], r["l"] or [], strict=True))


def _world(driver: Driver) -> None:
    writer = BatchWriter(driver)
    write_users(writer, [UserRow(user_id=u) for u in ("u1", "u2")])
    write_items(writer, [ItemRow(item_id=i) for i in ("a", "b", "c", "d")])


def test_windows_and_skips_of_one_pair_count_once_in_the_arrays(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"]), ("r2", "u2", ["a"])])
    _record(clean_db, [("r3", "u1", ["b", "c"])], at=NOW + 10)  # a later window: b is found, c is new
    skip = DEFAULT_FEEDBACK_KINDS["skip"]
    write_exposure_feedback(clean_db, "u1", "c", skip, NOW + 20)  # record_skip.cypher bumps the recorded item
    write_exposure_feedback(clean_db, "u2", "b", skip, NOW + 20)  # ... or appends it (list 0: rotation ignores it)
    _record(clean_db, [("r4", "u2", ["b"])], at=NOW + 30)  # and the recorder finds what the skip added
    assert _exposure(clean_db, "u1") == [("a", 1, NOW, 1), ("b", 2, NOW + 10, 2), ("c", 2, NOW + 20, 2)]
    assert _exposure(clean_db, "u2") == [("a", 1, NOW, 1), ("b", 2, NOW + 30, 2)]
    me = user_context(clean_db, "u1")
    assert me is not None and me.lists_shown == 2 and me.shown == {"a": (1, 1), "b": (2, 2), "c": (2, 2)}
    assert clean_db.execute_query("MATCH ()-[s:SHOWN]->() RETURN count(s) AS n")[0][0]["n"] == 0


def test_the_arrays_keep_the_most_recently_shown_items(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"])], max_shown=3)
    _record(clean_db, [("r2", "u1", ["c", "a"])], at=NOW + 5, max_shown=3)  # a shown again: now the most recent
    _record(clean_db, [("r3", "u1", ["d"])], at=NOW + 9, max_shown=3)  # one too many: b, the oldest, goes
    assert _exposure(clean_db, "u1") == [("a", 2, NOW + 5, 2), ("c", 1, NOW + 5, 2), ("d", 1, NOW + 9, 3)]
    write_exposure_feedback(clean_db, "u1", "b", DEFAULT_FEEDBACK_KINDS["skip"], NOW + 12, max_shown=3)
    assert [row[0] for row in _exposure(clean_db, "u1")] == ["c", "d", "b"]


def test_the_same_items_shown_again_update_the_arrays_tail_as_any_other_window_would(clean_db: Driver) -> None:
    """A window that shows again exactly the items last shown (a cached answer) takes the statement's sliced path: the
    same arrays as the general one, the bound applied alike."""
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"])])
    _record(clean_db, [("r2", "u1", ["a", "b"])], at=NOW + 5)  # the tail again
    assert _exposure(clean_db, "u1") == [("a", 2, NOW + 5, 2), ("b", 2, NOW + 5, 2)]
    _record(clean_db, [("r3", "u1", ["b", "c"])], at=NOW + 9)  # not the tail: the general path
    _record(clean_db, [("r4", "u1", ["b", "c"]), ("r5", "u1", ["b", "c"])], at=NOW + 12)  # the tail, twice
    assert _exposure(clean_db, "u1") == [("a", 2, NOW + 5, 2), ("b", 5, NOW + 12, 5), ("c", 3, NOW + 12, 5)]
    _record(clean_db, [("r6", "u1", ["b", "c"])], at=NOW + 20, max_shown=2)  # the tail, the bound lowered
    assert _exposure(clean_db, "u1") == [("b", 6, NOW + 20, 6), ("c", 4, NOW + 20, 6)]


def test_a_graph_recorded_with_shown_relationships_is_converted_once(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["c"])], at=NOW + 50)  # already in the arrays: keeps its place, adds the count
    # the graph as the earlier writer left it: SHOWN relationships (keyed, with their index)
    clean_db.execute_query(
        "MATCH (u1:User {userId: 'u1'}), (u2:User {userId: 'u2'}), (a:Item {itemId: 'a'}), (b:Item {itemId: 'b'}), "
        "(c:Item {itemId: 'c'}) SET u1.listsShown = 4, u2.listsShown = 1 "
        "CREATE (u1)-[:SHOWN {count: 3, lastShown: $t2, lastList: 3, userId: 'u1', itemId: 'b'}]->(b), "
        "(u1)-[:SHOWN {count: 2, lastShown: $t1, lastList: 1, userId: 'u1', itemId: 'a'}]->(a), "
        "(u1)-[:SHOWN {count: 4, lastShown: $t1, lastList: 1, userId: 'u1', itemId: 'c'}]->(c), "
        "(u2)-[:SHOWN {count: 1, userId: 'u2', itemId: 'a'}]->(a)",
        t1=NOW,
        t2=NOW + 1,
    )
    clean_db.execute_query(f"CREATE INDEX {SHOWN_PAIR_INDEX} IF NOT EXISTS FOR ()-[s:SHOWN]-() ON (s.userId, s.itemId)")
    assert convert_shown(clean_db, users_per_batch=1) == 4  # two users, one per transaction
    assert convert_shown(clean_db) == 0  # nothing left: one read
    assert _exposure(clean_db, "u1") == [("a", 2, NOW, 1), ("b", 3, NOW + 1, 3), ("c", 5, NOW + 50, 1)]
    assert _exposure(clean_db, "u2") == [("a", 1, 0, 0)]
    assert clean_db.execute_query("MATCH ()-[s:SHOWN]->() RETURN count(s) AS n")[0][0]["n"] == 0
    indexes = clean_db.execute_query("SHOW INDEXES YIELD name WHERE name = $n RETURN name", n=SHOWN_PAIR_INDEX)[0]
    assert indexes == []
    me = user_context(clean_db, "u1")
    assert me is not None and me.lists_shown == 4 and me.shown["b"] == (3, 3)


def test_recording_writes_no_relationship_and_walks_none(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b", "c"])])
    part = impression_batches(
        [
            {
                "recommendation_id": "r2",
                "user_id": "u1",
                "variant": "d",
                "model_version": "m",
                "shown_at": NOW,
                "item_ids": ["a", "d"],
            }
        ],
        50,
    )[0]
    with clean_db.session() as session:
        tx = session.begin_transaction()
        summary = tx.run("PROFILE " + catalog.RECORD_IMPRESSIONS, impression_parameters(part, 500)).consume()
        tx.rollback()
    operators: list[str] = []

    def walk(plan) -> None:  # noqa: ANN001
        operators.append(plan["operatorType"].split("@")[0])
        for child in plan.get("children", []):
            walk(child)

    walk(summary.profile)
    assert not any(op.startswith("Expand") or "Merge" in op or "Relationship" in op for op in operators), operators
    assert summary.counters.relationships_created == 0


def _state(driver: Driver) -> tuple:
    records, _, _ = driver.execute_query(
        "MATCH (n) RETURN count(n) AS nodes, sum(coalesce(n.listsShown, 0)) AS lists, "
        "sum(coalesce(n.impressions, 0)) AS impressions, collect(n.shownCounts) AS counts"
    )
    return tuple(records[0].values())


def test_planning_the_statement_writes_nothing(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"]), ("r2", "u2", ["a"])])
    before = _state(clean_db)
    warm_impressions(clean_db)
    assert _state(clean_db) == before  # every transaction rolled back: no list node, count or exposure added


def test_the_recorder_converts_an_older_graph_and_plans_before_its_first_window(clean_db: Driver) -> None:
    _world(clean_db)
    clean_db.execute_query(
        "MATCH (u:User {userId: 'u1'}), (a:Item {itemId: 'a'}) SET u.listsShown = 1 "
        "CREATE (u)-[:SHOWN {count: 1, lastShown: $t, lastList: 1}]->(a)",
        t=NOW,
    )
    recorder = ImpressionRecorder(clean_db, "neo4j", Metrics(), capacity=100, batch=50, every=60.0)
    recorder.prepare()
    assert recorder.prepared
    assert convert_shown(clean_db) == 0  # prepare converted the graph
    recorder.record("r2", "u1", "default", "m", ["b", "a"])
    recorder.flush()
    assert [(i, c, n) for i, c, _, n in _exposure(clean_db, "u1")] == [("a", 2, 2), ("b", 1, 2)]
    me = user_context(clean_db, "u1")
    assert me is not None and me.lists_shown == 2 and me.shown == {"a": (2, 2), "b": (1, 2)}


def test_with_the_timeline_on_the_recorder_logs_each_write_transaction_with_its_start_and_length(
    clean_db: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    _world(clean_db)
    quiet = ImpressionRecorder(clean_db, "neo4j", Metrics(), capacity=100, batch=1, every=60.0)
    recorder = ImpressionRecorder(clean_db, "neo4j", Metrics(), capacity=100, batch=1, every=60.0, timeline=True)
    before = time.time()
    with caplog.at_level(logging.INFO, logger="api.timeline"):
        quiet.record("r0", "u1", "default", "m", ["c"])
        quiet.flush()
        recorder.record("r1", "u1", "default", "m", ["a", "b"])
        recorder.record("r2", "u2", "default", "m", ["a"])
        recorder.flush()  # batch=1: one transaction per list
    quiet.close()
    recorder.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "api.timeline"]
    parsed = [
        re.fullmatch(
            r"impressions start=([0-9.]+) ms=([0-9.]+) cpu_ms=[0-9.]+ lists=(\d+) users=(\d+) items=(\d+)", line
        )
        for line in lines
    ]
    assert len(parsed) == 2 and all(parsed), lines  # the quiet recorder logged nothing
    assert [(m.group(3), m.group(4)) for m in parsed if m] == [("1", "1"), ("1", "1")]
    assert sum(int(m.group(5)) for m in parsed if m) == 2  # a and b, each item's count once
    starts = [float(m.group(1)) for m in parsed if m]
    assert before <= starts[0] <= starts[1] <= time.time()
    assert starts[1] >= starts[0] + float(parsed[0].group(2)) / 1000 - 0.001  # the second began after the first ended


def test_a_written_window_leaves_none_of_its_rows_to_the_cyclic_collector(clean_db: Driver) -> None:
    _world(clean_db)
    windows = [
        [
            {
                "recommendation_id": f"{window}-{n}",
                "user_id": f"u{1 + n % 2}",
                "variant": "default",
                "model_version": "m",
                "shown_at": NOW + n,
                "item_ids": ("a", "b", "c", "d"),
            }
            for n in range(200)
        ]
        for window in ("first", "second")
    ]
    writer = BatchWriter(clean_db)
    (first,) = impression_batches(windows[0], 500)
    write_impressions(writer, first)  # the statement planned and the connection opened before counting
    (second,) = impression_batches(windows[1], 500)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept in gc.garbage, to be counted
    try:
        write_impressions(writer, second)
        gc.collect()
        lists = sum(1 for found in gc.garbage if isinstance(found, list))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert lists < 50  # the driver's own few; the parameters alone are 200 list rows and 8 (user, item) rows
