"""The evaluation protocol: positives, the per-user split, full-ranking metrics.

Every model — ours or a reference — is measured by the same two functions: :func:`rank_items` turns a
score function into top-k lists over *all* items (the user's own train items removed), and
:func:`evaluate` turns top-k lists into Recall/NDCG/Precision/MAP/HitRate at each k plus coverage,
intra-list diversity and novelty. Everything is in index space (``user_idx``, ``item_idx``) of one
:class:`gnn.data.GraphSnapshot`.

Splitting (per user, on positives only):
    * positive = rating >= ``min_rating`` (4.0), or any interaction without a rating, unless negative (polarity -1);
    * with timestamps: a user's positives sorted by (time, item id); the last ``ceil(20%)`` are test;
      without timestamps: a seeded random ``ceil(20%)`` per user (seed 42);
    * users with fewer than 5 positives stay entirely in train;
    * validation is carved out of train the same way (last ``ceil(10%)``, users with < 5 train positives
      keep all of them in the fit part).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from gnn.data import GraphSnapshot
from gnn.metrics import DEFAULT_KS, accuracy_metrics, hit_matrix, intra_list_diversity
from schema.errors import DataError

#: ``score_fn(user_idx [B]) -> scores [B, num_items]`` (higher is better; ``-inf`` = cannot be recommended).
ScoreFn = Callable[[Tensor], Tensor]


# --- split -------------------------------------------------------------------------------------------


def holdout_last(
    user: np.ndarray,
    order_key: np.ndarray,
    item: np.ndarray,
    fraction: float,
    min_positives: int = 5,
) -> np.ndarray:
    """Mark, per user, the last ``ceil(fraction · n)`` rows when ordered by ``(order_key, item)``.

    Args:
        user: ``[n]`` user of each row.
        order_key: ``[n]`` ordering within a user (timestamps, or a random permutation).
        item: ``[n]`` item of each row (breaks ties of ``order_key``; item_idx order = natural id order).
        fraction: Share held out per user, rounded up.
        min_positives: Users with fewer rows hold nothing out.

    Returns:
        ``[n]`` bool, True for held-out rows.
    """
    n = len(user)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((item, order_key, user))
    sorted_user = user[order]
    starts = np.flatnonzero(np.r_[True, sorted_user[1:] != sorted_user[:-1]])
    sizes = np.diff(np.r_[starts, n])
    # round() first: 0.1 * 30 is 3.0000000000000004 in floating point, and must not become 4.
    held = np.where(sizes >= min_positives, np.ceil(np.round(sizes * fraction, 9)).astype(np.int64), 0)
    position = np.arange(n) - np.repeat(starts, sizes)
    out = np.empty(n, dtype=bool)
    out[order] = position >= np.repeat(sizes - held, sizes)
    return out


@dataclass(frozen=True)
class Fold:
    """What one evaluation needs: the interactions a model may learn from and the ones it must find.

    Attributes:
        name: ``"validation"`` or ``"test"``.
        num_users, num_items: Index spaces of the snapshot.
        train: ``[2, n]`` (user_idx, item_idx) positives to train on; also excluded from the rankings.
        target: ``[2, m]`` (user_idx, item_idx) held-out positives to find.
    """

    name: str
    num_users: int
    num_items: int
    train: Tensor
    target: Tensor

    @property
    def eval_users(self) -> Tensor:
        """Sorted user_idx of the users that have at least one target item."""
        return torch.unique(self.target[0])

    def train_item_mask(self) -> Tensor:
        """``[num_items]`` bool: items with at least one train positive (all a reference model knows)."""
        mask = torch.zeros(self.num_items, dtype=torch.bool)
        mask[self.train[1]] = True
        return mask

    def item_popularity(self) -> Tensor:
        """``[num_items]`` int64: train positives per item."""
        return torch.bincount(self.train[1], minlength=self.num_items)


@dataclass(frozen=True)
class Split:
    """A snapshot's positives divided per user into train and test, and train into fit and validation.

    Attributes:
        snapshot_id: The snapshot this split belongs to.
        method: ``"temporal"`` or ``"random"``.
        seed: Seed of the random split (recorded for temporal splits too).
        min_rating: Ratings at or above this are positives; unrated interactions always are.
        num_users, num_items: Index spaces.
        train, test, fit, val: ``[2, n]`` (user_idx, item_idx) positives; ``train`` = ``fit`` ∪ ``val``.
        test_rows: ``[m]`` positions in the snapshot's interaction list of the test positives (to remove
            them from any graph a model or recall query sees).
    """

    snapshot_id: str
    method: Literal["temporal", "random"]
    seed: int
    min_rating: float
    num_users: int
    num_items: int
    train: Tensor
    test: Tensor
    fit: Tensor
    val: Tensor
    test_rows: Tensor

    def validation(self) -> Fold:
        """Fit on ``fit``, find ``val`` (hyper-parameter choice, early stopping)."""
        return Fold("validation", self.num_users, self.num_items, self.fit, self.val)

    def testing(self) -> Fold:
        """Train on all of ``train``, find ``test`` (the reported figures)."""
        return Fold("test", self.num_users, self.num_items, self.train, self.test)

    def fold(self, name: Literal["validation", "test"]) -> Fold:
        return self.validation() if name == "validation" else self.testing()

    def interaction_mask(self, snapshot: GraphSnapshot) -> Tensor:
        """``[E]`` bool over the snapshot's interactions: everything except the test positives."""
        mask = torch.ones(snapshot.num_interactions, dtype=torch.bool)
        mask[self.test_rows] = False
        return mask

    def describe(self) -> dict[str, object]:
        """Sizes and settings, for reports."""
        return {
            "snapshot_id": self.snapshot_id,
            "method": self.method,
            "seed": self.seed,
            "min_rating": self.min_rating,
            "train": int(self.train.size(1)),
            "test": int(self.test.size(1)),
            "fit": int(self.fit.size(1)),
            "val": int(self.val.size(1)),
            "test_users": int(torch.unique(self.test[0]).numel()),
            "val_users": int(torch.unique(self.val[0]).numel()),
        }


def positive_mask(snapshot: GraphSnapshot, min_rating: float = 4.0) -> Tensor:
    """``[E]`` bool: interactions that count as positives (rating >= min_rating, or no rating), never a negative
    one (polarity -1: a return, a dislike, a rating below the source's threshold)."""
    rating = snapshot.edge_rating
    positive = torch.isnan(rating) | (rating >= min_rating)
    if snapshot.edge_polarity is not None:
        positive &= snapshot.edge_polarity > 0
    return positive


def split_interactions(
    snapshot: GraphSnapshot,
    *,
    min_rating: float = 4.0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    min_positives: int = 5,
    seed: int = 42,
    method: Literal["auto", "temporal", "random"] = "auto",
) -> Split:
    """Split a snapshot's positives per user (see the module docstring).

    Args:
        snapshot: The exported graph.
        min_rating: Positive threshold for rated interactions.
        test_fraction: Share of each user's positives held out for test, rounded up.
        val_fraction: Share of each user's train positives held out for validation, rounded up.
        min_positives: Users with fewer positives (fewer train positives, for validation) are not split.
        seed: Seed of the random split.
        method: ``"auto"`` = temporal when every positive has a timestamp, else random.

    Returns:
        The split.

    Raises:
        DataError: ``"temporal"`` was asked for but some positive has no timestamp.
    """
    positive = positive_mask(snapshot, min_rating)
    rows = torch.nonzero(positive).view(-1).numpy()
    user = snapshot.edge_index[0].numpy()[rows]
    item = snapshot.edge_index[1].numpy()[rows]
    stamps = snapshot.edge_time.numpy()[rows]
    timed = bool(len(rows)) and bool((stamps >= 0).all())
    if method == "temporal" and not timed:
        raise DataError("a temporal split needs a timestamp on every positive")
    chosen: Literal["temporal", "random"] = (
        "temporal" if method == "auto" and timed else ("random" if method == "auto" else method)
    )
    if chosen == "temporal":
        key = stamps
    else:
        key = np.random.default_rng(seed).permutation(len(rows))
    test = holdout_last(user, key, item, test_fraction, min_positives)
    train_pos = np.flatnonzero(~test)
    val_in_train = holdout_last(user[train_pos], key[train_pos], item[train_pos], val_fraction, min_positives)
    val = np.zeros(len(rows), dtype=bool)
    val[train_pos[val_in_train]] = True
    fit = ~test & ~val

    def pairs(mask: np.ndarray) -> Tensor:
        return torch.from_numpy(np.stack([user[mask], item[mask]]).astype(np.int64))

    return Split(
        snapshot_id=snapshot.snapshot_id,
        method=chosen,
        seed=seed,
        min_rating=min_rating,
        num_users=snapshot.num_users,
        num_items=snapshot.num_items,
        train=pairs(~test),
        test=pairs(test),
        fit=pairs(fit),
        val=pairs(val),
        test_rows=torch.from_numpy(rows[test].astype(np.int64)),
    )


# --- ranking -------------------------------------------------------------------------------------------


def embedding_score_fn(user_emb: Tensor, item_emb: Tensor, unknown_items: Tensor | None = None) -> ScoreFn:
    """Dot products of user and item embeddings as a :data:`ScoreFn`.

    Args:
        user_emb: ``[num_users, d]``.
        item_emb: ``[num_items, d]`` (on the device of ``user_emb``).
        unknown_items: ``[num_items]`` bool, items that score ``-inf`` (cannot be recommended), on any device.
    """

    def score(users: Tensor) -> Tensor:
        out = user_emb[users.to(user_emb.device)] @ item_emb.T
        if unknown_items is not None:
            out[:, unknown_items.to(out.device)] = -torch.inf  # the mask is built on the CPU
        return out

    return score


def rank_items(
    score_fn: ScoreFn,
    fold: Fold,
    *,
    k: int = 20,
    users: Tensor | None = None,
    candidates: Tensor | None = None,
    batch_size: int = 1024,
) -> Tensor:
    """Top-k item_idx per user from a full ranking, the user's own train items removed.

    Args:
        score_fn: ``user_idx [B] -> [B, num_items]`` scores.
        fold: Gives the train items to exclude.
        k: List length.
        users: user_idx to rank for (default: ``fold.eval_users``).
        candidates: ``[num_items]`` bool, items the model may recommend (reference models: the train items,
            ``fold.train_item_mask()``). Default: every item.
        batch_size: Users scored at once.

    Returns:
        ``[len(users), k]`` int64 item_idx, best first; ``-1`` pads lists with fewer than k rankable items.
    """
    users = fold.eval_users if users is None else users
    exclude = by_user(fold.train, fold.num_users)
    out = torch.full((users.numel(), k), -1, dtype=torch.long)
    with torch.no_grad():
        for start in range(0, users.numel(), batch_size):
            batch = users[start : start + batch_size]
            scores = score_fn(batch).detach().to("cpu", torch.float32).clone()
            if scores.shape != (batch.numel(), fold.num_items):
                expected = (batch.numel(), fold.num_items)
                raise DataError(f"score_fn returned {tuple(scores.shape)}, expected {expected}")
            if candidates is not None:
                scores[:, ~candidates] = -math.inf
            rows, cols = _rows_of(exclude, batch)
            scores[rows, cols] = -math.inf
            top = scores.topk(min(k, fold.num_items), dim=1)
            index = torch.where(torch.isneginf(top.values), -1, top.indices)
            out[start : start + batch.numel(), : index.size(1)] = index
    return out


def by_user(pairs: Tensor, num_users: int) -> tuple[Tensor, Tensor]:
    """CSR-like view of ``[2, n]`` pairs: (row pointer [num_users + 1], items sorted by user, stable)."""
    order = torch.argsort(pairs[0], stable=True)
    counts = torch.bincount(pairs[0], minlength=num_users)
    ptr = torch.zeros(num_users + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr, pairs[1, order]


def _rows_of(csr: tuple[Tensor, Tensor], batch: Tensor) -> tuple[Tensor, Tensor]:
    """(row in batch, item) of every pair of the users in ``batch``."""
    ptr, items = csr
    starts, ends = ptr[batch], ptr[batch + 1]
    lengths = ends - starts
    rows = torch.repeat_interleave(torch.arange(batch.numel()), lengths)
    offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
    return rows, items[torch.repeat_interleave(starts, lengths) + offsets]


def evaluate(
    ranking: ScoreFn | Tensor,
    fold: Fold,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    candidates: Tensor | None = None,
    item_features: Tensor | None = None,
    batch_size: int = 1024,
    per_user: bool = False,
) -> dict[str, Any]:
    """Measure a model on a fold, the same way for every model.

    Args:
        ranking: A score function (ranked here over all items, train items removed), or precomputed
            ``[len(fold.eval_users), >= max(ks)]`` item_idx lists aligned with ``fold.eval_users``
            (``-1`` = no item); such lists must not contain the user's train items.
        fold: What to train-exclude and what to find.
        ks: Cut-offs for the accuracy metrics; beyond-accuracy metrics use ``max(ks)``.
        candidates: ``[num_items]`` bool restriction of the ranking (only with a score function).
        item_features: ``[num_items, F]`` bool (genres) for intra-list diversity; omitted → NaN.
        batch_size: Users scored at once.
        per_user: Also return the per-user metric arrays (under ``"per_user"``, lists aligned with
            ``fold.eval_users``) for paired comparisons.

    Returns:
        ``recall@k``, ``ndcg@k``, ``precision@k``, ``map@k``, ``hit_rate@k`` (means over users with a
        target), ``coverage@K`` (distinct recommended items / items with a train positive),
        ``diversity@K``, ``novelty@K`` (mean −log2 of the share of users with the item in train; an
        item no one has counts as one user), ``users`` and ``targets`` (counts).

    Raises:
        DataError: Lists are too short, misaligned, or contain a user's train items.
    """
    users = fold.eval_users
    kmax = max(ks)
    if isinstance(ranking, Tensor):
        topk = ranking.long()
        if topk.size(0) != users.numel():
            raise DataError(f"{topk.size(0)} ranked lists for {users.numel()} evaluation users")
        if hit_matrix(topk, users, fold.train, fold.num_items).any():
            raise DataError("ranked lists contain items from the users' own train interactions")
    else:
        topk = rank_items(ranking, fold, k=kmax, users=users, candidates=candidates, batch_size=batch_size)
    topk = topk[:, :kmax]
    hits = hit_matrix(topk, users, fold.target, fold.num_items)
    n_target = torch.bincount(fold.target[0], minlength=fold.num_users)[users]
    metrics = accuracy_metrics(hits, n_target, ks)
    out: dict[str, Any] = {name: float(values.mean()) for name, values in metrics.items()}

    recommended = topk[topk >= 0]
    train_items = fold.train_item_mask()
    out[f"coverage@{kmax}"] = float(torch.unique(recommended).numel() / max(int(train_items.sum()), 1))
    if item_features is not None and item_features.numel() and item_features.any():
        diversity = intra_list_diversity(topk, item_features)
        out[f"diversity@{kmax}"] = float(diversity[~torch.isnan(diversity)].mean())
    else:
        diversity = None
        out[f"diversity@{kmax}"] = math.nan
    users_with = torch.zeros(fold.num_items, dtype=torch.long)
    pairs = torch.unique(fold.train[0] * fold.num_items + fold.train[1])
    users_with.index_add_(0, pairs % fold.num_items, torch.ones_like(pairs))
    share = users_with.clamp(min=1).double() / max(int(torch.unique(fold.train[0]).numel()), 1)
    novelty = -torch.log2(share[recommended])
    out[f"novelty@{kmax}"] = float(novelty.mean()) if novelty.numel() else math.nan
    out["users"] = users.numel()
    out["targets"] = int(fold.target.size(1))
    if per_user:
        per = {name: values.tolist() for name, values in metrics.items()}
        if diversity is not None:
            per[f"diversity@{kmax}"] = diversity.tolist()
        out["per_user"] = per
    return out
