"""Learned embeddings in Neo4j: written back after a model is promoted, searched through a vector index.

The models score an item for a user by the dot product of their embeddings, while Neo4j's vector index
ranks by cosine (or Euclidean distance). :func:`mips_vectors` makes the two orders agree (the "extra
dimension" reduction of maximum inner product search, Bachrach et al., RecSys 2014): every item vector
gets one more component ``sqrt(M² − ‖v‖²)`` (``M`` = the largest item norm), so that all item vectors have
norm ``M``, and user vectors get a 0. Then ``cos(u', v') = u·v / (‖u‖ M)``: for one user, cosine order is
dot-product order, and the index's nearest neighbours are the model's best items. The index keeps float32
vectors (``vector.quantization.enabled: false``; Neo4j 5.26 quantizes by default, and its int8 scores swapped
items whose dot products differed by 0.1%): 4 bytes per dimension, 26 MB for 100,000 items of 65.

Nodes carry ``embedding`` (float32 array) and ``embeddingVersion`` (the artifact version). The index
``item_embedding`` is (re)created with the vectors' dimension; writing a new version clears vectors left
by another one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from neo4j import Driver, RoutingControl
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired
from pydantic import Field

from graph import catalog
from graph.recall import DEFAULT_K, Candidate, RecallFilters, TimingFn, _Caps, _caps, _recall
from schema.errors import ConfigError, DatabaseUnavailableError, DataError, KgrecError

log = logging.getLogger(__name__)

ITEM_INDEX = "item_embedding"
PROPERTY = "embedding"

#: ``progress(label, done, total)``.
ProgressFn = Callable[[str, int, int], None]


def mips_vectors(users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Augment user and item vectors by one dimension so that cosine order equals dot-product order.

    Args:
        users: ``[U, d]`` user embeddings.
        items: ``[I, d]`` item embeddings.

    Returns:
        ``([U, d+1], [I, d+1])`` float32; every item row has the same norm, user rows end in 0.
    """
    users = np.asarray(users, dtype=np.float64)
    items = np.asarray(items, dtype=np.float64)
    norms = np.linalg.norm(items, axis=1)
    top = float(norms.max()) if len(norms) else 1.0
    extra = np.sqrt(np.clip(top * top - norms * norms, 0.0, None))
    return (
        np.hstack([users, np.zeros((len(users), 1))]).astype(np.float32),
        np.hstack([items, extra[:, None]]).astype(np.float32),
    )


def ensure_vector_index(driver: Driver, dimensions: int, database: str = "neo4j") -> bool:
    """Create the item vector index for ``dimensions`` (drop and recreate it if its dimension differs).

    Returns:
        True when the index was (re)created.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    rows = _run(
        driver,
        "SHOW VECTOR INDEXES YIELD name, options WHERE name = $name RETURN options",
        {"name": ITEM_INDEX},
        database,
        "show vector index",
    )
    if rows:
        config = rows[0]["options"].get("indexConfig", {})
        current = config.get("vector.dimensions")
        if current == dimensions and config.get("vector.quantization.enabled") is False:
            return False
        log.info("vector index %s has %s dimensions (quantized: %s); recreating it with %d, unquantized", ITEM_INDEX,
                 current, config.get("vector.quantization.enabled"), dimensions)
        _run(driver, f"DROP INDEX {ITEM_INDEX} IF EXISTS", {}, database, "drop vector index", write=True)
    _run(
        driver,
        f"CREATE VECTOR INDEX {ITEM_INDEX} IF NOT EXISTS FOR (i:Item) ON i.{PROPERTY} "
        "OPTIONS {indexConfig: {`vector.dimensions`: $dims, `vector.similarity_function`: 'cosine', "
        "`vector.quantization.enabled`: false}}",
        {"dims": int(dimensions)},
        database,
        "create vector index",
        write=True,
    )
    return True


def write_embeddings(
    driver: Driver,
    user_ids: Sequence[str],
    user_vectors: np.ndarray,
    item_ids: Sequence[str],
    item_vectors: np.ndarray,
    version: str,
    database: str = "neo4j",
    *,
    batch_size: int = 1000,
    progress: ProgressFn | None = None,
) -> dict[str, int]:
    """Store a model's embeddings on the User and Item nodes and index the items.

    Args:
        driver: An open driver.
        user_ids, item_ids: External ids, row by row of the vectors.
        user_vectors, item_vectors: ``[U, d]``, ``[I, d]`` raw model embeddings (transformed here by
            :func:`mips_vectors`).
        version: Artifact version recorded as ``embeddingVersion``.
        database: Neo4j database.
        batch_size: Nodes per write transaction.
        progress: Optional callback ``(label, done, total)``.

    Returns:
        ``{"users": written, "items": written, "cleared": stale vectors removed}``.

    Raises:
        DataError: Ids and vectors do not line up, or dimensions differ.
        DatabaseUnavailableError: Neo4j is unreachable.
    """
    if len(user_ids) != len(user_vectors) or len(item_ids) != len(item_vectors):
        raise DataError("embeddings: ids and vectors do not line up")
    if user_vectors.ndim != 2 or item_vectors.ndim != 2 or user_vectors.shape[1] != item_vectors.shape[1]:
        raise DataError(f"embeddings: shapes {user_vectors.shape} and {item_vectors.shape} do not match")
    users, items = mips_vectors(user_vectors, item_vectors)
    ensure_vector_index(driver, items.shape[1], database)
    written = {"users": 0, "items": 0}
    for label, query, ids, vectors in (
        ("users", catalog.WRITE_USER_EMBEDDINGS, user_ids, users),
        ("items", catalog.WRITE_ITEM_EMBEDDINGS, item_ids, items),
    ):
        for start in range(0, len(ids), batch_size):
            rows = [
                {"id": str(i), "vector": v.tolist()}
                for i, v in zip(ids[start : start + batch_size], vectors[start : start + batch_size], strict=True)
            ]
            out = _run(driver, query, {"rows": rows, "version": version}, database, f"write {label} embeddings",
                       write=True)
            written[label] += int(out[0]["written"]) if out else 0
            if progress is not None:
                progress(label, min(start + batch_size, len(ids)), len(ids))
    cleared = _run(driver, catalog.CLEAR_STALE_EMBEDDINGS, {"version": version}, database, "clear stale embeddings",
                   write=True)
    written["cleared"] = int(cleared[0]["cleared"]) if cleared else 0
    _run(driver, "CALL db.awaitIndex($name, 300)", {"name": ITEM_INDEX}, database, "await vector index")
    log.info("embeddings %s written: %d users, %d items (%d stale cleared)", version, written["users"],
             written["items"], written["cleared"])
    return written


class EmbeddingCaps(_Caps):
    """Caps of :func:`recall_embedding`."""

    oversample: int = Field(4, ge=1, le=50, description="Neighbours read per wanted item (before filtering).")


def recall_embedding(
    driver: Driver,
    user_id: str,
    k: int = DEFAULT_K,
    filters: RecallFilters | None = None,
    database: str = "neo4j",
    *,
    on_timing: TimingFn | None = None,
    **caps: Any,
) -> list[Candidate]:
    """The items nearest to the user's learned embedding in the vector index (see the module docstring).

    Reads ``oversample · k`` neighbours (at least ``k + 50``) so that enough remain after removing the user's
    own items and the filtered ones. Users without an embedding (not in the promoted model) get nothing.
    Each candidate carries one path-less explanation ("People with tastes like yours liked it").
    """
    limits = _caps(EmbeddingCaps, caps)
    fetch = max(k * limits.oversample, k + 50)
    return _recall(
        "embedding", catalog.RECALL_EMBEDDING, limits, driver, {"userId": user_id, "fetch": fetch}, k, filters,
        database, on_timing,
    )


def _run(driver: Driver, query: str, params: dict[str, Any], database: str, what: str,
         *, write: bool = False) -> list[Any]:
    started = time.perf_counter()
    try:
        records, _, _ = driver.execute_query(
            query, params, database_=database, routing_=RoutingControl.WRITE if write else RoutingControl.READ
        )
    except (ServiceUnavailable, SessionExpired) as exc:
        raise DatabaseUnavailableError(f"Neo4j is unreachable ({what}): {' '.join(str(exc).split())}") from exc
    except Neo4jError as exc:
        if exc.code and "ProcedureNotFound" in exc.code:
            raise ConfigError(f"{what}: this Neo4j has no vector support ({exc.code}); Neo4j 5.13+ is needed") from exc
        raise KgrecError(f"Neo4j refused to {what}: {exc}") from exc
    log.debug("%s took %.3f s", what, time.perf_counter() - started)
    return records
