"""Readiness and admission on the real app and test Neo4j: /ready waits for the warm set (its first part when
KGREC_CACHE_WARM_READY_USERS is smaller), uncached work is bounded
(503 with Retry-After when the bound is reached), a client over its budget of uncached work gets 429, and a miss
explains only the items it shows, with the same answer as explaining every candidate."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from etl.synthetic import SyntheticWorld
from gnn.config import GnnSettings
from gnn.jobs import retrain_job
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, FAST_BLEND, model_settings


@pytest.fixture(scope="module")
def artifacts(world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A promoted blend (the default model, with new-arrival positions) trained on the synthetic world."""
    root = tmp_path_factory.mktemp("admission")
    settings = GnnSettings(artifacts_dir=root / "artifacts", snapshots_dir=root / "snapshots")
    retrain_job(neo4j_settings, settings, FAST_BLEND, publish=False)
    return settings.artifacts_dir


@pytest.fixture
def app_with(artifacts: Path, neo4j_settings: Neo4jSettings) -> Iterator:
    """Build and start an app with extra settings; yields a factory of (app, client)."""
    opened: list[TestClient] = []

    def make(**extra: object) -> tuple[FastAPI, TestClient]:
        app = create_app(model_settings(artifacts, **extra), neo4j_settings)
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return app, client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def _metric(client: TestClient, name: str, **labels: str) -> float:
    selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + selector + '}') if labels else ''} ([0-9.e+-]+)$"
    found = re.search(pattern, client.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_ready_waits_until_the_warm_set_is_warm(app_with) -> None:  # noqa: ANN001
    app, client = app_with(cache_warm_users=12)
    recommender = app.state.recommender
    deadline = time.monotonic() + 120  # a bound on the wait, not a speed check
    while (ready := client.get("/ready")).status_code != 200 and time.monotonic() < deadline:
        assert ready.status_code == 503 and ready.json()["status"] == "warming"
        assert ready.headers["Retry-After"] == "1"
        time.sleep(0.05)
    assert ready.status_code == 200
    assert len(recommender.cache._entries) == 12  # noqa: SLF001 - at the first 200 the whole warm set is held
    recommender.warmed.clear()  # as before the first warming ended
    waiting = client.get("/ready")
    assert waiting.status_code == 503 and waiting.json()["status"] == "warming"
    recommender.warmed.set()
    assert client.get("/ready").status_code == 200


def test_ready_waits_only_for_the_first_part_and_the_rest_warms_after(
    app_with,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KGREC_CACHE_WARM_READY_USERS=4 of 12: /ready turns 200 while the warming thread is held at its fifth user,
    and once released the other eight are warmed behind it."""
    from api.service import Recommender

    release = threading.Event()
    answer = Recommender.answer
    warming_calls = [0]

    def held(self, user_id, k, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if threading.current_thread().name == "kgrec-cache-warm":
            warming_calls[0] += 1
            if warming_calls[0] == 5:
                assert release.wait(120)  # a bound on the wait, not a speed check
        return answer(self, user_id, k, *args, **kwargs)

    monkeypatch.setattr(Recommender, "answer", held)
    app, client = app_with(cache_warm_users=12, cache_warm_ready_users=4)
    recommender = app.state.recommender
    deadline = time.monotonic() + 120
    while (ready := client.get("/ready")).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.status_code == 200  # the warming thread is still held at its fifth user
    assert len(recommender.cache._entries) == 4  # noqa: SLF001
    release.set()
    while len(recommender.cache._entries) < 12 and time.monotonic() < deadline:  # noqa: SLF001
        time.sleep(0.05)
    assert len(recommender.cache._entries) == 12  # noqa: SLF001 - the rest warmed after /ready
    assert client.get("/ready").status_code == 200


def test_ready_without_a_warm_set_needs_only_neo4j(app_with) -> None:  # noqa: ANN001
    _, client = app_with(cache_warm_users=0)
    assert client.get("/ready").status_code == 200


def test_uncached_work_beyond_its_bound_is_refused_at_once_with_retry_after(app_with) -> None:  # noqa: ANN001
    app, client = app_with(miss_concurrency=1, miss_queue=0, miss_wait_seconds=0.0, miss_cost_rate=0.0)
    assert client.get("/users/u7/recommendations", params={"k": 5}).status_code == 200  # computed and cached
    with app.state.recommender.gate.admit(None, 1.0):  # the one computing slot is busy
        hit = client.get("/users/u7/recommendations", params={"k": 5})
        assert hit.status_code == 200  # a cache hit needs no slot
        reads = [
            _metric(client, "kgrec_recall_query_seconds_count", strategy=s)
            for s in ("user_context", "user_fingerprint")
        ]
        refused = client.get("/users/u8/recommendations", params={"k": 5})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert "bound of uncached work" in refused.json()["detail"]
        # u8 has no answer held: the miss is refused before anything is read of them
        assert [
            _metric(client, "kgrec_recall_query_seconds_count", strategy=s)
            for s in ("user_context", "user_fingerprint")
        ] == reads
    assert _metric(client, "kgrec_refused_requests_total", reason="queue_full") == 1.0
    assert client.get("/users/u8/recommendations", params={"k": 5}).status_code == 200  # served once the slot is free


def test_a_refused_group_reads_nothing_of_its_members(app_with) -> None:  # noqa: ANN001
    """A group's answer is never cached: with a model it is admitted before any member is read, so a refused group
    request costs Neo4j nothing; admitted, it is answered (a member without positives by a graph-path list within the
    group's own admission: no second slot)."""
    app, client = app_with(miss_concurrency=1, miss_queue=0, miss_wait_seconds=0.0, miss_cost_rate=0.0)
    body = {"user_ids": ["u7", "u8"], "k": 5}
    reads = [
        _metric(client, "kgrec_recall_query_seconds_count", strategy=s) for s in ("user_context", "user_fingerprint")
    ]
    with app.state.recommender.gate.admit(None, 1.0):  # the one computing slot is busy
        refused = client.post("/groups/recommendations", json=body)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert [
            _metric(client, "kgrec_recall_query_seconds_count", strategy=s)
            for s in ("user_context", "user_fingerprint")
        ] == reads
    assert client.post("/groups/recommendations", json=body).status_code == 200  # served once the slot is free
    assert _metric(client, "kgrec_recall_query_seconds_count", strategy="user_context") == reads[0] + 2
    headers = {"X-API-Key": API_KEY}
    assert client.post("/users", json={"user_id": "group-newcomer", "liked_genres": []}, headers=headers).is_success
    low = {"user_id": "group-newcomer", "item_id": "i2", "rating": 0.5}  # interactions, but no positive
    assert client.post("/interactions", json=low, headers=headers).is_success
    newcomer = client.post("/groups/recommendations", json={"user_ids": ["u7", "group-newcomer"], "k": 5})
    assert newcomer.status_code == 200 and newcomer.json()["items"]


def test_reads_beyond_the_in_flight_bound_are_refused_while_one_waits(app_with) -> None:  # noqa: ANN001
    app, client = app_with(max_inflight_reads=1, miss_concurrency=1, miss_queue=1, miss_wait_seconds=60.0)
    gate = app.state.recommender.gate
    outcome: list[int] = []
    with gate.admit(None, 1.0):
        waiter = threading.Thread(
            target=lambda: outcome.append(client.get("/users/u9/recommendations", params={"k": 5}).status_code)
        )
        waiter.start()
        deadline = time.monotonic() + 60
        while gate._waiting == 0 and time.monotonic() < deadline:  # noqa: SLF001 - the read waits for the slot
            time.sleep(0.01)
        refused = client.get("/users/u7/recommendations", params={"k": 5})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert "reads at once" in refused.json()["detail"]
        assert client.get("/health").status_code == 200  # not a read: never bounded
    waiter.join(timeout=60)
    assert outcome == [200]  # the waiting read was answered once the slot was free
    assert _metric(client, "kgrec_refused_requests_total", reason="inflight") == 1.0


def test_a_client_over_its_budget_of_uncached_work_gets_429_and_others_are_served(app_with) -> None:  # noqa: ANN001
    app, client = app_with(miss_cost_rate=0.01, miss_cost_burst=6)
    big = {"k": 100}
    assert client.get("/users/u7/recommendations", params=big).status_code == 200  # 5 of 6 units
    costly = client.get("/users/u7/recommendations", params={**big, "exclude_genres": "Drama"})  # a new miss
    assert costly.status_code == 429 and int(costly.headers["Retry-After"]) >= 1
    assert "budget of uncached work" in costly.json()["detail"]
    assert client.get("/users/u7/recommendations", params=big).status_code == 200  # a hit costs nothing
    cheap = client.get("/users/u8/recommendations", params={"k": 20, "explain": "false"})  # half a unit
    assert cheap.status_code == 200
    other = TestClient(app, client=("10.1.2.3", 40000))  # another client has its own budget
    assert other.get("/users/u9/recommendations", params=big).status_code == 200
    assert _metric(client, "kgrec_refused_requests_total", reason="client_budget") == 1.0


FILTERS: list[dict[str, object]] = [
    {},
    {"include_genres": "Drama,Comedy"},
    {"exclude_genres": "Drama"},
    {"year_min": 1990, "year_max": 2010},
    {"exclude_items": "i1,i2,i3"},
    {"explain": "false"},
]


def _asking(recommender: object) -> tuple[list[list[str]], set[str]]:
    """Wrap ``recommender._explain`` to record, per request, the items each call asked about, and the items asked
    that came back without a path (or not at all: dropped by the graph). Returns the calls and the pathless items (both
    cleared by the caller)."""
    explain = recommender._explain  # noqa: SLF001
    calls: list[list[str]] = []
    pathless: set[str] = set()

    def recorded(user_id: str, item_ids: list[str], explain_on: bool, *args: object, **kwargs: object) -> dict:
        calls.append(list(item_ids))
        out = explain(user_id, item_ids, explain_on, *args, **kwargs)
        pathless.update(i for i in item_ids if i not in out or (explain_on and not out[i].explanations))
        return out

    recommender._explain = recorded  # noqa: SLF001
    return calls, pathless


def _excluding(params: dict[str, object], items: set[str]) -> dict[str, object]:
    """``params`` with ``items`` added to its exclude_items."""
    named = [i for i in str(params.get("exclude_items", "")).split(",") if i]
    return {**params, "exclude_items": ",".join(sorted({*named, *items}))}


def test_a_miss_explains_only_the_items_it_shows_and_a_pathless_pick_is_answered_as_if_excluded(
    app_with,  # noqa: ANN001
) -> None:
    """One explain query per request, of the shown items only. A picked item the graph cannot explain leaves MMR's
    pool and MMR picks again, asking only about the new picks: the list is the one the same request gets with those
    items excluded, and, when no pick needed that, the one of explaining every candidate."""
    # lists comparable across requests; no budget: one client sends dozens of misses a second here
    app, client = app_with(response_cache_size=0, fatigue_half_life=0, miss_cost_rate=0.0)
    recommender = app.state.recommender
    calls, pathless = _asking(recommender)
    requests = [(user, {"k": k, **f}) for user in ("u3", "u11", "u21", "u50") for k in (5, 20) for f in FILTERS]
    shown, gone, repicked = [], [], 0
    for user, params in requests:
        calls.clear()
        pathless.clear()
        before = _metric(client, "kgrec_explain_repicks_total")
        shown.append(client.get(f"/users/{user}/recommendations", params=params))
        asked = [i for call in calls for i in call]
        assert len(asked) == len(set(asked)), (user, params)  # nothing asked twice by one request
        rounds = _metric(client, "kgrec_explain_repicks_total") - before
        assert len(calls) <= 1 + rounds, (user, params)  # one query, and one more a round of picking again at most
        size = max(params["k"], recommender.settings.response_cache_pool)  # a smaller k: a slice of the pool's list
        assert len(calls[0]) <= size, (user, params)  # the first: the shown items only
        gone.append(set(pathless))
        repicked += rounds > 0
    assert all(r.status_code == 200 for r in shown)
    assert _metric(client, "kgrec_explain_fallbacks_total") == 0
    assert _metric(client, "kgrec_recall_query_seconds_count", strategy="user_fingerprint") == 0
    assert repicked < len(requests) / 4  # the next test makes the graph drop picked items
    for (_, params), response, left in zip(requests, shown, gone, strict=True):
        items = response.json()["items"]
        assert not {item["item_id"] for item in items} & left
        if params.get("explain") != "false":
            assert all(item["explanations"] for item in items), params
    # the same requests with the pathless picks excluded: the same lists, and no item left without a path
    for (user, params), response, left in zip(requests, shown, gone, strict=True):
        if left:
            again = client.get(f"/users/{user}/recommendations", params=_excluding(params, left))
            assert _without_id(again.content) == _without_id(response.content), (user, params, left)
    recommender._explain_shown = lambda *args, **kwargs: None  # noqa: SLF001 - the way of explaining every candidate
    every = [client.get(f"/users/{user}/recommendations", params=params) for user, params in requests]
    for (user, params), one, other, left in zip(requests, shown, every, gone, strict=True):
        if not left:
            assert _without_id(one.content) == _without_id(other.content), (user, params)


def test_a_picked_item_the_graph_drops_is_answered_as_if_the_request_had_excluded_it(
    app_with,  # noqa: ANN001
) -> None:
    # lists comparable across requests; no budget: one client sends dozens of misses a second here
    app, client = app_with(response_cache_size=0, fatigue_half_life=0, miss_cost_rate=0.0)
    recommender = app.state.recommender
    users = ("u3", "u11", "u21", "u50")
    best = {u: client.get(f"/users/{u}/recommendations", params={"k": 5}).json()["items"][0]["item_id"] for u in users}
    calls, pathless = _asking(recommender)
    explain = recommender._explain  # noqa: SLF001

    def graph_without_the_best(user_id: str, item_ids: list[str], *args: object, **kwargs: object) -> dict:
        """The graph as if each user's best item had left it (dropped from what it explains, as the query drops
        an item that is gone): every list that picks it must pick again."""
        return {i: e for i, e in explain(user_id, item_ids, *args, **kwargs).items() if i not in best.values()}

    recommender._explain = graph_without_the_best  # noqa: SLF001
    requests = [(user, {"k": k, **f}) for user in users for k in (5, 20) for f in FILTERS]
    before = _metric(client, "kgrec_explain_repicks_total")
    shown, gone = [], []
    for user, params in requests:
        calls.clear()
        pathless.clear()
        shown.append(client.get(f"/users/{user}/recommendations", params=params))
        asked = [i for call in calls for i in call]
        assert len(asked) == len(set(asked)), (user, params)  # nothing asked twice by one request
        gone.append(set(pathless) | (set(best.values()) & set(asked)))  # every user's best is dropped
    assert all(r.status_code == 200 for r in shown)
    assert _metric(client, "kgrec_explain_repicks_total") - before >= len(users)  # at least each user's k=5
    assert _metric(client, "kgrec_explain_fallbacks_total") == 0
    recommender._explain = explain  # noqa: SLF001 - the graph as it is
    for (user, params), response, left in zip(requests, shown, gone, strict=True):
        assert not {item["item_id"] for item in response.json()["items"]} & set(best.values())
        again = client.get(f"/users/{user}/recommendations", params=_excluding(params, left))
        assert _without_id(again.content) == _without_id(response.content), (user, params, left)


def _without_id(body: bytes) -> bytes:
    """A list's body without its recommendation id (new for every response)."""
    return re.sub(rb'"recommendation_id":"[0-9a-f]{32}"', b'"recommendation_id":""', body)
