"""The recall rows of bench.quality on a real Neo4j: the test fold leaves the graph while recall runs, and
comes back exactly (same export, same properties), also after an error or an interrupted run."""

from __future__ import annotations

from pathlib import Path

import pytest
from neo4j import Driver

from bench.quality_recall import (
    recall_rankings,
    remove_test_interactions,
    restore_pending,
    without_test_interactions,
)
from etl.load import load_dataset
from etl.synthetic import generate_world
from gnn.data import build_graph_snapshot
from gnn.evaluation import evaluate, split_interactions
from graph.export import export_graph
from graph.recall import recall_collaborative
from graph.settings import Neo4jSettings
from schema.errors import DataError


def _rows(driver: Driver, database: str) -> set[tuple]:
    return set(export_graph(driver, database).interactions.itertuples(index=False, name=None))


def _loaded(driver: Driver, db: str, tmp_path: Path, users: int, items: int, seed: int):  # noqa: ANN202
    """Load a synthetic world; its snapshot, split and exported interaction rows."""
    load_dataset(driver, generate_world(users=users, items=items, seed=seed).dataset, reject_dir=tmp_path)
    snapshot = build_graph_snapshot(export_graph(driver, db))
    return snapshot, split_interactions(snapshot), _rows(driver, db)


def test_recall_rows_run_without_the_test_fold_and_the_graph_comes_back(
    clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    db = neo4j_settings.database
    snapshot, split, before = _loaded(clean_db, db, tmp_path, 80, 160, 11)
    assert split.test.size(1) > 50
    test_pairs = set(zip(snapshot.users.to_ids(split.test[0]), snapshot.items.to_ids(split.test[1]), strict=True))
    fold = split.testing()
    users = fold.eval_users
    ledger = tmp_path / "ledger.json"

    with without_test_interactions(clean_db, db, snapshot, split, ledger) as removed:
        assert removed == len(test_pairs)
        assert ledger.exists()
        inside = _rows(clean_db, db)
        assert {(u, i) for u, i, *_ in inside} == {(u, i) for u, i, *_ in before} - test_pairs
        rankings = {r.name: r for r in recall_rankings(clean_db, db, snapshot, users, k=20)}
    assert set(rankings) == {"collaborative", "knowledge", "social", "popularity"}
    collaborative = rankings["collaborative"]
    assert collaborative.topk.shape == (users.numel(), 20)
    assert collaborative.info["users_with_candidates"] == users.numel()
    scored = evaluate(collaborative.topk, fold)  # refuses lists with train items
    # With the test fold gone, collaborative recall can find it: the synthetic world plants shared tastes.
    assert scored["recall@20"] > 0.05

    # Afterwards: every relationship back with its properties, the same snapshot, no ledger.
    assert _rows(clean_db, db) == before
    assert build_graph_snapshot(export_graph(clean_db, db)).snapshot_id == snapshot.snapshot_id
    assert not ledger.exists()
    # And on the full graph recall never returns a test item again (they are interactions of their users).
    user, item = next(iter(sorted(test_pairs)))
    assert item not in {c.item_id for c in recall_collaborative(clean_db, user, 50, database=db)}


def test_restored_after_an_error_and_after_an_interrupted_run(
    clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    db = neo4j_settings.database
    snapshot, split, before = _loaded(clean_db, db, tmp_path, 40, 80, 3)
    ledger = tmp_path / "ledger.json"

    with pytest.raises(RuntimeError, match="boom"), without_test_interactions(clean_db, db, snapshot, split, ledger):
        raise RuntimeError("boom")
    assert _rows(clean_db, db) == before and not ledger.exists()

    # A run killed between removal and restore leaves the ledger; nothing removes twice, the next run restores.
    removed = remove_test_interactions(clean_db, db, snapshot, split, ledger)
    assert removed == split.test.size(1) and len(_rows(clean_db, db)) == len(before) - removed
    with pytest.raises(DataError, match="restored first"):
        remove_test_interactions(clean_db, db, snapshot, split, ledger)
    assert restore_pending(clean_db, db, ledger) == removed
    assert _rows(clean_db, db) == before and not ledger.exists()
    assert restore_pending(clean_db, db, ledger) == 0

    # A graph that is not the snapshot's (a test interaction missing) is refused before anything is deleted.
    u, i = snapshot.users.to_ids(split.test[0][:1])[0], snapshot.items.to_ids(split.test[1][:1])[0]
    clean_db.execute_query(
        "MATCH (:User {userId: $u})-[r:INTERACTED]->(:Item {itemId: $i}) DELETE r", u=u, i=i, database_=db
    )
    with pytest.raises(DataError, match="holds"):
        remove_test_interactions(clean_db, db, snapshot, split, ledger)
    assert len(_rows(clean_db, db)) == len(before) - 1 and not ledger.exists()
