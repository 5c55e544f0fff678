"""The read rate limit of the real app (KGREC_READ_RATE, KGREC_READ_BURST) against the real test Neo4j."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from etl.synthetic import SyntheticWorld
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, graph_only_settings


def test_a_burst_beyond_the_limit_gets_429_and_others_are_served(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    settings = graph_only_settings(tmp_path).model_copy(update={"read_rate": 0.01, "read_burst": 3})
    app = create_app(settings, neo4j_settings)
    with TestClient(app) as client:
        assert [client.get("/users/u1/recommendations", params={"k": 3}).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/items/i1/similar")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "rate limit" in refused.json()["detail"]
        # Health, readiness, metrics and writes are not reads: never limited.
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
        posted = client.post("/interactions", json={"user_id": "u1", "item_id": "i2"}, headers={"X-API-Key": API_KEY})
        assert posted.status_code == 201
        assert 'status="429"' in client.get("/metrics").text
        # A made-up key is still the same anonymous client; the server's key and another address have their own.
        made_up = client.get("/users/u1/recommendations", headers={"X-API-Key": "made-up-key-123456"})
        assert made_up.status_code == 429
        keyed = client.get("/users/u1/recommendations", params={"k": 3}, headers={"X-API-Key": API_KEY})
        assert keyed.status_code == 200
        other = TestClient(app, client=("10.1.2.3", 40000))
        assert other.get("/users/u2/recommendations", params={"k": 3}).status_code == 200


def test_zero_rate_disables_the_limit(world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    settings = graph_only_settings(tmp_path).model_copy(update={"read_rate": 0.0, "read_burst": 1})
    with TestClient(create_app(settings, neo4j_settings)) as client:
        assert {client.get("/users/u1/recommendations", params={"k": 3}).status_code for _ in range(12)} == {200}


def test_the_default_limit_lets_normal_traffic_through(client: TestClient) -> None:
    assert {client.get("/users/u3/recommendations", params={"k": 5}).status_code for _ in range(30)} == {200}
