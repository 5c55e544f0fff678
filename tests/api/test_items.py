"""The run-time catalogue: POST /items and PATCH /items/{item_id} against the real Neo4j, and the availability rule
on every path (graph recall sources, /similar, the model path, the new-arrival positions, cached and degraded
answers)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver, GraphDatabase

from api.app import create_app
from api.service import SOURCES
from etl.synthetic import SyntheticWorld
from gnn.config import GnnSettings
from gnn.jobs import RetrainReport, retrain_job
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, FAST_BLEND, model_settings

KEY = {"X-API-Key": API_KEY}


def _ids(body: dict) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def _patch(client: TestClient, item_id: str, **changes: object) -> dict:
    response = client.patch(f"/items/{item_id}", json=changes, headers=KEY)
    assert response.status_code == 200, response.text
    return response.json()


def _count(driver: Driver, query: str, **params: object) -> int:
    records, _, _ = driver.execute_query(query, params)
    return int(records[0]["n"])


def _seed_traits(driver: Driver, item_id: str) -> tuple[list[str], list[dict]]:
    """The genres and people of an item, as a POST /items body names them."""
    records, _, _ = driver.execute_query(
        "MATCH (i:Item {itemId: $id}) "
        "RETURN COLLECT { MATCH (i)-[:IN_GENRE]->(g) RETURN g.name } AS genres, "
        "COLLECT { MATCH (p:Person)-[r:ACTED_IN|DIRECTED]->(i) RETURN {person_id: p.personId, name: p.name, "
        "role: CASE type(r) WHEN 'ACTED_IN' THEN 'actor' ELSE 'director' END} } AS people",
        id=item_id,
    )
    return list(records[0]["genres"]), list(records[0]["people"])


# ---- POST /items -------------------------------------------------------------------------------------------------


def test_post_item_creates_it_once_and_a_retry_changes_nothing(client: TestClient, driver: Driver) -> None:
    genres, people = _seed_traits(driver, "i1")
    body = {
        "item_id": "cat-new-1",
        "title": "Night Run",
        "year": 2026,
        "genres": genres,
        "people": people,
        "tags": [{"tag": "heist", "weight": 2.0}, {"tag": "heist"}],
        "attributes": [{"kind": "studio", "value": "Forward Pass"}],
    }
    first = client.post("/items", json=body, headers=KEY)
    assert first.status_code == 201, first.text
    assert first.json() == {
        "item_id": "cat-new-1",
        "title": "Night Run",
        "hidden": False,
        "available_from": None,
        "available_until": None,
        "available": True,
    }
    shape = (
        "MATCH (i:Item {itemId: 'cat-new-1'}) RETURN COUNT { (i)-[:IN_GENRE]->() } * 1000000 "
        "+ COUNT { (i)<-[:ACTED_IN|DIRECTED]-() } * 10000 + COUNT { (i)-[:HAS_TAG]->() } * 100 "
        "+ COUNT { (i)-[:HAS_ATTRIBUTE]->() } AS n"
    )
    before = _count(driver, shape)
    assert before == len(genres) * 1_000_000 + len(people) * 10_000 + 100 + 1
    # the default label is the catalogue's (the synthetic world's items are Movies); the tag weights were summed
    records, _, _ = driver.execute_query(
        "MATCH (i:Item {itemId: 'cat-new-1'})-[h:HAS_TAG]->() RETURN labels(i) AS labels, h.weight AS w"
    )
    assert "Movie" in records[0]["labels"] and records[0]["w"] == 3.0
    again = client.post("/items", json=body, headers=KEY)
    assert again.status_code == 200 and again.json() == first.json()
    assert _count(driver, shape) == before
    assert _count(driver, "MATCH (i:Item {itemId: 'cat-new-1'}) RETURN count(i) AS n") == 1
    assert _count(driver, "MATCH (a:Attribute {attributeId: 'studio:Forward Pass'}) RETURN count(a) AS n") == 1
    # the same id with other content: 409, nothing changed
    other = client.post("/items", json={**body, "title": "Another Film"}, headers=KEY)
    assert other.status_code == 409 and "exists" in other.json()["detail"]
    # an item loaded by the ETL is an existing item too
    assert client.post("/items", json={"item_id": "i1", "title": "Stolen Id"}, headers=KEY).status_code == 409
    assert _count(driver, "MATCH (i:Item {itemId: 'cat-new-1'}) WHERE i.title = 'Night Run' RETURN count(i) AS n")


def test_a_repeated_tag_may_sum_past_one_weights_bound_and_its_retry_is_the_same_item(
    client: TestClient, driver: Driver
) -> None:
    # each weight is within TagIn's bound (1,000,000); their sum is not, and is what the graph keeps (as a load does)
    body = {"item_id": "cat-heavy-tag", "title": "Heavy Tag", "tags": [{"tag": "epic", "weight": 1_000_000.0}] * 2}
    first = client.post("/items", json=body, headers=KEY)
    assert first.status_code == 201, first.text
    assert _count(driver, "MATCH (:Item {itemId: 'cat-heavy-tag'})-[h:HAS_TAG]->() RETURN h.weight AS n") == 2_000_000
    again = client.post("/items", json=body, headers=KEY)  # a retry of the same body: the same item, not a 500 or 409
    assert again.status_code == 200 and again.json() == first.json()


def test_post_item_refuses_unknown_genres_by_name_and_writes_nothing(client: TestClient, driver: Driver) -> None:
    body = {"item_id": "cat-bad-genre", "title": "X", "genres": ["Comedy", "Comdey", "Nope"]}
    response = client.post("/items", json=body, headers=KEY)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [(e["loc"], e["type"]) for e in detail] == [
        (["body", "genres", 1], "unknown_genre"),
        (["body", "genres", 2], "unknown_genre"),
    ]
    assert _count(driver, "MATCH (i:Item {itemId: 'cat-bad-genre'}) RETURN count(i) AS n") == 0


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"title": "no id"}, ["body", "item_id"]),
        ({"item_id": "x/y", "title": "slash"}, ["body", "item_id"]),
        ({"item_id": "cat-x", "title": ""}, ["body", "title"]),
        ({"item_id": "cat-x", "title": "t", "available_from": "yesterday"}, ["body", "available_from"]),
        ({"item_id": "cat-x", "title": "t", "available_from": 1.5}, ["body", "available_from"]),
        ({"item_id": "cat-x", "title": "t", "hidden": "yes"}, ["body", "hidden"]),
        ({"item_id": "cat-x", "title": "t", "label": "User"}, ["body", "label"]),
        ({"item_id": "cat-x", "title": "t", "people": [{"person_id": "p", "name": "P", "role": "grip"}]}, None),
        ({"item_id": "cat-x", "title": "t", "available_from": 2000, "available_until": 1000}, ["body"]),
        ({"item_id": "cat-x", "title": "t", "colour": "red"}, ["body", "colour"]),
    ],
)
def test_bad_item_bodies_are_422(client: TestClient, driver: Driver, body: dict, where: list | None) -> None:
    response = client.post("/items", json=body, headers=KEY)
    assert response.status_code == 422, response.text
    if where is not None:
        assert response.json()["detail"][0]["loc"] == where
    assert _count(driver, "MATCH (i:Item {itemId: 'cat-x'}) RETURN count(i) AS n") == 0


def test_item_writes_need_the_key(client: TestClient) -> None:
    assert client.post("/items", json={"item_id": "cat-k", "title": "t"}).status_code == 401
    assert client.patch("/items/i1", json={"hidden": True}).status_code == 401


# ---- PATCH /items/{item_id} --------------------------------------------------------------------------------------


def test_patch_unknown_item_is_404_and_bad_bodies_are_422(client: TestClient) -> None:
    assert client.patch("/items/no-such-item", json={"hidden": True}, headers=KEY).status_code == 404
    assert client.patch("/items/i2", json={"hidden": "yes"}, headers=KEY).status_code == 422
    assert client.patch("/items/i2", json={"available_until": "soon"}, headers=KEY).status_code == 422
    assert client.patch("/items/i2", json={"rating": 3}, headers=KEY).status_code == 422
    # a window that the change would leave empty: 422, nothing written
    _patch(client, "i2", available_until=2_000_000_000)
    empty = client.patch("/items/i2", json={"available_from": 2_000_000_001}, headers=KEY)
    assert empty.status_code == 422 and empty.json()["detail"][0]["type"] == "empty_availability_window"
    out = _patch(client, "i2", available_until=None, title="Renamed")
    assert out["available_from"] is None and out["available_until"] is None and out["title"] == "Renamed"
    assert out["available"] is True
    # ISO-8601 and epoch seconds are the same moment
    iso = _patch(client, "i2", available_from="2030-01-01T00:00:00Z")
    assert iso["available_from"] == 1_893_456_000 and iso["available"] is False
    assert _patch(client, "i2", available_from=None)["available"] is True


# ---- the availability rule on the graph path ---------------------------------------------------------------------


def _every_source_and_similar(client: TestClient, user: str, page_item: str) -> set[str]:
    """Every item shown to ``user`` by each graph source alone and by all together, and on ``page_item``'s page."""
    shown: set[str] = set()
    for name in [*SOURCES, ",".join(SOURCES)]:
        body = client.get(f"/users/{user}/recommendations", params={"k": 50, "sources": name}).json()
        shown.update(_ids(body))
    shown.update(_ids(client.get(f"/items/{page_item}/similar", params={"k": 50}).json()))
    return shown


def test_hidden_and_expired_items_leave_every_graph_path_including_cached_answers(client: TestClient) -> None:
    user = "u4"
    top = _ids(client.get(f"/users/{user}/recommendations", params={"k": 10}).json())
    target = top[0]
    # an item page that lists the target among its similar items
    neighbours = _ids(client.get(f"/items/{target}/similar", params={"k": 50}).json())
    page = next(i for i in neighbours if target in _ids(client.get(f"/items/{i}/similar", params={"k": 50}).json()))
    assert target in _every_source_and_similar(client, user, page)  # cached now
    try:
        assert _patch(client, target, hidden=True)["available"] is False
        after = _ids(client.get(f"/users/{user}/recommendations", params={"k": 10}).json())
        assert target not in after and len(after) == 10  # the cached list did not survive the change
        assert target not in _every_source_and_similar(client, user, page)
        assert client.get(f"/items/{target}/similar").status_code == 404  # no page for a hidden item
        _patch(client, target, hidden=False)
        assert target in _ids(client.get(f"/users/{user}/recommendations", params={"k": 10}).json())
        # expired (its window closed a minute ago), then not yet available (opens in an hour)
        now = int(time.time())
        assert _patch(client, target, available_until=now - 60)["available"] is False
        assert target not in _every_source_and_similar(client, user, page)
        _patch(client, target, available_until=None, available_from=now + 3600)
        assert target not in _every_source_and_similar(client, user, page)
        # the window opens (two seconds from now): shown again, no other change needed
        opens = int(time.time()) + 2
        assert _patch(client, target, available_from=opens)["available"] is False
        assert target not in _ids(client.get(f"/users/{user}/recommendations", params={"k": 10}).json())
        while time.time() < opens + 1:
            time.sleep(0.2)
        assert target in _ids(client.get(f"/users/{user}/recommendations", params={"k": 10}).json())
    finally:
        _patch(client, target, hidden=False, available_from=None, available_until=None)


# ---- the model path: new arrivals without a retrain, hidden items on every model path ----------------------------


@pytest.fixture(scope="module")
def blend(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[GnnSettings, RetrainReport]:
    root = tmp_path_factory.mktemp("catalogue-blend")
    settings = GnnSettings(artifacts_dir=root / "artifacts", snapshots_dir=root / "snapshots")
    report = retrain_job(neo4j_settings, settings, FAST_BLEND, publish=False)
    assert report.promoted
    return settings, report


@pytest.fixture
def blend_client(blend: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings) -> Iterator[TestClient]:
    app = create_app(model_settings(blend[0].artifacts_dir, mmr_lambda=1.0), neo4j_settings)
    with TestClient(app) as client:
        yield client


def _strongest_positive(driver: Driver, user: str) -> str:
    records, _, _ = driver.execute_query(
        "MATCH (:User {userId: $u})-[r:INTERACTED]->(i) WHERE coalesce(r.rating, 5) >= 4 "
        "RETURN i.itemId AS id ORDER BY coalesce(r.rating, r.weight) DESC, coalesce(r.timestamp, 0) DESC, i.itemId "
        "LIMIT 1",
        u=user,
    )
    return records[0]["id"]


def test_a_new_item_is_recommended_without_a_retrain_in_the_new_arrival_position(
    blend_client: TestClient, blend: tuple[GnnSettings, RetrainReport], driver: Driver
) -> None:
    user = "u9"
    before = blend_client.get(f"/users/{user}/recommendations", params={"k": 20}).json()
    assert before["model_version"].startswith("blend-") and len(before["items"]) == 20
    seed = _strongest_positive(driver, user)
    genres, people = _seed_traits(driver, seed)
    new = {"item_id": "cat-arrival-1", "title": "Fresh Film", "genres": genres, "people": people}
    assert blend_client.post("/items", json=new, headers=KEY).status_code == 201
    try:
        after = blend_client.get(f"/users/{user}/recommendations", params={"k": 20}).json()
        ids = _ids(after)
        assert len(ids) == 20 and ids.index("cat-arrival-1") == 19  # the blend's reserved position (20th)
        assert ids[:19] == _ids(before)[:19]  # the model's list otherwise unchanged
        arrival = after["items"][19]
        assert arrival["sources"] == {"knowledge": 1.0}
        text = arrival["explanations"][0]["text"]
        assert text.startswith("New: because you liked ") and arrival["explanations"][0]["nodes"][1]["id"] == seed
        # a shorter list is a prefix: no reserved position within it
        assert "cat-arrival-1" not in _ids(blend_client.get(f"/users/{user}/recommendations", params={"k": 10}).json())
        # its item page answers from the graph's knowledge (the model does not know it)
        similar = blend_client.get("/items/cat-arrival-1/similar", params={"k": 5}).json()
        assert similar["items"] and seed in _ids(
            blend_client.get("/items/cat-arrival-1/similar", params={"k": 50}).json()
        )
        # hidden: gone from the new-arrival position too
        _patch(blend_client, "cat-arrival-1", hidden=True)
        assert "cat-arrival-1" not in _ids(blend_client.get(f"/users/{user}/recommendations", params={"k": 20}).json())
    finally:
        driver.execute_query("MATCH (i:Item {itemId: 'cat-arrival-1'}) DETACH DELETE i")


def test_hidden_items_leave_the_model_path_cached_and_degraded_answers(
    blend_client: TestClient, neo4j_settings: Neo4jSettings
) -> None:
    user = "u11"
    top = _ids(blend_client.get(f"/users/{user}/recommendations", params={"k": 10}).json())  # cached now
    target, expired = top[0], top[1]
    try:
        _patch(blend_client, target, hidden=True)
        _patch(blend_client, expired, available_until=int(time.time()) - 1)
        after = _ids(blend_client.get(f"/users/{user}/recommendations", params={"k": 10}).json())
        assert len(after) == 10 and not {target, expired} & set(after)
        assert after[:8] == top[2:10]  # the rest of the model's order holds
        # Neo4j goes away: the degraded answer still leaves them out (the last catalogue read)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        recommender = blend_client.app.state.recommender
        away = GraphDatabase.driver(f"bolt://127.0.0.1:{port}", auth=("neo4j", "whatever-pw"))
        live = recommender.driver
        recommender.driver = recommender.catalogue.driver = away
        try:
            body = blend_client.get(f"/users/{user}/recommendations", params={"k": 10, "exclude_items": "x"}).json()
            assert body["degraded"] is True and len(body["items"]) == 10
            assert not {target, expired} & set(_ids(body))
        finally:
            recommender.driver = recommender.catalogue.driver = live
            away.close()
    finally:
        _patch(blend_client, target, hidden=False)
        _patch(blend_client, expired, available_until=None)
    assert target in _ids(blend_client.get(f"/users/{user}/recommendations", params={"k": 10}).json())


def test_a_change_made_through_another_process_reaches_the_model_path(
    blend: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    """Two API processes (two apps): a hide through one leaves the other's lists at its next catalogue read, and
    even before it a miss whose explain query runs drops the hidden item the other's model picked. (A miss explained
    from held neighbourhoods, without the query, takes the item's availability from the catalogue as last read.)"""
    settings = model_settings(blend[0].artifacts_dir, mmr_lambda=1.0, catalogue_refresh_seconds=0)
    with (
        TestClient(create_app(settings, neo4j_settings)) as one,
        TestClient(create_app(settings, neo4j_settings)) as two,
    ):
        user = "u21"
        top = _ids(two.get(f"/users/{user}/recommendations", params={"k": 10, "exclude_items": "a"}).json())
        recommender = two.app.state.recommender
        try:
            _patch(one, top[0], hidden=True)  # `two` never re-reads the catalogue by itself (refresh 0)
            recommender.neighbourhoods.clear()  # nothing held: the explain query runs, and drops the item
            fresh = _ids(two.get(f"/users/{user}/recommendations", params={"k": 10, "exclude_items": "b"}).json())
            assert top[0] not in fresh and len(fresh) == 10
            assert recommender.catalogue.refresh()  # its next read of the catalogue: the ranking leaves it out
            held = _ids(two.get(f"/users/{user}/recommendations", params={"k": 10, "exclude_items": "c"}).json())
            assert top[0] not in held and len(held) == 10
        finally:
            _patch(one, top[0], hidden=False)
