"""Training export from the real Neo4j: exact edges of a synthetic world, id maps that round-trip."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from neo4j import Driver

from etl.load import load_dataset
from etl.synthetic import generate_world
from gnn.data import GraphSnapshot, build_graph_snapshot
from graph.export import export_graph
from graph.settings import Neo4jSettings
from graph.writers import create_user
from tests.unit.gnn.worlds import export_from_dataset


def test_export_has_exact_edges_of_synthetic_world(
    clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    ds = generate_world(users=120, items=240, seed=7).dataset
    load_dataset(clean_db, ds, reject_dir=tmp_path)
    export = export_graph(clean_db, neo4j_settings.database)

    roles = Counter(p.role.value for p in ds.people)
    assert export.counts() == {
        "users": len(ds.users),
        "items": len(ds.items),
        "interactions": len(ds.interactions),
        "item_genres": len(ds.genres),
        "item_people": roles["actor"] + roles["director"],
        "item_tags": len(ds.tags),
        "follows": len(ds.follows),
        "user_genres": 0,
        "item_attributes": 0,
        "user_attributes": 0,
    }
    rows = {(r.user_id, r.item_id, r.rating, r.weight, r.timestamp, 1) for r in ds.interactions}
    assert set(export.interactions.itertuples(index=False, name=None)) == rows
    assert set(export.item_people.itertuples(index=False, name=None)) == {
        (p.item_id, p.person_id, p.role.value) for p in ds.people
    }
    assert set(export.item_tags.itertuples(index=False, name=None)) == {(t.item_id, t.tag, t.weight) for t in ds.tags}
    assert set(export.follows.itertuples(index=False, name=None)) == {
        (f.follower_id, f.followee_id) for f in ds.follows
    }

    # The snapshot of the Neo4j export is the snapshot of the dataset itself: same tensors, same id.
    snapshot = build_graph_snapshot(export)
    assert snapshot.snapshot_id == build_graph_snapshot(export_from_dataset(ds)).snapshot_id
    pairs = set(
        zip(snapshot.users.to_ids(snapshot.edge_index[0]), snapshot.items.to_ids(snapshot.edge_index[1]), strict=True)
    )
    assert pairs == {(r.user_id, r.item_id) for r in ds.interactions}
    follows = set(
        zip(
            snapshot.users.to_ids(snapshot.follow_index[0]),
            snapshot.users.to_ids(snapshot.follow_index[1]),
            strict=True,
        )
    )
    assert follows == {(f.follower_id, f.followee_id) for f in ds.follows}

    snapshot.save(tmp_path / "snap")
    back = GraphSnapshot.load(tmp_path / "snap")
    assert back.snapshot_id == snapshot.snapshot_id
    for user_id in ("u1", "u57", "u120"):
        assert back.users.to_ids([back.users.index(user_id)]) == [user_id]
    assert torch.equal(back.edge_index, snapshot.edge_index)


def test_export_of_onboarding_genres_and_cold_nodes(
    clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    ds = generate_world(users=10, items=20, seed=3).dataset
    load_dataset(clean_db, ds, reject_dir=tmp_path)
    create_user(clean_db, "newcomer", ["Drama", "Comedy", "NoSuchGenre"], neo4j_settings.database)
    export = export_graph(clean_db, neo4j_settings.database)
    assert "newcomer" in export.users
    assert set(export.user_genres.itertuples(index=False, name=None)) == {("newcomer", "Drama"), ("newcomer", "Comedy")}
    snapshot = build_graph_snapshot(export)
    user = snapshot.users.index("newcomer")
    assert int((snapshot.edge_index[0] == user).sum()) == 0
    assert sorted(snapshot.genres.to_ids(snapshot.user_genre_index[1][snapshot.user_genre_index[0] == user])) == [
        "Comedy",
        "Drama",
    ]


def test_export_of_empty_graph(clean_db: Driver, neo4j_settings: Neo4jSettings) -> None:
    export = export_graph(clean_db, neo4j_settings.database)
    assert set(export.counts().values()) == {0}
    snapshot = build_graph_snapshot(export)
    assert snapshot.num_interactions == 0 and snapshot.edge_index.shape == (2, 0)


def test_export_keeps_values_aligned_when_some_are_missing(
    clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path
) -> None:
    """Play counts without ratings or times (Last.fm) next to rated, timed ones: every value stays on its edge."""
    from tests.fixtures.graphs import build

    ds = build(
        "mixed",
        [("a", "A", None), ("b", "B", None), ("c", "C", None)],
        [("u1", "a", None, None), ("u1", "b", 4.5, 100), ("u1", "c", None, 200), ("u2", "c", 2.0, None)],
    )
    load_dataset(clean_db, ds, reject_dir=tmp_path)
    export = export_graph(clean_db, neo4j_settings.database)
    rows = {
        (r.user_id, r.item_id): (None if r.rating != r.rating else r.rating, int(r.timestamp))
        for r in export.interactions.itertuples(index=False)
    }
    from graph.export import NO_TIMESTAMP as none

    assert rows == {
        ("u1", "a"): (None, none),
        ("u1", "b"): (4.5, 100),
        ("u1", "c"): (None, 200),
        ("u2", "c"): (2.0, none),
    }


def test_export_of_user_attributes(clean_db: Driver, neo4j_settings: Neo4jSettings, tmp_path: Path) -> None:
    ds = generate_world(users=40, items=60, seed=2, user_attributes=True).dataset
    load_dataset(clean_db, ds, reject_dir=tmp_path)
    create_user(clean_db, "newcomer", [], neo4j_settings.database, attributes=["country:FR", "planet:Mars"])
    export = export_graph(clean_db, neo4j_settings.database)
    expected = {(r.owner_id, f"{r.kind}:{r.value}") for r in ds.user_attributes} | {("newcomer", "country:FR")}
    assert set(export.user_attributes.itertuples(index=False, name=None)) == expected
    snapshot = build_graph_snapshot(export)
    assert snapshot.counts()["user_attributes"] == len(expected)
    user = snapshot.users.index("newcomer")
    mine = snapshot.user_attribute_index[1][snapshot.user_attribute_index[0] == user]
    assert snapshot.user_attributes.to_ids(mine) == ["country:FR"]
