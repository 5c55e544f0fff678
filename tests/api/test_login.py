"""A wrong Neo4j login while the API runs: 503 on the routes that need Neo4j, one log line per failure, no
traceback (the answer-cache warming used to log a page of driver internals)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY


def test_a_refused_login_is_503_and_logs_one_line(
    neo4j_settings: Neo4jSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # an unknown user, so that the failed logins do not lock the suite's own user out
    settings = neo4j_settings.model_copy(update={"user": "kgrec-no-such-user"})
    api = ApiSettings(api_key=API_KEY, artifacts_dir=tmp_path / "no-artifacts", cache_warm_users=5)
    with caplog.at_level(logging.WARNING), TestClient(create_app(api, settings)) as client:
        for path in ("/users/u1/recommendations", "/items/i1/similar"):
            answer = client.get(path)
            assert answer.status_code == 503 and answer.json() == {"detail": "Neo4j is unreachable"}, path
        assert client.get("/ready").status_code == 503
    # the lifespan has waited for the warming thread
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []
    assert any("rejected the login" in r.getMessage() and "NEO4J_PASSWORD" in r.getMessage() for r in caplog.records)
