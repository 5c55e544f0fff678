from neo4j import Driver

from graph.settings import Neo4jSettings
from schema.ddl import ALL_STATEMENTS, CONSTRAINTS, apply_schema


def test_apply_schema_is_idempotent(clean_db: Driver, neo4j_settings: Neo4jSettings) -> None:
    assert apply_schema(clean_db, neo4j_settings.database) == []  # clean_db applied it already
    constraints, _, _ = clean_db.execute_query("SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties")
    by_name = {r["name"]: r for r in constraints}
    assert {s.name for s in CONSTRAINTS} <= by_name.keys()
    assert by_name["user_user_id"]["type"] == "UNIQUENESS"
    assert by_name["item_item_id"]["properties"] == ["itemId"]
    indexes, _, _ = clean_db.execute_query("SHOW INDEXES YIELD name, state")
    states = {r["name"]: r["state"] for r in indexes}
    assert all(states[s.name] == "ONLINE" for s in ALL_STATEMENTS)


def test_apply_schema_recreates_a_dropped_index(clean_db: Driver, neo4j_settings: Neo4jSettings) -> None:
    clean_db.execute_query("DROP INDEX item_title")
    assert apply_schema(clean_db, neo4j_settings.database) == ["item_title"]


def test_uniqueness_constraint_refuses_duplicate_user(clean_db: Driver) -> None:
    import pytest
    from neo4j.exceptions import ConstraintError

    clean_db.execute_query("CREATE (:User {userId: 'dup'})")
    with pytest.raises(ConstraintError):
        clean_db.execute_query("CREATE (:User {userId: 'dup'})")
