"""The lean path of ``GET /users/{user_id}/recommendations`` (api/lean.py) answers as FastAPI's route does.

Every request goes to two apps of the same settings, one without the lean middleware (FastAPI answers everything),
in the same order: status, headers and body must be the same, the fresh ``recommendation_id`` aside. And the
common request must really skip FastAPI's dispatch (its dependency solving is never called for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.lean import LeanRecommendations
from api.settings import ApiSettings
from etl.synthetic import SyntheticWorld
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY, graph_only_settings

_REC_ID = re.compile(rb'"recommendation_id":"[0-9a-f]{32}"')
_ROUTE_COUNTS = re.compile(r'^kgrec_http_requests_total\{.*route="/users/\{user_id\}/recommendations".*$', re.M)
_SECONDS = re.compile(rb"retry in \d+ s")
MAX_K = 30

#: (name, path and query, X-API-Key) of the requests both apps answer; reads need the key.
REQUESTS: list[tuple[str, str, str | None]] = [
    ("valid", "/users/u7/recommendations?k=5", API_KEY),
    ("defaults", "/users/u11/recommendations", API_KEY),
    ("explain off", "/users/u7/recommendations?k=3&explain=FALSE", API_KEY),
    ("explain on, encoded", "/users/u7/recommendations?explain=%74rue&k=%34", API_KEY),
    ("k at the maximum", f"/users/u3/recommendations?k={MAX_K}", API_KEY),
    ("k above the maximum", f"/users/u7/recommendations?k={MAX_K + 1}", API_KEY),
    ("k zero", "/users/u7/recommendations?k=0", API_KEY),
    ("k not a number", "/users/u7/recommendations?k=ten", API_KEY),
    ("k blank", "/users/u7/recommendations?k=", API_KEY),
    ("k leading zero", "/users/u7/recommendations?k=05", API_KEY),
    ("k twice", "/users/u7/recommendations?k=5&k=6", API_KEY),
    ("bad explain", "/users/u7/recommendations?explain=maybe", API_KEY),
    ("unknown parameter", "/users/u7/recommendations?k=5&colour=red", API_KEY),
    ("a filter", "/users/u7/recommendations?k=5&include_genres=Drama", API_KEY),
    ("a year range holding no year", "/users/u7/recommendations?k=5&year_min=2020&year_max=2000", API_KEY),
    ("an unknown genre", "/users/u7/recommendations?include_genres=Bogus", API_KEY),
    ("an unknown excluded genre", "/users/u7/recommendations?k=5&explain=false&exclude_genres=Drama,Dramma", API_KEY),
    ("unknown user", "/users/nobody/recommendations?k=5", API_KEY),
    ("wrong key", "/users/u7/recommendations?k=5", "not-the-key"),
    ("blank key", "/users/u7/recommendations?k=5", ""),
    ("no key", "/users/u7/recommendations?k=5", None),
    ("trailing slash", "/users/u7/recommendations/?k=5", API_KEY),
    ("no user", "/users//recommendations?k=5", API_KEY),
]


def _pair(settings: ApiSettings, neo4j_settings: Neo4jSettings) -> tuple[FastAPI, FastAPI]:
    """An app with the lean path and one without it (built before its middleware stack is)."""
    lean = create_app(settings, neo4j_settings)
    plain = create_app(settings, neo4j_settings)
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not LeanRecommendations]
    return lean, plain


@pytest.fixture
def clients(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> Iterator[tuple[TestClient, TestClient]]:
    settings = graph_only_settings(tmp_path).model_copy(update={"read_requires_key": True, "max_k": MAX_K})
    lean, plain = _pair(settings, neo4j_settings)
    with TestClient(lean) as lean_client, TestClient(plain) as plain_client:
        yield lean_client, plain_client


def _answer(client: TestClient, url: str, key: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
    response = client.get(url, headers={"X-API-Key": key} if key is not None else {})
    return (
        response.status_code,
        response.headers.multi_items(),
        _REC_ID.sub(b'"recommendation_id":"-"', response.content),
    )


def test_the_lean_path_answers_as_fastapi_does(clients: tuple[TestClient, TestClient]) -> None:
    lean, plain = clients
    statuses = {}
    for name, url, key in REQUESTS:
        expected = _answer(plain, url, key)
        assert _answer(lean, url, key) == expected, name
        statuses[name] = expected[0]
    assert set(statuses.values()) >= {200, 401, 403, 404, 422}  # the set reaches each kind of answer
    refused = ("a year range holding no year", "an unknown genre", "an unknown excluded genre")
    assert [statuses[name] for name in refused] == [422] * len(refused)  # filters that would answer an empty list
    counts = [_ROUTE_COUNTS.findall(c.get("/metrics").text) for c in (lean, plain)]
    assert counts[0] == counts[1] and counts[0]  # counted under the same route label, by the same statuses


def test_refusals_of_the_lean_path_are_fastapis(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    """A client over its budget of uncached work gets the same 429, Retry-After and all, from either app (the
    seconds to wait aside, and so the body's length: they depend on how long the first answer took)."""
    settings = graph_only_settings(tmp_path).model_copy(update={"miss_cost_rate": 0.001, "miss_cost_burst": 1.0})
    lean, plain = _pair(settings, neo4j_settings)
    answers = []
    for app in (lean, plain):
        with TestClient(app) as client:
            answers.append([_answer(client, f"/users/{u}/recommendations?k=5", None) for u in ("u4", "u5")])
    assert [a[0] for a in answers[0]] == [200, 429]
    assert _SECONDS.search(answers[0][1][2]) and ("retry-after", "") not in answers[0][1][1]
    assert [_seconds_aside(a) for a in answers[0]] == [_seconds_aside(a) for a in answers[1]]


def _seconds_aside(answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple[int, list[tuple[str, str]], bytes]:
    status, headers, body = answer
    aside = ("retry-after", "content-length")
    headers = [(name, "-" if name in aside and value.isdigit() else value) for name, value in headers]
    return status, headers, _SECONDS.sub(b"retry in - s", body)


def test_the_common_request_skips_fastapis_dependencies(
    clients: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    lean, _ = clients
    solved: list[object] = []
    solve = fastapi.routing.solve_dependencies

    async def counted(*args: object, **kwargs: object) -> object:
        solved.append(kwargs.get("dependant"))
        return await solve(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    assert lean.get("/users/u7/recommendations?k=5&explain=true", headers={"X-API-Key": API_KEY}).status_code == 200
    assert solved == []
    assert (
        lean.get("/users/u7/recommendations?k=5&sources=knowledge", headers={"X-API-Key": API_KEY}).status_code == 200
    )
    assert solved  # FastAPI's route answered the request the lean path passed on
