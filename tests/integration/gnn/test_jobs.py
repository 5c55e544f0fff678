"""The training jobs against the real Neo4j: export → train → artifact; retrain with the promotion gate."""

from __future__ import annotations

from pathlib import Path

import pytest
from neo4j import Driver

from etl.load import load_dataset
from etl.sources import read_mapping_dataset
from etl.synthetic import generate_world
from gnn.artifacts import list_versions, load_artifact
from gnn.config import GnnSettings, resolve_config
from gnn.jobs import evaluate_job, export_job, retrain_job, train_job
from gnn.serving import current_version
from graph.settings import Neo4jSettings

FLAGS = {
    "embedding_dim": 16,
    "num_layers": 2,
    "lr": 0.02,
    "batch_size": 512,
    "max_epochs": 4,
    "patience": 2,
    "progress": False,
    "device": "cpu",
}
FAST = resolve_config("lightgcn", flags=FLAGS)


@pytest.fixture
def world_db(clean_db: Driver, tmp_path: Path) -> Driver:
    load_dataset(clean_db, generate_world(users=60, items=100, seed=9).dataset, reject_dir=tmp_path)
    return clean_db


def test_train_and_evaluate_jobs(world_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts", snapshots_dir=tmp_path / "snapshots")
    snapshot, directory = export_job(neo4j_settings, settings)
    assert directory == tmp_path / "snapshots" / snapshot.snapshot_id and (directory / "snapshot.pt").is_file()
    artifact = train_job(neo4j_settings, settings, FAST)
    assert artifact.path is not None and (artifact.path / "curves.png").is_file()
    assert artifact.snapshot_id == snapshot.snapshot_id
    assert artifact.config["embedding_dim"] == 16
    report = evaluate_job(neo4j_settings, settings, artifact.path)
    # Same snapshot, same split: the job reproduces the figures measured right after training.
    assert report["test"]["ndcg@20"] == pytest.approx(artifact.metrics["test"]["ndcg@20"], abs=1e-6)


def test_retrain_promotes_only_when_not_worse_and_prunes(
    world_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts", snapshots_dir=tmp_path / "snapshots")
    first = retrain_job(neo4j_settings, settings, FAST, keep=2)
    assert first.promoted and first.current_val is None
    assert current_version(settings.artifacts_dir, "lightgcn") == first.artifact.path
    # Same data, same seed: an identical model is "not worse" and is promoted.
    second = retrain_job(neo4j_settings, settings, FAST, keep=2)
    assert second.same_data and second.promoted and second.new_val == pytest.approx(first.new_val)
    # A crippled model (one epoch, tiny lr) is worse on validation and is not promoted.
    worse = retrain_job(
        neo4j_settings,
        settings,
        resolve_config("lightgcn", flags={**FLAGS, "max_epochs": 1, "lr": 1e-6, "seed": 3}),
        keep=2,
    )
    assert not worse.promoted and worse.new_val < worse.current_val
    assert current_version(settings.artifacts_dir, "lightgcn") == second.artifact.path
    versions = list_versions(settings.artifacts_dir, "lightgcn")
    assert first.artifact.path not in versions and second.artifact.path in versions and len(versions) == 2
    assert load_artifact(worse.artifact.path).metrics["validation"]["ndcg@20"] == pytest.approx(worse.new_val)


def test_retrain_replaces_a_version_trained_on_another_catalogue(
    clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    """After other data is loaded with --replace, the current version knows none of the graph's items: a new version
    is promoted even with a lower validation figure (measured on other data), or the API would keep the old one."""
    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts", snapshots_dir=tmp_path / "snapshots")
    shop, _ = read_mapping_dataset(Path(__file__).parents[3] / "docs" / "walkthrough" / "shop.yaml")
    load_dataset(clean_db, shop, reject_dir=tmp_path)
    first = retrain_job(neo4j_settings, settings, FAST, publish=False)
    load_dataset(clean_db, generate_world(users=60, items=100, seed=9).dataset, reject_dir=tmp_path, replace=True)
    crippled = resolve_config("lightgcn", flags={**FLAGS, "max_epochs": 1, "lr": 1e-6, "seed": 3})
    other = retrain_job(neo4j_settings, settings, crippled, publish=False)
    assert other.new_val < other.current_val == pytest.approx(first.new_val)
    assert other.items_kept == 0.0 and other.promoted
    assert current_version(settings.artifacts_dir, "lightgcn") == other.artifact.path


def test_retrain_serves_from_every_positive_and_publishes_embeddings(
    world_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    settings = GnnSettings(artifacts_dir=tmp_path / "artifacts", snapshots_dir=tmp_path / "snapshots")
    report = retrain_job(neo4j_settings, settings, FAST, keep=2)
    artifact = report.artifact
    assert artifact.config["final_fit"] == "all"
    assert artifact.metrics["test"] is None  # it learned from the test positives: no test figure is claimed
    # so no test part is held out of the fits that choose its settings: validation is carved from every positive
    assert artifact.metrics["split"]["test"] == 0 and artifact.metrics["split"]["val"] > 0
    assert artifact.metrics["split"]["train"] == artifact.metrics["split"]["fit"] + artifact.metrics["split"]["val"]
    assert report.embeddings is not None and report.embeddings["items"] == len(artifact.item_ids)
    # every phase is timed, in order, and the phases account for the job's wall time
    assert list(report.timings) == ["export", "split", "fit", "promote", "publish"]
    assert all(t >= 0 for t in report.timings.values())
    assert sum(report.timings.values()) == pytest.approx(report.seconds, abs=0.05)
    records, _, _ = world_db.execute_query(
        "MATCH (i:Item) WHERE i.embedding IS NOT NULL RETURN count(i) AS n, collect(DISTINCT i.embeddingVersion) AS v"
    )
    assert records[0]["n"] == len(artifact.item_ids) and records[0]["v"] == [artifact.version]
    # the vector index answers with the model's best items for a user (dot-product order, own items excluded)
    from graph.embeddings import recall_embedding

    user = artifact.user_ids[0]
    found = [c.item_id for c in recall_embedding(world_db, user, k=5)]
    seen, _, _ = world_db.execute_query(
        "MATCH (:User {userId: $u})-[:INTERACTED]->(i) RETURN collect(i.itemId) AS items", u=user
    )
    scores = artifact.item_embeddings @ artifact.user_embeddings[0]
    ranked = [artifact.item_ids[int(i)] for i in scores.argsort(descending=True)]
    expected = [i for i in ranked if i not in set(seen[0]["items"])][:5]
    assert found == expected
