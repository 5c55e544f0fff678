"""The HTTP API against the real Neo4j: success and error cases."""

from __future__ import annotations

import gc
import socket
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver
from pydantic import SecretStr

from api.app import create_app
from api.genres import GenreNames
from etl.synthetic import SyntheticWorld
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, graph_only_settings


def _rated(world: SyntheticWorld, user_id: str) -> set[str]:
    return {r.item_id for r in world.dataset.interactions if r.user_id == user_id}


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "model_version": None}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["neo4j"] == "ok"


def test_recommendations_for_known_user(client: TestClient, world: SyntheticWorld) -> None:
    response = client.get("/users/u1/recommendations", params={"k": 10})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "u1" and body["model_version"]
    items = body["items"]
    assert len(items) == 10
    assert not {i["item_id"] for i in items} & _rated(world, "u1")
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    explained = [i for i in items if i["explanations"] and i["explanations"][0]["nodes"]]
    assert len(explained) >= 8
    for item in explained:
        path = item["explanations"][0]
        assert path["nodes"][0] == {"label": "User", "id": "u1", "name": None} or path["nodes"][0]["id"] == "u1"
        assert path["nodes"][-1]["id"] == item["item_id"]
        assert item["sources"]


def test_recommendations_respect_sources_and_filters(client: TestClient) -> None:
    body = client.get("/users/u2/recommendations", params={"k": 5, "sources": "knowledge"}).json()
    assert all(set(i["sources"]) == {"knowledge"} for i in body["items"])
    drama = client.get("/users/u2/recommendations", params={"k": 5, "exclude_genres": "Drama"}).json()
    assert drama["items"]
    first = body["items"][0]["item_id"]
    without = client.get("/users/u2/recommendations", params={"k": 5, "sources": "knowledge", "exclude_items": first})
    assert first not in {i["item_id"] for i in without.json()["items"]}


def test_a_year_range_holding_no_year_is_422(client: TestClient) -> None:
    """An empty range is refused like an invalid parameter, not answered with an empty list; one year is a range."""
    response = client.get("/users/u2/recommendations", params={"year_min": 2020, "year_max": 2000})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == [
        {
            "loc": ["query", "year_max"],
            "msg": "year_max 2000 is below year_min 2020: no year is in the range",
            "type": "empty_year_range",
        }
    ]
    assert client.get("/users/u2/recommendations", params={"year_min": 2000, "year_max": 2000}).status_code == 200


def test_a_genre_filter_naming_an_unknown_genre_is_422(client: TestClient, world: SyntheticWorld) -> None:
    """As POST /users refuses an unknown genre, so do the filters, each unknown name with its place in its list, the
    closest genres and the graph's genres; a request naming only known genres is answered."""
    genres = sorted({row.genre for row in world.dataset.genres})
    response = client.get(
        "/users/u2/recommendations", params={"include_genres": "Bogus", "exclude_genres": "Drama, Dramma"}
    )
    assert response.status_code == 422, response.text
    bogus, typo = response.json()["detail"]
    assert bogus["loc"] == ["query", "include_genres", 0] and bogus["type"] == "unknown_genre"
    assert bogus["msg"] == f"unknown genre 'Bogus'; the genres are {', '.join(genres)}"
    assert typo["loc"] == ["query", "exclude_genres", 1] and typo["type"] == "unknown_genre"
    assert typo["msg"].startswith("unknown genre 'Dramma' (did you mean 'Drama'")
    unknown_user = client.get("/users/nobody/recommendations", params={"include_genres": "Bogus"})
    assert unknown_user.status_code == 422  # the request is refused before the user is looked up
    known = client.get("/users/u2/recommendations", params={"include_genres": "Drama", "exclude_genres": "Comedy"})
    assert known.status_code == 200 and known.json()["items"]


def test_genre_names_are_held_not_read_per_request(
    world: SyntheticWorld, driver: Driver, neo4j_settings: Neo4jSettings
) -> None:
    """The names the filters are checked against are read once and again only when due: a genre loaded since is
    unknown until then (no query per request), known to a set due at every call."""
    database = neo4j_settings.database
    held = GenreNames(driver, database, refresh_seconds=3600)
    due = GenreNames(driver, database, refresh_seconds=1e-9)
    assert held.names() == due.names() == {row.genre for row in world.dataset.genres}
    driver.execute_query("CREATE (:Genre {name: 'Loaded Since'})", database_=database)
    try:
        assert "Loaded Since" not in (held.names() or ())
        assert "Loaded Since" in (due.names() or ())
    finally:
        driver.execute_query("MATCH (g:Genre {name: 'Loaded Since'}) DELETE g", database_=database)


@pytest.mark.parametrize("k", ["-3", "0", "abc", "100000"])
def test_bad_k_is_422(client: TestClient, k: str) -> None:
    assert client.get("/users/u1/recommendations", params={"k": k}).status_code == 422


def test_unknown_source_is_422(client: TestClient) -> None:
    response = client.get("/users/u1/recommendations", params={"sources": "astrology"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "sources"] and "astrology" in error["msg"]


@pytest.mark.parametrize(
    "user_id",
    ["no-such-user", "' OR 1=1 //", "x}) DETACH DELETE n //", "u1' }) MATCH (n) DETACH DELETE n //", "9" * 5000],
)
def test_unknown_or_hostile_user_is_404(client: TestClient, driver: Driver, user_id: str) -> None:
    response = client.get(f"/users/{quote(user_id, safe='')}/recommendations")
    assert response.status_code == 404
    if "/" not in user_id:  # an encoded slash is decoded before routing: no route matches, still a 404
        assert "unknown user" in response.json()["detail"]
    records, _, _ = driver.execute_query("MATCH (u:User) RETURN count(u) AS n")
    assert records[0]["n"] >= 120  # nothing was deleted


def test_similar_items(client: TestClient) -> None:
    response = client.get("/items/i1/similar", params={"k": 5})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert 0 < len(items) <= 5 and "i1" not in {i["item_id"] for i in items}
    assert client.get("/items/nope/similar").status_code == 404


def test_writes_need_the_key(client: TestClient) -> None:
    body = {"user_id": "u1", "item_id": "i2", "rating": 5.0}
    assert client.post("/interactions", json=body).status_code == 401
    assert client.post("/interactions", json=body, headers={"X-API-Key": "wrong-key-xxxxxxxx"}).status_code == 403


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/interactions", content=b"{not json", headers={"X-API-Key": API_KEY, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    bad_rating = client.post(
        "/interactions", json={"user_id": "u1", "item_id": "i2", "rating": "high"}, headers={"X-API-Key": API_KEY}
    )
    assert bad_rating.status_code == 422


def test_new_interaction_is_reflected_at_once(client: TestClient) -> None:
    before = client.get("/users/u3/recommendations", params={"k": 10}).json()["items"]
    target = before[0]["item_id"]
    posted = client.post(
        "/interactions", json={"user_id": "u3", "item_id": target, "rating": 4.5}, headers={"X-API-Key": API_KEY}
    )
    assert posted.status_code == 201, posted.text
    after = client.get("/users/u3/recommendations", params={"k": 10}).json()["items"]
    assert target not in {i["item_id"] for i in after}


def test_interaction_with_unknown_item_is_404(client: TestClient) -> None:
    response = client.post(
        "/interactions", json={"user_id": "u3", "item_id": "no-such-item"}, headers={"X-API-Key": API_KEY}
    )
    assert response.status_code == 404


def test_onboarding_refuses_unknown_genres_and_items_by_name(client: TestClient) -> None:
    body = {"user_id": "typo", "liked_genres": ["Comedy", "Comdy"], "liked_items": ["i5", "zzz"]}
    refused = client.post("/users", json=body, headers={"X-API-Key": API_KEY})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == [
        {"loc": ["body", "liked_genres", 1], "msg": "unknown genre 'Comdy'", "type": "unknown_genre"},
        {"loc": ["body", "liked_items", 1], "msg": "unknown item 'zzz'", "type": "unknown_item"},
    ]
    assert client.get("/users/typo/recommendations").status_code == 404  # nothing was written
    fixed = client.post(
        "/users", json={**body, "liked_genres": ["Comedy"], "liked_items": ["i5"]}, headers={"X-API-Key": API_KEY}
    )
    assert fixed.status_code == 201 and fixed.json() == {
        "user_id": "typo",
        "liked_genres": ["Comedy"],
        "liked_items": ["i5"],
    }


def test_onboarding_cold_start(client: TestClient) -> None:
    body = {"user_id": "newbie", "liked_genres": ["Comedy"], "liked_items": ["i5"]}
    created = client.post("/users", json=body, headers={"X-API-Key": API_KEY})
    assert created.status_code == 201, created.text
    recs = client.get("/users/newbie/recommendations", params={"k": 10})
    assert recs.status_code == 200
    items = recs.json()["items"]
    assert len(items) == 10 and "i5" not in {i["item_id"] for i in items}
    again = client.post("/users", json=body, headers={"X-API-Key": API_KEY})
    assert again.status_code == 409


def test_metrics_count_requests_and_recall_time(client: TestClient) -> None:
    client.get("/users/u1/recommendations")
    text = client.get("/metrics").text
    assert 'kgrec_http_requests_total{method="GET",route="/users/{user_id}/recommendations",status="200"}' in text
    assert 'kgrec_recall_query_seconds_count{strategy="collaborative"}' in text


def test_openapi_documents_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/users/{user_id}/recommendations", "/items/{item_id}/similar", "/interactions", "/users"} <= spec[
        "paths"
    ].keys()
    assert client.get("/docs").status_code == 200


def test_the_heap_is_frozen_while_serving_and_thawed_at_shutdown(
    world: SyntheticWorld, neo4j_settings, tmp_path: Path
) -> None:
    """KGREC_GC_FREEZE (api/heap.py): the serving process's heap is out of Python's full collections from start-up
    on, and given back at shutdown; off, nothing is frozen."""
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(graph_only_settings(tmp_path), neo4j_settings)) as client:
        assert client.get("/users/u1/recommendations").status_code == 200
        assert gc.get_freeze_count() > 10_000  # the imported modules, the app and its routes at least
    assert gc.get_freeze_count() == 0
    settings = graph_only_settings(tmp_path).model_copy(update={"gc_freeze": False})
    with TestClient(create_app(settings, neo4j_settings)) as client:
        assert client.get("/users/u1/recommendations").status_code == 200
        assert gc.get_freeze_count() == 0


def test_neo4j_unreachable_degrades_not_crashes(neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = neo4j_settings.model_copy(
        update={"uri": f"bolt://127.0.0.1:{port}", "password": SecretStr("whatever-pw")}
    )
    app = create_app(graph_only_settings(tmp_path), settings)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["neo4j"] == "unreachable"
        recs = client.get("/users/u1/recommendations")
        assert recs.status_code == 503 and "unreachable" in recs.json()["detail"]
        filtered = client.get("/users/u1/recommendations", params={"include_genres": "Bogus"})
        assert filtered.status_code == 503  # no genre set known: not checked, and the answer is the same 503
        posted = client.post("/interactions", json={"user_id": "u1", "item_id": "i1"}, headers={"X-API-Key": API_KEY})
        assert posted.status_code == 503


def test_graph_path_answers_are_cached_until_the_user_changes(client: TestClient, world: SyntheticWorld) -> None:
    def hits() -> float:
        line = next(
            (
                x
                for x in client.get("/metrics").text.splitlines()
                if x.startswith('kgrec_response_cache_total{outcome="hit"}')
            ),
            None,
        )
        return float(line.split()[-1]) if line else 0.0

    first = client.get("/users/u6/recommendations", params={"k": 8})
    before = hits()
    again = client.get("/users/u6/recommendations", params={"k": 8})
    assert hits() == before + 1
    assert first.json().pop("recommendation_id") != again.json().pop("recommendation_id")  # new for every list
    assert {**again.json(), "recommendation_id": ""} == {**first.json(), "recommendation_id": ""}
    assert again.headers["content-type"] == "application/json"
    target = first.json()["items"][0]["item_id"]
    client.post(
        "/interactions", json={"user_id": "u6", "item_id": target, "rating": 5.0}, headers={"X-API-Key": API_KEY}
    )
    after = client.get("/users/u6/recommendations", params={"k": 8}).json()
    assert hits() == before + 1 and target not in {i["item_id"] for i in after["items"]}


def test_without_a_model_the_cache_is_warmed_with_the_most_active_users(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    import time

    counts: dict[str, int] = {}
    for row in world.dataset.interactions:
        counts[row.user_id] = counts.get(row.user_id, 0) + 1
    top = sorted(counts, key=lambda u: (-counts[u], u))[:3]
    app = create_app(graph_only_settings(tmp_path).model_copy(update={"cache_warm_users": 3}), neo4j_settings)
    with TestClient(app) as client:
        entries = app.state.recommender.cache._entries
        deadline = time.time() + 60
        while len(entries) < 3 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        assert sorted(key[1] for key in entries) == sorted(top)  # exactly the three most active users
        text = client.get("/metrics").text
        misses_before = float(
            next(x for x in text.splitlines() if x.startswith('kgrec_response_cache_total{outcome="miss"}')).split()[-1]
        )
        client.get(f"/users/{top[0]}/recommendations", params={"k": 10})  # smaller than the pool: a slice, a hit
        text = client.get("/metrics").text
        assert 'kgrec_response_cache_total{outcome="hit"} 1.0' in text
        assert (
            float(
                next(
                    x for x in text.splitlines() if x.startswith('kgrec_response_cache_total{outcome="miss"}')
                ).split()[-1]
            )
            == misses_before
        )
