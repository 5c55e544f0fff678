"""POST /interactions/batch against the real app and the real test Neo4j."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from etl.synthetic import SyntheticWorld
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, graph_only_settings

KEY = {"X-API-Key": API_KEY}


def _rated(world: SyntheticWorld, user_id: str) -> set[str]:
    return {r.item_id for r in world.dataset.interactions if r.user_id == user_id}


def _unrated(world: SyntheticWorld, user_id: str, n: int) -> list[str]:
    rated = _rated(world, user_id)
    return [i.item_id for i in world.dataset.items if i.item_id not in rated][:n]


def _user_state(driver: Driver, user_id: str) -> tuple[int, int]:
    records, _, _ = driver.execute_query(
        "MATCH (u:User {userId: $u}) RETURN COUNT { (u)-[:INTERACTED]->() } AS n, coalesce(u.interactionsRev, 0) AS rev",
        {"u": user_id},
    )
    return (records[0]["n"], records[0]["rev"]) if records else (-1, -1)


def _interaction(driver: Driver, user_id: str, item_id: str) -> dict | None:
    records, _, _ = driver.execute_query(
        "MATCH (:User {userId: $u})-[r:INTERACTED]->(:Item {itemId: $i}) RETURN properties(r) AS p",
        {"u": user_id, "i": item_id},
    )
    return records[0]["p"] if records else None


def test_batch_answers_a_result_per_row(client: TestClient, driver: Driver, world: SyntheticWorld) -> None:
    fresh = _unrated(world, "u1", 3)
    seen = sorted(_rated(world, "u1"))[0]
    n_before, rev_before = _user_state(driver, "u1")
    rows = [
        {"user_id": "u1", "item_id": fresh[0], "rating": 4.0, "timestamp": 1_700_000_000},
        {"user_id": "u1", "item_id": seen, "rating": 0.5, "weight": 2.0, "timestamp": 1_700_000_001},
        {"user_id": "u1", "item_id": "no-such-item", "timestamp": 1_700_000_002},
        {"user_id": "u1", "item_id": fresh[1], "rating": 99},
        "not an object",
        {"user_id": "u1", "item_id": fresh[2], "rating": 3.0, "timestamp": 1_700_000_003},
        {"user_id": "batch-new-user", "item_id": fresh[0], "timestamp": 1_700_000_004},
        {"user_id": "u1", "item_id": fresh[2], "rating": 5.0, "timestamp": 1_700_000_005},
        {"user_id": "u1", "item_id": fresh[1], "extra": "field"},
        {"user_id": "ghost-user", "item_id": "no-such-item"},
    ]
    response = client.post("/interactions/batch", json=rows, headers=KEY)
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(len(rows)))
    assert [r["status"] for r in results] == [
        "created",
        "updated",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "created",
        "created",
        "rejected",
        "rejected",
    ]
    assert "unknown item 'no-such-item'" in results[2]["reason"]
    assert "rating" in results[3]["reason"]
    assert "object" in results[4]["reason"]
    assert "superseded by row 7" in results[5]["reason"]
    assert "extra" in results[8]["reason"]
    assert results[6]["created_user"] and not results[0]["created_user"]
    assert (body["received"], body["created"], body["updated"], body["unchanged"], body["rejected"]) == (10, 3, 1, 0, 6)
    # The rows were written as POST /interactions writes them, the user's revision moved once.
    assert _user_state(driver, "u1") == (n_before + 2, rev_before + 1)
    assert _interaction(driver, "u1", seen) == {"rating": 0.5, "weight": 2.0, "timestamp": 1_700_000_001}
    assert _interaction(driver, "u1", fresh[2]) == {"rating": 5.0, "weight": 1.0, "timestamp": 1_700_000_005}
    assert _user_state(driver, "batch-new-user") == (1, 1)
    assert _user_state(driver, "ghost-user") == (-1, -1)  # no row of it could be written: not created


def test_the_same_batch_twice_changes_nothing(client: TestClient, driver: Driver, world: SyntheticWorld) -> None:
    items = _unrated(world, "u2", 4)
    rows = [{"user_id": "u2", "item_id": i, "rating": 4.0, "timestamp": 1_700_000_100 + n} for n, i in enumerate(items)]
    rows += [{"user_id": "retry-user", "item_id": items[0], "timestamp": 1_700_000_200}]
    first = client.post("/interactions/batch", json=rows, headers=KEY).json()
    assert [r["status"] for r in first["results"]] == ["created"] * 5
    state = _user_state(driver, "u2"), _user_state(driver, "retry-user")
    again = client.post("/interactions/batch", json=rows, headers=KEY).json()
    assert [r["status"] for r in again["results"]] == ["unchanged"] * 5
    assert not any(r["created_user"] for r in again["results"])
    assert (_user_state(driver, "u2"), _user_state(driver, "retry-user")) == state
    # POST /interactions on a repeat does the same: an identical row changes nothing.
    single = client.post("/interactions", json=rows[0], headers=KEY)
    assert single.status_code == 201 and _user_state(driver, "u2") == state[0]


def test_ndjson_body(client: TestClient, driver: Driver, world: SyntheticWorld) -> None:
    items = _unrated(world, "u4", 2)
    lines = [json.dumps({"user_id": "u4", "item_id": items[0], "timestamp": 1_700_000_300}), "", "{broken", ""]
    lines.append(json.dumps({"user_id": "u4", "item_id": items[1], "rating": 2.5}))
    response = client.post(
        "/interactions/batch",
        content="\n".join(lines).encode(),
        headers={**KEY, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "rejected", "created"]
    assert "not JSON" in results[1]["reason"]
    assert _interaction(driver, "u4", items[1])["rating"] == 2.5


def test_batch_needs_the_key_and_a_list(client: TestClient) -> None:
    assert client.post("/interactions/batch", json=[]).status_code == 401
    assert client.post("/interactions/batch", json=[], headers={"X-API-Key": "wrong-key-xxxxxxxx"}).status_code == 403
    not_list = client.post("/interactions/batch", json={"user_id": "u1", "item_id": "i1"}, headers=KEY)
    assert not_list.status_code == 422 and "list" in not_list.json()["detail"][0]["msg"]  # the documented 422 shape
    broken = client.post("/interactions/batch", content=b"[{", headers={**KEY, "Content-Type": "application/json"})
    assert broken.status_code == 422
    empty = client.post("/interactions/batch", json=[], headers=KEY)
    assert empty.status_code == 200 and empty.json()["received"] == 0


@pytest.fixture
def small_client(world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path) -> Iterator[TestClient]:
    settings = graph_only_settings(tmp_path).model_copy(update={"ingest_max_rows": 5, "ingest_max_bytes": 2048})
    with TestClient(create_app(settings, neo4j_settings)) as test_client:
        yield test_client


def test_too_many_rows_or_bytes_is_413(small_client: TestClient, driver: Driver) -> None:
    rows = [{"user_id": "limit-user", "item_id": f"i{n}"} for n in range(1, 7)]
    response = small_client.post("/interactions/batch", json=rows, headers=KEY)
    assert response.status_code == 413 and "at most 5" in response.json()["detail"]
    ndjson = "\n".join(json.dumps(r) for r in rows).encode()
    response = small_client.post(
        "/interactions/batch", content=ndjson, headers={**KEY, "Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 413
    big = [{"user_id": "limit-user", "item_id": "i1" + " " * 3000}]
    assert small_client.post("/interactions/batch", json=big, headers=KEY).status_code == 413
    assert _user_state(driver, "limit-user") == (-1, -1)
    assert small_client.post("/interactions/batch", json=rows[:5], headers=KEY).status_code == 200


def test_recommendations_reflect_the_batch(client: TestClient) -> None:
    before = client.get("/users/u3/recommendations", params={"k": 10}).json()["items"]
    again = client.get("/users/u3/recommendations", params={"k": 10}).json()["items"]
    assert again == before  # cached now
    targets = [i["item_id"] for i in before[:3]]
    rows = [{"user_id": "u3", "item_id": t, "rating": 5.0, "timestamp": 1_700_000_400} for t in targets]
    assert client.post("/interactions/batch", json=rows, headers=KEY).json()["created"] == 3
    after = client.get("/users/u3/recommendations", params={"k": 10}).json()["items"]
    assert not set(targets) & {i["item_id"] for i in after}


def test_openapi_documents_the_batch_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()["paths"]["/interactions/batch"]["post"]
    assert set(spec["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert "413" in spec["responses"]


class _RefusingServer:
    """A TCP listener that accepts each connection and closes it at once (Neo4j away, the port open), counting
    the connections: a write retried while Neo4j is away connects again and again."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_batch_answers_503_at_once_when_neo4j_is_away(neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    server = _RefusingServer()
    away = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{server.port}"})
    rows = [{"user_id": "away-user", "item_id": "i1", "timestamp": 1_700_000_000}]
    try:
        with TestClient(create_app(graph_only_settings(tmp_path), away)) as down:
            before = server.connections
            response = down.post("/interactions/batch", json=rows, headers=KEY)
            tried = server.connections - before
            single = down.post("/interactions", json=rows[0], headers=KEY)
            tried_single = server.connections - before - tried
    finally:
        server.close()
    assert response.status_code == 503 and response.json() == {"detail": "Neo4j is unreachable"}
    assert single.status_code == 503
    # one attempt each: the driver's retry (KGREC/driver max_transaction_retry_time) would connect again and again
    assert 1 <= tried <= 2 and 1 <= tried_single <= 2
