import socket

import pytest
from pydantic import SecretStr

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
