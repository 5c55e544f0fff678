"""The API ranking with a promoted model (the model path), against the real Neo4j."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from neo4j import Driver
from pydantic import SecretStr

from api.app import create_app
from api.ranking import mmr
from etl.synthetic import SyntheticWorld
from gnn.config import GnnSettings
from gnn.jobs import RetrainReport, promote, retrain_job
from graph.settings import Neo4jSettings
from graph.writers import BatchWriter, write_interactions
from schema.rows import InteractionRow
from tests.api.conftest import API_KEY, FAST_BLEND, FAST_LIGHTGCN, model_settings

KEYS = {"User": "userId", "Item": "itemId", "Genre": "name", "Tag": "name", "Person": "personId"}


@pytest.fixture(scope="module")
def trained(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[GnnSettings, RetrainReport]:
    root = tmp_path_factory.mktemp("serving")
    settings = GnnSettings(artifacts_dir=root / "artifacts", snapshots_dir=root / "snapshots")
    return settings, retrain_job(neo4j_settings, settings, FAST_LIGHTGCN, keep=3, publish=False)


@pytest.fixture
def model_client(trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings) -> Iterator[TestClient]:
    settings, _ = trained
    app = create_app(
        model_settings(settings.artifacts_dir, mmr_lambda=1.0),
        neo4j_settings,
    )  # the model's own order
    with TestClient(app) as client:
        yield client


def _rated(world: SyntheticWorld, user_id: str) -> set[str]:
    return {r.item_id for r in world.dataset.interactions if r.user_id == user_id}


def _path_exists(driver: Driver, explanation: dict) -> bool:
    nodes = explanation["nodes"]
    for rel in explanation["relationships"]:
        a, b = nodes[rel["start"]], nodes[rel["end"]]
        records, _, _ = driver.execute_query(
            f"MATCH (a:{a['label']} {{{KEYS[a['label']]}: $a}})-[r:{rel['type']}]->(b:{b['label']} "
            f"{{{KEYS[b['label']]}: $b}}) RETURN count(r) AS n",
            a=a["id"],
            b=b["id"],
        )
        if records[0]["n"] == 0:
            return False
    return True


def test_model_ranks_and_graph_explains(
    model_client: TestClient, trained: tuple[GnnSettings, RetrainReport], world: SyntheticWorld, driver: Driver
) -> None:
    _, report = trained
    assert model_client.get("/health").json()["model_version"] == f"lightgcn-{report.artifact.version}"
    body = model_client.get("/users/u7/recommendations", params={"k": 10}).json()
    assert body["model_version"] == f"lightgcn-{report.artifact.version}" and not body["degraded"]
    items = body["items"]
    assert len(items) == 10 and not {i["item_id"] for i in items} & _rated(world, "u7")
    # the order is the model's: scores descend and equal the artifact's dot products
    artifact = report.artifact
    user = artifact.user_ids.index("u7")
    for item in items:
        expected = float(
            artifact.item_embeddings[artifact.item_ids.index(item["item_id"])] @ artifact.user_embeddings[user]
        )
        assert item["score"] == pytest.approx(expected, abs=1e-4)
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    with_paths = [i for i in items if i["explanations"] and i["explanations"][0]["nodes"]]
    assert len(with_paths) >= 8
    for item in with_paths:
        for explanation in item["explanations"]:
            assert explanation["nodes"][0] == {"label": "User", "id": "u7", "name": None}
            assert explanation["nodes"][-1]["id"] == item["item_id"]
            assert _path_exists(driver, explanation)


def test_model_path_applies_filters_and_reflects_new_interactions(model_client: TestClient, driver: Driver) -> None:
    items = model_client.get("/users/u9/recommendations", params={"k": 10}).json()["items"]
    genre_rows, _, _ = driver.execute_query(
        "MATCH (i:Item)-[:IN_GENRE]->(g) WHERE i.itemId IN $ids RETURN i.itemId AS item, collect(g.name) AS genres",
        ids=[i["item_id"] for i in items],
    )
    genre = genre_rows[0]["genres"][0]
    filtered = model_client.get("/users/u9/recommendations", params={"k": 10, "exclude_genres": genre}).json()["items"]
    assert len(filtered) == 10
    rows, _, _ = driver.execute_query(
        "MATCH (i:Item)-[:IN_GENRE]->(g {name: $g}) WHERE i.itemId IN $ids RETURN count(i) AS n",
        g=genre,
        ids=[i["item_id"] for i in filtered],
    )
    assert rows[0]["n"] == 0
    target = items[0]["item_id"]
    posted = model_client.post(
        "/interactions", json={"user_id": "u9", "item_id": target, "rating": 5.0}, headers={"X-API-Key": API_KEY}
    )
    assert posted.status_code == 201
    after = model_client.get("/users/u9/recommendations", params={"k": 10}).json()["items"]
    assert target not in {i["item_id"] for i in after}


def test_answers_are_cached_until_the_user_interacts(model_client: TestClient, world: SyntheticWorld) -> None:
    def hits() -> float:
        text = model_client.get("/metrics").text
        line = next((x for x in text.splitlines() if x.startswith('kgrec_response_cache_total{outcome="hit"}')), None)
        return float(line.split()[-1]) if line else 0.0

    def listed(params: dict[str, object]) -> dict:
        """The list without its recommendation id (new for every response)."""
        body = model_client.get("/users/u13/recommendations", params=params).json()
        assert len(body.pop("recommendation_id")) == 32
        return body

    first = listed({"k": 10})
    before = hits()
    again = listed({"k": 10})
    assert again == first and hits() == before + 1
    shorter = model_client.get("/users/u13/recommendations", params={"k": 5}).json()
    assert hits() == before + 2 and shorter["items"] == first["items"][:5]  # a slice of the cached pool
    filtered = model_client.get("/users/u13/recommendations", params={"k": 5, "exclude_items": "x"}).json()
    assert hits() == before + 2 and len(filtered["items"]) == 5  # other filters: computed, not the cached one
    target = first["items"][0]["item_id"]
    model_client.post(
        "/interactions", json={"user_id": "u13", "item_id": target, "rating": 5.0}, headers={"X-API-Key": API_KEY}
    )
    after = listed({"k": 10})
    assert hits() == before + 2 and target not in {i["item_id"] for i in after["items"]}
    assert listed({"k": 10}) == after and hits() == before + 3
    # changing an existing interaction (a new rating for the same item) changes the fingerprint too
    model_client.post(
        "/interactions", json={"user_id": "u13", "item_id": target, "rating": 1.0}, headers={"X-API-Key": API_KEY}
    )
    model_client.get("/users/u13/recommendations", params={"k": 10})
    assert hits() == before + 3


def test_cache_is_warmed_for_active_users_after_a_load(
    trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import api.service

    settings, _ = trained
    fingerprinted: list[str] = []
    read = api.service.user_fingerprint

    def spy(driver: Any, user_id: str, database: str = "neo4j") -> Any:
        fingerprinted.append(user_id)
        return read(driver, user_id, database)

    monkeypatch.setattr(api.service, "user_fingerprint", spy)
    app = create_app(
        model_settings(settings.artifacts_dir, cache_warm_users=5),
        neo4j_settings,
    )
    with TestClient(app) as client:
        recommender = app.state.recommender
        deadline = time.time() + 60
        while len(recommender.cache._entries) < 5 and time.time() < deadline:
            time.sleep(0.2)
        assert len(recommender.cache._entries) == 5  # exactly the five most active users, nothing more
        user = recommender.model.users_by_activity()[0]
        assert fingerprinted == [user]  # the fingerprint read's plan made once, before any request
        client.get(f"/users/{user}/recommendations", params={"k": 7})
        text = client.get("/metrics").text
        assert 'kgrec_response_cache_total{outcome="hit"} 1.0' in text


def test_unknown_user_is_404_on_the_model_path(model_client: TestClient) -> None:
    assert model_client.get("/users/nobody/recommendations").status_code == 404
    assert model_client.get("/users/' OR 1=1 RETURN n //x/recommendations").status_code == 404


def test_reload_swaps_to_a_newly_promoted_model(
    trained: tuple[GnnSettings, RetrainReport], model_client: TestClient, neo4j_settings: Neo4jSettings
) -> None:
    settings, _ = trained
    before = model_client.get("/health").json()["model_version"]
    assert model_client.post("/admin/reload").status_code == 401
    newer = retrain_job(neo4j_settings, settings, FAST_LIGHTGCN, keep=3, publish=False)
    promote(newer.artifact.path)  # earlier tests posted interactions, so the gate may judge other data: force it
    reloaded = model_client.post("/admin/reload", headers={"X-API-Key": API_KEY})
    assert reloaded.status_code == 200 and reloaded.json()["changed"] is True
    after = model_client.get("/health").json()["model_version"]
    assert after == f"lightgcn-{newer.artifact.version}" != before
    assert model_client.get("/users/u7/recommendations").json()["model_version"] == after


def test_neo4j_down_answers_from_the_model_flagged_degraded(
    trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings, world: SyntheticWorld
) -> None:
    settings, _ = trained
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    away = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{port}", "password": SecretStr("whatever-pw")})
    app = create_app(
        model_settings(settings.artifacts_dir),
        away,
    )
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 503
        body = client.get("/users/u7/recommendations", params={"k": 5}).json()
        assert body["degraded"] is True and len(body["items"]) == 5
        assert all(item["explanations"] == [] for item in body["items"])
        unknown = client.get("/users/nobody/recommendations")
        assert unknown.status_code == 503 and "unreachable" in unknown.json()["detail"]
        # the business filters still hold: they come from the item catalog saved with the model
        genres: dict[str, set[str]] = {}
        for row in world.dataset.genres:
            genres.setdefault(row.item_id, set()).add(row.genre)
        years = {row.item_id: row.year for row in world.dataset.items}

        def passes(i: str) -> bool:
            have = genres.get(i, set())
            return bool(have & {"Drama", "Comedy"}) and "Horror" not in have and 1990 <= years[i] <= 2010

        assert sum(passes(i) for i in years if i not in _rated(world, "u7")) >= 5  # the fixture leaves a choice
        params = {
            "k": 5,
            "include_genres": "Drama,Comedy",
            "exclude_genres": "Horror",
            "year_min": 1990,
            "year_max": 2010,
        }
        filtered = client.get("/users/u7/recommendations", params=params).json()
        picked = [item["item_id"] for item in filtered["items"]]
        assert filtered["degraded"] is True and len(picked) == 5 and all(passes(i) for i in picked)


def test_neo4j_stopped_then_restarted_degrades_and_recovers_without_restarting_the_api(
    trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings
) -> None:
    """The issue's check on the real server: stop the test Neo4j under a running API, then start it again."""
    import os
    import time

    from graph.neo4j_local import launcher

    if os.environ.get("KGREC_TEST_NEO4J_URI"):  # an external server is not ours to stop (never the case in CI)
        pytest.skip("KGREC_TEST_NEO4J_URI: the test server is not started by the tests")
    settings, _ = trained
    app = create_app(
        model_settings(settings.artifacts_dir),
        neo4j_settings,
    )
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        launcher.stop(neo4j_settings)
        try:
            assert client.get("/ready").status_code == 503
            away = client.get("/users/u7/recommendations", params={"k": 5}).json()
            assert away["degraded"] is True and len(away["items"]) == 5
        finally:
            launcher.start(neo4j_settings)
        deadline = time.monotonic() + 120  # a bound on the wait, not a speed check (bench.acceptance times it)
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(1)
        assert client.get("/ready").status_code == 200
        back = client.get("/users/u7/recommendations", params={"k": 5}).json()
        assert back["degraded"] is False and any(item["explanations"] for item in back["items"])


def test_mmr_trades_relevance_for_diversity() -> None:
    relevance = np.array([1.0, 0.99, 0.98, 0.5])
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # three copies and one different item
    assert mmr(relevance, vectors, 2, lam=1.0) == [0, 1]
    assert mmr(relevance, vectors, 2, lam=0.5) == [0, 3]
    assert mmr(relevance, None, 3, lam=0.5) == [0, 1, 2]


def test_blend_serves_with_live_history(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, driver: Driver, tmp_path: Path
) -> None:
    """The product's default model: the blend ranks from the live history and the graph explains."""
    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts", snapshots_dir=tmp_path / "snapshots")
    report = retrain_job(neo4j_settings, settings, FAST_BLEND, publish=False)
    assert report.promoted and report.artifact.model == "blend"
    app = create_app(
        model_settings(settings.artifacts_dir),
        neo4j_settings,
    )
    with TestClient(app) as client:
        body = client.get("/users/u11/recommendations", params={"k": 10}).json()
        assert body["model_version"] == f"blend-{report.artifact.version}"
        items = body["items"]
        assert len(items) == 10 and not {i["item_id"] for i in items} & _rated(world, "u11")
        assert sum(1 for i in items if i["explanations"] and i["explanations"][0]["nodes"]) >= 8
        target = items[0]["item_id"]
        client.post(
            "/interactions", json={"user_id": "u11", "item_id": target, "rating": 5.0}, headers={"X-API-Key": API_KEY}
        )
        after = client.get("/users/u11/recommendations", params={"k": 10}).json()["items"]
        assert target not in {i["item_id"] for i in after}
        # the new positive entered the history the blend scores from: the scores of the other items moved
        before_scores = {i["item_id"]: i["score"] for i in items}
        moved = [i for i in after if i["item_id"] in before_scores and i["score"] != before_scores[i["item_id"]]]
        assert moved


def test_retrain_saves_the_candidate_graphs_of_a_blend_served_by_candidates_and_the_api_reads_them(
    world: SyntheticWorld,
    neo4j_settings: Neo4jSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A blend at or above the size switch's default (lowered here to 100 items, with graphs from one
    item on): ``kgrec retrain`` writes its candidate index's HNSW graphs into the version directory (phase
    ``candidate_graphs``, its time in ``meta.json``), and the API reads them when it loads instead of building them."""
    import json

    import gnn.blend.candidates as blend_candidates
    import gnn.jobs as jobs
    from gnn.blend.config import GRAPH_FILES
    from gnn.phases import PhaseEvent, listening
    from gnn.serving import ScoringCandidates

    monkeypatch.setattr(blend_candidates, "ANN_MIN_ITEMS", 1)
    monkeypatch.setattr(jobs, "BY_SIZE", ScoringCandidates(None, 100))
    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts", snapshots_dir=tmp_path / "snapshots")
    phases: list[PhaseEvent] = []
    with listening(phases.append):
        report = retrain_job(neo4j_settings, settings, FAST_BLEND, publish=False)
    path = report.artifact.path
    assert report.promoted and path is not None
    assert [e.path for e in phases if e.name == "candidate_graphs" and e.kind == "end"] == [("fit",)]
    assert all((path / file).stat().st_size > 0 for file in GRAPH_FILES.values())
    assert json.loads((path / "meta.json").read_text())["timings"]["candidate_graphs"] > 0
    with caplog.at_level("INFO", logger="gnn.serving"):
        app = create_app(
            model_settings(settings.artifacts_dir, scoring_candidates_from_items=100),
            neo4j_settings,
        )
        with TestClient(app) as client:
            items = client.get("/users/u11/recommendations", params={"k": 10}).json()["items"]
    assert len(items) == 10
    assert "its candidate index (HNSW graphs) was read in" in caplog.text


def test_mmr_in_the_api_picks_k_explained_items_from_a_wider_pool(
    model_client: TestClient, trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings
) -> None:
    settings, _ = trained
    wide = [i["item_id"] for i in model_client.get("/users/u11/recommendations", params={"k": 40}).json()["items"]]
    plain = wide[:10]
    app = create_app(
        model_settings(settings.artifacts_dir, mmr_lambda=0.3),
        neo4j_settings,
    )
    with TestClient(app) as client:
        items = client.get("/users/u11/recommendations", params={"k": 10}).json()["items"]
    picked = [i["item_id"] for i in items]
    assert len(picked) == 10 == len(set(picked))
    assert set(picked) <= set(wide)  # chosen among the best 2·pool unseen items, never outside them
    assert picked[0] == plain[0]  # MMR always starts from the most relevant item
    assert sum(1 for i in items if i["explanations"]) >= 8


def test_blend_new_arrival_positions_are_the_benchmarked_policy(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, driver: Driver, tmp_path: Path
) -> None:
    """The API's list is gnn.blend's RankerModel.recommend (what bench.quality measures): score order with the
    reserved positions filled by the best unseen items nobody has liked yet."""
    # new arrivals: copies of ten films (title, year, genres, people, tags) that nobody has interacted with yet
    copy_films = """
        MATCH (i:Item) WITH i ORDER BY i.itemId LIMIT 10
        CREATE (n:Item {itemId: 'new-' + i.itemId}) SET n.title = i.title, n.year = i.year
        WITH i, n
        CALL (i, n) { MATCH (i)-[:IN_GENRE]->(g) CREATE (n)-[:IN_GENRE]->(g) }
        CALL (i, n) { MATCH (i)-[h:HAS_TAG]->(t) CREATE (n)-[h2:HAS_TAG]->(t) SET h2 = properties(h) }
        CALL (i, n) { MATCH (i)<-[r:ACTED_IN|DIRECTED]-(p) CALL (p, n, r) { WITH r WHERE type(r) = 'ACTED_IN'
                      CREATE (p)-[:ACTED_IN]->(n) UNION WITH r WHERE type(r) = 'DIRECTED' CREATE (p)-[:DIRECTED]->(n) } }
    """
    driver.execute_query(copy_films, database_=neo4j_settings.database)
    try:
        _serve_new_arrivals(world, neo4j_settings, driver, tmp_path)
    finally:
        driver.execute_query(
            "MATCH (n:Item) WHERE n.itemId STARTS WITH 'new-' DETACH DELETE n", database_=neo4j_settings.database
        )


def _serve_new_arrivals(world: SyntheticWorld, neo4j_settings: Neo4jSettings, driver: Driver, tmp_path: Path) -> None:
    import json

    from gnn.blend.model import RankerModel
    from gnn.serving import current_version
    from graph.reads import user_context

    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts", snapshots_dir=tmp_path / "snapshots")
    report = retrain_job(neo4j_settings, settings, FAST_BLEND, publish=False)
    path = current_version(settings.artifacts_dir, "blend")
    assert report.promoted and path is not None
    meta = json.loads((path / "ranker.json").read_text())
    meta["config"].update(cold_slots=2, cold_slot_every=4, cold_slot_margin=None)  # no bar: the slots always fill
    (path / "ranker.json").write_text(json.dumps(meta))
    model = RankerModel.load(path)
    assert model.cold_mask.sum() >= 10  # the new arrivals (and any film nobody rated >= 4)
    user = "u37"
    context = user_context(driver, user)
    index = {item: k for k, item in enumerate(model.item_ids)}
    positives = [
        (index[i.item_id], -1 if i.timestamp is None else i.timestamp)
        for i in context.interactions
        if i.rating is None or i.rating >= 4.0
    ]
    items, times = np.array([p for p, _ in positives]), np.array([t for _, t in positives])
    seen = [index[i.item_id] for i in context.interactions]
    expected = [
        model.item_ids[i] for i in model.recommend(items, times, model.user_ids.index(user), k=20, exclude=seen)
    ]
    plain = model.score(items, times, model.user_ids.index(user))
    plain[seen] = -np.inf
    app = create_app(
        model_settings(settings.artifacts_dir, mmr_lambda=1.0),
        neo4j_settings,
    )
    with TestClient(app) as client:
        got = [i["item_id"] for i in client.get(f"/users/{user}/recommendations", params={"k": 12}).json()["items"]]
    assert got == expected[:12]
    cold = [i for i, item in enumerate(got) if model.cold_mask[index[item]]]
    assert {3, 7} <= set(cold)  # positions 4 and 8 hold items without positives
    # ... which the plain score order would not show there: the ranked items moved down by one per slot
    order = [model.item_ids[i] for i in np.lexsort((np.arange(len(plain)), -plain))[:12]]
    assert got[3] != order[3] and not set(got) & {model.item_ids[i] for i in seen}
    # Neo4j away: the degraded list keeps the same reserved positions
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    away = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{port}"})
    app = create_app(
        model_settings(settings.artifacts_dir, mmr_lambda=1.0),
        away,
    )
    with TestClient(app) as client:
        body = client.get(f"/users/{user}/recommendations", params={"k": 12}).json()
    assert body["degraded"] is True
    degraded = [i["item_id"] for i in body["items"]]
    assert len(degraded) == 12 and {3, 7} <= {i for i, item in enumerate(degraded) if model.cold_mask[index[item]]}


def test_fatigue_on_the_model_path_lowers_an_item_shown_and_ignored(
    trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings
) -> None:
    settings, _ = trained
    app = create_app(
        model_settings(settings.artifacts_dir, mmr_lambda=1.0, fatigue_half_life=1.0, fatigue_refresh_lists=1),
        neo4j_settings,
    )
    with TestClient(app) as client:

        def top(n: int) -> list[str]:
            body = client.get("/users/u41/recommendations", params={"k": n, "explain": "false"}).json()
            return [i["item_id"] for i in body["items"]]

        first = top(10)
        for _ in range(3):  # shown and ignored three times: its score is an eighth (of a positive score)
            app.state.recommender.impressions.flush()
            later = top(10)
        assert later[0] != first[0] and not set(later) <= set(first)  # items never shown come up


def _context_reads(client: TestClient) -> float:
    """How many user contexts the API has read so far (its ``user_context`` stage count)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('kgrec_recall_query_seconds_count{strategy="user_context"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_user_without_positives_is_answered_by_the_graph_path_from_one_context_read(
    model_client: TestClient,
) -> None:
    """A miss for a user with interactions but no positive: the model path reads the context, finds no positive and
    hands the context to the graph path, which does not read it again (one read per request)."""
    headers = {"X-API-Key": API_KEY}
    assert model_client.post("/users", json={"user_id": "no-positives", "liked_genres": []}, headers=headers).is_success
    low = {"user_id": "no-positives", "item_id": "i2", "rating": 1.0}
    assert model_client.post("/interactions", json=low, headers=headers).is_success
    first = model_client.get("/users/no-positives/recommendations", params={"k": 5})
    assert first.status_code == 200 and first.json()["model_version"] == "graph-recall-v1"
    # a held answer for the user: the next request reads the fingerprint first and the context only on the model path
    low = {"user_id": "no-positives", "item_id": "i3", "rating": 1.5}
    assert model_client.post("/interactions", json=low, headers=headers).is_success
    before = _context_reads(model_client)
    again = model_client.get("/users/no-positives/recommendations", params={"k": 5})
    assert again.status_code == 200 and again.json()["model_version"] == "graph-recall-v1"
    assert {"i2", "i3"}.isdisjoint(i["item_id"] for i in again.json()["items"])
    assert _context_reads(model_client) - before == 1


def _held(client: TestClient) -> dict[str, float]:
    """The API's context reads so far by what its held histories gave (hit, stale, miss)."""
    out = {"hit": 0.0, "stale": 0.0, "miss": 0.0}
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("kgrec_history_cache_total{"):
            out[line.split('outcome="', 1)[1].split('"', 1)[0]] = float(line.rsplit(" ", 1)[1])
    return out


def _shown(client: TestClient, user: str, **params: object) -> list[str]:
    response = client.get(f"/users/{user}/recommendations", params={"k": 10, **params})
    assert response.status_code == 200
    return [i["item_id"] for i in response.json()["items"]]


def test_a_held_history_answers_misses_and_takes_the_user_s_own_writes(
    model_client: TestClient,
    trained: tuple[GnnSettings, RetrainReport],
    world: SyntheticWorld,
    neo4j_settings: Neo4jSettings,
    driver: Driver,
) -> None:
    """A miss for a user whose history is held and unchanged is answered without reading it again, from the same
    interactions. The user's own post, changed rating, dislike and batch are applied to the held history by the API that
    wrote them: the next answer sees them without reading the history again, and is the answer of an API without
    held histories; a write by another writer before the user's own (here straight to the graph) leaves the held
    history behind, and it is read again. A hidden item stays out of answers computed from a held history."""
    user, headers = "u23", {"X-API-Key": API_KEY}
    rated = _rated(world, user)
    first = _shown(model_client, user)
    assert first and not set(first) & rated
    before = _held(model_client)
    assert _shown(model_client, user, k=25)[:10] == first  # another key: a miss, answered from the held history
    assert _held(model_client)["hit"] - before["hit"] == 1

    settings, _ = trained
    app = create_app(model_settings(settings.artifacts_dir, mmr_lambda=1.0, history_cache_size=0), neo4j_settings)
    with TestClient(app) as fresh:

        def answered(read: str, write: tuple[str, object]) -> list[str]:
            """The answer after ``write``, equal to the fresh API's; the context read was a ``read``."""
            held = _held(model_client)
            assert model_client.post(write[0], json=write[1], headers=headers).is_success
            shown = _shown(model_client, user)
            assert {name: _held(model_client)[name] - held[name] for name in held} == {
                name: float(name == read) for name in held
            }
            assert shown == _shown(fresh, user)
            return shown

        after_post = answered("hit", ("/interactions", {"user_id": user, "item_id": first[0], "rating": 1.0}))
        assert first[0] not in after_post
        liked = max(rated)  # a rating of the history changed
        answered("hit", ("/interactions", {"user_id": user, "item_id": liked, "rating": 0.5, "timestamp": 5}))
        after_dislike = answered("hit", ("/feedback", {"user_id": user, "item_id": after_post[0], "type": "dislike"}))
        assert after_post[0] not in after_dislike and first[0] not in after_dislike
        batch = [{"user_id": user, "item_id": after_dislike[2], "rating": 1.0}, {"user_id": user, "item_id": liked}]
        assert after_dislike[2] not in answered("hit", ("/interactions/batch", batch))

        write_interactions(BatchWriter(driver), [InteractionRow(user_id=user, item_id=after_dislike[1], rating=5.0)])
        after_other = answered("miss", ("/feedback", {"user_id": user, "item_id": after_dislike[0], "type": "like"}))
        assert not {after_dislike[0], after_dislike[1]} & set(after_other)  # the other writer's item too

    hidden = after_other[0]
    assert model_client.patch(f"/items/{hidden}", json={"hidden": True}, headers=headers).is_success
    try:
        held = _held(model_client)["hit"]
        after_hide = _shown(model_client, user)  # a new catalogue: a miss, from the held history
        assert _held(model_client)["hit"] - held == 1
        assert not {hidden, after_post[0], first[0]} & set(after_hide)
        app = create_app(model_settings(settings.artifacts_dir, mmr_lambda=1.0, history_cache_size=0), neo4j_settings)
        with TestClient(app) as fresh:
            assert _shown(fresh, user) == after_hide
            assert len(app.state.recommender.histories) == 0
    finally:
        assert model_client.patch(f"/items/{hidden}", json={"hidden": False}, headers=headers).is_success


def test_held_histories_stay_within_their_bound(
    trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings, driver: Driver
) -> None:
    """KGREC_HISTORY_CACHE_SIZE bounds the interactions held, summed over users: the least recently read go first."""
    from graph.reads import user_context

    settings, _ = trained
    users = [f"u{n}" for n in range(30, 36)]
    sizes = {u: len(user_context(driver, u).columns) for u in users}
    bound = sizes[users[-1]] + sizes[users[-2]]
    app = create_app(model_settings(settings.artifacts_dir, history_cache_size=bound), neo4j_settings)
    with TestClient(app) as client:
        for user in users:
            _shown(client, user)
        histories = app.state.recommender.histories
        assert 0 < histories.interactions <= bound and histories.interactions == sum(
            sizes[u] for u in users if histories.get(u) is not None
        )
        assert histories.get(users[-1]) is not None and histories.get(users[0]) is None


def test_every_shown_item_carries_an_explanation_after_fatigue(
    trained: tuple[GnnSettings, RetrainReport], neo4j_settings: Neo4jSettings, driver: Driver
) -> None:
    """An item the model ranks high but the graph cannot explain (no trait, no rater: what fatigue brings up when
    it lowers the items shown before) is not shown, whichever way the list is explained: every shown item carries a
    path, fatigued and explored lists included, and the list still has k items."""
    settings, _ = trained
    app = create_app(
        model_settings(
            settings.artifacts_dir,
            mmr_lambda=1.0,
            fatigue_half_life=1.0,
            fatigue_refresh_lists=1,
            exploration_share=0.2,
            explain_cache_size=0,  # every explanation read from the graph as it is now
        ),
        neo4j_settings,
    )
    with TestClient(app) as client:
        first = client.get("/users/u43/recommendations", params={"k": 10}).json()
        assert all(item["explanations"] for item in first["items"])
        # the graph can no longer explain the user's second item: its relationships are taken away for the test
        target = first["items"][1]["item_id"]
        records, _, _ = driver.execute_query(
            "MATCH (t:Item {itemId: $t})-[r]-() RETURN elementId(startNode(r)) AS s, elementId(endNode(r)) AS e, "
            "type(r) AS type, properties(r) AS props",
            t=target,
        )
        taken = [dict(r) for r in records]
        assert taken
        driver.execute_query("MATCH (t:Item {itemId: $t})-[r]-() DELETE r", t=target)
        try:
            bodies = []
            for _ in range(3):  # the lists shown before fade: items further down the ranking come up
                app.state.recommender.impressions.flush()
                bodies.append(client.get("/users/u43/recommendations", params={"k": 10}).json())
            for body in bodies:
                shown = [item["item_id"] for item in body["items"]]
                assert len(shown) == 10 and target not in shown
                assert all(item["explanations"] for item in body["items"]), shown
        finally:
            for rel in taken:
                driver.execute_query(
                    f"MATCH (s) WHERE elementId(s) = $s MATCH (e) WHERE elementId(e) = $e "
                    f"CREATE (s)-[r:{rel['type']}]->(e) SET r = $props",
                    s=rel["s"],
                    e=rel["e"],
                    props=rel["props"],
                )
