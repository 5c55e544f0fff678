"""The (user, item) exposure found by its key (graph.writers.key_shown, record_impressions.cypher): one SHOWN per
pair whichever writer made it, an older graph keyed once, and the pair sought in the index, not walked."""

from __future__ import annotations

from neo4j import Driver

from api.impressions import ImpressionRecorder
from api.metrics import Metrics
from graph import catalog
from graph.reads import user_context
from graph.writers import (
    BatchWriter,
    impression_batches,
    key_shown,
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


def _record(driver: Driver, lists: list[tuple[str, str, list[str]]]) -> None:
    rows = [
        {
            "recommendation_id": r,
            "user_id": u,
            "variant": "default",
            "model_version": "m",
            "shown_at": NOW,
            "item_ids": i,
        }
        for r, u, i in lists
    ]
    for part in impression_batches(rows, 50):
        write_impressions(BatchWriter(driver), part)


def _pairs(driver: Driver) -> list[tuple[str, str, int, str | None, str | None]]:
    records, _, _ = driver.execute_query(
        "MATCH (u:User)-[s:SHOWN]->(i:Item) RETURN u.userId AS u, i.itemId AS i, s.count AS c, s.userId AS su, "
        "s.itemId AS si ORDER BY u, i"
    )
    return [(r["u"], r["i"], r["c"], r["su"], r["si"]) for r in records]


def _world(driver: Driver) -> None:
    writer = BatchWriter(driver)
    write_users(writer, [UserRow(user_id=u) for u in ("u1", "u2")])
    write_items(writer, [ItemRow(item_id=i) for i in ("a", "b", "c")])


def test_windows_and_skips_of_one_pair_make_one_shown(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"]), ("r2", "u2", ["a"])])
    _record(clean_db, [("r3", "u1", ["b", "c"])])  # a later window: b is found, c is new
    skip = DEFAULT_FEEDBACK_KINDS["skip"]
    write_exposure_feedback(clean_db, "u1", "c", skip, NOW)  # record_skip.cypher's MERGE finds the recorded pair
    write_exposure_feedback(clean_db, "u2", "b", skip, NOW)  # ... or creates it, keyed
    _record(clean_db, [("r4", "u2", ["b"])])  # and the recorder finds what the skip created
    assert _pairs(clean_db) == [
        ("u1", "a", 1, "u1", "a"),
        ("u1", "b", 2, "u1", "b"),
        ("u1", "c", 2, "u1", "c"),
        ("u2", "a", 1, "u2", "a"),
        ("u2", "b", 2, "u2", "b"),
    ]
    me = user_context(clean_db, "u1")
    assert me is not None and me.lists_shown == 2 and me.shown["b"][0] == 2


def test_a_graph_recorded_before_the_key_is_keyed_once_then_the_index_created(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"])])
    # the graph as the earlier writer left it: SHOWN without a key, no index
    clean_db.execute_query(f"DROP INDEX {SHOWN_PAIR_INDEX}")
    clean_db.execute_query("MATCH ()-[s:SHOWN]->() REMOVE s.userId, s.itemId")
    assert key_shown(clean_db, users_per_batch=1) == 2  # two users, one per transaction: both of u1's SHOWN keyed
    assert key_shown(clean_db) == 0  # the index exists: nothing to do
    _record(clean_db, [("r2", "u1", ["a"])])
    assert _pairs(clean_db) == [("u1", "a", 2, "u1", "a"), ("u1", "b", 1, "u1", "b")]


def test_the_pair_is_sought_in_the_index_not_walked(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b", "c"])])
    rows = impression_batches(
        [
            {
                "recommendation_id": "r2",
                "user_id": "u1",
                "variant": "d",
                "model_version": "m",
                "shown_at": NOW,
                "item_ids": ["a"],
            }
        ],
        50,
    )[0]
    with clean_db.session() as session:
        tx = session.begin_transaction()
        summary = tx.run(
            "PROFILE " + catalog.RECORD_IMPRESSIONS,
            lists=[
                [r["recommendation_id"], r["user_id"], r["variant"], r["model_version"], r["shown_at"], r["item_ids"]]
                for r in rows.lists
            ],
            users=[
                [u["user_id"], u["lists"], [[s["item_id"], s["count"], s["last_shown"], s["list"]] for s in u["items"]]]
                for u in rows.users
            ],
            items=[[i["item_id"], i["count"]] for i in rows.items],
        ).consume()
        tx.rollback()
    operators: list[str] = []

    def walk(plan) -> None:  # noqa: ANN001
        operators.append(plan["operatorType"].split("@")[0])
        for child in plan.get("children", []):
            walk(child)

    walk(summary.profile)
    assert "DirectedRelationshipIndexSeek" in operators
    assert not any(op.startswith("Expand") or "Merge" in op for op in operators)


def _state(driver: Driver) -> tuple:
    records, _, _ = driver.execute_query(
        "MATCH (n) WITH count(n) AS nodes, sum(coalesce(n.listsShown, 0)) AS lists, "
        "sum(coalesce(n.impressions, 0)) AS impressions "
        "OPTIONAL MATCH ()-[s:SHOWN]->() RETURN nodes, lists, impressions, count(s) AS shown, sum(s.count) AS counts"
    )
    return tuple(records[0].values())


def test_planning_the_statement_writes_nothing(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"]), ("r2", "u2", ["a"])])
    before = _state(clean_db)
    warm_impressions(clean_db)
    assert _state(clean_db) == before  # every transaction rolled back: no list node, count or pair added


def test_the_recorder_keys_an_older_graph_and_plans_before_its_first_window(clean_db: Driver) -> None:
    _world(clean_db)
    _record(clean_db, [("r1", "u1", ["a", "b"])])
    clean_db.execute_query(f"DROP INDEX {SHOWN_PAIR_INDEX}")
    clean_db.execute_query("MATCH ()-[s:SHOWN]->() REMOVE s.userId, s.itemId")
    recorder = ImpressionRecorder(clean_db, "neo4j", Metrics(), capacity=100, batch=50, every=60.0)
    recorder.prepare()
    assert recorder.prepared
    assert key_shown(clean_db) == 0  # the index exists: prepare keyed the graph and created it
    assert _pairs(clean_db) == [("u1", "a", 1, "u1", "a"), ("u1", "b", 1, "u1", "b")]
    recorder.record("r2", "u1", "default", "m", ["b", "c"])
    recorder.flush()
    assert _pairs(clean_db) == [("u1", "a", 1, "u1", "a"), ("u1", "b", 2, "u1", "b"), ("u1", "c", 1, "u1", "c")]
    me = user_context(clean_db, "u1")
    assert me is not None and me.lists_shown == 2 and me.shown["c"] == (1, 2) and me.shown["a"] == (1, 1)
