"""Several API processes against one Neo4j (two app instances here, as `kgrec serve --workers 2` runs two): each keeps
its own answer cache and catalogue, and what one process writes reaches the others' answers.

- An interaction written through one process changes the user's fingerprint in the graph, which every process reads
  before a cache lookup: the other process's cached answer is not served again.
- A hide through one process reaches the other's cached answers at its next catalogue read (every
  ``KGREC_CATALOGUE_REFRESH_SECONDS``): the catalogue revision is part of the cache key.
- Both processes record impressions of the same users at once; none is lost (the counters are incremented under
  Neo4j's locks; transactions that deadlock are retried), in the graph or in one SQLite file
  (``KGREC_IMPRESSION_STORE=sqlite``: each write transaction takes the file's write lock first).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from api.cache import SharedAnswers
from etl.synthetic import SyntheticWorld
from gnn.config import GnnSettings
from gnn.jobs import retrain_job
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, FAST_LIGHTGCN, model_settings

KEY = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def artifacts(world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("processes")
    settings = GnnSettings(artifacts_dir=root / "artifacts", snapshots_dir=root / "snapshots")
    assert retrain_job(neo4j_settings, settings, FAST_LIGHTGCN, publish=False).promoted
    return settings.artifacts_dir


@pytest.fixture
def two_processes(artifacts: Path, neo4j_settings: Neo4jSettings) -> Iterator[tuple[TestClient, TestClient]]:
    """Two app instances over the same model and Neo4j; the second never re-reads the catalogue by itself."""
    settings = model_settings(artifacts, impressions=False)
    with (
        TestClient(create_app(settings, neo4j_settings)) as one,
        TestClient(create_app(settings.model_copy(update={"catalogue_refresh_seconds": 0}), neo4j_settings)) as two,
    ):
        yield one, two


def _ids(client: TestClient, user: str, k: int = 10) -> list[str]:
    response = client.get(f"/users/{user}/recommendations", params={"k": k})
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def _cache(client: TestClient, outcome: str) -> float:
    found = re.search(rf'kgrec_response_cache_total{{outcome="{outcome}"}} (\S+)', client.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


def test_an_interaction_through_one_process_is_reflected_by_the_others_cache(
    two_processes: tuple[TestClient, TestClient], driver: Driver
) -> None:
    one, two = two_processes
    user = "u6"
    first = _ids(two, user)
    hits = _cache(two, "hit")
    assert _ids(two, user) == first and _cache(two, "hit") == hits + 1  # held by `two`
    posted = one.post("/interactions", json={"user_id": user, "item_id": first[0], "rating": 5.0}, headers=KEY)
    assert posted.status_code in (200, 201), posted.text
    misses = _cache(two, "miss")
    after = _ids(two, user)
    assert first[0] not in after and len(after) == 10  # the item the user just rated is never recommended again
    assert _cache(two, "miss") == misses + 1 and _cache(two, "hit") == hits + 1  # recomputed, not served stale
    driver.execute_query("MATCH (:User {userId: $u})-[r:INTERACTED]->(:Item {itemId: $i}) DELETE r", u=user, i=first[0])


def test_a_hide_through_one_process_leaves_the_others_cached_answers_at_its_next_catalogue_read(
    two_processes: tuple[TestClient, TestClient],
) -> None:
    one, two = two_processes
    user = "u8"
    top = _ids(two, user)  # cached in `two`
    try:
        assert one.patch(f"/items/{top[0]}", json={"hidden": True}, headers=KEY).status_code == 200
        two.app.state.recommender.catalogue.refresh()  # what its timer does every KGREC_CATALOGUE_REFRESH_SECONDS
        misses = _cache(two, "miss")
        after = _ids(two, user)
        assert top[0] not in after and len(after) == 10 and after[:9] == top[1:]
        assert _cache(two, "miss") == misses + 1  # a new catalogue revision: a new key, not the cached list
    finally:
        assert one.patch(f"/items/{top[0]}", json={"hidden": False}, headers=KEY).status_code == 200


@pytest.mark.parametrize("store", ["neo4j", "sqlite"])
def test_impressions_recorded_by_two_processes_at_once_are_all_kept(
    artifacts: Path, neo4j_settings: Neo4jSettings, driver: Driver, store: str, tmp_path: Path
) -> None:
    users = ["u30", "u31", "u32"]
    rounds = 12
    driver.execute_query(
        "MATCH (u:User) WHERE u.userId IN $users SET u.listsShown = 0 "
        "REMOVE u.shownItems, u.shownCounts, u.shownTimes, u.shownLists",
        users=users,
    )
    driver.execute_query("MATCH (r:Recommendation) WHERE r.userId IN $users DELETE r", users=users)
    # no answer cache and small, frequent batches: every request is a list, and the writers overlap
    db = tmp_path / "impressions.sqlite3"
    settings = model_settings(
        artifacts,
        response_cache_seconds=0,
        impressions_batch=2,
        impressions_flush_seconds=0.01,
        impression_store=store,
        impression_db=db,
    )
    served: list[str] = []
    lock = threading.Lock()

    def serve(client: TestClient) -> None:
        for _ in range(rounds):
            for user in users:
                body = client.get(f"/users/{user}/recommendations", params={"k": 5}).json()
                with lock:
                    served.append(body["recommendation_id"])

    with (
        TestClient(create_app(settings, neo4j_settings)) as one,
        TestClient(create_app(settings, neo4j_settings)) as two,
    ):
        threads = [threading.Thread(target=serve, args=(c,)) for c in (one, two)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # both apps have stopped: their queues are written
    assert len(served) == 2 * rounds * len(users)
    if store == "sqlite":
        with sqlite3.connect(db) as file:
            ids = [r[0] for r in file.execute("SELECT recommendation_id FROM lists")]
            lists = file.execute("SELECT sum(lists_shown) FROM users").fetchone()[0]
            shown = file.execute("SELECT sum(count) FROM exposure").fetchone()[0]
        assert sorted(ids) == sorted(served) and (lists, shown) == (len(served), 5 * len(served))
        return
    records, _, _ = driver.execute_query(
        "MATCH (r:Recommendation) WHERE r.userId IN $users RETURN collect(r.recommendationId) AS ids", users=users
    )
    assert sorted(records[0]["ids"]) == sorted(served)
    records, _, _ = driver.execute_query(
        "MATCH (u:User) WHERE u.userId IN $users "
        "RETURN sum(u.listsShown) AS lists, sum(reduce(n = 0, c IN coalesce(u.shownCounts, []) | n + c)) AS shown",
        users=users,
    )
    assert records[0]["lists"] == len(served) and records[0]["shown"] == 5 * len(served)


def test_ready_waits_for_every_worker_behind_the_port(
    artifacts: Path, neo4j_settings: Neo4jSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under `kgrec serve --workers 2`: /ready is 200 only when both workers are warm, whichever one answers."""
    monkeypatch.setenv("KGREC_SERVE_WORKERS_DIR", str(tmp_path))
    monkeypatch.setenv("KGREC_SERVE_WORKERS", "2")
    (tmp_path / "warmed-999999999-dead").touch()  # a worker that died: not counted
    settings = model_settings(artifacts, impressions=False)
    with TestClient(create_app(settings, neo4j_settings)) as one:
        waiting = _ready(one, until=lambda r: "1 of 2" in r.text)
        assert waiting.status_code == 503 and waiting.headers["Retry-After"] == "1"
        with TestClient(create_app(settings, neo4j_settings)) as two:
            assert _ready(one, until=lambda r: r.status_code == 200).json()["status"] == "ready"
            assert _ready(two, until=lambda r: r.status_code == 200).status_code == 200
        assert _ready(one, until=lambda r: r.status_code == 503).json()["detail"].endswith("1 of 2 workers warmed")


def _ready(client: TestClient, until: Callable[[httpx.Response], bool]) -> httpx.Response:
    """GET /ready until ``until`` holds (the warmed mark is left by a thread of the worker), at most 200 times."""
    for _ in range(200):
        response = client.get("/ready")
        if until(response):
            return response
        time.sleep(0.05)
    return response


def _shared(client: TestClient, outcome: str) -> float:
    found = re.search(rf'kgrec_shared_answers_total{{outcome="{outcome}"}} (\S+)', client.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("share", [True, False])
def test_workers_of_one_serve_share_their_answers_and_an_interaction_reaches_both(
    artifacts: Path,
    neo4j_settings: Neo4jSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    share: bool,
) -> None:
    """As under `kgrec serve --workers 2` (their shared directory and count): a list one worker computed is the other's
    hit, the same bytes apart from its recommendation id; after an interaction written through one, the other computes
    the new list, which is then the first's hit. With KGREC_SHARED_ANSWERS=false each computes its own."""
    monkeypatch.setenv("KGREC_SERVE_WORKERS_DIR", str(tmp_path))
    monkeypatch.setenv("KGREC_SERVE_WORKERS", "2")
    settings = model_settings(artifacts, impressions=False, shared_answers=share)
    user = "u12"

    def body(client: TestClient) -> dict:
        response = client.get(f"/users/{user}/recommendations", params={"k": 10})
        assert response.status_code == 200, response.text
        return {**response.json(), "recommendation_id": None}

    with (
        TestClient(create_app(settings, neo4j_settings)) as one,
        TestClient(create_app(settings, neo4j_settings)) as two,
    ):
        first = body(one)
        assert body(two) == first
        assert (_cache(two, "hit"), _cache(two, "miss")) == ((1.0, 0.0) if share else (0.0, 1.0))
        assert _shared(two, "hit") == (1.0 if share else 0.0) and (tmp_path / "answers.sqlite3").exists() == share
        top = first["items"][0]["item_id"]
        posted = two.post("/interactions", json={"user_id": user, "item_id": top, "rating": 5.0}, headers=KEY)
        assert posted.status_code in (200, 201), posted.text
        try:
            after = body(one)  # the fingerprint moved: a miss in `one` (and in the file)
            assert top not in [i["item_id"] for i in after["items"]] and len(after["items"]) == 10
            assert _cache(one, "miss") == 2.0
            assert body(two) == after and _cache(two, "hit") == (2.0 if share else 0.0)
        finally:
            one.app.state.recommender.driver.execute_query(
                "MATCH (:User {userId: $u})-[r:INTERACTED]->(:Item {itemId: $i}) DELETE r", u=user, i=top
            )


def test_workers_name_the_same_catalogue_alike_whatever_changes_each_saw(
    artifacts: Path, neo4j_settings: Neo4jSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalogue's part of a key is a digest of what it holds, not a count of the changes a worker saw: one worker
    saw an item hidden and shown again, the other saw neither, and the list the first computes is the second's hit."""
    monkeypatch.setenv("KGREC_SERVE_WORKERS_DIR", str(tmp_path))
    monkeypatch.setenv("KGREC_SERVE_WORKERS", "2")
    settings = model_settings(artifacts, impressions=False)
    user = "u14"
    with (
        TestClient(create_app(settings, neo4j_settings)) as one,
        TestClient(create_app(settings, neo4j_settings)) as two,
    ):
        item = _ids(one, "u15")[0]
        assert one.patch(f"/items/{item}", json={"hidden": True}, headers=KEY).status_code == 200
        assert item not in _ids(one, "u15")
        assert one.patch(f"/items/{item}", json={"hidden": False}, headers=KEY).status_code == 200
        shown = _ids(one, user)  # computed by `one` after both changes
        assert _ids(two, user) == shown and _shared(two, "hit") == 1.0 and _cache(two, "miss") == 0.0


def test_workers_of_one_serve_split_the_warming_of_their_caches(
    artifacts: Path, neo4j_settings: Neo4jSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker computes only the warm users no other worker of its serve has claimed; a user claimed by another is
    not computed twice while warming, and is answered on demand when that worker never stored it."""
    warm = 12
    settings = model_settings(artifacts, impressions=False, cache_warm_users=warm)
    with TestClient(create_app(settings, neo4j_settings)) as alone:  # no serve around it: warms every user itself
        recommender = alone.app.state.recommender
        assert recommender.warmed.wait(60) and _cache(alone, "miss") == warm
        version = f"{recommender.model.kind}-{recommender.model.version}"
        users = list(recommender.model.users_by_activity()[:warm])
    monkeypatch.setenv("KGREC_SERVE_WORKERS_DIR", str(tmp_path))
    monkeypatch.setenv("KGREC_SERVE_WORKERS", "2")
    other = SharedAnswers(tmp_path / "answers.sqlite3", 60.0, 100)  # the other worker, busy with the even ones
    assert all(other.claim(version, user) for user in users[::2])
    with TestClient(create_app(settings, neo4j_settings)) as worker:
        assert worker.app.state.recommender.warmed.wait(60)
        assert _cache(worker, "miss") == warm // 2 and _shared(worker, "stored") == warm // 2
        hits = _cache(worker, "hit")
        _ids(worker, users[1])  # warmed here
        assert _cache(worker, "hit") == hits + 1
        _ids(worker, users[0])  # claimed by the other, which stored nothing: computed now
        assert _cache(worker, "miss") == warm // 2 + 1
    other.close()
