"""Issue 3's acceptance checks through the HTTP API, against the real Neo4j with ml-latest-small (and its
actors, directors and HetRec tags) loaded from the datasets folder (KGREC_DATASETS): graph recall with explanation paths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from etl.load import load_dataset
from etl.sources import movielens_variables, read_mapping_dataset, shipped_mapping_path
from graph.paths import Explanation
from graph.recall import Candidate
from graph.settings import Neo4jSettings
from graph.writers import wipe_graph
from schema.ddl import apply_schema
from tests.api.conftest import API_KEY, graph_only_settings
from tests.conftest import dataset_dir
from tests.integration.graph.test_recall import assert_paths_exist

USERS = ["1", "7", "42", "414", "599"]


@pytest.fixture(scope="module")
def movielens(driver: Driver, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory) -> Driver:
    wipe_graph(driver, neo4j_settings.database)
    apply_schema(driver, neo4j_settings.database)
    variables = movielens_variables(
        dataset_dir("ml-latest-small"),
        dataset_dir("ml-small-actors-tomasonjo") / "movies.csv",
        dataset_dir("hetrec2011-movielens-2k"),
    )
    dataset, _ = read_mapping_dataset(shipped_mapping_path("movielens"), variables)
    report = load_dataset(driver, dataset, reject_dir=Path(tmp_path_factory.mktemp("rejects")))
    assert report.relationships["INTERACTED"] == 100_836
    return driver


@pytest.fixture(scope="module")
def ml_client(
    movielens: Driver, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    app = create_app(graph_only_settings(tmp_path_factory.mktemp("api")), neo4j_settings)
    with TestClient(app) as client:
        yield client


def _candidates(items: list[dict]) -> list[Candidate]:
    return [
        Candidate(
            item_id=i["item_id"],
            title=i["title"],
            score=i["score"],
            source="api",
            explanations=[Explanation.model_validate(e) for e in i["explanations"]],
        )
        for i in items
    ]


def test_named_users_get_ten_explained_items_whose_every_path_exists(ml_client: TestClient, movielens: Driver) -> None:
    with_path = total = 0
    for user in USERS:
        response = ml_client.get(f"/users/{user}/recommendations", params={"k": 10})
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert len(items) == 10, user
        rated, _, _ = movielens.execute_query(
            "MATCH (:User {userId: $u})-[:INTERACTED]->(i) RETURN collect(i.itemId) AS ids", u=user
        )
        assert not {i["item_id"] for i in items} & set(rated[0]["ids"]), user  # never what the user already has
        assert all(i["explanations"] and i["explanations"][0]["text"] for i in items), user
        assert_paths_exist(movielens, _candidates(items), ("User", user))
        total += len(items)
        with_path += sum(1 for i in items if any(e["nodes"] for e in i["explanations"]))
    assert with_path >= 0.8 * total


def test_bad_requests_are_clear_4xx(ml_client: TestClient) -> None:
    assert ml_client.get("/users/no-such-user/recommendations").status_code == 404
    for k in ("-3", "abc"):
        assert ml_client.get("/users/1/recommendations", params={"k": k}).status_code == 422
    for hostile in ("1' OR '1'='1", "1}) MATCH (n) DETACH DELETE n //", "x" * 5000, "\u0000\u202e"):
        response = ml_client.get(f"/users/{quote(hostile, safe='')}/recommendations")
        assert response.status_code == 404, hostile
    body = {"user_id": "1", "item_id": "1", "rating": 5}
    assert ml_client.post("/interactions", json=body).status_code == 401
    assert ml_client.post("/interactions", json=body, headers={"X-API-Key": "wrong-key-0123456789"}).status_code == 403
    malformed = ml_client.post(
        "/interactions",
        content=b'{"user_id": "1", "item_id": ',
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    users, _, _ = ml_client.app.state.driver.execute_query("MATCH (u:User) RETURN count(u) AS n")
    assert users[0]["n"] == 610  # nothing hostile was created or deleted


def test_a_posted_interaction_removes_the_item_from_the_list(ml_client: TestClient) -> None:
    before = ml_client.get("/users/42/recommendations", params={"k": 10}).json()["items"]
    target = before[0]["item_id"]
    posted = ml_client.post(
        "/interactions", json={"user_id": "42", "item_id": target, "rating": 4.5}, headers={"X-API-Key": API_KEY}
    )
    assert posted.status_code == 201, posted.text
    after = ml_client.get("/users/42/recommendations", params={"k": 10}).json()["items"]
    assert len(after) == 10 and target not in {i["item_id"] for i in after}
