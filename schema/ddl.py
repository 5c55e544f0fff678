"""Constraints and indexes of the canonical model, applied idempotently, and the item vector index.

Every statement uses ``IF NOT EXISTS`` so that :func:`apply_schema` can run before every load. The vector index
of the learned item embeddings (``graph/embeddings.py``) is not part of :func:`apply_schema`: its dimension is the
model's, so :func:`ensure_vector_index` (re)creates it when embeddings are written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from schema.errors import DatabaseUnavailableError
from schema.model import NODE_KEYS, NODE_PROPERTIES, RELATIONSHIPS, Label

if TYPE_CHECKING:
    from neo4j import Driver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchemaStatement:
    """One named DDL statement."""

    name: str
    kind: str  # "constraint" | "index"
    cypher: str


#: Uniqueness constraints on every node key (each also backs a range index for lookups).
CONSTRAINTS: tuple[SchemaStatement, ...] = (
    SchemaStatement(
        "user_user_id",
        "constraint",
        "CREATE CONSTRAINT user_user_id IF NOT EXISTS FOR (n:User) REQUIRE n.userId IS UNIQUE",
    ),
    SchemaStatement(
        "item_item_id",
        "constraint",
        "CREATE CONSTRAINT item_item_id IF NOT EXISTS FOR (n:Item) REQUIRE n.itemId IS UNIQUE",
    ),
    SchemaStatement(
        "genre_name",
        "constraint",
        "CREATE CONSTRAINT genre_name IF NOT EXISTS FOR (n:Genre) REQUIRE n.name IS UNIQUE",
    ),
    SchemaStatement(
        "tag_name",
        "constraint",
        "CREATE CONSTRAINT tag_name IF NOT EXISTS FOR (n:Tag) REQUIRE n.name IS UNIQUE",
    ),
    SchemaStatement(
        "person_person_id",
        "constraint",
        "CREATE CONSTRAINT person_person_id IF NOT EXISTS FOR (n:Person) REQUIRE n.personId IS UNIQUE",
    ),
    SchemaStatement(
        "attribute_attribute_id",
        "constraint",
        "CREATE CONSTRAINT attribute_attribute_id IF NOT EXISTS FOR (n:Attribute) REQUIRE n.attributeId IS UNIQUE",
    ),
    SchemaStatement(
        "recommendation_recommendation_id",
        "constraint",
        "CREATE CONSTRAINT recommendation_recommendation_id IF NOT EXISTS FOR (n:Recommendation) "
        "REQUIRE n.recommendationId IS UNIQUE",
    ),
)

#: Secondary indexes used by lookups: titles and names (exact and full-text), years, interaction time.
INDEXES: tuple[SchemaStatement, ...] = (
    SchemaStatement("item_title", "index", "CREATE INDEX item_title IF NOT EXISTS FOR (n:Item) ON (n.title)"),
    SchemaStatement("item_year", "index", "CREATE INDEX item_year IF NOT EXISTS FOR (n:Item) ON (n.year)"),
    # the run-time catalogue's restricted and added items (graph/queries/restricted_items.cypher)
    SchemaStatement("item_hidden", "index", "CREATE INDEX item_hidden IF NOT EXISTS FOR (n:Item) ON (n.hidden)"),
    SchemaStatement(
        "item_available_from",
        "index",
        "CREATE INDEX item_available_from IF NOT EXISTS FOR (n:Item) ON (n.availableFrom)",
    ),
    SchemaStatement(
        "item_available_until",
        "index",
        "CREATE INDEX item_available_until IF NOT EXISTS FOR (n:Item) ON (n.availableUntil)",
    ),
    SchemaStatement("item_added_at", "index", "CREATE INDEX item_added_at IF NOT EXISTS FOR (n:Item) ON (n.addedAt)"),
    # pruning recorded lists past KGREC_IMPRESSIONS_RETENTION_DAYS (graph/queries/prune_recommendations.cypher)
    SchemaStatement(
        "recommendation_shown_at",
        "index",
        "CREATE INDEX recommendation_shown_at IF NOT EXISTS FOR (n:Recommendation) ON (n.shownAt)",
    ),
    SchemaStatement("person_name", "index", "CREATE INDEX person_name IF NOT EXISTS FOR (n:Person) ON (n.name)"),
    SchemaStatement(
        "interacted_timestamp",
        "index",
        "CREATE INDEX interacted_timestamp IF NOT EXISTS FOR ()-[r:INTERACTED]-() ON (r.timestamp)",
    ),
    SchemaStatement(
        "search_names",
        "index",
        "CREATE FULLTEXT INDEX search_names IF NOT EXISTS FOR (n:Item|Person|Genre|Tag) ON EACH [n.title, n.name]",
    ),
)

ALL_STATEMENTS: tuple[SchemaStatement, ...] = CONSTRAINTS + INDEXES

#: The vector index of the items' learned embeddings (the ``embedding`` property).
VECTOR_INDEX = "item_embedding"
#: Its options (dimension, similarity function, quantization): no row when it does not exist.
SHOW_VECTOR_INDEX = "SHOW VECTOR INDEXES YIELD name, options WHERE name = $name RETURN options"
DROP_VECTOR_INDEX = f"DROP INDEX {VECTOR_INDEX} IF EXISTS"
#: Cosine over float32 vectors of ``$dims`` dimensions. Neo4j 5.26 quantizes by default, and its int8 scores swapped
#: items whose dot products differed by 0.1%: quantization is off.
CREATE_VECTOR_INDEX = SchemaStatement(
    VECTOR_INDEX,
    "index",
    f"CREATE VECTOR INDEX {VECTOR_INDEX} IF NOT EXISTS FOR (i:Item) ON i.embedding "
    "OPTIONS {indexConfig: {`vector.dimensions`: $dims, `vector.similarity_function`: 'cosine', "
    "`vector.quantization.enabled`: false}}",
)
AWAIT_INDEX = "CALL db.awaitIndex($name, 300)"
#: The keyed lookup of the (user, item) ``SHOWN`` relationships that graphs recorded before the exposure arrays
#: (``record_impressions.cypher``) held; ``graph.writers.convert_shown`` drops it once they are converted.
SHOWN_PAIR_INDEX = "shown_pair"
DROP_SHOWN_PAIR_INDEX = f"DROP INDEX {SHOWN_PAIR_INDEX} IF EXISTS"


def apply_schema(driver: Driver, database: str = "neo4j", *, wait_seconds: int = 300) -> list[str]:
    """Create every constraint and index that does not exist yet, then wait until they are online.

    Args:
        driver: An open Neo4j driver.
        database: Target database name.
        wait_seconds: How long to wait for new indexes to come online.

    Returns:
        Names of the statements that created something (empty when the schema was already complete).

    Raises:
        DatabaseUnavailableError: Neo4j could not be reached.
    """
    from neo4j.exceptions import ServiceUnavailable

    try:
        existing = _existing_names(driver, database)
        created: list[str] = []
        for statement in ALL_STATEMENTS:
            if statement.name in existing:
                continue
            driver.execute_query(statement.cypher, database_=database)
            created.append(statement.name)
        if created:
            driver.execute_query("CALL db.awaitIndexes($seconds)", {"seconds": int(wait_seconds)}, database_=database)
            log.info("schema: created %s", ", ".join(created))
        else:
            log.info("schema: already complete (%d constraints, %d indexes)", len(CONSTRAINTS), len(INDEXES))
        return created
    except ServiceUnavailable as exc:
        raise DatabaseUnavailableError(f"cannot apply the schema, Neo4j is unreachable: {exc}") from exc


def _existing_names(driver: Driver, database: str) -> set[str]:
    constraints, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name", database_=database)
    indexes, _, _ = driver.execute_query("SHOW INDEXES YIELD name", database_=database)
    return {r["name"] for r in constraints} | {r["name"] for r in indexes}


def ensure_vector_index(driver: Driver, dimensions: int, database: str = "neo4j") -> bool:
    """Create the item vector index for ``dimensions``; drop and recreate it if its dimension differs or it quantizes.

    Returns:
        True when the index was (re)created.

    Raises:
        neo4j.exceptions.DriverError, neo4j.exceptions.Neo4jError: As the driver raises them (the caller,
            ``graph/embeddings.py``, turns them into kgrec's errors).
    """
    rows, _, _ = driver.execute_query(SHOW_VECTOR_INDEX, {"name": VECTOR_INDEX}, database_=database, routing_="r")
    if rows:
        config = rows[0]["options"].get("indexConfig", {})
        current = config.get("vector.dimensions")
        if current == dimensions and config.get("vector.quantization.enabled") is False:
            return False
        log.info(
            "vector index %s has %s dimensions (quantized: %s); recreating it with %d, unquantized",
            VECTOR_INDEX,
            current,
            config.get("vector.quantization.enabled"),
            dimensions,
        )
        driver.execute_query(DROP_VECTOR_INDEX, {}, database_=database, routing_="w")
    driver.execute_query(CREATE_VECTOR_INDEX.cypher, {"dims": int(dimensions)}, database_=database, routing_="w")
    return True


def await_vector_index(driver: Driver, database: str = "neo4j") -> None:
    """Wait (up to 300 s) until the item vector index is online with every vector written so far.

    Raises:
        neo4j.exceptions.DriverError, neo4j.exceptions.Neo4jError: As the driver raises them.
    """
    driver.execute_query(AWAIT_INDEX, {"name": VECTOR_INDEX}, database_=database, routing_="r")


def describe_model() -> str:
    """Return the canonical model as readable text (for ``kgrec schema show``)."""
    lines = ["Nodes"]
    for label, props in NODE_PROPERTIES.items():
        key = NODE_KEYS.get(label)
        shown = ", ".join(f"{p} (unique key)" if p == key else p for p in props)
        lines.append(f"  (:{label} {{{shown}}})")
    lines.append("  :Item may also carry a domain label: :Movie, :Artist; :Person carries :Actor and/or :Director")
    lines.append("Relationships")
    for start, rel, end, props in RELATIONSHIPS:
        suffix = f" {{{', '.join(props)}}}" if props else ""
        lines.append(f"  (:{start})-[:{rel}{suffix}]->(:{end})")
    lines.append("Constraints")
    lines.extend(f"  {s.name}: {s.cypher}" for s in CONSTRAINTS)
    lines.append("Indexes")
    lines.extend(f"  {s.name}: {s.cypher}" for s in INDEXES)
    return "\n".join(lines)


__all__ = [
    "ALL_STATEMENTS",
    "CONSTRAINTS",
    "CREATE_VECTOR_INDEX",
    "INDEXES",
    "VECTOR_INDEX",
    "Label",
    "SchemaStatement",
    "apply_schema",
    "await_vector_index",
    "describe_model",
    "ensure_vector_index",
]
