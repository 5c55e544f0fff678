"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis), Neo4j up and Neo4j down.

The real app is served by uvicorn on a loopback port, backed by the real test Neo4j with the synthetic world
loaded (and, for the second run, by a Neo4j address where nothing listens). Schemathesis generates requests from
``/openapi.json`` in every phase it has for single operations (explicit examples, coverage of boundaries and
invalid values, random fuzzing), with and without the write key, and checks every response: never a 5xx other
than a documented 503, a status code, content type and body the schema documents, invalid input rejected,
valid input accepted. The number of cases is bounded (``KGREC_FUZZ_EXAMPLES`` per operation and phase, default
25) so the run stays within a few minutes; set it higher for a longer hunt.

A stateful phase follows the links the OpenAPI schema publishes: create a user → record interactions → read the
user's recommendations → read the first item's similar items, each request generated from the schema with the ids
the links carry (``KGREC_FUZZ_SCENARIOS`` sequences with at most ``KGREC_FUZZ_STEPS`` interactions, default 15 and
6), the same checks on every response, and the sequence's state checked: the user created can be read, and no item
the user interacted with is recommended to them. (Schemathesis' own state machine chooses its next call from the
previous answers, which Hypothesis refuses as flaky against a database that keeps every sequence's writes.)
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from neo4j import Driver
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from api.app import create_app
from api.routes import LIST_PATTERN, MAX_LIST_ITEM_LENGTH, MAX_LIST_LENGTH
from api.schemas import CREATED_ID_PATTERN
from api.settings import ApiSettings
from etl.synthetic import SyntheticWorld
from graph.reads import item_exists
from graph.settings import Neo4jSettings
from tests.api.conftest import API_KEY

EXAMPLES = int(os.environ.get("KGREC_FUZZ_EXAMPLES", "25"))
#: Seconds a fuzzed request may take: the checks are about answers, not speed, and schemathesis's own 10 s default
#: turns a slow answer on a busy machine (k=1000 with explanations beside other jobs) into a failure.
REQUEST_TIMEOUT = 120
CREATED_ID = re.compile(CREATED_ID_PATTERN)
SCENARIOS = int(os.environ.get("KGREC_FUZZ_SCENARIOS", "15"))
STEPS = int(os.environ.get("KGREC_FUZZ_STEPS", "6"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(api_settings: ApiSettings, neo4j: Neo4jSettings) -> Iterator[str]:
    """Serve the app on a loopback port in a thread for the duration of the generator; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(api_settings, neo4j), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fuzzed API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _settings(tmp: Path) -> ApiSettings:
    return ApiSettings(api_key=API_KEY, artifacts_dir=tmp / "no-artifacts", cache_warm_users=0, model_watch_seconds=0)


@pytest.fixture(scope="module")
def url_up(world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The API served with the synthetic world in a reachable Neo4j."""
    yield from _serve(_settings(tmp_path_factory.mktemp("fuzz-up")), neo4j_settings)


@pytest.fixture(scope="module")
def url_down(neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The API served while its Neo4j is unreachable (nothing listens at its address)."""
    away = neo4j_settings.model_copy(update={"uri": f"bolt://127.0.0.1:{_free_port()}"})
    yield from _serve(_settings(tmp_path_factory.mktemp("fuzz-down")), away)


#: The schema the server publishes (``/openapi.json``), built without starting the app: it depends on the settings
#: only, not on the database.
SCHEMA = schemathesis.openapi.from_dict(create_app(_settings(Path("/nonexistent"))).openapi())
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@SCHEMA.parametrize()
@FUZZ
def test_fuzz_api_with_neo4j_up(case: schemathesis.Case, url_up: str) -> None:
    response = case.call(base_url=url_up, headers={"X-API-Key": API_KEY}, timeout=REQUEST_TIMEOUT)
    case.validate_response(response, excluded_checks=_skipped(response), headers={"X-API-Key": API_KEY})


def _refuses_unknown_names(response) -> bool:  # noqa: ANN001 - the transport's response
    """POST /users and POST /items refuse a schema-valid body that names genres, items or attributes the graph does
    not have, and the recommendations' genre filters genres it does not have: a 422 naming each (docs/api.md); no
    schema can say which names exist, so that 422 is not a rejected valid request. Nor can it say that an
    availability window's start comes before its end (POST /items, PATCH /items/{item_id}), nor that year_min is not
    above year_max (OpenAPI has no constraint between two parameters)."""
    if response.status_code != 422:
        return False
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    return bool(detail) and all(
        isinstance(e, dict)
        and e.get("type")
        in ("unknown_genre", "unknown_item", "unknown_attribute", "empty_availability_window", "empty_year_range")
        for e in detail
    )


def _skipped(response) -> list:  # noqa: ANN001 - the transport's response
    """The check a documented refusal of schema-valid input (:func:`_refuses_unknown_names`) skips."""
    return [positive_data_acceptance] if _refuses_unknown_names(response) else []


@SCHEMA.parametrize()
@FUZZ
def test_fuzz_api_without_a_key(case: schemathesis.Case, url_up: str) -> None:
    response = case.call(base_url=url_up, timeout=REQUEST_TIMEOUT)  # reads need no key by default
    case.validate_response(response, excluded_checks=_skipped(response))


@SCHEMA.parametrize()
@FUZZ
def test_fuzz_api_with_neo4j_down(case: schemathesis.Case, url_down: str) -> None:
    """Neo4j away: the documented 503 is the only 5xx (the rest of the checks as above)."""
    response = case.call(base_url=url_down, headers={"X-API-Key": API_KEY}, timeout=REQUEST_TIMEOUT)
    assert response.status_code < 500 or response.status_code == 503, f"{response.status_code} {response.text[:300]}"
    excluded = [not_a_server_error, *_skipped(response)]
    case.validate_response(response, excluded_checks=excluded, headers={"X-API-Key": API_KEY})


@pytest.fixture(scope="module")
def url_workflow(world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """The API for linked sequences: the read rate limit and the budget of uncached work off, so that a replayed
    sequence gets the same answers (Hypothesis replays sequences and requires the same steps each time)."""
    settings = _settings(tmp_path_factory.mktemp("fuzz-workflow")).model_copy(
        update={"read_rate": 0.0, "miss_cost_rate": 0.0}
    )
    yield from _serve(settings, neo4j_settings)


_NEW_USER = SCHEMA["/users"]["POST"]
_INTERACTION = SCHEMA["/interactions"]["POST"]
_RECOMMENDATIONS = SCHEMA["/users/{user_id}/recommendations"]["GET"]
_SIMILAR = SCHEMA["/items/{item_id}/similar"]["GET"]
_created = itertools.count()


def _call(case: schemathesis.Case, url: str):  # noqa: ANN202 - the transport's response
    """Send a case with the write key and run every check on its response (as the single-operation phases do)."""
    response = case.call(base_url=url, headers={"X-API-Key": API_KEY}, timeout=REQUEST_TIMEOUT)
    case.validate_response(response, excluded_checks=_skipped(response), headers={"X-API-Key": API_KEY})
    return response


@settings(
    max_examples=SCENARIOS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
    phases=[Phase.generate],  # a failing sequence is reported as found: shrinking one replays it for minutes
)
@given(data=st.data())
def test_fuzz_api_sequences_with_neo4j_up(
    data: st.DataObject, url_workflow: str, world: SyntheticWorld, driver: Driver
) -> None:
    """Linked sequences along the schema's links: create a user, record interactions, read the user's
    recommendations, read the similar items of the first one. Every request is generated from the schema (the ids
    the links carry put in), every response passes the checks, and the sequence's state holds: the user created can
    be read, and no item the user interacted with is recommended to them.

    Every request is drawn before the first is sent, so a replayed sequence draws the same whatever the answers
    (Hypothesis requires it); the database outlives a sequence, so the user's id is made unique.
    """
    items = sorted(item.item_id for item in world.dataset.items)
    known = set(items)
    genres = sorted({row.genre for row in world.dataset.genres})
    new_user = data.draw(_NEW_USER.as_strategy(), label="POST /users")
    liked = data.draw(
        st.tuples(st.lists(st.sampled_from(genres), max_size=3), st.lists(st.sampled_from(items), max_size=3))
        | st.none(),
        label="names the graph has (None: the generated ones)",
    )
    posts = data.draw(
        st.lists(st.tuples(_INTERACTION.as_strategy(), st.none() | st.sampled_from(items)), max_size=STEPS),
        label="POST /interactions",
    )
    recommendations = data.draw(_RECOMMENDATIONS.as_strategy(), label="GET recommendations")
    similar = data.draw(_SIMILAR.as_strategy(), label="GET similar")

    assert isinstance(new_user.body, dict) and CREATED_ID.fullmatch(new_user.body["user_id"])
    user_id = new_user.body["user_id"] = f"{new_user.body['user_id'][:200]}~{next(_created)}"
    if liked is not None:
        new_user.body["liked_genres"], new_user.body["liked_items"] = liked
    created = _call(new_user, url_workflow)
    if created.status_code != 201:  # genres or items the graph does not have: the documented 422, nothing written
        assert created.status_code == 422 and _refuses_unknown_names(created), created.text[:300]
        return
    seen = set(new_user.body.get("liked_items", []))
    for post, item_id in posts:
        post.body["user_id"] = user_id
        if item_id is not None:
            post.body["item_id"] = item_id
        response = _call(post, url_workflow)
        # Other tests add items through POST /items to the same graph: the graph says which ids exist.
        exists = post.body["item_id"] in known or item_exists(driver, post.body["item_id"])
        assert response.status_code == (201 if exists else 404), response.text[:300]
        if exists:
            seen.add(post.body["item_id"])
    recommendations.path_parameters["user_id"] = user_id
    query = recommendations.query if recommendations.query is not None else {}
    for name in ("include_genres", "exclude_genres"):  # each generated name made a genre the graph has
        if query.get(name):
            query[name] = ",".join(genres[len(n) % len(genres)] for n in str(query[name]).split(","))
    if query.get("year_min") is not None and query.get("year_max") is not None:  # a range that holds a year
        query["year_min"], query["year_max"] = sorted((query["year_min"], query["year_max"]), key=int)
    answer = _call(recommendations, url_workflow)
    assert answer.status_code == 200, answer.text[:300]
    shown = [item["item_id"] for item in answer.json()["items"]]
    assert not seen & set(shown), "an item the user interacted with was recommended to them"
    if shown:
        similar.path_parameters["item_id"] = shown[0]
        assert _call(similar, url_workflow).status_code == 200


def test_longest_request_the_schema_allows_is_served(url_up: str) -> None:
    """Every list parameter at its longest, in characters that percent-encode to 12 bytes each: the request line
    stays under the HTTP server's limit (64 KiB), so the answer is the API's (422: the genres are not the graph's),
    not a bare 400."""
    wide = "\U0010fffd"
    parts = [wide * MAX_LIST_ITEM_LENGTH] * 9
    longest = ",".join([*parts, wide * (MAX_LIST_LENGTH - 9 * (MAX_LIST_ITEM_LENGTH + 1))])
    assert len(longest) == MAX_LIST_LENGTH and re.fullmatch(LIST_PATTERN, longest)
    sources = "collaborative" + "\u3000" * (MAX_LIST_LENGTH - len("collaborative"))  # blank space around a name
    params = {name: longest for name in ("exclude_items", "include_genres", "exclude_genres")}
    params |= {"sources": sources, "k": "100", "explain": "false", "year_min": "0", "year_max": "3000"}
    response = httpx.get(f"{url_up}/users/no-such-user/recommendations", params=params, timeout=60)
    assert len(str(response.request.url)) > 40_000
    assert response.status_code == 422 and _refuses_unknown_names(response), response.text[:300]
