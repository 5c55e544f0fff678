import socket

import pytest
from neo4j import GraphDatabase
from pydantic import SecretStr

from graph import reads
from graph.driver import create_driver, server_info
from graph.settings import Neo4jSettings
from schema.errors import DatabaseUnavailableError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_neo4j_gives_clear_error() -> None:
    settings = Neo4jSettings(uri=f"bolt://127.0.0.1:{_free_port()}")
    with pytest.raises(DatabaseUnavailableError, match="not reachable.*kgrec neo4j start"):
        create_driver(settings)


def test_wrong_password_gives_clear_error(neo4j_settings: Neo4jSettings) -> None:
    settings = neo4j_settings.model_copy(update={"password": SecretStr("definitely-wrong")})
    with pytest.raises(DatabaseUnavailableError, match="rejected the credentials"):
        create_driver(settings)


@pytest.mark.parametrize("scheme", ["bolt", "neo4j", "bolt+ssc", "neo4j+ssc"])
def test_every_uri_scheme_reaches_the_server_or_says_why(neo4j_settings: Neo4jSettings, scheme: str) -> None:
    """Direct and routing schemes read the graph; the TLS schemes are refused with the reason (the local server
    speaks plain Bolt), never with a raw driver error."""
    settings = neo4j_settings.model_copy(update={"uri": f"{scheme}://127.0.0.1:{neo4j_settings.bolt_port}"})
    if scheme.endswith("+ssc"):
        with pytest.raises(DatabaseUnavailableError, match="not reachable"):
            create_driver(settings)
        return
    driver = create_driver(settings)
    try:
        assert server_info(driver, settings.database)["version"].startswith("5.")
    finally:
        driver.close()


def test_a_refused_login_after_start_is_unavailable_with_what_to_check(neo4j_settings: Neo4jSettings) -> None:
    """A driver built without the connectivity check (the API's) meets the refusal on its first query: it reads as
    Neo4j being unusable, with the settings to check, never as a refused statement (an unknown user, so that the
    failed logins do not lock the suite's own user out)."""
    driver = GraphDatabase.driver(neo4j_settings.uri, auth=("kgrec-no-such-user", "not-the-password"))
    try:
        with pytest.raises(DatabaseUnavailableError, match="rejected the login.*NEO4J_USER and NEO4J_PASSWORD"):
            reads.user_exists(driver, "u1")
    finally:
        driver.close()
