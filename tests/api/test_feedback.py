"""Impressions, feedback types, attribution and exposure fatigue, against the real Neo4j (synthetic world).

The tests that read what was recorded from the graph (its ``Recommendation`` nodes, the users' exposure arrays, the
items' counters) run the graph's impression store (``KGREC_IMPRESSION_STORE=neo4j``: :data:`GRAPH_STORE`); the others
the default store. The same rules with the SQLite store, read from its file: tests/api/test_impression_store_sqlite.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from etl.synthetic import SyntheticWorld
from gnn.data import build_graph_snapshot
from gnn.evaluation import positive_mask
from graph.export import export_graph
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, graph_only_settings

HEADERS = {"X-API-Key": API_KEY}
#: The settings of an app whose impressions are recorded in the graph, where these tests read them ...
GRAPH_STORE = {"impression_store": "neo4j"}
#: ... and the mark that gives them to a test's ``client``.
in_graph = pytest.mark.parametrize("client", [GRAPH_STORE], ids=["neo4j-store"], indirect=True)


def _app(tmp_path: Path, neo4j_settings: Neo4jSettings, **extra: object):  # noqa: ANN202 - FastAPI
    settings = graph_only_settings(tmp_path).model_copy(update=extra)
    return create_app(settings, neo4j_settings)


@pytest.fixture
def client(
    request: pytest.FixtureRequest, world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> Iterator[TestClient]:
    """An app of the default settings, or of those the test's :data:`in_graph` mark gives."""
    with TestClient(_app(tmp_path, neo4j_settings, **getattr(request, "param", {}))) as test_client:
        yield test_client


def _flush(client: TestClient) -> None:
    client.app.state.recommender.impressions.flush()


def _metric(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(want)}\}})? (\S+)$" if want else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _list(client: TestClient, user: str, k: int = 8) -> dict:
    response = client.get(f"/users/{user}/recommendations", params={"k": k, "explain": "false"})
    assert response.status_code == 200, response.text
    return response.json()


def _feedback(client: TestClient, **body: object) -> dict:
    response = client.post("/feedback", json=body, headers=HEADERS)
    assert response.status_code == 201, response.text
    return response.json()


def test_every_list_has_its_own_recommendation_id_even_from_the_cache(client: TestClient) -> None:
    hits = _metric(client, "kgrec_response_cache_total", outcome="hit")
    bodies = [_list(client, "u4") for _ in range(4)]
    assert _metric(client, "kgrec_response_cache_total", outcome="hit") == hits + 3  # three answered from the cache
    ids = [b["recommendation_id"] for b in bodies]
    assert len(set(ids)) == 4 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert all(b["items"] == bodies[0]["items"] and b["variant"] == "default" for b in bodies)


@in_graph
def test_a_served_list_is_recorded_with_its_items_in_order(client: TestClient, driver: Driver) -> None:
    first, second = _list(client, "u5"), _list(client, "u5")
    _flush(client)
    records, _, _ = driver.execute_query(
        "MATCH (r:Recommendation {userId: 'u5'}) RETURN r.recommendationId AS id, r.itemIds AS items, "
        "r.variant AS variant, r.modelVersion AS version, r.shownAt AS at ORDER BY id"
    )
    recorded = {r["id"]: r for r in records}
    assert set(recorded) == {first["recommendation_id"], second["recommendation_id"]}
    rec = recorded[first["recommendation_id"]]
    assert rec["items"] == [i["item_id"] for i in first["items"]]  # position = index
    assert (rec["variant"], rec["version"]) == ("default", first["model_version"]) and rec["at"] > 1_700_000_000
    shown, _, _ = driver.execute_query(
        "MATCH (u:User {userId: 'u5'}) UNWIND range(0, size(u.shownItems) - 1) AS k "
        "RETURN u.shownItems[k] AS item, u.shownCounts[k] AS n, u.shownLists[k] AS last, u.listsShown AS lists"
    )
    assert {r["item"]: r["n"] for r in shown} == {i["item_id"]: 2 for i in first["items"]}
    assert {(r["last"], r["lists"]) for r in shown} == {(2, 2)}
    assert _metric(client, "kgrec_impressions_total", variant="default") >= 2 * len(first["items"])


def test_a_disliked_item_never_comes_back_and_trains_as_a_negative(
    client: TestClient, driver: Driver, neo4j_settings: Neo4jSettings
) -> None:
    top = _list(client, "u6")["items"][0]["item_id"]
    out = _feedback(client, user_id="u6", item_id=top, type="dislike")
    assert (out["polarity"], out["attribution"], out["attributed"]) == (-1, "none", False)
    assert top not in [i["item_id"] for i in _list(client, "u6", k=50)["items"]]
    _feedback(client, user_id="u6", item_id=top, type="view")  # a later view does not undo the dislike (sum rule)
    assert top not in [i["item_id"] for i in _list(client, "u6", k=50)["items"]]
    records, _, _ = driver.execute_query(
        "MATCH (:User {userId: 'u6'})-[r:INTERACTED]->(:Item {itemId: $item}) RETURN r.polarity AS p, r.kinds AS kinds, "
        "r.kindCounts AS counts, r.weight AS w",
        item=top,
    )
    assert (records[0]["p"], records[0]["kinds"], records[0]["counts"], records[0]["w"]) == (
        -1,
        ["dislike", "view"],
        [1, 1],
        4.5,
    )
    snapshot = build_graph_snapshot(export_graph(driver, neo4j_settings.database))
    edge = next(
        n
        for n, (u, i) in enumerate(zip(snapshot.edge_index[0].tolist(), snapshot.edge_index[1].tolist(), strict=True))
        if snapshot.users.ids[u] == "u6" and snapshot.items.ids[i] == top
    )
    assert snapshot.edge_polarity[edge] == -1 and not bool(positive_mask(snapshot)[edge])


@in_graph
def test_a_click_on_a_shown_item_is_attributed_to_its_list_once(client: TestClient, driver: Driver) -> None:
    shown = _list(client, "u12")
    rec_id, items = shown["recommendation_id"], [i["item_id"] for i in shown["items"]]
    clicks = _metric(client, "kgrec_clicks_total", variant="default")
    # at once: the list may still wait in the impression queue; the feedback finds it anyway
    out = _feedback(client, user_id="u12", item_id=items[1], type="click", recommendation_id=rec_id)
    assert (out["attributed"], out["attribution"], out["variant"]) == (True, "attributed", "default")
    _feedback(client, user_id="u12", item_id=items[1], type="click", recommendation_id=rec_id)  # the same item again
    bought = _feedback(client, user_id="u12", item_id=items[2], type="purchase", recommendation_id=rec_id)
    assert bought["attributed"]
    records, _, _ = driver.execute_query(
        "MATCH (r:Recommendation {recommendationId: $id}) RETURN r.clickedItemIds AS clicked, "
        "r.convertedItemIds AS converted",
        id=rec_id,
    )
    assert (records[0]["clicked"], records[0]["converted"]) == ([items[1], items[2]], [items[2]])
    assert _metric(client, "kgrec_clicks_total", variant="default") == clicks + 2
    not_shown = next(i for i in (f"i{n}" for n in range(1, 240)) if i not in items)
    out = _feedback(client, user_id="u12", item_id=not_shown, type="click", recommendation_id=rec_id)
    assert (out["attributed"], out["attribution"]) == (False, "not_shown")
    out = _feedback(client, user_id="u13", item_id=items[3], type="click", recommendation_id=rec_id)  # not u13's list
    assert out["attribution"] == "not_shown"
    out = _feedback(client, user_id="u12", item_id=items[3], type="click", recommendation_id="f" * 32)
    assert (out["attributed"], out["attribution"]) == (False, "unknown_recommendation")
    records, _, _ = driver.execute_query(  # unattributed feedback is still recorded
        "MATCH (:User {userId: 'u12'})-[r:INTERACTED]->(:Item {itemId: $item}) RETURN r.kinds AS kinds", item=items[3]
    )
    assert records[0]["kinds"] == ["click"]


def test_feedback_refuses_unknown_types_and_items_and_needs_the_key(client: TestClient) -> None:
    bad = client.post("/feedback", json={"user_id": "u1", "item_id": "i1", "type": "wink"}, headers=HEADERS)
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "unknown_feedback_type"
    missing = client.post("/feedback", json={"user_id": "u1", "item_id": "nope", "type": "click"}, headers=HEADERS)
    assert missing.status_code == 404
    assert client.post("/feedback", json={"user_id": "u1", "item_id": "i1", "type": "click"}).status_code == 401
    created = _feedback(client, user_id="fresh-user", item_id="i1", type="like")
    assert created["created_user"] and created["polarity"] == 1


def test_feedback_types_come_from_the_configured_file(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    table = tmp_path / "kinds.yaml"
    table.write_text("combine: strongest\nkinds:\n  star: {weight: 2, outcome: click}\n  meh: {polarity: negative}\n")
    with TestClient(_app(tmp_path, neo4j_settings, feedback_kinds=table)) as client:
        assert _feedback(client, user_id="u14", item_id="i7", type="star")["weight"] == 2.0
        meh = _feedback(client, user_id="u14", item_id="i7", type="meh")
        assert (meh["polarity"], meh["weight"]) == (1, 2.0)  # strongest: the star (weight 2) outweighs the meh (1)
        assert (
            client.post(
                "/feedback", json={"user_id": "u14", "item_id": "i7", "type": "click"}, headers=HEADERS
            ).status_code
            == 422
        )


def _rank(body: dict, item: str) -> int:
    ids = [i["item_id"] for i in body["items"]]
    return ids.index(item) if item in ids else len(ids)


def test_fatigue_lowers_an_ignored_item_and_does_nothing_when_off(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    with TestClient(_app(tmp_path, neo4j_settings, fatigue_half_life=1.0, fatigue_refresh_lists=1)) as client:
        first = _list(client, "u20", k=10)
        top = first["items"][0]["item_id"]
        for _ in range(4):  # shown and ignored four times: its score is now a sixteenth
            _flush(client)
            later = _list(client, "u20", k=10)
        assert _rank(later, top) > 0
        assert later["items"][0]["score"] < first["items"][0]["score"] or _rank(later, top) == 10
    with TestClient(_app(tmp_path, neo4j_settings, fatigue_half_life=0.0)) as client:
        first = _list(client, "u21", k=10)
        for _ in range(4):
            _flush(client)
            assert (
                client.get("/users/u21/recommendations", params={"k": 10, "explain": "false"}).json()["items"]
                == (first["items"])
            )


def test_rotation_leaves_out_the_items_of_the_last_list(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    with TestClient(_app(tmp_path, neo4j_settings, rotation_lists=1)) as client:
        first = {i["item_id"] for i in _list(client, "u22", k=6)["items"]}
        _flush(client)
        second = {i["item_id"] for i in _list(client, "u22", k=6)["items"]}
        assert second and not first & second
        _flush(client)
        third = {i["item_id"] for i in _list(client, "u22", k=6)["items"]}
        assert not second & third  # only the last list is rotated out


def test_by_default_exposure_alone_keeps_the_cached_list_and_the_next_computed_one_is_fatigued(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    with TestClient(_app(tmp_path, neo4j_settings, fatigue_half_life=1.0)) as client:  # KGREC_FATIGUE_REFRESH_LISTS=0
        first = _list(client, "u23", k=10)
        for _ in range(4):
            _flush(client)
            assert _list(client, "u23", k=10)["items"] == first["items"]  # the cached answer: no miss for exposure
        last = first["items"][-1]["item_id"]
        _feedback(client, user_id="u23", item_id=last, type="view")  # an interaction: the next list is computed
        after = _list(client, "u23", k=10)
        assert _rank(after, first["items"][0]["item_id"]) > 0


def test_lists_of_one_window_are_written_summed_and_count_for_exposure_before(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path, driver: Driver
) -> None:
    app = _app(tmp_path, neo4j_settings, **GRAPH_STORE, rotation_lists=1, impressions_flush_seconds=60.0)
    with TestClient(app) as client:
        first = _list(client, "u24", k=5)
        items = [i["item_id"] for i in first["items"]]

        def impressions() -> dict[str, int]:
            records, _, _ = driver.execute_query(
                "MATCH (i:Item) WHERE i.itemId IN $ids RETURN i.itemId AS id, coalesce(i.impressions, 0) AS n",
                {"ids": items},
            )
            return {r["id"]: r["n"] for r in records}

        before = impressions()
        second = _list(client, "u24", k=5)  # nothing written yet: rotation sees the first list, still queued
        assert not set(items) & {i["item_id"] for i in second["items"]}
        third = _list(client, "u24", k=5)
        assert not {i["item_id"] for i in second["items"]} & {i["item_id"] for i in third["items"]}
        assert app.state.recommender.impressions.pending_lists("u24") == 3
        _flush(client)
        assert app.state.recommender.impressions.pending_lists("u24") == 0
        shown, _, _ = driver.execute_query(
            "MATCH (u:User {userId: 'u24'}) UNWIND range(0, size(u.shownItems) - 1) AS k "
            "RETURN u.shownItems[k] AS item, u.shownCounts[k] AS n, u.shownLists[k] AS last, "
            "u.shownTimes[k] IS NOT NULL AS timed, u.listsShown AS lists"
        )
        lists = [first, second, third]
        expected = {}
        for number, body in enumerate(lists, start=1):
            for item in body["items"]:
                n = expected.get(item["item_id"], (0,))[0] + 1
                expected[item["item_id"]] = (n, number, True, 3)
        assert {r["item"]: (r["n"], r["last"], r["timed"], r["lists"]) for r in shown} == expected
        after = impressions()
        assert {i: after[i] - before[i] for i in items} == {i: expected[i][0] for i in items}
        nodes, _, _ = driver.execute_query("MATCH (r:Recommendation {userId: 'u24'}) RETURN count(r) AS n")
        assert nodes[0]["n"] == 3


def test_a_click_on_a_queued_list_writes_its_users_lists_not_the_window(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path, driver: Driver
) -> None:
    app = _app(tmp_path, neo4j_settings, **GRAPH_STORE, impressions_flush_seconds=60.0)
    with TestClient(app) as client:
        recorder = app.state.recommender.impressions
        first, second = _list(client, "u45", k=5), _list(client, "u45", k=5)
        other = _list(client, "u46", k=5)
        assert recorder.pending_lists("u45") == 2 and recorder.pending_lists("u46") == 1
        out = _feedback(
            client,
            user_id="u45",
            item_id=first["items"][0]["item_id"],
            type="click",
            recommendation_id=first["recommendation_id"],
        )
        assert out["attribution"] == "attributed"
        # the clicked list and the user's later one are written, in order; the other user's list still waits
        assert recorder.pending_lists("u45") == 0 and recorder.pending_lists("u46") == 1
        assert recorder.pending(other["recommendation_id"]) and not recorder.pending(second["recommendation_id"])
        records, _, _ = driver.execute_query(
            "MATCH (r:Recommendation) WHERE r.userId IN ['u45', 'u46'] RETURN r.recommendationId AS id"
        )
        assert {r["id"] for r in records} == {first["recommendation_id"], second["recommendation_id"]}
        lists, _, _ = driver.execute_query("MATCH (u:User {userId: 'u45'}) RETURN u.listsShown AS n")
        assert lists[0]["n"] == 2
        assert recorder.flush_list(other["recommendation_id"]) == 1 and recorder.pending_lists("u46") == 0
        assert recorder.flush_list(other["recommendation_id"]) == 0  # written: nothing left to write


@in_graph
def test_lists_past_the_retention_are_pruned_and_exposure_kept(client: TestClient, driver: Driver) -> None:
    recorder = client.app.state.recommender.impressions
    assert recorder.retention_days == 90  # the default
    first = _list(client, "u25", k=5)
    _flush(client)
    old_day = 1_600_000_000
    driver.execute_query(  # three lists of long ago, beside the one just served
        "UNWIND range(1, 3) AS n CREATE (:Recommendation {recommendationId: 'old-u25-' + n, userId: 'u25', "
        "variant: 'default', modelVersion: 'm', shownAt: $at, itemIds: ['x']})",
        {"at": old_day},
    )
    exposure = (
        "MATCH (u:User {userId: 'u25'}) RETURN reduce(n = 0, c IN u.shownCounts | n + c) AS n, u.listsShown AS lists"
    )
    before, _, _ = driver.execute_query(exposure)
    recorder.PRUNE_BATCH = 2  # two transactions
    assert recorder.prune(now=old_day + 91 * 86_400) == 3
    kept, _, _ = driver.execute_query("MATCH (r:Recommendation {userId: 'u25'}) RETURN r.recommendationId AS id")
    assert [r["id"] for r in kept] == [first["recommendation_id"]]
    assert before[0]["n"] == 5 and driver.execute_query(exposure)[0] == before  # exposure and listsShown stay
    assert recorder.prune(now=old_day + 89 * 86_400) == 0  # nothing is older than 90 days then


def test_a_skip_is_an_ignored_impression_not_a_hide_unless_configured(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path, driver: Driver
) -> None:
    pair = (
        "MATCH (u:User {userId: $u}), (i:Item {itemId: $i}) RETURN EXISTS { (u)-[:INTERACTED]->(i) } AS interacted, "
        "[k IN range(0, size(coalesce(u.shownItems, [])) - 1) WHERE u.shownItems[k] = $i | u.shownCounts[k]][0] AS shown"
    )
    with TestClient(_app(tmp_path, neo4j_settings, **GRAPH_STORE, fatigue_half_life=1.0)) as client:
        body = _list(client, "u26", k=5)
        _flush(client)
        item = body["items"][0]["item_id"]
        skipped = _feedback(
            client, user_id="u26", item_id=item, type="skip", recommendation_id=body["recommendation_id"]
        )
        assert skipped["attribution"] == "attributed" and skipped["polarity"] == 1 and skipped["weight"] == 0.0
        state = driver.execute_query(pair, {"u": "u26", "i": item})[0][0]
        assert (state["interacted"], state["shown"]) == (False, 2)  # shown once by the list, once more by the skip
        _feedback(client, user_id="u26", item_id=item, type="skip")
        _feedback(client, user_id="u26", item_id=body["items"][-1]["item_id"], type="view")  # recompute the list
        after = _list(client, "u26", k=5)
        assert _rank(after, item) > 0  # faded by fatigue (three ignored impressions at half-life 1) ...
    # ... but not hidden: without fatigue it is back
    with TestClient(_app(tmp_path, neo4j_settings, **GRAPH_STORE)) as client:
        assert _rank(_list(client, "u26", k=5), item) == 0
    table = tmp_path / "kinds.yaml"
    table.write_text("kinds:\n  skip: {weight: 0.5, polarity: negative}\n")
    with TestClient(_app(tmp_path, neo4j_settings, **GRAPH_STORE, feedback_kinds=table)) as client:
        body = _list(client, "u27", k=5)
        item = body["items"][0]["item_id"]
        assert _feedback(client, user_id="u27", item_id=item, type="skip")["polarity"] == -1
        assert driver.execute_query(pair, {"u": "u27", "i": item})[0][0]["interacted"] is True
        assert item not in {i["item_id"] for i in _list(client, "u27", k=50)["items"]}  # a negative: hidden


@in_graph
def test_similar_items_lists_are_recorded_and_attributable(client: TestClient, driver: Driver) -> None:
    first = client.get("/items/i5/similar", params={"k": 4}).json()
    second = client.get("/items/i5/similar", params={"k": 4}).json()
    assert re.fullmatch(r"[0-9a-f]{32}", first["recommendation_id"])
    assert first["recommendation_id"] != second["recommendation_id"] and first["items"] == second["items"]
    shown = [i["item_id"] for i in first["items"]]
    assert _metric(client, "kgrec_recommendation_lists_total", variant="similar") == 2
    clicked = _feedback(
        client, user_id="u28", item_id=shown[0], type="click", recommendation_id=first["recommendation_id"]
    )  # flushes the queued list first
    assert clicked["attribution"] == "attributed" and clicked["variant"] == "similar"
    records, _, _ = driver.execute_query(
        "MATCH (r:Recommendation {recommendationId: $id}) RETURN r.itemIds AS items, r.userId AS user, "
        "r.variant AS variant, r.clickedItemIds AS clicked",
        {"id": first["recommendation_id"]},
    )
    assert [dict(r) for r in records] == [{"items": shown, "user": None, "variant": "similar", "clicked": [shown[0]]}]
    nobody, _, _ = driver.execute_query(  # an item page's list is nobody's exposure
        "OPTIONAL MATCH (u:User {userId: 'u28'}) RETURN size(coalesce(u.shownItems, [])) AS n"
    )
    assert nobody[0]["n"] == 0
