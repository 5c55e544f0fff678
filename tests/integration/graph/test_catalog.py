"""Every catalogued query compiles against the real database (EXPLAIN runs nothing)."""

import pytest
from neo4j import Driver

from graph import catalog


@pytest.mark.parametrize("name", sorted(catalog.all_queries()))
def test_catalogued_query_explains(clean_db: Driver, name: str) -> None:
    query = catalog.all_queries()[name]
    if "IN TRANSACTIONS" in query:  # EXPLAIN of CALL {} IN TRANSACTIONS needs an implicit transaction
        with clean_db.session() as session:
            session.run("EXPLAIN " + query).consume()
        return
    params = {"rows": [], "labels": ["Movie"]}
    clean_db.execute_query("EXPLAIN " + query, params)


def test_catalogue_constants_match_files() -> None:
    for name, text in catalog.all_queries().items():
        assert getattr(catalog, name) == text
