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
``item_embedding`` (DDL: ``schema/ddl.py``) is (re)created with the vectors' dimension; writing a new version
clears vectors left by another one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from neo4j import Driver, RoutingControl
from neo4j.exceptions import Neo4jError
from pydantic import Field

from graph import catalog
from graph.errors import database_errors
from graph.query import Caps
from graph.recall import CypherRecall, History
from schema.ddl import VECTOR_INDEX, await_vector_index, ensure_vector_index
from schema.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: The name of the item vector index (its DDL: ``schema/ddl.py``).
ITEM_INDEX = VECTOR_INDEX

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
    with _errors("create vector index"):
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
            out = _write(driver, query, {"rows": rows, "version": version}, database, f"write {label} embeddings")
            written[label] += int(out[0]["written"]) if out else 0
            if progress is not None:
                progress(label, min(start + batch_size, len(ids)), len(ids))
    cleared = _write(driver, catalog.CLEAR_STALE_EMBEDDINGS, {"version": version}, database, "clear stale embeddings")
    written["cleared"] = int(cleared[0]["cleared"]) if cleared else 0
    with _errors("await vector index"):
        await_vector_index(driver, database)
    log.info(
        "embeddings %s written: %d users, %d items (%d stale cleared)",
        version,
        written["users"],
        written["items"],
        written["cleared"],
    )
    return written


class EmbeddingCaps(Caps):
    """Caps of :data:`recall_embedding`."""

    oversample: int = Field(4, ge=1, le=50, description="Neighbours read per wanted item (before filtering).")


class _EmbeddingRecall(CypherRecall[EmbeddingCaps]):
    def prepare(
        self, caps: EmbeddingCaps, k: int, history: History | None = None
    ) -> tuple[EmbeddingCaps, dict[str, Any]]:
        """The query reads ``oversample · k`` neighbours, at least ``k + 50``."""
        return caps, {"fetch": max(k * caps.oversample, k + 50)}


recall_embedding = _EmbeddingRecall(
    "embedding",
    catalog.RECALL_EMBEDDING,
    EmbeddingCaps,
    doc="""
    The items nearest to the user's learned embedding in the vector index (see the module docstring).

    Called as a :class:`graph.recall.RecallStrategy`. Reads ``oversample · k`` neighbours (at least ``k + 50``) so
    that enough remain after removing the user's own items and the filtered ones. Users without an embedding (not
    in the promoted model) get nothing. Each candidate carries one path-less explanation ("People with tastes like
    yours liked it").
    """,
)


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """kgrec's errors for the driver's (:func:`graph.errors.database_errors`); a missing procedure is a ConfigError."""
    with database_errors(what, refused=f"Neo4j refused to {what}"):
        try:
            yield
        except Neo4jError as exc:
            if exc.code and "ProcedureNotFound" in exc.code:
                raise ConfigError(
                    f"{what}: this Neo4j has no vector support ({exc.code}); Neo4j 5.13+ is needed"
                ) from exc
            raise


def _write(driver: Driver, query: str, params: dict[str, Any], database: str, what: str) -> list[Any]:
    started = time.perf_counter()
    with _errors(what):
        records, _, _ = driver.execute_query(query, params, database_=database, routing_=RoutingControl.WRITE)
    log.debug("%s took %.3f s", what, time.perf_counter() - started)
    return records
