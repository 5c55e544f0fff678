"""An app wired to the real test Neo4j, with the synthetic world loaded once per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from neo4j import Driver

from api.app import create_app
from api.settings import ApiSettings
from etl.load import load_dataset
from etl.synthetic import SyntheticWorld, generate_world
from gnn.config import resolve_config
from graph.settings import Neo4jSettings
from graph.writers import wipe_graph
from schema.ddl import apply_schema

API_KEY = "kgrec-test-Q7v2Lm9xR4tZ8w"

#: Small, fast training configs of the API tests (a LightGCN and the blend on the synthetic world).
FAST_LIGHTGCN = resolve_config(
    "lightgcn",
    flags={
        "embedding_dim": 16,
        "num_layers": 2,
        "lr": 0.02,
        "batch_size": 1024,
        "max_epochs": 6,
        "patience": 3,
        "progress": False,
        "device": "cpu",
    },
)
FAST_BLEND = resolve_config("blend", flags={"max_epochs": 3, "device": "cpu", "progress": False})


@pytest.fixture(scope="module")
def world(driver: Driver, neo4j_settings: Neo4jSettings, tmp_path_factory: pytest.TempPathFactory) -> SyntheticWorld:
    """The synthetic world (120 users, 240 items) loaded into the test database."""
    wipe_graph(driver, neo4j_settings.database)
    apply_schema(driver, neo4j_settings.database)
    world = generate_world(users=120, items=240, seed=5)
    load_dataset(driver, world.dataset, reject_dir=Path(tmp_path_factory.mktemp("rejects")))
    return world


def model_settings(artifacts: Path, **extra: object) -> ApiSettings:
    """API settings serving the promoted model under ``artifacts``: no watcher, no cache warming, no exposure
    fatigue (answers stay the same however often a user is served) unless ``extra`` says otherwise."""
    return ApiSettings(
        **{
            "api_key": API_KEY,
            "artifacts_dir": artifacts,
            "model_watch_seconds": 0,
            "cache_warm_users": 0,
            "fatigue_half_life": 0,
            **extra,
        }
    )


def graph_only_settings(tmp_path: Path) -> ApiSettings:
    """API settings with an empty artifacts root: no learned model, the graph-recall path answers (no exposure
    fatigue, as :func:`model_settings`)."""
    return ApiSettings(
        api_key=API_KEY, artifacts_dir=tmp_path / "no-artifacts", cache_warm_users=0, fatigue_half_life=0
    )


@pytest.fixture
def client(world: SyntheticWorld, neo4j_settings: Neo4jSettings, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(graph_only_settings(tmp_path), neo4j_settings)
    with TestClient(app) as test_client:
        yield test_client
