"""/docs works offline (Swagger UI from the installed package, no CDN) and the schema documents every parameter and
every error body."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from graph.settings import Neo4jSettings
from tests.api.conftest import graph_only_settings


@pytest.fixture
def offline_client(neo4j_settings: Neo4jSettings, tmp_path: Path) -> Iterator[TestClient]:
    """The app with no Neo4j behind it: /docs and /openapi.json need none."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{port}", "password": SecretStr("x" * 12)})
    with TestClient(create_app(graph_only_settings(tmp_path), settings)) as client:
        yield client


def test_docs_page_loads_every_file_from_the_server_itself(offline_client: TestClient) -> None:
    page = offline_client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(r"url: ?'([^']+)'", page.text)
    assert not [u for u in urls if "//" in u], "the page must not load anything from another host (a CDN)"
    assets = [u for u in urls if u.endswith((".js", ".css", ".png"))]
    assert len(assets) >= 3
    for url in assets:
        answer = offline_client.get(url)
        assert answer.status_code == 200 and len(answer.content) > 500, url
    assert offline_client.get("/openapi.json").status_code == 200
    assert offline_client.get("/docs/oauth2-redirect").status_code == 200


def test_schema_describes_every_parameter_and_error_body(offline_client: TestClient) -> None:
    spec = offline_client.get("/openapi.json").json()
    undocumented, bare_errors = [], []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if not parameter.get("description"):
                    undocumented.append(f"{method.upper()} {path} {parameter['in']} {parameter['name']}")
            for code, response in operation.get("responses", {}).items():
                if code.startswith(("4", "5")) and "schema" not in response.get("content", {}).get(
                    "application/json", {}
                ):
                    bare_errors.append(f"{method.upper()} {path} {code}")
    assert not undocumented, undocumented
    assert not bare_errors, bare_errors
    similar = {p["name"] for p in spec["paths"]["/items/{item_id}/similar"]["get"]["parameters"]}
    assert {"item_id", "k", "explain"} <= similar


def test_schema_says_what_orders_a_list_and_what_score_means(offline_client: TestClient) -> None:
    """After diversity re-ranking a list is not in score order: the schema says that the position is the ranking and
    what the score is."""
    schemas = offline_client.get("/openapi.json").json()["components"]["schemas"]
    score = schemas["RecommendedItem"]["properties"]["score"]["description"]
    assert "relevance" in score and "position" in score and "MMR" in score and "not always score order" in score
    assert "order to show them" in schemas["RecommendationsResponse"]["properties"]["items"]["description"]
