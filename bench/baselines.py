"""The models of the quality table as fit functions: the reference libraries and kgrec's own trainers.

Every fitter has the signature :data:`FitFn`: it fits on a fold's train part with the given parameters and
returns a :class:`Fitted` (a score function over every item, wall seconds, what the fit learned). With a
validation fold, the early-stopped ones (both LightGCNs, GraphSAGE) choose their epoch count on it.

- References: most-popular, item-kNN cosine, ALS and BPR (``implicit``), EASE^R (closed form, exact in the
  smaller of user and item space) and PyG's LightGCN trained as its example does.
- Ours: ``gnn``'s LightGCN (:func:`fit_ours`) and inductive GraphSAGE (:func:`sage_fitter`).

The protocol they are measured under is docs/evaluation.md; the search over their parameters is
:mod:`bench.search`, their grids :mod:`bench.models`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch.profiler import record_function

from gnn.config import TrainConfig
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, ScoreFn, embedding_score_fn, evaluate
from gnn.train import PHASES, FitResult, fit_graphsage, fit_lightgcn

SEED = 42
VAL_METRIC = "ndcg@20"
THREADS = 2  # implicit's and BLAS threads
TORCH_THREADS = 1  # both LightGCNs: their ops are small, and a second OpenMP thread on a busy 2-core machine
# waits far more than it helps (measured: 35 ms vs 500+ ms per step under load)


@dataclass
class Fitted:
    """A fitted model: its score function, wall seconds of fitting, and what the fit learned (epochs)."""

    score_fn: ScoreFn
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


FitFn = Callable[[Fold, dict[str, Any], Fold | None], Fitted]


def _matrix(fold: Fold) -> sp.csr_matrix:
    ones = np.ones(fold.train.size(1), dtype=np.float32)
    return sp.csr_matrix((ones, (fold.train[0].numpy(), fold.train[1].numpy())), shape=(fold.num_users, fold.num_items))


def _dense_rows(matrix: np.ndarray | sp.spmatrix) -> ScoreFn:
    def score(users: Tensor) -> Tensor:
        rows = matrix[users.numpy()]
        rows = rows.toarray() if sp.issparse(rows) else rows
        return torch.from_numpy(np.asarray(rows, dtype=np.float32))

    return score


def _factors(users: np.ndarray, items: np.ndarray) -> ScoreFn:
    u, v = torch.from_numpy(np.ascontiguousarray(users)), torch.from_numpy(np.ascontiguousarray(items))
    return lambda batch: u[batch] @ v.T


def fit_most_popular(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    started = time.perf_counter()
    popularity = fold.item_popularity().float()
    # Ties broken towards the lower item_idx, so the list does not depend on topk's internals.
    popularity = popularity - torch.arange(fold.num_items, dtype=torch.float32) * 1e-7
    return Fitted(lambda users: popularity.expand(users.numel(), -1), time.perf_counter() - started)


def fit_item_knn(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    from implicit.nearest_neighbours import CosineRecommender

    started = time.perf_counter()
    matrix = _matrix(fold)
    model = CosineRecommender(K=int(params["K"]), num_threads=THREADS)
    model.fit(matrix, show_progress=False)
    scores = (matrix @ model.similarity).tocsr()
    return Fitted(_dense_rows(scores), time.perf_counter() - started)


#: implicit's integer keywords (the others are floats).
_INTEGER_PARAMS = frozenset({"factors", "iterations"})


def _fit_factors(model_class: type, fold: Fold, params: dict[str, Any], keys: tuple[str, ...]) -> Fitted:
    """Fit one of implicit's factor models with ``params[keys]`` (seeded, THREADS threads) on the fold's train matrix;
    its scores are user · item factor products."""
    started = time.perf_counter()
    chosen = {k: (int if k in _INTEGER_PARAMS else float)(params[k]) for k in keys}
    model = model_class(**chosen, random_state=SEED, num_threads=THREADS)
    model.fit(_matrix(fold), show_progress=False)
    return Fitted(_factors(model.user_factors, model.item_factors), time.perf_counter() - started)


def fit_als(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    from implicit.cpu.als import AlternatingLeastSquares

    return _fit_factors(AlternatingLeastSquares, fold, params, ("factors", "regularization", "alpha", "iterations"))


def fit_bpr(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    keys = ("factors", "learning_rate", "regularization", "iterations")
    return _fit_factors(BayesianPersonalizedRanking, fold, params, keys)


def fit_ease(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    """EASE^R (Steck 2019): B = I − P·diagMat(1/diag(P)), P = (XᵀX + λI)⁻¹, over the items seen in train."""
    started = time.perf_counter()
    scores = np.zeros((fold.num_users, fold.num_items), dtype=np.float32)
    seen = np.flatnonzero(fold.train_item_mask().numpy())
    scores[:, seen] = ease_scores(_matrix(fold)[:, seen], float(params["lambda"])).astype(np.float32)
    return Fitted(_dense_rows(scores), time.perf_counter() - started)


def ease_scores(x: sp.csr_matrix, lam: float) -> np.ndarray:
    """``X·B`` of EASE^R for the user × item matrix ``x``, exactly, in whichever space is smaller.

    With fewer users than items (Last.fm: 1.9k users, 15k items) the item-space inverse is replaced by the
    Woodbury identity P = (I − XᵀKX)/λ, K = (λI + XXᵀ)⁻¹, so that XP = KX and diag(P) = (1 − colsum(X∘KX))/λ:
    X·B = X − XP·diagMat(1/diag(P)), the same matrix for a user-space inverse (U³ instead of I³ flops).
    """
    num_users, num_items = x.shape
    if num_users < num_items:
        gram = (x @ x.T).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += lam
        kx = np.asarray(x.T @ np.linalg.inv(gram).T).T  # K·X, K symmetric: (Xᵀ·Kᵀ)ᵀ with a sparse Xᵀ
        diag = (1.0 - np.asarray(x.multiply(kx).sum(axis=0)).ravel()) / lam
        return x.toarray() - kx / diag
    gram = (x.T @ x).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = p / (-np.diag(p))
    b[np.diag_indices_from(b)] = 0.0
    return np.asarray(x @ b)


def fit_pyg_lightgcn(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    """torch_geometric.nn.models.LightGCN as examples/lightgcn.py trains it (homogeneous graph, batches of
    positive edges, one uniform negative item each, recommendation_loss, Adam), with early stopping on
    validation NDCG@20 every ``eval_every`` epochs when ``val`` is given (never stopping before ``min_epochs``:
    at small learning rates validation NDCG sits on a plateau before it climbs), else ``epochs`` epochs."""
    from torch_geometric.nn.models import LightGCN

    torch.manual_seed(int(params.get("seed", SEED)))
    started = time.perf_counter()
    num_users, num_items = fold.num_users, fold.num_items
    users, items = fold.train[0], fold.train[1] + num_users
    edge_index = torch.cat([torch.stack([users, items]), torch.stack([items, users])], dim=1)
    edge_label_index = torch.stack([users, items])
    loader = torch.utils.data.DataLoader(
        range(edge_label_index.size(1)), shuffle=True, batch_size=int(params["batch_size"])
    )
    model = LightGCN(
        num_nodes=num_users + num_items,
        embedding_dim=int(params["embedding_dim"]),
        num_layers=int(params["num_layers"]),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))

    def score_fn() -> ScoreFn:
        with torch.no_grad():
            emb = model.get_embedding(edge_index)
        u, v = emb[:num_users], emb[num_users:]
        return lambda batch: u[batch] @ v.T

    max_epochs = int(params["epochs"]) if val is None else int(params["max_epochs"])
    best, best_epoch, best_state, stale, epoch_seconds = -1.0, 0, None, 0, []
    for epoch in range(1, max_epochs + 1):
        t = time.perf_counter()
        model.train()
        for index in loader:
            with record_function(PHASES["negatives"]):
                pos = edge_label_index[:, index]
                neg = torch.stack([pos[0], torch.randint(num_users, num_users + num_items, (index.numel(),))])
                label_index = torch.cat([pos, neg], dim=1)
            optimizer.zero_grad()
            with record_function(PHASES["propagate"]):  # propagation and the pairs' dot products
                pos_rank, neg_rank = model(edge_index, label_index).chunk(2)
            with record_function(PHASES["loss"]):
                loss = model.recommendation_loss(pos_rank, neg_rank, node_id=label_index.unique())
            with record_function(PHASES["backward"]):
                loss.backward()
            with record_function(PHASES["optimizer"]):
                optimizer.step()
        epoch_seconds.append(time.perf_counter() - t)
        if val is not None and epoch % int(params["eval_every"]) == 0:
            ndcg = evaluate(score_fn(), val, ks=(20,))[VAL_METRIC]
            if ndcg > best:
                best, best_epoch, stale = ndcg, epoch, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
                if stale >= int(params["patience"]) and epoch >= int(params.get("min_epochs", 0)):
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    info = {
        "epochs": best_epoch if val is not None else max_epochs,
        "epochs_run": len(epoch_seconds),
        "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else 0.0,
    }
    return Fitted(score_fn(), time.perf_counter() - started, info)


#: ``Fitted.info`` key of gnn's early-stopped fits: the best window's mean validation NDCG@20 (``val_window``
#: rounds around the chosen epoch; ranks every item in the graph, as their test does). Their trials are scored by
#: it rather than by one more evaluation of the chosen epoch, which is a single noisy round.
WINDOW_VAL = "val_window_mean"


def _early_stopped(result: FitResult) -> Fitted:
    """A gnn fit as a Fitted: its embeddings' dot products, and the epochs and windowed validation it chose."""
    info = {
        "epochs": result.best_epoch,
        "epochs_run": len(result.history),
        "seconds_per_epoch": float(np.mean([h.seconds for h in result.history])),
        WINDOW_VAL: result.best_val,
    }
    return Fitted(embedding_score_fn(result.user_emb, result.item_emb), result.seconds, info)


def fit_ours(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
    """gnn's LightGCN (gnn.train.fit_lightgcn): early stopping on validation, or ``epochs`` epochs."""
    fields = {k: v for k, v in params.items() if k in TrainConfig.model_fields}
    config = TrainConfig(**{"seed": SEED, **fields}, device="cpu", num_threads=TORCH_THREADS, progress=False)
    result = fit_lightgcn(
        fold.train,
        fold.num_users,
        fold.num_items,
        config,
        val_fold=val,
        epochs=None if val is not None else int(params["epochs"]),
    )
    return _early_stopped(result)


def sage_fitter(snapshot: GraphSnapshot) -> FitFn:
    """gnn's inductive GraphSAGE over the knowledge graph of ``snapshot`` (gnn.train.fit_graphsage)."""

    def fit(fold: Fold, params: dict[str, Any], val: Fold | None = None) -> Fitted:
        fields = {k: v for k, v in params.items() if k in TrainConfig.model_fields}
        config = TrainConfig(
            **fields, model="graphsage", seed=SEED, device="cpu", num_threads=TORCH_THREADS, progress=False
        )
        result = fit_graphsage(
            snapshot, fold.train, config, val_fold=val, epochs=None if val is not None else int(params["epochs"])
        )
        return _early_stopped(result)

    return fit
