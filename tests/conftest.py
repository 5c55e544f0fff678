"""Shared fixtures: one real Neo4j for the whole test session.

By default the session starts the project's own local Neo4j (``graph.neo4j_local``) in
``.kgrec/neo4j-test`` on ports 17687/17474 (override with KGREC_TEST_HOME, KGREC_TEST_BOLT_PORT,
KGREC_TEST_HTTP_PORT to run two suites side by side), so a developer's server on 7687 and its data
are never touched, and stops it at the end. The suite reaches it through a ``neo4j://`` (routing) URI, the scheme
of a cluster, so every read and write is known to work through routing (KGREC_TEST_URI_SCHEME=bolt for direct). Set ``KGREC_TEST_NEO4J_URI`` (plus ``NEO4J_PASSWORD``) to run the
suite against a server of your own instead — it will be wiped.

Without Java or Maven the integration tests skip with the reason on a laptop; when ``CI`` is set
they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import Driver

from graph.driver import create_driver
from graph.settings import Neo4jSettings, get_neo4j_settings
from graph.writers import wipe_graph
from schema.ddl import apply_schema
from schema.errors import KgrecError
from tests.fixtures.access_modes import AccessModes

ROOT = Path(__file__).parents[1]
#: The real datasets (never copied into the project): KGREC_DATASETS, by default the datasets folder beside it.
DATASETS = Path(os.environ.get("KGREC_DATASETS", ROOT.parent / "shared" / "datasets"))
TEST_PASSWORD = "kgrec-test-password"


def _test_settings() -> Neo4jSettings:
    external = os.environ.get("KGREC_TEST_NEO4J_URI")
    if external:
        return Neo4jSettings(uri=external, password=os.environ.get("NEO4J_PASSWORD", TEST_PASSWORD))
    bolt = int(os.environ.get("KGREC_TEST_BOLT_PORT", "17687"))
    scheme = os.environ.get("KGREC_TEST_URI_SCHEME", "neo4j")
    return Neo4jSettings(
        uri=f"{scheme}://127.0.0.1:{bolt}",
        password=TEST_PASSWORD,
        home=Path(os.environ.get("KGREC_TEST_HOME", ROOT / ".kgrec" / "neo4j-test")),
        bolt_port=bolt,
        http_port=int(os.environ.get("KGREC_TEST_HTTP_PORT", "17474")),
        heap="1g",
        pagecache="256m",
    )


@pytest.fixture(scope="session")
def neo4j_settings() -> Iterator[Neo4jSettings]:
    """Settings of the test server, started for the session unless KGREC_TEST_NEO4J_URI is set."""
    settings = _test_settings()
    if os.environ.get("KGREC_TEST_NEO4J_URI"):
        yield settings
        return
    from graph.neo4j_local import launcher

    was_running = launcher.status(settings).running
    try:
        launcher.start(settings)
    except KgrecError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"could not start the test Neo4j: {exc}", pytrace=False)
        pytest.skip(f"no local Neo4j for integration tests: {exc}")
    yield settings
    if not was_running:
        launcher.stop(settings)


@pytest.fixture(scope="session")
def access_modes() -> Iterator[AccessModes]:
    """The access mode of every catalogued statement the session runs (:mod:`tests.fixtures.access_modes`)."""
    spy = AccessModes()
    with spy.install():
        yield spy


@pytest.fixture(autouse=True)
def reads_in_read_transactions(access_modes: AccessModes) -> Iterator[None]:
    """Fail a test that ran a catalogued read in a write transaction or a write in a read one: a cluster behind a
    ``neo4j://`` URI routes by that mode (graph/catalog.py's ``WRITES``)."""
    since = access_modes.mark()
    yield
    wrong = access_modes.wrong(since)
    access_modes.forget(since)
    if wrong:
        pytest.fail(
            "catalogued statements ran in the wrong access mode (reads need execute_read / routing_='r' / a READ "
            f"session, writes execute_write / routing_='w'; graph/catalog.py WRITES lists the writes): {', '.join(wrong)}",
            pytrace=False,
        )


@pytest.fixture(scope="module", autouse=True)
def module_impression_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A SQLite impression file of the module's own (``KGREC_IMPRESSION_DB``) for the apps its module-scoped fixtures
    start, in process or as ``kgrec serve`` subprocesses: never the repository's ``.kgrec/impressions.sqlite3`` (the
    default, relative to the working directory), and nothing recorded by another module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KGREC_IMPRESSION_DB", str(tmp_path_factory.mktemp("impressions") / "impressions.sqlite3"))
        yield


@pytest.fixture(autouse=True)
def impression_db(
    module_impression_db: None, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A SQLite impression file of the test's own for the apps and commands it starts (:func:`module_impression_db`
    for one test): what a test records is not read by the next. Apps it starts twice (a restart) share it."""
    monkeypatch.setenv("KGREC_IMPRESSION_DB", str(tmp_path_factory.mktemp("impressions") / "impressions.sqlite3"))


@pytest.fixture(scope="session")
def driver(neo4j_settings: Neo4jSettings) -> Iterator[Driver]:
    """A driver to the test database, for the whole session."""
    drv = create_driver(neo4j_settings)
    yield drv
    drv.close()


@pytest.fixture
def clean_db(driver: Driver, neo4j_settings: Neo4jSettings) -> Driver:
    """The test database, emptied, with the schema applied."""
    wipe_graph(driver, neo4j_settings.database)
    apply_schema(driver, neo4j_settings.database)
    return driver


@pytest.fixture
def cli_env(neo4j_settings: Neo4jSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Neo4jSettings:
    """Environment for running `kgrec` commands against the test server (settings caches cleared)."""
    from etl.settings import get_etl_settings

    monkeypatch.setenv("NEO4J_URI", neo4j_settings.uri)
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_settings.password.get_secret_value())
    monkeypatch.setenv("NEO4J_HOME", str(neo4j_settings.home))
    monkeypatch.setenv("NEO4J_BOLT_PORT", str(neo4j_settings.bolt_port))
    monkeypatch.setenv("NEO4J_HTTP_PORT", str(neo4j_settings.http_port))
    monkeypatch.setenv("KGREC_REJECT_DIR", str(tmp_path / "rejects"))
    monkeypatch.setenv("KGREC_ARTIFACTS_DIR", str(tmp_path / "artifacts"))  # never the developer's models
    monkeypatch.setenv("KGREC_SNAPSHOTS_DIR", str(tmp_path / "snapshots"))
    get_neo4j_settings.cache_clear()
    get_etl_settings.cache_clear()
    yield neo4j_settings
    get_neo4j_settings.cache_clear()
    get_etl_settings.cache_clear()


def dataset_dir(name: str) -> Path:
    """A folder of :data:`DATASETS`; fails (never skips) when it is missing."""
    path = DATASETS / name
    if not path.is_dir():
        pytest.fail(f"dataset folder missing: {path} (set KGREC_DATASETS to the folder of the real datasets)")
    return path
