"""What only evaluation needs of a fitted blend: its lists and score functions for :mod:`gnn.evaluation`."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gnn.blend.config import FEATURES
from gnn.blend.model import RankerModel
from gnn.evaluation import Fold, ScoreFn, by_user, evaluate
from schema.errors import DataError

VAL_METRIC = "ndcg@20"


def ranked_lists(model: RankerModel, fold: Fold, k: int = 20) -> Tensor:
    """``[len(fold.eval_users), k]`` :meth:`~gnn.blend.model.RankerModel.recommend` lists of the fold's users
    from their fitted histories, the fold's train items excluded (``-1`` pads), for
    :func:`gnn.evaluation.evaluate`: the lists the API shows (score order with the reserved new-arrival
    positions)."""
    users = fold.eval_users
    ptr, train_items = (t.numpy() for t in by_user(fold.train, fold.num_users))
    out = torch.full((users.numel(), k), -1, dtype=torch.long)
    for r, u in enumerate(users.tolist()):
        items, times = model.history(u)
        exclude = train_items[ptr[u] : ptr[u + 1]]
        picked = model.recommend(items, times, u, k, exclude=exclude, weights=model.history_weights(u))
        out[r, : len(picked)] = torch.as_tensor(picked, dtype=torch.long)
    return out


def blend_score_fn(model: RankerModel, *, standardized_weights: np.ndarray | None = None) -> ScoreFn:
    """``model`` as a :data:`gnn.evaluation.ScoreFn`: each user scored from their fitted history.

    Args:
        model: A fitted blend.
        standardized_weights: Weights to use instead of the model's (e.g. one component alone).

    Raises:
        DataError: Neither weights are given nor has the model any.
    """
    weights = model.weights if standardized_weights is None else np.asarray(standardized_weights, np.float32)
    if weights is None:
        raise DataError("the ranker has no weights yet (fit it with fit_ranker)")

    def score(users: Tensor) -> Tensor:
        rows = []
        for u in users.tolist():
            items, times = model.history(u)
            w = model.weights_for(len(items)) if standardized_weights is None else weights
            rows.append(model.combine(w, model.standardized(items, times, u, weights=model.history_weights(u))))
        return torch.from_numpy(np.stack(rows).astype(np.float32))

    return score


def component_score_fn(model: RankerModel, feature: str) -> ScoreFn:
    """A score function of one feature alone (for tuning and ablations)."""
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    weights[FEATURES.index(feature)] = 1.0
    return blend_score_fn(model, standardized_weights=weights)


def evaluate_components(model: RankerModel, fold: Fold) -> dict[str, float]:
    """Validation NDCG@20 of each history-based component alone."""
    return {
        name: evaluate(component_score_fn(model, name), fold, ks=(20,))[VAL_METRIC]
        for name in (
            "ease",
            "ease_recent",
            "sequence",
            "knowledge",
            "lightgcn",
            "als",
            "pop_window",
            "fresh",
            "social",
            *(("peers",) if model.active > FEATURES.index("peers") else ()),
        )
    }
