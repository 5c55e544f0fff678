"""Lists fill up to k when the catalogue allows, on a catalogue loaded without timestamps (as Last.fm is) to which a
few interactions were posted just now: the recent popularity window then holds only those few items."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from etl.load import load_dataset
from graph.settings import Neo4jSettings
from schema.ddl import apply_schema
from tests.api.conftest import API_KEY, graph_only_settings
from tests.fixtures import graphs

ITEMS = 30
JAZZ = {"a0", "a1", "a2"}  # three jazz items; the other 27 are rock


@pytest.fixture
def client(clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path) -> Iterator[TestClient]:
    apply_schema(clean_db, neo4j_settings.database)
    items = [(f"a{n}", f"Artist {n}", None) for n in range(ITEMS)]
    plays = [(f"l{u}", f"a{n}", None, None) for n in range(ITEMS) for u in range(ITEMS - n)]  # no timestamps
    genres = [(f"a{n}", "Jazz" if f"a{n}" in JAZZ else "Rock") for n in range(ITEMS)]
    load_dataset(clean_db, graphs.build("plays", items, plays, genres=genres), reject_dir=tmp_path)
    with TestClient(create_app(graph_only_settings(tmp_path), neo4j_settings)) as client:
        for item in ("a20", "a21", "a22", "a23"):  # posted just now: the only timestamped interactions
            posted = client.post("/interactions", json={"user_id": "early", "item_id": item}, headers=_KEY)
            assert posted.status_code == 201, posted.text
        yield client


_KEY = {"X-API-Key": API_KEY}


def test_a_new_user_gets_k_items_not_only_the_just_posted_ones(client: TestClient) -> None:
    assert client.post("/users", json={"user_id": "new"}, headers=_KEY).status_code == 201
    items = client.get("/users/new/recommendations", params={"k": 20}).json()["items"]
    assert len(items) == 20
    ids = [i["item_id"] for i in items]
    assert set(ids[:4]) == {"a20", "a21", "a22", "a23"}  # popular lately first, then the most played overall
    assert ids[4:] == [f"a{n}" for n in range(16)]
    texts = {e["text"] for i in items[4:] for e in i["explanations"]}
    assert texts == {"Popular overall"}
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)


def test_chosen_genres_come_first_and_the_rest_fill_the_list(client: TestClient) -> None:
    created = client.post("/users", json={"user_id": "fan", "liked_genres": ["Jazz"]}, headers=_KEY)
    assert created.status_code == 201, created.text
    items = client.get("/users/fan/recommendations", params={"k": 10}).json()["items"]
    assert len(items) == 10
    assert {i["item_id"] for i in items[:3]} == JAZZ  # the three jazz items, then the others by popularity
    assert not JAZZ & {i["item_id"] for i in items[3:]}
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    # a genre the request names is a filter: no filling from other genres
    jazz_only = client.get("/users/fan/recommendations", params={"k": 10, "include_genres": "Jazz"}).json()["items"]
    assert {i["item_id"] for i in jazz_only} == JAZZ
