"""Hostile and out-of-range input: every answer is a documented 4xx, never a 500, and the OpenAPI schema states
the bounds the server enforces (against the real app and the test Neo4j)."""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from neo4j import Driver
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from api.app import create_app
from api.routes import LIST_PATTERN, MAX_LIST_ITEM_LENGTH, MAX_LIST_ITEMS, MAX_LIST_LENGTH
from api.schemas import (
    CREATED_ID_PATTERN,
    MAX_LIKED_GENRES,
    MAX_LIKED_ITEMS,
    MAX_NAME_LENGTH,
    MAX_TIMESTAMP,
    MAX_WEIGHT,
)
from api.settings import ApiSettings, get_api_settings
from etl.synthetic import SyntheticWorld
from graph.reads import user_context, user_exists
from graph.settings import Neo4jSettings
from kgrec.cli import app as cli_app
from tests.api.conftest import API_KEY, graph_only_settings

KEY = {"X-API-Key": API_KEY}
JSON_KEY = {**KEY, "Content-Type": "application/json"}


def _error(loc: list[str | int], msg: str, type_: str) -> dict[str, object]:
    return {"detail": [{"loc": loc, "msg": msg, "type": type_}]}


def _offline_app(tmp_path: Path, **extra: object) -> object:
    """An app whose OpenAPI schema can be read without starting its lifespan (no Neo4j needed)."""
    settings = ApiSettings(api_key=API_KEY, artifacts_dir=tmp_path / "none", cache_warm_users=0, **extra)
    return create_app(settings, Neo4jSettings(uri="bolt://127.0.0.1:1", password=SecretStr("unused-pw")))


# 1. Out-of-range and non-JSON values in write bodies.


@pytest.mark.parametrize("timestamp", [2**63, 2**64, 2**63 - 1, MAX_TIMESTAMP + 1])
def test_interactions_timestamp_too_large_is_422(client: TestClient, world: SyntheticWorld, timestamp: int) -> None:
    body = {"user_id": "u1", "item_id": world.dataset.items[0].item_id, "timestamp": timestamp}
    response = client.post("/interactions", json=body, headers=KEY)
    assert response.status_code == 422
    assert response.json() == _error(
        ["body", "timestamp"], f"Input should be less than or equal to {MAX_TIMESTAMP}", "less_than_equal"
    )


def test_interactions_negative_timestamp_is_422(client: TestClient) -> None:
    response = client.post("/interactions", json={"user_id": "u1", "item_id": "i1", "timestamp": -1}, headers=KEY)
    assert response.status_code == 422
    assert response.json() == _error(
        ["body", "timestamp"], "Input should be greater than or equal to 0", "greater_than_equal"
    )


@pytest.mark.parametrize(
    ("field", "value", "type_"),
    [
        ("timestamp", False, "int_type"),
        ("timestamp", True, "int_type"),
        ("timestamp", 1.5e9 + 0.5, "int_type"),
        ("rating", True, "float_type"),
        ("weight", False, "float_type"),
        ("rating", "4.5", "float_type"),
    ],
)
def test_interactions_non_numbers_are_422(client: TestClient, field: str, value: object, type_: str) -> None:
    response = client.post("/interactions", json={"user_id": "u1", "item_id": "i1", field: value}, headers=KEY)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field] and error["type"] == type_


@pytest.mark.parametrize(("field", "value", "limit"), [("weight", 1e308, "1000000"), ("rating", 10.5, "10")])
def test_interactions_number_above_bound_is_422(client: TestClient, field: str, value: float, limit: str) -> None:
    response = client.post("/interactions", json={"user_id": "u1", "item_id": "i1", field: value}, headers=KEY)
    assert response.status_code == 422
    assert response.json() == _error(
        ["body", field], f"Input should be less than or equal to {limit}", "less_than_equal"
    )


@pytest.mark.parametrize(
    ("path", "raw", "constant"),
    [
        ("/interactions", '{"user_id": "u1", "item_id": "i1", "rating": NaN}', "NaN"),
        ("/interactions", '{"user_id": "u1", "item_id": "i1", "weight": Infinity}', "Infinity"),
        ("/interactions", '{"user_id": "u1", "item_id": "i1", "timestamp": -Infinity}', "-Infinity"),
        ("/interactions", '{"user_id": "u1", "item_id": "i1", "extra": [NaN]}', "NaN"),
        ("/users", '{"user_id": "nan-user", "liked_genres": [NaN]}', "NaN"),
        ("/users", '{"user_id": NaN}', "NaN"),
    ],
)
def test_writes_nan_and_infinity_are_422(client: TestClient, path: str, raw: str, constant: str) -> None:
    response = client.post(path, content=raw.encode(), headers=JSON_KEY)
    assert response.status_code == 422
    assert response.json() == _error(["body"], f"{constant} is not a JSON number", "json_invalid")


def test_interactions_extreme_valid_values_are_201(client: TestClient, world: SyntheticWorld) -> None:
    item = world.dataset.items[0].item_id
    for body in (
        {"user_id": "edge-user", "item_id": item, "timestamp": 0, "weight": 0.0, "rating": 0.0},
        {"user_id": "edge-user", "item_id": item, "timestamp": MAX_TIMESTAMP, "weight": MAX_WEIGHT, "rating": 10},
    ):
        assert client.post("/interactions", json=body, headers=KEY).status_code == 201
    assert client.get("/users/edge-user/recommendations", params={"k": 3}).status_code == 200


def test_interactions_whole_number_written_with_a_fraction_is_an_integer_timestamp(
    client: TestClient, world: SyntheticWorld, driver: Driver
) -> None:
    """JSON Schema's integer is any number without a fractional part: 1.5e9 and 1700000000.0 are integers."""
    item = world.dataset.items[1].item_id
    body = {"user_id": "float-stamp-user", "item_id": item, "timestamp": 1700000000.0}
    assert client.post("/interactions", json=body, headers=KEY).status_code == 201
    [interaction] = user_context(driver, "float-stamp-user").interactions
    assert interaction.timestamp == 1700000000 and isinstance(interaction.timestamp, int)


# 2. The OpenAPI schema and the server agree.


@pytest.mark.parametrize("k", ["101", "1000"])
def test_recommendations_k_above_max_is_documented_422(client: TestClient, k: str) -> None:
    response = client.get("/users/u1/recommendations", params={"k": k})
    assert response.status_code == 422
    assert response.json() == _error(["query", "k"], "Input should be less than or equal to 100", "less_than_equal")
    similar = client.get("/items/i1/similar", params={"k": k})
    assert similar.status_code == 422 and similar.json() == response.json()


def test_openapi_k_maximum_is_the_servers(client: TestClient, tmp_path: Path) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/users/{user_id}/recommendations", "/items/{item_id}/similar"):
        [k] = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "k"]
        assert k["schema"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 100}
    narrow = _offline_app(tmp_path, max_k=30).openapi()
    [k] = [p for p in narrow["paths"]["/items/{item_id}/similar"]["get"]["parameters"] if p["name"] == "k"]
    assert k["schema"]["anyOf"][0]["maximum"] == 30


def test_validation_errors_have_the_documented_shape(client: TestClient) -> None:
    assert client.get("/users/u1/recommendations", params={"k": "abc"}).json() == _error(
        ["query", "k"], "Input should be a valid integer, unable to parse string as an integer", "int_parsing"
    )
    unknown = client.get("/users/u1/recommendations", params={"sources": "astrology"})
    assert unknown.status_code == 422
    [error] = unknown.json()["detail"]
    assert error.keys() == {"loc", "msg", "type"} and "astrology" in error["msg"]
    assert error["loc"] == ["query", "sources"] and error["type"] == "unknown_source"
    malformed = client.post("/interactions", content=b"{not json", headers=JSON_KEY)
    assert malformed.status_code == 422
    assert malformed.json() == _error(["body", 1], "JSON decode error", "json_invalid")
    spec = client.get("/openapi.json").json()
    assert set(spec["components"]["schemas"]["FieldError"]["properties"]) == {"loc", "msg", "type"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if "422" in operation["responses"]:
                ref = operation["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ValidationErrorBody", (method, path)
    assert "HTTPValidationError" not in spec["components"]["schemas"]


@pytest.mark.parametrize("user_id", ["a/b", "/", "x/../y", "tab\there", ".", ".."])
def test_writes_unreadable_user_id_is_422(
    client: TestClient, driver: Driver, world: SyntheticWorld, user_id: str
) -> None:
    item = world.dataset.items[0].item_id
    posted = client.post("/interactions", json={"user_id": user_id, "item_id": item}, headers=KEY)
    onboarded = client.post("/users", json={"user_id": user_id}, headers=KEY)
    for response in (posted, onboarded):
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "user_id"] and error["type"] == "string_pattern_mismatch"
    assert not user_exists(driver, user_id)


@pytest.mark.parametrize("item_id", [" ", "\x85", "\u3000"])
def test_interactions_white_space_item_id_is_refused(client: TestClient, world: SyntheticWorld, item_id: str) -> None:
    """An id that is white space alone (a loaded row strips it to nothing) is a 422, and a rejected batch row."""
    body = {"user_id": world.dataset.users[0].user_id, "item_id": item_id}
    posted = client.post("/interactions", json=body, headers=KEY)
    assert posted.status_code == 422
    [error] = posted.json()["detail"]
    assert error["loc"] == ["body", "item_id"] and error["type"] == "string_too_short"
    batch = client.post("/interactions/batch", json=[body], headers=KEY)
    assert batch.status_code == 200
    [row] = batch.json()["results"]
    assert row["status"] == "rejected" and "item_id" in row["reason"]


def test_openapi_user_id_pattern_is_the_servers(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["InteractionIn"]["properties"]["user_id"]["pattern"] == CREATED_ID_PATTERN
    assert schemas["NewUserIn"]["properties"]["user_id"]["pattern"] == CREATED_ID_PATTERN
    pattern = re.compile(CREATED_ID_PATTERN)
    assert [bool(pattern.match(i)) for i in (".", "..", "...", ".a", "..a", "a.b", "a/b")] == [
        False, False, True, True, True, True, False
    ]  # fmt: skip


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
def test_writes_non_json_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = dict(KEY) if content_type is None else {**KEY, "Content-Type": content_type}
    body = json.dumps({"user_id": "ct-user", "liked_genres": ["Comedy"]}).encode()
    response = client.post("/users", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json() == {"detail": "the body must be JSON (Content-Type: application/json)"}
    assert client.post("/interactions", content=body, headers=headers).status_code == 415


def test_writes_json_content_type_variants_are_accepted(client: TestClient) -> None:
    body = json.dumps({"user_id": "ct-json-user", "liked_genres": ["Comedy"]}).encode()
    headers = {**KEY, "Content-Type": "application/json; charset=utf-8"}
    assert client.post("/users", content=body, headers=headers).status_code == 201


def test_writes_content_type_checked_after_the_key(client: TestClient) -> None:
    response = client.post("/users", content=b"user_id=x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 401


# 3. Limits on bodies, lists and names.


def test_users_chunked_body_over_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"user_id": "chunked-user", "liked_genres": ["'
        for _ in range(40):
            yield b"G" * 50_000
        yield b'"]}'

    response = client.post("/users", content=chunks(), headers=JSON_KEY)
    assert response.status_code == 413
    assert response.json() == {"detail": "Content Too Large"}


def test_users_ten_megabyte_body_is_413(client: TestClient) -> None:
    genres = ["G" * 200_000 for _ in range(50)]
    response = client.post("/users", json={"user_id": "big-user", "liked_genres": genres}, headers=KEY)
    assert response.status_code == 413
    assert response.json() == {"detail": "Content Too Large"}


def test_users_body_limit_comes_from_settings(
    world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    settings = graph_only_settings(tmp_path).model_copy(update={"max_body_bytes": 2048})
    with TestClient(create_app(settings, neo4j_settings)) as small:
        body = {"user_id": "limit-user", "liked_genres": ["Comedy"] * 20}
        assert small.post("/users", json=body, headers=KEY).status_code == 201
        body = {"user_id": "limit-user-2", "liked_items": ["x" * 20] * 100}
        assert len(json.dumps(body)) > 2048
        assert small.post("/users", json=body, headers=KEY).status_code == 413


@pytest.mark.parametrize(
    ("field", "value", "msg", "type_"),
    [
        (
            "liked_genres",
            ["Comedy"] * (MAX_LIKED_GENRES + 1),
            f"List should have at most {MAX_LIKED_GENRES} items after validation, not {MAX_LIKED_GENRES + 1}",
            "too_long",
        ),
        (
            "liked_items",
            ["i1"] * (MAX_LIKED_ITEMS + 1),
            f"List should have at most {MAX_LIKED_ITEMS} items after validation, not {MAX_LIKED_ITEMS + 1}",
            "too_long",
        ),
    ],
)
def test_users_list_too_long_is_422(client: TestClient, field: str, value: list[str], msg: str, type_: str) -> None:
    response = client.post("/users", json={"user_id": "long-list", field: value}, headers=KEY)
    assert response.status_code == 422
    assert response.json() == _error(["body", field], msg, type_)


@pytest.mark.parametrize("field", ["liked_genres", "liked_items"])
def test_users_name_too_long_is_422(client: TestClient, field: str) -> None:
    response = client.post("/users", json={"user_id": "long-name", field: ["ok", "x" * 257]}, headers=KEY)
    assert response.status_code == 422
    assert response.json() == _error(
        ["body", field, 1], f"String should have at most {MAX_NAME_LENGTH} characters", "string_too_long"
    )


def test_openapi_documents_body_limits(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    new_user = spec["components"]["schemas"]["NewUserIn"]["properties"]
    assert new_user["liked_genres"]["maxItems"] == MAX_LIKED_GENRES
    assert new_user["liked_items"]["maxItems"] == MAX_LIKED_ITEMS
    for field in ("liked_genres", "liked_items"):
        assert new_user[field]["items"] == {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH}
    interaction = spec["components"]["schemas"]["InteractionIn"]["properties"]
    assert interaction["timestamp"]["anyOf"][0]["maximum"] == MAX_TIMESTAMP
    assert interaction["weight"]["anyOf"][0]["maximum"] == MAX_WEIGHT
    for path in ("/interactions", "/users"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"413", "415", "422"} <= responses.keys()
        assert responses["413"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"


_LIST_PARAMETERS = ("exclude_items", "include_genres", "exclude_genres")


@pytest.mark.parametrize("name", _LIST_PARAMETERS)
@pytest.mark.parametrize(
    ("value", "type_"),
    [
        (",".join(["g"] * (MAX_LIST_ITEMS + 1)), "string_pattern_mismatch"),
        ("x" * (MAX_LIST_ITEM_LENGTH + 1), "string_pattern_mismatch"),
        (",".join(["y" * 90] * 12), "string_too_long"),
    ],
    ids=["too-many-names", "name-too-long", "too-long-in-all"],
)
def test_list_parameter_over_its_bounds_is_422(client: TestClient, name: str, value: str, type_: str) -> None:
    response = client.get("/users/u1/recommendations", params={name: value})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", name] and error["type"] == type_


def test_list_parameter_at_its_bounds_is_answered(client: TestClient) -> None:
    """The longest list and the one of most names pass the bounds: the item ids are looked for, the genres checked
    against the graph's (its 422 names each unknown one)."""
    longest = ",".join(["z" * MAX_LIST_ITEM_LENGTH] * 9 + ["z" * (MAX_LIST_LENGTH - 9 * (MAX_LIST_ITEM_LENGTH + 1))])
    most = ",".join(["Horror"] * MAX_LIST_ITEMS)
    assert len(longest) == MAX_LIST_LENGTH
    for value in (longest, most):
        response = client.get("/users/u1/recommendations", params={name: value for name in _LIST_PARAMETERS})
        if value is most:
            assert response.status_code == 200, response.text
        else:
            assert response.status_code == 422, response.text
            errors = response.json()["detail"]
            assert len(errors) == 20 and {e["type"] for e in errors} == {"unknown_genre"}
    response = client.get("/users/u1/recommendations", params={"exclude_items": longest})
    assert response.status_code == 200, response.text
    too_long_sources = ",".join(["social"] * 143) + ","  # 1,000 characters and one more
    response = client.get("/users/u1/recommendations", params={"sources": too_long_sources})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "string_too_long"


def test_openapi_states_list_bounds(client: TestClient) -> None:
    parameters = client.get("/openapi.json").json()["paths"]["/users/{user_id}/recommendations"]["get"]["parameters"]
    schemas = {p["name"]: p["schema"]["anyOf"][0] for p in parameters if "anyOf" in p["schema"]}
    for name in _LIST_PARAMETERS:
        assert schemas[name] == {"type": "string", "maxLength": MAX_LIST_LENGTH, "pattern": LIST_PATTERN}
    assert schemas["sources"]["maxLength"] == MAX_LIST_LENGTH


# 4. API key strength.


@pytest.mark.parametrize(
    "key",
    [
        "password1234",
        " " * 12,
        " " * 20,
        "a" * 32,
        "test-key-0123456789",
        "abcdefghijklmnopqrstuvwxyz",
        "MyPassword-2026-xyz!",
        "short-K3y",
    ],
)
def test_api_key_weak_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match=r"openssl rand -hex 16"):
        ApiSettings(api_key=key)


def test_api_key_generated_is_accepted() -> None:
    for _ in range(200):
        ApiSettings(api_key=secrets.token_hex(16))
    assert ApiSettings(api_key=API_KEY).api_key is not None


@pytest.mark.parametrize("key", ["password1234", " " * 12])
def test_serve_weak_key_is_refused(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.append(args))  # never serve from a test
    monkeypatch.setenv("KGREC_API_KEY", key)
    get_api_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["serve"])
    finally:
        get_api_settings.cache_clear()
    assert result.exit_code == 1 and not served
    assert "openssl rand -hex 16" in result.output


# 5. A 503 does not say where Neo4j is.


def test_unavailable_503_body_is_generic(
    neo4j_settings: Neo4jSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{port}", "password": SecretStr("whatever-pw")})
    with caplog.at_level(logging.WARNING), TestClient(create_app(graph_only_settings(tmp_path), dead)) as client:
        recs = client.get("/users/u1/recommendations")
        assert recs.status_code == 503 and recs.json() == {"detail": "Neo4j is unreachable"}
        similar = client.get("/items/i1/similar")
        assert similar.status_code == 503 and similar.json() == {"detail": "Neo4j is unreachable"}
        posted = client.post("/interactions", json={"user_id": "u1", "item_id": "i1"}, headers=KEY)
        assert posted.status_code == 503 and posted.json() == {"detail": "Neo4j is unreachable"}
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "neo4j": "unreachable", "detail": "Neo4j is unreachable"}
    assert str(port) in caplog.text  # the detail is logged server-side
