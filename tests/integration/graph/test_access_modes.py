"""Reads run in read transactions and writes in write transactions, through every URI scheme of the local server.

graph/catalog.py's ``WRITES`` names the statements that write; Neo4j's own query type (EXPLAIN) must agree with it,
and the suite-wide spy (tests/fixtures/access_modes.py, checked after every test by tests/conftest.py) holds each
call to it. Here: the catalogue against Neo4j, the spy catching a read sent in a write transaction, and the graph
layer's reads and writes seen in their modes through ``neo4j://`` and ``bolt://``.
"""

from __future__ import annotations

import pytest
from neo4j import READ_ACCESS, WRITE_ACCESS, Driver

from graph import catalog, recall
from graph.driver import create_driver
from graph.explain import explain_items
from graph.export import export_graph
from graph.items import create_item, read_restricted_items
from graph.reads import item_exists, most_active_users, user_context, user_exists, user_fingerprint
from graph.settings import Neo4jSettings
from graph.writers import BatchWriter, write_interactions, write_items, write_users
from schema.rows import InteractionRow, ItemRow, UserRow
from tests.fixtures.access_modes import AccessModes
from tests.integration.graph.test_catalog import RECALL_PARAMS

#: create_item.cypher's parameters for a plain item (no traits, no window), added now.
NEW_ITEM = dict.fromkeys(("year", "labels", "hidden", "availableFrom", "availableUntil"), None) | {
    "genres": [],
    "people": [],
    "tags": [],
    "attributes": [],
    "addedAt": 1_700_000_000,
}


def _query_type(driver: Driver, query: str) -> str:
    params = {"rows": [], "labels": ["Movie"], "fetch": 80, "version": "v1", **RECALL_PARAMS}
    with driver.session() as session:  # an implicit transaction: EXPLAIN of CALL {} IN TRANSACTIONS needs one
        return session.run("EXPLAIN " + query, params).consume().query_type


def test_the_catalogue_of_writes_is_neo4js_own(clean_db: Driver) -> None:
    kinds = {name: _query_type(clean_db, text) for name, text in catalog.all_queries().items()}
    assert set(kinds.values()) <= {"r", "w", "rw", "s"}
    # "s": a DBMS procedure (server_info's dbms.components()), which any member of a cluster answers: a read
    reads = {name for name, kind in kinds.items() if kind in ("r", "s")}
    assert reads, "no read statement found"
    assert catalog.WRITES == set(kinds) - reads, (
        "graph/catalog.py WRITES must name exactly the statements Neo4j says write: "
        f"missing {sorted(set(kinds) - reads - catalog.WRITES)}, not writes {sorted(catalog.WRITES & reads)}"
    )


def test_a_read_in_a_write_transaction_is_caught(clean_db: Driver, access_modes: AccessModes) -> None:
    since = access_modes.mark()
    clean_db.execute_query(catalog.USER_EXISTS, {"userId": "x"}, routing_="w")
    with clean_db.session() as session:  # a WRITE session's auto-commit statement
        session.run(catalog.ITEM_EXISTS, {"itemId": "x"}).consume()
    wrong = access_modes.wrong(since)
    access_modes.forget(since)  # broken on purpose: not this test's failure
    assert wrong == ["USER_EXISTS in WRITE", "ITEM_EXISTS in WRITE"]


@pytest.mark.parametrize("scheme", ["neo4j", "bolt"])
def test_graph_reads_and_writes_run_in_their_modes(
    clean_db: Driver, neo4j_settings: Neo4jSettings, access_modes: AccessModes, scheme: str
) -> None:
    address = neo4j_settings.uri.split("://", 1)[1]
    settings = neo4j_settings.model_copy(update={"uri": f"{scheme}://{address}"})
    with create_driver(settings) as driver:
        since = access_modes.mark()
        writer = BatchWriter(driver)
        write_users(writer, [UserRow(user_id="u1"), UserRow(user_id="u2")])
        write_items(writer, [ItemRow(item_id=i, title=i.upper()) for i in ("a", "b", "c")])
        write_interactions(
            writer,
            [
                InteractionRow(user_id=u, item_id=i, rating=5.0, timestamp=100)
                for u, i in (("u1", "a"), ("u2", "a"), ("u2", "b"))
            ],
        )
        create_item(driver, {**NEW_ITEM, "itemId": "new", "title": "New"})
        assert user_exists(driver, "u1") and item_exists(driver, "b")
        context = user_context(driver, "u1")
        assert context is not None and user_fingerprint(driver, "u1") == context.fingerprint
        assert most_active_users(driver, 1) == ["u2"]
        assert [c.item_id for c in recall.STRATEGIES["collaborative"](driver, "u1", k=5)] == ["b"]
        assert set(explain_items(driver, "u1", ["b"])) == {"b"}
        assert [r.item_id for r in read_restricted_items(driver)] == ["new"]
        assert export_graph(driver).interactions.shape[0] == 3
        calls = set(access_modes.calls[since:])
    wanted = {
        ("UPSERT_USERS", WRITE_ACCESS),
        ("UPSERT_INTERACTIONS", WRITE_ACCESS),
        ("CREATE_ITEM", WRITE_ACCESS),
        ("USER_EXISTS", READ_ACCESS),
        ("USER_CONTEXT", READ_ACCESS),
        ("USER_FINGERPRINT", READ_ACCESS),
        ("MOST_ACTIVE_USERS", READ_ACCESS),
        ("RECALL_COLLABORATIVE", READ_ACCESS),
        ("EXPLAIN_ITEMS", READ_ACCESS),
        ("RESTRICTED_ITEMS", READ_ACCESS),
        ("EXPORT_INTERACTIONS", READ_ACCESS),
    }
    assert wanted <= calls, f"not seen in their modes: {sorted(wanted - calls)}"
    assert access_modes.wrong(since) == []
