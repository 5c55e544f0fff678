import socket

import pytest
from neo4j import GraphDatabase
from pydantic import SecretStr

from graph import reads
from graph.driver import create_driver
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
