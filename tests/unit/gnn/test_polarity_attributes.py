"""Negative interactions are never positives in training; item attributes reach the knowledge features as tags."""

from dataclasses import replace

import numpy as np
import pandas as pd

from gnn.data import ATTRIBUTE_TAG_PREFIX, build_graph_snapshot
from gnn.evaluation import positive_mask
from tests.unit.gnn.worlds import make_export


def _export():  # noqa: ANN202
    return make_export([("u1", "a", None, 1), ("u1", "b", 5.0, 2), ("u2", "a", None, 3), ("u2", "c", None, 4)])


def test_negative_interactions_are_not_positives_and_change_the_snapshot_id() -> None:
    plain = build_graph_snapshot(_export())
    export = _export()
    frame = export.interactions.assign(polarity=np.array([1, -1, 1, -1], dtype=np.int8))
    negative = build_graph_snapshot(replace(export, interactions=frame))
    assert positive_mask(plain).tolist() == [True, True, True, True]
    # edges sorted by (user, item): (u1, a), (u1, b), (u2, a), (u2, c)
    assert positive_mask(negative).tolist() == [True, False, True, False]
    assert negative.num_interactions == 4  # still interactions: the items stay seen
    assert negative.snapshot_id != plain.snapshot_id
    all_positive = build_graph_snapshot(replace(export, interactions=export.interactions.assign(polarity=np.int8(1))))
    assert all_positive.snapshot_id == plain.snapshot_id  # data without negatives keeps its snapshot id


def test_item_attributes_become_tag_features() -> None:
    export = replace(
        _export(),
        item_attributes=pd.DataFrame({"item_id": ["a", "c"], "attribute": ["brand:Acme", "brand:Acme"]}),
    )
    snapshot = build_graph_snapshot(export)
    assert snapshot.tags.ids == [f"{ATTRIBUTE_TAG_PREFIX}brand:Acme"]
    assert snapshot.item_tag_index.size(1) == 2
    assert build_graph_snapshot(_export()).item_tag_index.size(1) == 0
