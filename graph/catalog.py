"""The query catalogue: every Cypher statement of the project, one ``queries/<name>.cypher`` file each.

A constant's name is its file name in upper case (``UPSERT_USERS`` ↔ ``upsert_users.cypher``). The
files are package data, read once when this module is imported; no query text lives in Python.
"""

from __future__ import annotations

from importlib import resources


def _load(name: str) -> str:
    text = resources.files("graph.queries").joinpath(f"{name}.cypher").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
    return body.strip()


def all_queries() -> dict[str, str]:
    """Return every catalogued query by constant name (used by the EXPLAIN test)."""
    names = sorted(
        p.name[: -len(".cypher")] for p in resources.files("graph.queries").iterdir() if p.name.endswith(".cypher")
    )
    return {name.upper(): _load(name) for name in names}


UPSERT_USERS = _load("upsert_users")
UPSERT_ITEMS = _load("upsert_items")
UPSERT_INTERACTIONS = _load("upsert_interactions")
UPSERT_INTERACTION_GROUPS = _load("upsert_interaction_groups")
LOAD_INTERACTIONS = _load("load_interactions")
UPSERT_ITEM_GENRES = _load("upsert_item_genres")
UPSERT_ACTED_IN = _load("upsert_acted_in")
UPSERT_DIRECTED = _load("upsert_directed")
UPSERT_ITEM_TAGS = _load("upsert_item_tags")
UPSERT_FOLLOWS = _load("upsert_follows")
UPSERT_ITEM_ATTRIBUTES = _load("upsert_item_attributes")
UPSERT_USER_ATTRIBUTES = _load("upsert_user_attributes")
GRAPH_COUNTS = _load("graph_counts")
ITEM_IDS = _load("item_ids")
WIPE_GRAPH = _load("wipe_graph")
DELETE_USERS = _load("delete_users")
SERVER_INFO = _load("server_info")
GRAPH_ID = _load("graph_id")
CREATE_USER = _load("create_user")
USER_PREFERRED_GENRES = _load("user_preferred_genres")
ITEM_TITLES = _load("item_titles")
GENRE_NAMES = _load("genre_names")
ALL_GENRES = _load("all_genres")
ATTRIBUTE_IDS = _load("attribute_ids")
EXPORT_INTERACTIONS = _load("export_interactions")
EXPORT_ITEMS = _load("export_items")
EXPORT_ITEM_GENRES = _load("export_item_genres")
EXPORT_ITEM_PEOPLE = _load("export_item_people")
EXPORT_ITEM_TAGS = _load("export_item_tags")
EXPORT_FOLLOWS = _load("export_follows")
EXPORT_USER_GENRES = _load("export_user_genres")
EXPORT_ITEM_ATTRIBUTES = _load("export_item_attributes")
EXPORT_USER_ATTRIBUTES = _load("export_user_attributes")
RECALL_COLLABORATIVE = _load("recall_collaborative")
RECALL_KNOWLEDGE = _load("recall_knowledge")
RECALL_SOCIAL = _load("recall_social")
RECALL_POPULARITY = _load("recall_popularity")
POPULARITY_WINDOW = _load("popularity_window")
SIMILAR_ITEMS = _load("similar_items")
USER_EXISTS = _load("user_exists")
ITEM_EXISTS = _load("item_exists")
WRITE_ITEM_EMBEDDINGS = _load("write_item_embeddings")
WRITE_USER_EMBEDDINGS = _load("write_user_embeddings")
CLEAR_STALE_EMBEDDINGS = _load("clear_stale_embeddings")
RECALL_EMBEDDING = _load("recall_embedding")
EXPLAIN_ITEMS = _load("explain_items")
USER_CONTEXT = _load("user_context")
USER_FINGERPRINT = _load("user_fingerprint")
MOST_ACTIVE_USERS = _load("most_active_users")
CATALOGUE_ITEM = _load("catalogue_item")
CREATE_ITEM = _load("create_item")
UPDATE_ITEM = _load("update_item")
RESTRICTED_ITEMS = _load("restricted_items")
NEW_ARRIVALS = _load("new_arrivals")
RECORD_IMPRESSIONS = _load("record_impressions")
PRUNE_RECOMMENDATIONS = _load("prune_recommendations")
FEEDBACK_PAIR = _load("feedback_pair")
RECORD_SKIP = _load("record_skip")
SKIP_PAIR = _load("skip_pair")
CONVERT_SHOWN = _load("convert_shown")
ATTRIBUTE_FEEDBACK = _load("attribute_feedback")
VARIANT_REPORT = _load("variant_report")
ITEM_EXPOSURE = _load("item_exposure")


#: The statements that write; every other one only reads. A write runs in a write transaction (``execute_write``,
#: ``routing_="w"``, a WRITE session), a read in a read transaction (``execute_read``, ``routing_="r"``, a READ
#: session), so that through a ``neo4j://`` URI a cluster sends reads to its secondaries and writes to the leader.
#: tests/integration/graph/test_access_modes.py checks this set against Neo4j's own query type, and every test checks
#: each catalogued statement it runs against it (tests/access_modes.py).
WRITES: frozenset[str] = frozenset(
    {
        "ATTRIBUTE_FEEDBACK",
        "CLEAR_STALE_EMBEDDINGS",
        "CONVERT_SHOWN",
        "CREATE_ITEM",
        "CREATE_USER",
        "DELETE_USERS",
        "FEEDBACK_PAIR",
        "LOAD_INTERACTIONS",
        "PRUNE_RECOMMENDATIONS",
        "RECORD_IMPRESSIONS",
        "RECORD_SKIP",
        "SKIP_PAIR",
        "UPDATE_ITEM",
        "UPSERT_ACTED_IN",
        "UPSERT_DIRECTED",
        "UPSERT_FOLLOWS",
        "UPSERT_INTERACTION_GROUPS",
        "UPSERT_INTERACTIONS",
        "UPSERT_ITEM_ATTRIBUTES",
        "UPSERT_ITEM_GENRES",
        "UPSERT_ITEM_TAGS",
        "UPSERT_ITEMS",
        "UPSERT_USER_ATTRIBUTES",
        "UPSERT_USERS",
        "WIPE_GRAPH",
        "WRITE_ITEM_EMBEDDINGS",
        "WRITE_USER_EMBEDDINGS",
    }
)
