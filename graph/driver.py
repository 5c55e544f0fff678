"""Opening a Neo4j driver with errors that say what to do."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import AuthError, ServiceUnavailable

from graph import catalog
from graph.errors import reason
from graph.settings import Neo4jSettings
from schema.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)


def create_driver(settings: Neo4jSettings, *, verify: bool = True) -> Driver:
    """Create a driver for ``settings.uri`` and, by default, check that the server answers.

    Args:
        settings: Where Neo4j is and which credentials to use.
        verify: Check connectivity and credentials now rather than at the first query.

    Returns:
        An open driver; the caller closes it.

    Raises:
        DatabaseUnavailableError: The server is unreachable or rejects the credentials.
    """
    driver = GraphDatabase.driver(
        settings.uri,
        auth=(settings.user, settings.password.get_secret_value()),
        connection_timeout=5.0,
        max_transaction_retry_time=15.0,
        notifications_min_severity="OFF",
    )
    if verify:
        try:
            verify_driver(driver, settings)
        except DatabaseUnavailableError:
            driver.close()
            raise
    return driver


def verify_driver(driver: Driver, settings: Neo4jSettings) -> None:
    """Raise :class:`DatabaseUnavailableError` with a helpful message unless Neo4j answers a query."""
    try:
        driver.verify_connectivity()  # fails fast; a query would be retried for max_transaction_retry_time
        driver.execute_query("RETURN 1", database_=settings.database, routing_="r")
    except AuthError as exc:
        raise DatabaseUnavailableError(
            f"Neo4j at {settings.uri} rejected the credentials of user {settings.user!r}: "
            "check NEO4J_USER / NEO4J_PASSWORD"
        ) from exc
    except (ServiceUnavailable, OSError) as exc:
        raise DatabaseUnavailableError(
            f"Neo4j is not reachable at {settings.uri} ({exc.__class__.__name__}: {reason(exc)}). "
            "Start the local server with `kgrec neo4j start`, or set NEO4J_URI to a running server."
        ) from exc


@contextmanager
def open_driver(settings: Neo4jSettings) -> Iterator[Driver]:
    """Context manager around :func:`create_driver` that always closes the driver."""
    driver = create_driver(settings)
    try:
        yield driver
    finally:
        driver.close()


def server_info(driver: Driver, database: str = "neo4j") -> dict[str, str]:
    """Return ``{name, version, edition}`` of the connected DBMS."""
    records, _, _ = driver.execute_query(catalog.SERVER_INFO, database_=database, routing_="r")
    return dict(records[0]) if records else {}
