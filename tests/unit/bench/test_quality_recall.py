"""Recall lists → the item_idx lists gnn.evaluation scores (bench.quality_recall.ranked_to_topk)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.quality_recall import ranked_to_topk
from gnn.data import IdMap
from gnn.evaluation import Fold, evaluate
from schema.errors import DataError

ITEMS = IdMap(["a", "b", "c", "d", "e"])


def test_unknown_ids_keep_their_slot_and_short_lists_are_padded() -> None:
    topk, unknown = ranked_to_topk([["zz", "c", "a"], [], ["e", "d", "c", "b", "a"]], ITEMS, 3)
    assert topk.tolist() == [[-1, 2, 0], [-1, -1, -1], [4, 3, 2]]
    assert unknown == 1


def test_a_repeated_item_is_refused() -> None:
    with pytest.raises(DataError, match="repeats"):
        ranked_to_topk([["a", "b", "a"]], ITEMS, 3)


def test_unknown_item_pushes_the_hit_down_one_rank() -> None:
    # user 0 trained on item 4 ("e"), must find item 2 ("c"); user 1 trained on 0, must find 1 and 3.
    fold = Fold("test", 2, 5, train=torch.tensor([[0, 1], [4, 0]]), target=torch.tensor([[0, 1, 1], [2, 1, 3]]))
    lists = [["zz", "c"], ["b", "yy", "c", "d"]]
    topk, _ = ranked_to_topk(lists, ITEMS, 20)
    out = evaluate(topk, fold, ks=(10, 20), per_user=True)
    # user 0: hit at rank 2 → 1/log2(3); user 1: hits at ranks 1 and 4, ideal over 2 items.
    ndcg0 = 1 / math.log2(3)
    ndcg1 = (1 + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert out["per_user"]["ndcg@20"] == pytest.approx([ndcg0, ndcg1])
    assert out["per_user"]["recall@20"] == pytest.approx([1.0, 1.0])
    assert out["per_user"]["precision@10"] == pytest.approx([0.1, 0.2])
    assert out["coverage@20"] == pytest.approx(3 / 2)  # b, c, d recommended; a and e are the train items


def test_a_list_with_a_train_item_is_refused_by_evaluate() -> None:
    fold = Fold("test", 1, 5, train=torch.tensor([[0], [4]]), target=torch.tensor([[0], [2]]))
    topk, _ = ranked_to_topk([["e", "c"]], ITEMS, 20)
    with pytest.raises(DataError, match="train"):
        evaluate(topk, fold)
