"""Golden answers: the API's JSON for a fixed graph, model and set of requests, byte for byte.

The synthetic world (120 users, 240 items, seed 5) is loaded, a blend and a LightGCN are trained on it with
fixed seeds, and a fixed list of requests goes through every path of the service: the model path (plain,
filtered, excluded items, explanations off), the graph path (named sources, a user without positives), the
degraded path (Neo4j unreachable), similar items. Each body must equal the recorded one in
``tests/api/golden/answers.json`` byte for byte, the ``model_version`` value aside (it holds a timestamp).

The graph lives in a Neo4j server of its own, started on a fresh store for this module: the recall and similar-items
queries order their fan-out before each ``LIMIT``, but the explanation query still reads some neighbours in storage
order (``LIMIT`` on a node's neighbours), so its paths depend on where the records lie, and a store that earlier
tests filled and wiped lays the same graph out differently.

The file pins *behaviour*: a change that is meant to alter the answers (a new ranking feature, a retuned
default) re-records it on purpose with ``KGREC_RECORD_GOLDEN=1 python -m pytest tests/api/test_golden.py`` and
says so in its commit; a refactoring must leave it untouched.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from etl.load import load_dataset
from etl.synthetic import generate_world
from gnn.config import GnnSettings
from gnn.jobs import retrain_job
from graph.driver import create_driver
from graph.neo4j_local import launcher
from graph.settings import Neo4jSettings
from schema.ddl import apply_schema
from tests.api.conftest import API_KEY, FAST_BLEND, FAST_LIGHTGCN, model_settings

GOLDEN = Path(__file__).parent / "golden" / "answers.json"
RECORD = os.environ.get("KGREC_RECORD_GOLDEN") == "1"
_VERSION = re.compile(rb'"model_version":"[^"]*"')
_REC_ID = re.compile(rb'"recommendation_id":"[0-9a-f]{32}"')

#: (name, path, query parameters) of the read requests, asked of every app below.
READS: list[tuple[str, str, dict[str, object]]] = [
    ("top10", "/users/u7/recommendations", {"k": 10}),
    ("top20", "/users/u11/recommendations", {"k": 20}),
    ("top5-no-paths", "/users/u37/recommendations", {"k": 5, "explain": "false"}),
    ("genre", "/users/u3/recommendations", {"k": 8, "include_genres": "Drama,Comedy"}),
    ("no-genre", "/users/u21/recommendations", {"k": 8, "exclude_genres": "Drama"}),
    ("years", "/users/u50/recommendations", {"k": 6, "year_min": 1990, "year_max": 2010}),
    ("exclude", "/users/u7/recommendations", {"k": 6, "exclude_items": "i1,i2,i3"}),
    ("sources", "/users/u2/recommendations", {"k": 7, "sources": "collaborative,knowledge"}),
    ("social", "/users/u9/recommendations", {"k": 5, "sources": "social,popularity"}),
    ("similar", "/items/i5/similar", {"k": 6}),
    ("unknown-user", "/users/nobody/recommendations", {"k": 5}),
]
#: The reads asked while Neo4j is unreachable (the degraded path answers from the model).
DEGRADED_READS = [r for r in READS if r[0] in {"top10", "top5-no-paths", "genre", "exclude"}]


def _body(response) -> str:  # noqa: ANN001 - httpx.Response
    """``status body`` with the model version blanked (it names the artifact's timestamped version), and the
    recommendation id (new for every response)."""
    body = _REC_ID.sub(b'"recommendation_id":"*"', _VERSION.sub(b'"model_version":"*"', response.content))
    return f"{response.status_code} " + body.decode()


def _settings(artifacts: Path, **extra: object) -> ApiSettings:
    return model_settings(artifacts, **extra)


def _dead(settings: Neo4jSettings) -> Neo4jSettings:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return settings.model_copy(update={"uri": f"bolt://127.0.0.1:{port}"})


@pytest.fixture(scope="module")
def fresh_neo4j(neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jSettings]:
    """A second local server on a fresh store (ports KGREC_TEST_GOLDEN_BOLT_PORT / _HTTP_PORT, default 17688 / 17475)
    holding the synthetic world (120 users, 240 items, seed 5); stopped at the end of the module."""
    bolt = int(os.environ.get("KGREC_TEST_GOLDEN_BOLT_PORT", "17688"))
    settings = neo4j_settings.model_copy(
        update={
            "uri": f"bolt://127.0.0.1:{bolt}",
            "home": tmp_path_factory.mktemp("golden-neo4j"),
            "bolt_port": bolt,
            "http_port": int(os.environ.get("KGREC_TEST_GOLDEN_HTTP_PORT", "17475")),
            "heap": "512m",
            "pagecache": "128m",
        }
    )
    launcher.start(settings)
    try:
        with create_driver(settings) as driver:
            apply_schema(driver, settings.database)
            world = generate_world(users=120, items=240, seed=5)
            load_dataset(driver, world.dataset, reject_dir=tmp_path_factory.mktemp("golden-rejects"))
        yield settings
    finally:
        launcher.stop(settings)


@pytest.fixture(scope="module")
def answers(fresh_neo4j: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Every golden request's ``status body``, by ``app/request`` name."""
    neo4j_settings = fresh_neo4j
    root = tmp_path_factory.mktemp("golden")
    got: dict[str, str] = {}
    apps: dict[str, tuple[ApiSettings, Neo4jSettings]] = {"graph": (_settings(root / "none"), neo4j_settings)}
    for kind, config in (("blend", FAST_BLEND), ("lightgcn", FAST_LIGHTGCN)):
        gnn = GnnSettings(artifacts_dir=root / kind, snapshots_dir=root / f"{kind}-snapshots")
        report = retrain_job(neo4j_settings, gnn, config, publish=False)
        assert report.promoted
        apps[kind] = (_settings(gnn.artifacts_dir), neo4j_settings)
        apps[f"{kind}-mmr"] = (_settings(gnn.artifacts_dir, mmr_lambda=0.5), neo4j_settings)
        apps[f"{kind}-degraded"] = (_settings(gnn.artifacts_dir), _dead(neo4j_settings))
    for app_name, (api_settings, neo4j) in apps.items():
        reads = DEGRADED_READS if app_name.endswith("degraded") else READS
        with TestClient(create_app(api_settings, neo4j)) as client:
            for name, path, params in reads:
                got[f"{app_name}/{name}"] = _body(client.get(path, params=params))
    # Writes last (they change the graph): a new user answered by the graph path, then after a first positive.
    with TestClient(create_app(*apps["blend"])) as client:
        headers = {"X-API-Key": API_KEY}
        got["blend/new-user"] = _body(
            client.post("/users", json={"user_id": "golden-new", "liked_genres": ["Comedy"]}, headers=headers)
        )
        got["blend/new-user-top"] = _body(client.get("/users/golden-new/recommendations", params={"k": 5}))
        got["blend/interaction"] = _body(
            client.post("/interactions", json={"user_id": "u7", "item_id": "i9", "rating": 5.0}, headers=headers)
        )
        got["blend/after-interaction"] = _body(client.get("/users/u7/recommendations", params={"k": 10}))
    if RECORD:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    yield got


#: A score in a body, and the most a recorded one may differ by: one step of the rounding of blend scores
#: (gnn.blend.config.SCORE_DECIMALS, 4 decimals). The platform's float kernels (AVX2 or AVX-512 BLAS, say) can put a
#: score on the other side of a rounding boundary; the items, their order and their paths must still be the same.
_SCORE = re.compile(r'"score":(-?[0-9.eE+-]+)')
_SCORE_STEP = 1.0001e-4


def _same_answer(got: str, recorded: str) -> bool:
    """Whether ``got`` is ``recorded`` byte for byte, a score one rounding step apart aside."""
    if got == recorded:
        return True
    mine, theirs = _SCORE.findall(got), _SCORE.findall(recorded)
    return (
        _SCORE.sub('"score":_', got) == _SCORE.sub('"score":_', recorded)
        and len(mine) == len(theirs)
        and all(abs(float(a) - float(b)) <= _SCORE_STEP for a, b in zip(mine, theirs, strict=True))
    )


def test_golden_answers_are_unchanged(answers: dict[str, str]) -> None:
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert sorted(answers) == sorted(expected)
    changed = [name for name in expected if not _same_answer(answers[name], expected[name])]
    assert not changed, f"answers differ from {GOLDEN.name}: {changed}"


def test_a_golden_answer_differs_by_no_more_than_a_rounding_step_of_a_score() -> None:
    recorded = '200 {"items":[{"item_id":"i27","score":1.5661,"why":"x"},{"item_id":"i3","score":0.25}]}'
    assert _same_answer(recorded.replace("1.5661", "1.566"), recorded)  # one step: the platform's floats
    assert not _same_answer(recorded.replace("1.5661", "1.5663"), recorded)  # two steps: a change
    assert not _same_answer(recorded.replace('"i3"', '"i4"'), recorded)  # another item
    assert not _same_answer(recorded.replace('"why":"x"', '"why":"y"'), recorded)  # another path


def test_golden_answers_cover_every_path(answers: dict[str, str]) -> None:
    """The recorded set exercises what it claims to: model answers with paths, degraded ones, the graph path."""
    assert answers["graph/top10"].startswith("200 ") and '"model_version":"*"' in answers["graph/top10"]
    assert '"degraded":true' in answers["blend-degraded/top10"]
    assert '"degraded":false' in answers["blend/top10"] and '"nodes":[{' in answers["blend/top10"]
    assert answers["blend/unknown-user"].startswith("404 ")
    assert answers["blend/top10"] != answers["lightgcn/top10"] != answers["graph/top10"]
    assert answers["blend/top10"] != answers["blend/after-interaction"]
