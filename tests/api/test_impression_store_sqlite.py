"""The API with its impressions in a SQLite file (KGREC_IMPRESSION_STORE=sqlite), against the real Neo4j (synthetic
world): the same lists as with the graph's store, fatigue and rotation from the recorded lists (written or queued),
attribution, skips, item pages' lists, exploration's counts, pruning, a restart; Neo4j gets none of it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from etl.synthetic import SyntheticWorld
from graph.impressions import SqliteImpressionStore
from graph.settings import Neo4jSettings
from schema.errors import ConfigError
from tests.api.conftest import API_KEY, graph_only_settings

HEADERS = {"X-API-Key": API_KEY}


def _app(tmp_path: Path, neo4j_settings: Neo4jSettings, store: str = "sqlite", **extra: object):  # noqa: ANN202
    settings = graph_only_settings(tmp_path).model_copy(
        update={"impression_store": store, "impression_db": tmp_path / "impressions.sqlite3", **extra}
    )
    return create_app(settings, neo4j_settings)


def _store(client: TestClient) -> SqliteImpressionStore:
    store = client.app.state.recommender.impression_store
    assert isinstance(store, SqliteImpressionStore)
    return store


def _flush(client: TestClient) -> None:
    client.app.state.recommender.impressions.flush()


def _list(client: TestClient, user: str, k: int = 8) -> dict:
    response = client.get(f"/users/{user}/recommendations", params={"k": k, "explain": "false"})
    assert response.status_code == 200, response.text
    return response.json()


def _items(body: dict) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def _feedback(client: TestClient, **body: object) -> dict:
    response = client.post("/feedback", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()


def _exposure_reads(client: TestClient) -> dict[str, float]:
    """The exposure reads so far by what the held rows gave (``kgrec_exposure_cache_total``), those counted only."""
    out = {}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("kgrec_exposure_cache_total{"):
            out[line.split('outcome="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    return {outcome: n for outcome, n in out.items() if n}


def _graph_exposure(driver: Driver, user: str) -> tuple[int, int]:
    """What the graph holds of the user's exposure: (items in the arrays, listsShown), and no list node."""
    records, _, _ = driver.execute_query(
        "MATCH (u:User {userId: $u}) RETURN size(coalesce(u.shownItems, [])) AS n, coalesce(u.listsShown, 0) AS lists, "
        "COUNT { MATCH (r:Recommendation {userId: $u}) } AS nodes",
        u=user,
    )
    assert records[0]["nodes"] == 0
    return records[0]["n"], records[0]["lists"]


def test_the_lists_are_the_same_as_with_the_graphs_store(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path, driver: Driver
) -> None:
    served: dict[str, list[list[str]]] = {}
    for store in ("neo4j", "sqlite"):
        driver.execute_query(  # the same user starts with no exposure in either store
            "MATCH (u:User {userId: 'u60'}) REMOVE u.shownItems, u.shownCounts, u.shownTimes, u.shownLists, "
            "u.listsShown WITH u MATCH (r:Recommendation {userId: 'u60'}) DELETE r"
        )
        with TestClient(_app(tmp_path, neo4j_settings, store, rotation_lists=1, fatigue_half_life=1.0)) as client:
            lists = []
            for _ in range(4):
                lists.append(_items(_list(client, "u60", k=6)))
                _flush(client)
            served[store] = lists
            if store == "sqlite":  # read once from the file, then held: this process's windows applied to the rows
                assert _exposure_reads(client) == {"miss": 1.0, "applied": 2.0}
    assert served["sqlite"] == served["neo4j"]
    assert not set(served["sqlite"][0]) & set(served["sqlite"][1])  # rotation did act


def test_rotation_and_fatigue_read_the_file_and_the_queue_and_neo4j_gets_nothing(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path, driver: Driver
) -> None:
    app = _app(tmp_path, neo4j_settings, rotation_lists=1, impressions_flush_seconds=60.0)
    with TestClient(app) as client:
        first = _items(_list(client, "u61", k=5))
        second = _items(_list(client, "u61", k=5))  # the first still queued: rotated out all the same
        assert not set(first) & set(second)
        _flush(client)
        third = _items(_list(client, "u61", k=5))  # from the file
        assert not set(second) & set(third)
        _flush(client)
        store = _store(client)
        counts = store.item_exposure()
        assert store.lists_shown("u61", 0) == 3 and all(counts[i][0] >= 1 for i in first + second + third)
    assert _graph_exposure(driver, "u61") == (0, 0)
    with TestClient(_app(tmp_path, neo4j_settings, rotation_lists=1)) as client:  # a restart: the file remembers
        assert not set(third) & set(_items(_list(client, "u61", k=5)))


def test_attribution_and_the_report_come_from_the_file(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path, driver: Driver
) -> None:
    with TestClient(_app(tmp_path, neo4j_settings)) as client:
        body = _list(client, "u62")
        rec_id, items = body["recommendation_id"], _items(body)
        # at once: the list may still wait in the queue; the feedback writes it first
        out = _feedback(client, user_id="u62", item_id=items[1], type="click", recommendation_id=rec_id)
        assert (out["attributed"], out["attribution"], out["variant"]) == (True, "attributed", "default")
        _feedback(client, user_id="u62", item_id=items[1], type="click", recommendation_id=rec_id)  # once per list
        assert _feedback(client, user_id="u62", item_id=items[2], type="purchase", recommendation_id=rec_id)[
            "attributed"
        ]
        not_shown = next(f"i{n}" for n in range(1, 240) if f"i{n}" not in items)
        out = _feedback(client, user_id="u62", item_id=not_shown, type="click", recommendation_id=rec_id)
        assert out["attribution"] == "not_shown"
        assert (
            _feedback(client, user_id="u63", item_id=items[3], type="click", recommendation_id=rec_id)["attribution"]
            == "not_shown"
        )  # not u63's list
        out = _feedback(client, user_id="u62", item_id=items[3], type="click", recommendation_id="f" * 32)
        assert out["attribution"] == "unknown_recommendation"
        interactions, _, _ = driver.execute_query(  # the interactions are Neo4j's, attributed or not
            "MATCH (:User {userId: 'u62'})-[r:INTERACTED]->(i:Item) WHERE i.itemId IN $items RETURN count(r) AS n",
            items=[items[1], items[2], items[3], not_shown],
        )
        assert interactions[0]["n"] == 4
        store = _store(client)
        figures = {f.variant: f for f in store.variant_report()}
        assert (figures["default"].clicks, figures["default"].conversions) == (2, 1)
        assert store.item_exposure()[items[1]][1] == 1
        recommender = client.app.state.recommender
        recommender._stats_read_at = 0.0  # exploration re-reads the counts from the store
        recommender._refresh_item_stats()
        assert recommender.item_stats.get([items[1]])[1].tolist() == [1.0]
    assert _graph_exposure(driver, "u62") == (0, 0)


def test_a_skip_is_counted_in_the_file_and_fades_the_item(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path, driver: Driver
) -> None:
    with TestClient(_app(tmp_path, neo4j_settings, fatigue_half_life=1.0)) as client:
        body = _list(client, "u64", k=5)
        _flush(client)
        item = body["items"][0]["item_id"]
        out = _feedback(client, user_id="u64", item_id=item, type="skip", recommendation_id=body["recommendation_id"])
        assert (out["attribution"], out["polarity"], out["weight"]) == ("attributed", 1, 0.0)
        _feedback(client, user_id="u64", item_id=item, type="skip")
        store = _store(client)
        assert store.lists_shown("u64", 0) == 1
        _feedback(client, user_id="u64", item_id=body["items"][-1]["item_id"], type="view")  # recompute the list
        after = _items(_list(client, "u64", k=5))
        assert item not in after[:1]  # faded by three ignored impressions at half-life 1 ...
    interacted, _, _ = driver.execute_query(
        "MATCH (u:User {userId: 'u64'}), (i:Item {itemId: $i}) RETURN EXISTS { (u)-[:INTERACTED]->(i) } AS x", i=item
    )
    assert interacted[0]["x"] is False  # ... not an interaction
    assert _graph_exposure(driver, "u64") == (0, 0)
    with TestClient(_app(tmp_path, neo4j_settings)) as client:  # a user first seen by a skip is created
        assert _feedback(client, user_id="u-new-skipper", item_id=item, type="skip")["created_user"] is True


def test_item_pages_lists_are_attributable_and_old_lists_pruned(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    with TestClient(_app(tmp_path, neo4j_settings)) as client:
        page = client.get("/items/i5/similar", params={"k": 4}).json()
        shown = _items(page)
        out = _feedback(
            client, user_id="u65", item_id=shown[0], type="click", recommendation_id=page["recommendation_id"]
        )
        assert (out["attribution"], out["variant"]) == ("attributed", "similar")
        _list(client, "u65")
        _flush(client)
        recorder = client.app.state.recommender.impressions
        assert recorder.retention_days == 90 and recorder.prune(now=time.time()) == 0  # nothing that old
        assert sum(f.lists for f in _store(client).variant_report()) == 2
        assert recorder.prune(now=time.time() + 91 * 86_400) == 2
        assert _store(client).variant_report() == [] and _store(client).lists_shown("u65", 0) == 1  # exposure stays


def test_an_api_does_not_start_on_the_impression_file_of_another_graph(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    other = SqliteImpressionStore(tmp_path / "impressions.sqlite3")
    other.bind("the-id-of-another-graph")  # as an API serving another Neo4j database recorded it
    other.close()
    with pytest.raises(ConfigError, match="records another graph"), TestClient(_app(tmp_path, neo4j_settings)):
        pass
    emptied = SqliteImpressionStore(tmp_path / "impressions.sqlite3")
    emptied.clear()  # kgrec load --replace
    emptied.close()
    with TestClient(_app(tmp_path, neo4j_settings)) as client:  # the file now takes this graph
        assert _items(_list(client, "u61"))
