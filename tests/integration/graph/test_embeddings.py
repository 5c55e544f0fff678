"""Embeddings written to Neo4j and searched through its vector index, on the real server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from neo4j import Driver

from etl.load import load_dataset
from graph.embeddings import ITEM_INDEX, mips_vectors, recall_embedding, write_embeddings
from graph.recall import RecallFilters
from tests.fixtures import graphs

ITEMS = ["c1", "c2", "c3", "d1", "d2", "d3"]


def test_mips_vectors_turn_dot_order_into_cosine_order() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(20, 8)), rng.normal(size=(50, 8)) * rng.uniform(0.1, 3, size=(50, 1))
    u, v = mips_vectors(users, items)
    norms = np.linalg.norm(v, axis=1)
    assert np.allclose(norms, norms[0], rtol=1e-5)
    cosine = (u @ v.T) / (np.linalg.norm(u, axis=1)[:, None] * norms[None, :])
    for row in range(20):
        assert list(np.argsort(-cosine[row])[:10]) == list(np.argsort(-(users[row] @ items.T))[:10])


def _vectors(dim: int = 4) -> tuple[list[str], np.ndarray, np.ndarray]:
    """a1 likes comedies most, d-items least; item norms differ so that cosine alone would rank differently."""
    users = ["a1", "a2", "b1"]
    user_vecs = np.array([[1.0, 0.0, 0.0, 0.0], [0.9, 0.1, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])[:, :dim]
    item_vecs = np.array(
        [
            [0.5, 0.0, 0.0, 0.0],  # c1: seen by a1
            [0.4, 0.0, 0.0, 0.0],  # c2: seen by a1
            [3.0, 2.0, 0.0, 0.0],  # c3: large norm, best dot product for a1 (3.0)
            [0.9, 0.0, 0.1, 0.0],  # d1: cosine ~0.99 with a1 but dot 0.9
            [0.1, 1.0, 0.0, 0.0],  # d2
            [-1.0, 0.0, 0.0, 1.0],  # d3: negative for a1
        ]
    )[:, :dim]
    return users, user_vecs, item_vecs


def test_write_embeddings_and_recall_by_dot_product(clean_db: Driver, tmp_path: Path) -> None:
    load_dataset(clean_db, graphs.two_communities(), reject_dir=tmp_path)
    users, user_vecs, item_vecs = _vectors()
    written = write_embeddings(clean_db, users, user_vecs, ITEMS, item_vecs, "v1")
    assert written["users"] == 3 and written["items"] == 6

    found = recall_embedding(clean_db, "a1", k=4)
    # a1 interacted with c1 and c2; the rest by dot product: c3 3.0 > d1 0.9 > d2 0.1 > d3 -1.0
    assert [c.item_id for c in found] == ["c3", "d1", "d2", "d3"]
    assert all(c.source == "embedding" for c in found)
    assert found[0].explanations[0].text == "People with tastes like yours liked it"
    assert found[0].explanations[0].nodes == []

    filtered = recall_embedding(clean_db, "a1", k=4, filters=RecallFilters(exclude_genres=["Drama"]))
    assert [c.item_id for c in filtered] == ["c3"]
    assert recall_embedding(clean_db, "newbie", k=4) == []  # no embedding: nothing, not an error
    assert recall_embedding(clean_db, "nobody' OR 1=1 //", k=4) == []


def test_new_version_replaces_vectors_and_dimension(clean_db: Driver, tmp_path: Path) -> None:
    load_dataset(clean_db, graphs.two_communities(), reject_dir=tmp_path)
    users, user_vecs, item_vecs = _vectors()
    write_embeddings(clean_db, users, user_vecs, ITEMS, item_vecs, "v1")
    # v2 knows fewer items and has another dimension: the index is rebuilt, stale vectors are removed
    users3, user3, items3 = _vectors(dim=3)
    out = write_embeddings(clean_db, users3[:2], user3[:2], ITEMS[2:5], items3[2:5], "v2")
    assert out["cleared"] == 3 + 1  # c1, c2, d3 and user b1 kept v1 vectors
    records, _, _ = clean_db.execute_query(
        "MATCH (n) WHERE n.embedding IS NOT NULL RETURN n.embeddingVersion AS v, size(n.embedding) AS d"
    )
    assert {(r["v"], r["d"]) for r in records} == {("v2", 4)}  # 3 dims + the MIPS dimension
    index, _, _ = clean_db.execute_query(
        "SHOW VECTOR INDEXES YIELD name, options WHERE name = $name RETURN options", name=ITEM_INDEX
    )
    assert index[0]["options"]["indexConfig"]["vector.dimensions"] == 4
    assert [c.item_id for c in recall_embedding(clean_db, "a1", k=5)] == ["c3", "d1", "d2"]


def test_misaligned_embeddings_are_refused(clean_db: Driver) -> None:
    from schema.errors import DataError

    with pytest.raises(DataError):
        write_embeddings(clean_db, ["a"], np.zeros((2, 3)), ["x"], np.zeros((1, 3)), "v")


def test_the_index_keeps_exact_vectors_and_replaces_a_quantized_one(clean_db: Driver, tmp_path: Path) -> None:
    load_dataset(clean_db, graphs.two_communities(), reject_dir=tmp_path)
    # an index left by an older kgrec: same dimension, Neo4j's default int8 quantization
    clean_db.execute_query(f"DROP INDEX {ITEM_INDEX} IF EXISTS")
    clean_db.execute_query(
        f"CREATE VECTOR INDEX {ITEM_INDEX} FOR (i:Item) ON i.embedding "
        "OPTIONS {indexConfig: {`vector.dimensions`: 5, `vector.similarity_function`: 'cosine'}}"
    )

    def config() -> dict:
        index, _, _ = clean_db.execute_query(
            "SHOW VECTOR INDEXES YIELD name, options WHERE name = $name RETURN options", name=ITEM_INDEX
        )
        return index[0]["options"]["indexConfig"]

    assert config()["vector.quantization.enabled"] is True
    users, user_vecs, item_vecs = _vectors()
    write_embeddings(clean_db, users, user_vecs, ITEMS, item_vecs, "v1")
    assert config()["vector.dimensions"] == 5 and config()["vector.quantization.enabled"] is False
