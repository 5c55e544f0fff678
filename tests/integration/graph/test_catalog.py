"""Every catalogued query compiles against the real database (EXPLAIN runs nothing)."""

import pytest
from neo4j import Driver

from graph import catalog, recall

#: Parameters of the recall queries, with the types the application sends (caps at their defaults).
RECALL_PARAMS = {
    "userId": "42",
    "itemId": "1",
    "k": 20,
    **recall.RecallFilters().to_params(),
    **recall.CollaborativeCaps().to_params(),
    **recall.KnowledgeCaps().to_params(),
    **recall.SocialCaps().to_params(),
    **recall.PopularityCaps().to_params(),
    **recall.SimilarCaps().to_params(),
}


@pytest.mark.parametrize("name", sorted(catalog.all_queries()))
def test_catalogued_query_explains(clean_db: Driver, name: str) -> None:
    query = catalog.all_queries()[name]
    if "IN TRANSACTIONS" in query:  # EXPLAIN of CALL {} IN TRANSACTIONS needs an implicit transaction
        with clean_db.session() as session:
            session.run("EXPLAIN " + query).consume()
        return
    params = {"rows": [], "labels": ["Movie"], "fetch": 80, "version": "v1", **RECALL_PARAMS}
    clean_db.execute_query("EXPLAIN " + query, params)


def test_catalogue_constants_match_files() -> None:
    for name, text in catalog.all_queries().items():
        assert getattr(catalog, name) == text
