"""Ranking metrics of the evaluation protocol (docs/evaluation.md) as tensor kernels: hits of top-k lists against
target items, the accuracy metrics at each cut-off, and intra-list diversity. :func:`gnn.evaluation.evaluate` puts
them together; tests check them against naive loops and hand-worked cases."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from schema.errors import DataError

DEFAULT_KS: tuple[int, ...] = (10, 20)


def hit_matrix(topk: Tensor, users: Tensor, target: Tensor, num_items: int) -> Tensor:
    """``[U, k]`` bool: whether ``topk[u, r]`` is a target item of ``users[u]`` (``-1`` never is)."""
    flat_target = torch.sort(target[0] * num_items + target[1]).values
    flat_pred = users.view(-1, 1) * num_items + topk
    if flat_target.numel() == 0:
        return torch.zeros_like(topk, dtype=torch.bool)
    pos = torch.searchsorted(flat_target, flat_pred).clamp(max=flat_target.numel() - 1)
    return (flat_target[pos] == flat_pred) & (topk >= 0)


def accuracy_metrics(hits: Tensor, n_target: Tensor, ks: Sequence[int] = DEFAULT_KS) -> dict[str, Tensor]:
    """Per-user accuracy metrics from a hit matrix.

    Args:
        hits: ``[U, K]`` bool, relevance of each rank (K >= max(ks)).
        n_target: ``[U]`` number of target items per user (>= 1).
        ks: Cut-offs.

    Returns:
        ``{"recall@k", "ndcg@k", "precision@k", "map@k", "hit_rate@k"}`` → ``[U]`` float64 tensors.
    """
    if hits.size(1) < max(ks):
        raise DataError(f"top-k lists of length {hits.size(1)} are shorter than k={max(ks)}")
    rel = hits.double()
    n = n_target.double()
    ranks = torch.arange(1, rel.size(1) + 1, dtype=torch.float64)
    discount = 1.0 / torch.log2(ranks + 1.0)
    ideal = torch.cumsum(discount, 0)
    out: dict[str, Tensor] = {}
    for k in ks:
        r = rel[:, :k]
        found = r.sum(1)
        out[f"recall@{k}"] = found / n
        out[f"ndcg@{k}"] = (r * discount[:k]).sum(1) / ideal[(n.clamp(max=k) - 1).long()]
        out[f"precision@{k}"] = found / k
        out[f"map@{k}"] = (torch.cumsum(r, 1) / ranks[:k] * r).sum(1) / n.clamp(max=k)
        out[f"hit_rate@{k}"] = (found > 0).double()
    return out


def intra_list_diversity(topk: Tensor, item_features: Tensor) -> Tensor:
    """Per-list ``1 − mean pairwise Jaccard`` of item feature sets (e.g. genres).

    Args:
        topk: ``[U, k]`` item_idx (``-1`` entries are ignored).
        item_features: ``[num_items, F]`` bool.

    Returns:
        ``[U]`` float64; NaN for lists with fewer than two items. Two items without any feature have
        Jaccard 0 (nothing in common).
    """
    valid = topk >= 0
    feats = item_features[topk.clamp(min=0)].double() * valid.unsqueeze(-1)
    inter = feats @ feats.transpose(1, 2)
    size = feats.sum(-1)
    union = size.unsqueeze(2) + size.unsqueeze(1) - inter
    jaccard = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    pair = valid.unsqueeze(2) & valid.unsqueeze(1) & ~torch.eye(topk.size(1), dtype=torch.bool)
    n_pairs = pair.sum((1, 2)).double()
    mean = (jaccard * pair).sum((1, 2)) / n_pairs.clamp(min=1)
    return torch.where(n_pairs > 0, 1.0 - mean, torch.full_like(mean, math.nan))
