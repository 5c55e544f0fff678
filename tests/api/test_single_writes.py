"""Single POST /interactions written together: concurrent posts share transactions (api.writes.InteractionWriter)
and each still gets its own answer, against the real test Neo4j."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver, GraphDatabase, Session, Transaction

from api.app import create_app
from api.writes import InteractionWriter
from etl.synthetic import SyntheticWorld
from graph.settings import Neo4jSettings
from schema.errors import DatabaseUnavailableError
from schema.rows import InteractionRow
from tests.api.conftest import API_KEY, graph_only_settings

KEY = {"X-API-Key": API_KEY}


def _stored(driver: Driver, user_id: str) -> dict[str, float | None]:
    records, _, _ = driver.execute_query(
        "MATCH (:User {userId: $u})-[r:INTERACTED]->(i:Item) RETURN i.itemId AS item, r.rating AS rating", u=user_id
    )
    return {r["item"]: r["rating"] for r in records}


def _rev(driver: Driver, user_id: str) -> int | None:
    records, _, _ = driver.execute_query("MATCH (u:User {userId: $u}) RETURN u.interactionsRev AS rev", u=user_id)
    return records[0]["rev"] if records else None


def test_concurrent_posts_are_each_written_once_and_answered(
    client: TestClient, driver: Driver, world: SyntheticWorld
) -> None:
    items = [item.item_id for item in world.dataset.items[:10]]
    bodies = [
        {
            "user_id": f"together-{n % 4}",
            "item_id": items[n // 4],
            "rating": float(1 + n % 5),
            "timestamp": 1_700_000_000,
        }
        for n in range(40)
    ]
    bodies.append({"user_id": "together-0", "item_id": "no-such-item"})
    with ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda body: client.post("/interactions", json=body, headers=KEY), bodies))
    assert [r.status_code for r in responses] == [201] * 40 + [404]
    assert responses[-1].json() == {"detail": "unknown item 'no-such-item'"}
    for n, response in enumerate(responses[:40]):
        assert response.json()["user_id"] == bodies[n]["user_id"] and response.json()["item_id"] == bodies[n]["item_id"]
    for user in range(4):
        user_id = f"together-{user}"
        assert sum(r.json()["created_user"] for r in responses[:40] if r.json()["user_id"] == user_id) == 1
        expected = {b["item_id"]: b["rating"] for b in bodies[:40] if b["user_id"] == user_id}
        assert _stored(driver, user_id) == expected
        assert (_rev(driver, user_id) or 0) >= 1  # the answer cache's fingerprint moved
    # A retry of every post changes nothing, not even the fingerprint.
    revs = [_rev(driver, f"together-{u}") for u in range(4)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        again = list(pool.map(lambda body: client.post("/interactions", json=body, headers=KEY), bodies[:40]))
    assert [r.status_code for r in again] == [201] * 40 and not any(r.json()["created_user"] for r in again)
    assert [_rev(driver, f"together-{u}") for u in range(4)] == revs


def test_writer_keeps_the_order_of_one_pair_and_groups_rows(driver: Driver, world: SyntheticWorld) -> None:
    item = world.dataset.items[20].item_id
    others = [i.item_id for i in world.dataset.items[21:61]]
    writer = InteractionWriter(driver, max_rows=500)
    try:
        futures = [
            writer.submit(InteractionRow(user_id="order-user", item_id=item, rating=float(r), weight=1.0, timestamp=r))
            for r in range(1, 6)
        ]
        futures += [
            writer.submit(InteractionRow(user_id="order-other", item_id=i, weight=1.0, timestamp=1)) for i in others
        ]
        outcomes = [f.result(timeout=60) for f in futures]
    finally:
        writer.close()
    assert all(o is not None for o in outcomes)
    assert [o.status for o in outcomes[:5]] == ["created", "updated", "updated", "updated", "updated"]
    assert [o.created_user for o in outcomes[:5]] == [True, False, False, False, False]
    assert _stored(driver, "order-user") == {item: 5.0}  # the last post of the pair wins
    assert len(_stored(driver, "order-other")) == 40
    assert writer.transactions < len(futures)  # posts queued during a write went into one transaction
    late = writer.submit(InteractionRow(user_id="order-user", item_id=item, weight=1.0, timestamp=9))
    with pytest.raises(DatabaseUnavailableError):
        late.result(timeout=5)


def test_writer_answers_neo4j_away_to_every_waiting_post() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    away = GraphDatabase.driver(f"bolt://127.0.0.1:{port}", auth=("neo4j", "unused-pw"), max_transaction_retry_time=0)
    writer = InteractionWriter(away)
    try:
        futures = [
            writer.submit(InteractionRow(user_id="u", item_id=f"i{n}", weight=1.0, timestamp=1)) for n in range(5)
        ]
        for future in futures:
            with pytest.raises(DatabaseUnavailableError):
                future.result(timeout=60)
    finally:
        writer.close()
        away.close()


def _lock_user(driver: Driver, user_id: str) -> tuple[Session, Transaction]:
    """An open transaction holding ``user_id``'s write lock: every write of that user's interactions waits for it."""
    session = driver.session()
    tx = session.begin_transaction()
    tx.run("MATCH (u:User {userId: $u}) SET u.heldByTest = true", u=user_id).consume()
    return session, tx


def test_writer_answers_every_post_of_a_write_neo4j_cannot_finish(driver: Driver, world: SyntheticWorld) -> None:
    """A write stuck in Neo4j (here on a lock held by another transaction) ends at the writer's timeout: each of its
    posts gets the error (503 through the API), and the writer goes on writing later posts."""
    items = [i.item_id for i in world.dataset.items[70:80]]
    writer = InteractionWriter(driver, timeout=2.0)
    try:
        assert writer.submit(InteractionRow(user_id="stuck-user", item_id=items[0], weight=1.0, timestamp=1)).result(60)
        session, tx = _lock_user(driver, "stuck-user")
        try:
            stuck = [
                writer.submit(InteractionRow(user_id="stuck-user", item_id=i, weight=1.0, timestamp=2)) for i in items
            ]
            for future in stuck:
                with pytest.raises(DatabaseUnavailableError):
                    future.result(timeout=60)
        finally:
            tx.rollback()
            session.close()
        again = writer.submit(InteractionRow(user_id="stuck-user", item_id=items[1], weight=1.0, timestamp=3))
        assert again.result(timeout=60) is not None
    finally:
        writer.close()
    assert _stored(driver, "stuck-user") == {items[0]: None, items[1]: None}


def test_writer_survives_a_post_whose_waiter_left(driver: Driver, world: SyntheticWorld) -> None:
    """A post cancelled while its write runs (its waiter gone) does not stop the writer: the other posts of the same
    transaction are answered, and later posts are written."""
    items = [i.item_id for i in world.dataset.items[80:86]]
    writer = InteractionWriter(driver, timeout=30.0)
    try:
        assert writer.submit(InteractionRow(user_id="left-user", item_id=items[0], weight=1.0, timestamp=1)).result(60)
        session, tx = _lock_user(driver, "left-user")
        try:
            futures = [
                writer.submit(InteractionRow(user_id="left-user", item_id=i, weight=1.0, timestamp=2))
                for i in items[1:5]
            ]
            assert futures[0].cancel()  # as asyncio.wrap_future does when the awaiting request is cancelled
        finally:
            tx.rollback()
            session.close()
        assert all(f.result(timeout=60) is not None for f in futures[1:])
        late = writer.submit(InteractionRow(user_id="left-user", item_id=items[5], weight=1.0, timestamp=3))
        assert late.result(timeout=60) is not None
    finally:
        writer.close()
    assert set(_stored(driver, "left-user")) == set(items)


def test_post_that_neo4j_cannot_write_in_time_is_answered_503(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, driver: Driver, tmp_path: Path
) -> None:
    item = world.dataset.items[90].item_id
    settings = graph_only_settings(tmp_path).model_copy(update={"write_timeout_seconds": 1.0})
    with TestClient(create_app(settings, neo4j_settings)) as client:
        first = {"user_id": "slow-user", "item_id": item, "timestamp": 1}
        assert client.post("/interactions", json=first, headers=KEY).status_code == 201
        session, tx = _lock_user(driver, "slow-user")
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                bodies = [{**first, "timestamp": 10 + n} for n in range(4)]
                responses = list(pool.map(lambda b: client.post("/interactions", json=b, headers=KEY), bodies))
        finally:
            tx.rollback()
            session.close()
        assert [r.status_code for r in responses] == [503] * 4
        assert client.post("/interactions", json={**first, "timestamp": 99}, headers=KEY).status_code == 201
