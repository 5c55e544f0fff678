"""User attributes through the API: onboarding with attributes, the user context that reads them in its one round
trip, and the blend's peers feature computed for a served user from the attributes read live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from etl.load import load_dataset
from etl.synthetic import generate_world
from gnn.blend.config import FEATURES
from gnn.blend.model import RankerModel
from gnn.config import GnnSettings
from gnn.jobs import retrain_job
from gnn.serving import current_version
from graph.reads import user_context
from graph.settings import Neo4jSettings
from graph.writers import wipe_graph
from schema.ddl import apply_schema
from tests.api.conftest import API_KEY, FAST_BLEND, model_settings

HEADERS = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def served(
    driver: Driver, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Path]]:
    """The synthetic world with user attributes, a blend retrained on it, and an app serving it."""
    wipe_graph(driver, neo4j_settings.database)
    apply_schema(driver, neo4j_settings.database)
    world = generate_world(users=120, items=240, seed=5, user_attributes=True)
    load_dataset(driver, world.dataset, reject_dir=tmp_path_factory.mktemp("rejects"))
    root = tmp_path_factory.mktemp("artifacts")
    gnn = GnnSettings(artifacts_dir=root, snapshots_dir=tmp_path_factory.mktemp("snapshots"))
    assert retrain_job(neo4j_settings, gnn, FAST_BLEND, publish=False).promoted
    with TestClient(create_app(model_settings(root), neo4j_settings)) as client:
        yield client, root
    wipe_graph(driver, neo4j_settings.database)


def test_onboarding_links_attributes_and_refuses_unknown_ones(
    served: tuple[TestClient, Path], driver: Driver, neo4j_settings: Neo4jSettings
) -> None:
    client, _ = served
    body = {"user_id": "newcomer", "liked_items": ["i1"], "attributes": ["country:JP", "age:25-34", "country:JP"]}
    created = client.post("/users", json=body, headers=HEADERS)
    assert created.status_code == 201, created.text
    assert created.json()["attributes"] == ["age:25-34", "country:JP"]
    context = user_context(driver, "newcomer", neo4j_settings.database)
    assert context is not None and context.attributes == ("age:25-34", "country:JP")
    assert "attributes" not in client.post("/users", json={"user_id": "plain"}, headers=HEADERS).json()

    refused = client.post(
        "/users", json={"user_id": "nobody-yet", "attributes": ["country:JP", "planet:Mars"]}, headers=HEADERS
    )
    assert refused.status_code == 422
    (error,) = refused.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "attributes", 1], "unknown_attribute")
    assert user_context(driver, "nobody-yet", neo4j_settings.database) is None  # nothing written


def test_new_users_lists_follow_their_attributes(served: tuple[TestClient, Path]) -> None:
    client, root = served
    model = RankerModel.load(current_version(root, "blend"))
    assert model.active == len(FEATURES) and model.weights[FEATURES.index("peers")] > 0
    lists = {}
    for country in ("FR", "JP"):
        user = f"from-{country}"
        body = {"user_id": user, "liked_items": ["i3", "i4"], "attributes": [f"country:{country}"]}
        assert client.post("/users", json=body, headers=HEADERS).status_code == 201
        answer = client.get(f"/users/{user}/recommendations", params={"k": 20, "explain": "false"})
        assert answer.status_code == 200 and answer.json()["model_version"].startswith("blend-")
        lists[country] = [item["item_id"] for item in answer.json()["items"]]
    # the same history, other attributes: the peers feature (read live with the history) moves the list
    assert lists["FR"] != lists["JP"]
