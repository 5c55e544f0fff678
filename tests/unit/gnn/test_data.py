"""Snapshot tensors and id maps: natural order, exact edges, save/load round trip, content id, HeteroData."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from gnn.data import (
    ACTED_IN,
    DIRECTED,
    FOLLOWS,
    HAS_TAG,
    IN_GENRE,
    INTERACTED,
    GraphSnapshot,
    IdMap,
    build_graph_snapshot,
)
from graph.export import GraphExport
from schema.errors import DataError
from tests.unit.gnn.worlds import make_export


def _export() -> GraphExport:
    return make_export(
        [("u2", "10", 4.0, 30), ("u1", "9", None, None), ("u1", "10", 2.5, 20), ("u10", "a", 5.0, 10)],
        users=["u3"],
        items=["b"],
        item_genres=[("10", "Drama"), ("9", "Comedy"), ("10", "Comedy"), ("10", "Drama")],
        item_people=[("10", "p1", "actor"), ("10", "p1", "director"), ("9", "p2", "actor")],
        item_tags=[("a", "funny", 2.0)],
        follows=[("u1", "u2"), ("u2", "u1"), ("u3", "u1")],
    )


def test_id_map_natural_order_and_round_trip() -> None:
    ids = IdMap.from_ids(["10", "9", "b", "a", "10", "007"])
    assert ids.ids == ["007", "9", "10", "a", "b"]
    assert IdMap.from_ids(["u10", "u2", "u1", "7", "007"]).ids == ["007", "7", "u1", "u2", "u10"]
    assert ids.to_index(["a", "9"]).tolist() == [3, 1]
    assert ids.to_ids(torch.tensor([2, 0])) == ["10", "007"]
    assert ids.get("zz") is None and ids.index("b") == 4
    assert ids.to_index(["zz", "a"], strict=False).tolist() == [-1, 3]
    with pytest.raises(KeyError):
        ids.to_index(["zz"])
    with pytest.raises(DataError):
        IdMap(["a", "a"])


def test_build_snapshot_exact_edges() -> None:
    snap = build_graph_snapshot(_export())
    assert snap.users.ids == ["u1", "u2", "u3", "u10"]
    assert snap.items.ids == ["9", "10", "a", "b"]
    assert snap.edge_index.tolist() == [[0, 0, 1, 3], [0, 1, 1, 2]]
    assert snap.edge_time.tolist() == [-1, 20, 30, 10]
    rating = snap.edge_rating.tolist()
    assert math.isnan(rating[0]) and rating[1:] == [2.5, 4.0, 5.0]
    assert snap.item_genre_index.tolist() == [[0, 1, 1], [0, 0, 1]]  # duplicate (10, Drama) dropped
    assert snap.genres.ids == ["Comedy", "Drama"]
    assert snap.item_person_index.tolist() == [[0, 1, 1], [1, 0, 0]]
    assert snap.person_role.tolist() == [0, 0, 1]  # p1 acted in and directed item 10
    assert snap.item_tag_weight.tolist() == [2.0]
    assert snap.follow_index.tolist() == [[0, 1, 2], [1, 0, 0]]
    assert not snap.has_timestamps
    assert snap.counts()["items"] == 4 and snap.counts()["people"] == 2


def test_snapshot_save_load_round_trip(tmp_path: Path) -> None:
    snap = build_graph_snapshot(_export())
    snap.save(tmp_path / "s")
    back = GraphSnapshot.load(tmp_path / "s")
    assert back.snapshot_id == snap.snapshot_id
    assert back.users == snap.users and back.items == snap.items and back.people == snap.people
    for name in ("edge_index", "edge_time", "item_person_index", "person_role", "follow_index"):
        assert torch.equal(getattr(back, name), getattr(snap, name)), name
    assert torch.equal(back.edge_rating.isnan(), snap.edge_rating.isnan())


def test_snapshot_id_is_content_hash() -> None:
    a = build_graph_snapshot(_export())
    shuffled = _export()
    shuffled = type(shuffled)(**{**shuffled.__dict__, "interactions": shuffled.interactions.iloc[::-1]})
    assert build_graph_snapshot(shuffled).snapshot_id == a.snapshot_id  # row order does not matter
    changed = make_export([("u1", "9", 4.0, 1)])
    assert build_graph_snapshot(changed).snapshot_id != a.snapshot_id


def test_snapshot_load_detects_tampering(tmp_path: Path) -> None:
    snap = build_graph_snapshot(_export())
    snap.save(tmp_path)
    tensors = torch.load(tmp_path / "snapshot.pt", weights_only=True)
    tensors["edge_weight"][0] = 7.0
    torch.save(tensors, tmp_path / "snapshot.pt")
    with pytest.raises(DataError):
        GraphSnapshot.load(tmp_path)
    with pytest.raises(DataError):
        GraphSnapshot.load(tmp_path / "missing")


def test_hetero_data_types_and_interaction_mask() -> None:
    snap = build_graph_snapshot(_export())
    data = snap.hetero_data(interaction_mask=torch.tensor([True, False, True, True]))
    assert data["user"].num_nodes == 4 and data["item"].num_nodes == 4 and data["person"].num_nodes == 2
    assert data[INTERACTED].edge_index.tolist() == [[0, 1, 3], [0, 1, 2]]
    assert data[ACTED_IN].edge_index.tolist() == [[1, 0], [0, 1]]
    assert data[DIRECTED].edge_index.tolist() == [[0], [1]]
    assert data[IN_GENRE].edge_index.size(1) == 3 and data[HAS_TAG].edge_weight.tolist() == [2.0]
    assert data[FOLLOWS].edge_index.size(1) == 3
    data.validate()


def test_item_years_from_export_round_trip_and_old_snapshots_still_load(tmp_path: Path) -> None:
    import json
    from dataclasses import replace

    import pandas as pd

    plain = build_graph_snapshot(_export())
    assert (plain.item_year == -1).all() and plain.item_year.shape == (plain.num_items,)
    years = pd.DataFrame({"item_id": ["9", "10", "b", "nope"], "year": [1995, -1, 2018, 2000]})
    snap = build_graph_snapshot(replace(_export(), item_years=years))
    by_id = dict(zip(snap.items.ids, snap.item_year.tolist(), strict=True))
    assert by_id == {"9": 1995, "10": -1, "a": -1, "b": 2018}
    assert snap.counts()["item_years"] == 2 and snap.snapshot_id != plain.snapshot_id
    back = GraphSnapshot.load(snap.save(tmp_path / "new"))
    assert torch.equal(back.item_year, snap.item_year) and back.snapshot_id == snap.snapshot_id

    # A format-1 snapshot (written before item_year existed) loads with unknown years and keeps its id.
    plain.save(tmp_path / "old")
    tensors = torch.load(tmp_path / "old" / "snapshot.pt", weights_only=True)
    del tensors["item_year"]
    torch.save(tensors, tmp_path / "old" / "snapshot.pt")
    meta = json.loads((tmp_path / "old" / "snapshot.json").read_text())
    (tmp_path / "old" / "snapshot.json").write_text(json.dumps({**meta, "format": 1}))
    old = GraphSnapshot.load(tmp_path / "old")
    assert old.snapshot_id == plain.snapshot_id and (old.item_year == -1).all()
