"""The project's own Neo4j server (graph.neo4j_local) against the real thing.

One server in a temporary home on free ports (never 7687/7474), one restart. Needs JDK 17+, Maven and
Maven Central (or a filled ~/.m2) the first time; missing pieces make the tests fail, not skip.
Tests run in file order and share the module's server.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import neo4j
import pytest
from pydantic import SecretStr

from graph import neo4j_local
from graph.settings import Neo4jSettings
from tests.fixtures.plans import plans_after

pytestmark = pytest.mark.integration

PASSWORD = "kgrec-test-pw-4711"


def _free_port(avoid: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid and port not in (7687, 7474):
            return port


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jSettings]:
    """Settings for a private server: tmp home, free ports, shared jars cache (resolved once)."""
    missing = [tool for tool in ("java", "javac", "mvn") if shutil.which(tool) is None]
    assert not missing, f"missing {missing}: install with `apt-get install openjdk-17-jdk-headless maven`"
    bolt = _free_port(set())
    http = _free_port({bolt})
    overrides: dict[str, Any] = {
        "home": tmp_path_factory.mktemp("neo4j-home"),
        "bolt_port": bolt,
        "http_port": http,
        "listen_address": "127.0.0.1",
        "user": "neo4j",
        "password": SecretStr(PASSWORD),
        "heap": "512m",
        "pagecache": "128m",
        "start_timeout": 240.0,
    }
    if os.environ.get("NEO4J_JARS_DIR"):  # else the shared default cache: jars are resolved only once
        overrides["jars_dir"] = Path(os.environ["NEO4J_JARS_DIR"])
    cfg = Neo4jSettings(**overrides)
    yield cfg
    neo4j_local.stop(cfg, timeout=30)  # whatever happened above, leave no JVM behind
    assert not neo4j_local.status(cfg).running


@pytest.fixture(scope="module")
def server(settings: Neo4jSettings) -> neo4j_local.ServerStatus:
    """The started server (started once for the module)."""
    started = time.monotonic()
    state = neo4j_local.start(settings)
    print(f"\nlocal Neo4j started in {time.monotonic() - started:.1f} s: {state}")
    assert state.running and state.reachable, state
    return state


def _driver(settings: Neo4jSettings, password: str = PASSWORD) -> neo4j.Driver:
    return neo4j.GraphDatabase.driver(neo4j_local.bolt_uri(settings), auth=("neo4j", password))


def test_apoc_is_loaded(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    with _driver(settings) as driver:
        records, _, _ = driver.execute_query("RETURN apoc.version() AS v", database_="neo4j")
    assert records[0]["v"].startswith("5.26.")
    assert server.apoc_version == records[0]["v"]


def test_components_say_5_26_community(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    with _driver(settings) as driver:
        records, _, _ = driver.execute_query("CALL dbms.components() YIELD name, versions, edition RETURN *")
    kernel = next(r for r in records if r["name"] == "Neo4j Kernel")
    assert kernel["versions"][0].startswith("5.26."), kernel
    assert kernel["edition"] == "community"
    assert server.version == kernel["versions"][0]
    assert server.edition == "community"


def test_browser_is_served(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    assert server.browser_url == f"http://127.0.0.1:{settings.http_port}/browser/"
    response = httpx.get(server.browser_url, timeout=30)
    assert response.status_code == 200
    assert "text/html" in response.headers.get("content-type", "")
    assert "Neo4j Browser" in response.text


def test_wrong_password_is_rejected(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    with _driver(settings, password="definitely-wrong-pw") as driver, pytest.raises(neo4j.exceptions.AuthError):
        driver.execute_query("RETURN 1")


def test_second_start_is_harmless(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    again = neo4j_local.start(settings)
    assert again.already_running
    assert again.pid == server.pid
    assert again.reachable


def test_status_reports_the_running_server(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    state = neo4j_local.status(settings)
    assert state.running and state.reachable
    assert state.pid == server.pid
    assert state.bolt_uri == f"bolt://127.0.0.1:{settings.bolt_port}"
    assert state.home == Path(settings.home).resolve()
    assert (state.home / "logs" / "debug.log").is_file()
    assert (state.home / "logs" / "console.log").is_file()
    assert "Using G1" in (state.home / "logs" / "gc.log").read_text()  # the JVM logs its pauses (jvm.gc_log_option)


def test_the_heap_starts_at_its_maximum(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    """The whole heap is the JVM's from the start (jvm.java_command): G1 sizes its young generation from it."""
    with _driver(settings) as driver:
        records, _, _ = driver.execute_query(
            "CALL dbms.queryJmx('java.lang:type=Memory') YIELD attributes "
            "RETURN attributes.HeapMemoryUsage.value.properties AS heap"
        )
    heap = records[0]["heap"]
    assert heap["init"] == heap["max"] == 512 * 1024**2, heap


def test_one_plan_serves_lists_of_every_length(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    """A list parameter's length does not make a query plan again (KgrecNeo4j: no size hints in the cache key).
    Neo4j's default keys the plan on the length's power-of-ten bucket: a list of 1, of 3 and of 20 ids would be three
    plans."""
    query = "MATCH (i:Item) WHERE i.itemId IN $ids RETURN count(i) AS n"
    lists = [["a"], ["a", "b", "c"], [f"i{n}" for n in range(20)], ["b"]]
    with _driver(settings) as driver:
        one = plans_after(driver, lambda: driver.execute_query(query, ids=["a"]))
        every = plans_after(driver, lambda: [driver.execute_query(query, ids=ids) for ids in lists])
    assert one >= 1
    assert every == one


def test_data_survives_restart_and_stop_stops(settings: Neo4jSettings, server: neo4j_local.ServerStatus) -> None:
    with _driver(settings) as driver:
        driver.execute_query("CREATE (:KgrecRestartProbe {token: $t})", t="survives", database_="neo4j")

    assert neo4j_local.stop(settings) is True
    assert not neo4j_local.status(settings).running
    assert not Path(f"/proc/{server.pid}").exists(), "JVM still alive after stop()"
    assert neo4j_local.stop(settings) is False  # nothing left to stop

    restarted = neo4j_local.start(settings)
    assert restarted.running and restarted.reachable and not restarted.already_running
    assert restarted.pid != server.pid
    with _driver(settings) as driver:
        records, _, _ = driver.execute_query("MATCH (n:KgrecRestartProbe) RETURN n.token AS t", database_="neo4j")
    assert [r["t"] for r in records] == ["survives"]

    assert neo4j_local.stop(settings) is True
    state = neo4j_local.status(settings)
    assert not state.running and state.pid is None
    assert not Path(f"/proc/{restarted.pid}").exists(), "JVM still alive after stop()"
