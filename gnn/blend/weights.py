"""The ranker's weights, learnt on validation: the validation users' features, a listwise learned ranker, a
linear coordinate search, and the cross-fit that chooses between them (:func:`fit_weights`)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from gnn.blend.config import FEATURES, RankerConfig
from gnn.blend.model import RankerModel
from gnn.blend.scorers import group_of
from gnn.evaluation import Fold
from schema.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class ValidationData:
    """Standardised features of every validation user over all items, and their targets.

    Attributes:
        users: ``[U]`` user_idx (the fold's evaluation users).
        features: ``[F, U, I]`` float32 z-scores of the first ``F`` of FEATURES (at least :attr:`active`; the
            features a model cannot have get no rows), feature-major: a blend of them is one matrix-vector product
            over a contiguous ``[F, U·I]`` matrix, in NumPy and in autograd (about 5× faster than contracting a
            user-major cube).
        exclude: ``[U, I]`` bool, the user's fit items (never ranked).
        target: ``[U, I]`` bool, the user's validation items.
        active: The features the model can have, the first ``active`` of FEATURES
            (:attr:`gnn.blend.model.RankerModel.active`; None: every row of ``features``); the others are left out
            of every product, so their weights stay 0 and the others come out as before those features existed.
        items: ``[U, C]`` item_idx of each user's columns when the features are kept on candidates only
            (:func:`validation_data` with ``candidates``): then ``features``, ``exclude`` and ``target`` have ``C``
            columns instead of ``I``; None: the columns are every item.
        target_counts: ``[U]`` each user's validation items, candidates or not (the ideal of NDCG); None: the
            ``target`` row sums.
        sizes: ``[U]`` the size of each user's history (what chooses a user's group of adaptive weights,
            :func:`fit_group_weights`); None: unknown.
    """

    users: np.ndarray
    features: np.ndarray
    exclude: np.ndarray
    target: np.ndarray
    active: int | None = None
    items: np.ndarray | None = None
    target_counts: np.ndarray | None = None
    sizes: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> ValidationData:
        """The users ``rows`` alone (their features copied: a fit on a few users then costs only theirs)."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[rows]

        return ValidationData(
            self.users[rows],
            self.features[:, rows],
            self.exclude[rows],
            self.target[rows],
            self.active,
            pick(self.items),
            pick(self.target_counts),
            pick(self.sizes),
        )

    def columns(self, rows: np.ndarray) -> np.ndarray:
        """``[U, I]`` per-item values of the users as ``[U, C]`` on their columns (the same array without
        candidates)."""
        return rows if self.items is None else np.take_along_axis(rows, self.items, axis=1)

    def ndcg_of(self, scores: np.ndarray, rows: np.ndarray | None = None, k: int = 20) -> float:
        """Mean NDCG@k of ``scores`` on the users' columns (``[U, C]``, overwritten where excluded) over ``rows``
        (default all)."""
        counts = self.target_counts
        if rows is None:
            return ndcg_of_scores(scores, self.exclude, self.target, k, counts)
        return ndcg_of_scores(
            scores, self.exclude[rows], self.target[rows], k, None if counts is None else counts[rows]
        )

    @property
    def num_active(self) -> int:
        """How many leading features take part (:attr:`active`, or every row of the cube)."""
        return self.features.shape[0] if self.active is None else self.active

    def ndcg(self, weights: np.ndarray, rows: np.ndarray | None = None, k: int = 20) -> float:
        """Mean NDCG@k over the users ``rows`` (default all) of the blend ``weights``."""
        rows = np.arange(len(self.users)) if rows is None else rows
        return self.ndcg_of(self.blend(weights)[rows], rows, k)

    def blend(self, weights: np.ndarray) -> np.ndarray:
        """``[U, I]`` float32 scores of every user and item under ``weights`` (``[len(FEATURES)]``)."""
        _, u, i = self.features.shape
        f = self.num_active
        return (weights[:f].astype(np.float32) @ self.features[:f].reshape(f, u * i)).reshape(u, i)


def ndcg_of_scores(
    scores: np.ndarray, exclude: np.ndarray, target: np.ndarray, k: int = 20, counts: np.ndarray | None = None
) -> float:
    """Mean NDCG@k of ``[U, I]`` scores against ``[U, I]`` bool targets, ``exclude`` never ranked (the
    scores are overwritten there); ``counts``: each user's targets for the ideal (default the row sums of
    ``target``; more when only some of them are among the columns)."""
    scores[exclude] = -np.inf
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k, axis=1)[:, :k] if k < scores.shape[1] else np.argsort(-scores, axis=1)
    top_scores = np.take_along_axis(scores, top, axis=1)
    top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
    hits = np.take_along_axis(target, top, axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    n = np.minimum(target.sum(axis=1) if counts is None else counts, k)
    ideal = np.cumsum(discount)[np.maximum(n, 1) - 1]
    return float(((hits * discount).sum(axis=1) / ideal).mean())


def sample_fold_users(fold: Fold, max_users: int | None, seed: int) -> Fold:
    """The fold with its targets restricted to a seeded sample of ``max_users`` evaluation users (the fold
    itself when it has no more than that, or ``max_users`` is None); ``train`` is kept whole."""
    users = fold.eval_users.numpy()
    if max_users is None or len(users) <= max_users:
        return fold
    keep = np.random.default_rng(seed).choice(users, size=max_users, replace=False)
    chosen = torch.from_numpy(np.isin(fold.target[0].numpy(), keep))
    return dataclasses.replace(fold, target=fold.target[:, chosen])


#: Features whose z-scores choose a user's candidates (:func:`validation_data`): the scorers, not the indicators
#: and cold-only features (every cold item ties on those).
CANDIDATE_FEATURES: tuple[str, ...] = (
    "ease",
    "ease_recent",
    "sequence",
    "knowledge",
    "lightgcn",
    "als",
    "pop_window",
    "pop_global",
    "social",
    "peers",
)


def validation_data(
    model: RankerModel, fold: Fold, desc: str = "features", candidates: int | None = None
) -> ValidationData:
    """Features of the fold's evaluation users from a model fitted on the fold's train part.

    Args:
        candidates: Keep each user's features on this many items only, those with the highest z-score in any of
            :data:`CANDIDATE_FEATURES` (the history left out; ``ValidationData.items``), so that the cube is
            ``[F, U, candidates]`` however large the catalogue; None (or at least the catalogue): every item.
    """
    users = fold.eval_users.numpy()
    num_items = model.num_items
    width = num_items if candidates is None or candidates >= num_items else candidates
    feats = np.zeros((model.active, len(users), width), dtype=np.float32)  # features it cannot have: no rows
    exclude = np.zeros((len(users), width), dtype=bool)
    target = np.zeros((len(users), width), dtype=bool)
    columns = np.zeros((len(users), width), dtype=np.int64) if width < num_items else None
    sizes = np.zeros(len(users), dtype=np.int64)
    chooser = [FEATURES.index(f) for f in CANDIDATE_FEATURES if FEATURES.index(f) < model.active]
    row_of = {int(u): r for r, u in enumerate(users)}
    t_users, t_items = fold.target[0].numpy(), fold.target[1].numpy()
    rows = np.array([row_of.get(int(u), -1) for u in t_users], dtype=np.int64)
    for r, u in enumerate(tqdm(users.tolist(), desc=desc, disable=not model.config.progress, leave=False)):
        items, times = model.history(u)
        sizes[r] = len(items)
        z = model.standardized(items, times, u, weights=model.history_weights(u))[: model.active]
        if columns is None:
            feats[:, r] = z
            exclude[r, items] = True
            continue
        best = z[chooser].max(axis=0)
        best[items] = -np.inf
        pick = best_columns(best, width)
        columns[r] = pick
        feats[:, r] = z[:, pick]
        exclude[r] = ~np.isfinite(best[pick])  # history items, only when the user has fewer others than width
    if columns is None:
        target[rows[rows >= 0], t_items[rows >= 0]] = True
        return ValidationData(users, feats, exclude, target, model.active, sizes=sizes)
    counts = np.bincount(rows[rows >= 0], minlength=len(users))
    full = np.zeros((len(users), num_items), dtype=bool)
    full[rows[rows >= 0], t_items[rows >= 0]] = True
    target = np.take_along_axis(full, columns, axis=1)
    return ValidationData(users, feats, exclude, target, model.active, columns, counts, sizes)


def best_columns(best: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` columns of the largest ``best`` values along the last axis, in ascending column order."""
    return np.sort(np.argpartition(-best, width - 1, axis=-1)[..., :width], axis=-1)


def head_columns(data: ValidationData, width: int | None) -> ValidationData:
    """``data`` kept on each user's ``width`` best columns, the highest z-score in any of :data:`CANDIDATE_FEATURES`
    (history left out), as :func:`validation_data` keeps its candidates (``ranker_fit_candidates``); ``data``
    itself when it has no more columns than that or ``width`` is None. The targets outside them count as misses
    (``target_counts`` keeps each user's whole count)."""
    _, _, columns = data.features.shape
    if width is None or columns <= width:
        return data
    chooser = [FEATURES.index(f) for f in CANDIDATE_FEATURES if FEATURES.index(f) < data.num_active]
    best = data.features[chooser].max(axis=0)
    best[data.exclude] = -np.inf
    pick = best_columns(best, width)
    counts = data.target.sum(axis=1) if data.target_counts is None else data.target_counts
    return ValidationData(
        data.users,
        np.take_along_axis(data.features, pick[None], axis=2),
        ~np.isfinite(np.take_along_axis(best, pick, axis=1)),  # history, only when a user has fewer others
        np.take_along_axis(data.target, pick, axis=1),
        data.active,
        pick if data.items is None else np.take_along_axis(data.items, pick, axis=1),
        counts,
        data.sizes,
    )


def feature_mask(config: RankerConfig) -> np.ndarray:
    """``[len(FEATURES)]`` bool: the features the ranker may weight (``config.ranker_features``).

    Raises:
        ConfigError: An unknown feature name.
    """
    if config.ranker_features is None:
        return np.ones(len(FEATURES), dtype=bool)
    unknown = sorted(set(config.ranker_features) - set(FEATURES))
    if unknown:
        raise ConfigError(f"unknown ranker features {unknown}; known: {list(FEATURES)}")
    return np.isin(np.asarray(FEATURES), config.ranker_features)


def search_linear_weights(
    data: ValidationData, rows: np.ndarray | None = None, rounds: int = 3, mask: np.ndarray | None = None
) -> np.ndarray:
    """Coordinate search of linear blend weights on validation NDCG@20 (the floor a learned ranker must beat).

    Starts from recency-weighted EASE alone (weight 1); each round tries, per other allowed feature (``mask``,
    default all), a grid of weights relative to it.
    """
    grid = [-2.0, -1.0, -0.5, -0.25, -0.1, 0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0]
    mask = np.ones(len(FEATURES), dtype=bool) if mask is None else mask
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    weights[FEATURES.index("ease_recent")] = 1.0
    best = data.ndcg(weights, rows)
    for _ in range(rounds):
        changed = False
        for f in range(data.num_active):
            if FEATURES[f] == "ease_recent" or not mask[f]:
                continue
            for value in sorted({*grid, *(float(weights[f]) * m for m in (0.6, 0.8, 1.25, 1.6))}):
                trial = weights.copy()
                trial[f] = value
                score = data.ndcg(trial, rows)
                if score > best + 1e-6:
                    best, weights, changed = score, trial, True
        if not changed:
            break
    return weights


def learn_weights(
    data: ValidationData,
    config: RankerConfig,
    rows: np.ndarray | None = None,
    init: np.ndarray | None = None,
    *,
    l2: float | None = None,
    mask: np.ndarray | None = None,
    center: np.ndarray | None = None,
) -> np.ndarray:
    """Listwise ranker: the weights maximising, per validation user, the softmax likelihood of their
    validation items among every item they could be shown (ListNet with binary relevance), with an L2
    penalty (a convex problem); L-BFGS from ``init`` (default: recency-weighted EASE alone).

    Args:
        l2: L2 penalty (default ``config.ranker_l2``).
        mask: Features allowed a non-zero weight (default all).
        center: The L2 penalty pulls the weights towards these (default 0): a group's weights towards the global
            ones (:func:`fit_group_weights`).

    Returns:
        ``[len(FEATURES)]`` float32 weights.
    """
    rows = np.arange(len(data.users)) if rows is None else rows
    rows = rows[data.target[rows].any(axis=1)]
    l2 = config.ranker_l2 if l2 is None else l2
    num_features = data.num_active  # the features the model can have (a leading block of the cube's rows)
    allowed = (np.ones(len(FEATURES), dtype=bool) if mask is None else mask)[:num_features]
    if init is None:
        init = np.eye(len(FEATURES), dtype=np.float32)[FEATURES.index("ease_recent")]
    init = init[:num_features]
    pull = np.zeros(num_features, dtype=np.float32) if center is None else center[:num_features].astype(np.float32)
    _, num_users, num_items = data.features.shape
    x = data.features[:num_features].reshape(num_features, num_users * num_items)  # a view, no copy
    # Loss and gradient by hand, in place on one [users, items] buffer: autograd's temporaries over every
    # user's items cost three times the two matrix-vector products. Users outside ``rows`` are scored too
    # (no copy of the cube) and weigh 0. Each fitted user's validation items share the user's weight.
    user_weight = np.zeros(num_users, dtype=np.float64)
    user_weight[rows] = 1.0 / max(len(rows), 1)
    t_user, t_item = np.nonzero(data.target & ~data.exclude & (user_weight > 0)[:, None])
    t_flat = t_user * num_items + t_item
    t_value = user_weight[t_user] / np.bincount(t_user, minlength=num_users)[t_user]  # sums to 1
    scores = np.empty((num_users, num_items), dtype=np.float32)
    flat = scores.reshape(-1)
    w = torch.from_numpy(init[allowed].astype(np.float32)).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([w], lr=1.0, max_iter=config.ranker_iterations, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        full = np.zeros(num_features, dtype=np.float32)
        full[allowed] = w.detach().numpy()
        np.matmul(full, x, out=flat)
        np.copyto(scores, -np.inf, where=data.exclude)
        np.subtract(scores, scores.max(axis=1, keepdims=True), out=scores)
        picked = flat[t_flat].astype(np.float64)  # the targets' s − max
        log_total = np.log(np.exp(scores, out=scores).sum(axis=1, dtype=np.float64))  # scores now exp(s − max)
        loss = -float(t_value @ (picked - log_total[t_user]))  # −Σ y · log p
        # d loss / d s = weight_u · p − y, in place
        np.multiply(scores, (user_weight / np.exp(log_total)).astype(np.float32)[:, None], out=scores)
        flat[t_flat] -= t_value.astype(np.float32)
        off = full - pull
        grad = (x @ flat)[allowed] + 2.0 * l2 * off[allowed]
        w.grad = torch.from_numpy(grad.astype(np.float32))
        return torch.tensor(loss + l2 * float(off @ off))

    optimizer.step(closure)
    state = optimizer.state[w]
    log.debug(
        "listwise ranker, l2 %g, %d users: %d L-BFGS iterations, %d evaluations",
        l2,
        len(rows),
        state.get("n_iter", 0),
        state.get("func_evals", 0),
    )
    out = np.zeros(len(FEATURES), dtype=np.float32)
    out[np.flatnonzero(allowed)] = w.detach().numpy()
    return out


def learned_path(
    data: ValidationData,
    config: RankerConfig,
    rows: np.ndarray | None,
    penalties: Sequence[float],
    mask: np.ndarray | None = None,
    init: np.ndarray | None = None,
) -> dict[float, np.ndarray]:
    """:func:`learn_weights` for each L2 penalty, from the largest down, each fit starting from the previous
    one's weights (a regularisation path: the problem is strictly convex, so a warm start changes only how
    many L-BFGS steps reach the same optimum: on Last.fm the smallest penalty took 23 evaluations warm, 31 cold).

    Returns:
        penalty → ``[len(FEATURES)]`` float32 weights.
    """
    out: dict[float, np.ndarray] = {}
    for l2 in sorted(set(penalties), reverse=True):
        init = learn_weights(data, config, rows, init, l2=l2, mask=mask)
        out[l2] = init
    return out


def group_edges(sizes: np.ndarray, groups: int) -> list[int]:
    """History sizes that separate ``groups`` equal-count groups of users (``sizes``: each user's history size):
    a user of size ``n`` is in group ``searchsorted(edges, n, side="right")`` (:func:`group_of`). Ties may merge
    groups, so there can be fewer than ``groups - 1`` edges."""
    if groups <= 1 or not len(sizes):
        return []
    cuts = np.quantile(np.asarray(sizes, dtype=np.float64), np.arange(1, groups) / groups, method="higher")
    return sorted({int(c) for c in cuts if int(c) > int(np.min(sizes))})


def blend_groups(data: ValidationData, weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``[U, I]`` scores of every user under their group's weights (``weights``: ``[G, len(FEATURES)]``,
    ``groups``: ``[U]``)."""
    out = np.empty(data.exclude.shape, dtype=np.float32)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        out[rows] = data.blend(weights[g])[rows]
    return out


def fit_group_weights(
    data: ValidationData,
    config: RankerConfig,
    center: np.ndarray,
    groups: np.ndarray,
    num_groups: int,
    rows: np.ndarray,
    l2: float,
    mask: np.ndarray,
) -> np.ndarray:
    """``[num_groups, len(FEATURES)]`` weights: per group, the listwise ranker on the group's users among ``rows``
    pulled towards ``center`` (the global weights) by the L2 penalty ``l2``; a group without users keeps
    ``center``. Each group is fitted on a copy of its users' features (a fraction of the cube)."""
    out = np.tile(center.astype(np.float32), (num_groups, 1))
    for g in range(num_groups):
        members = rows[groups[rows] == g]
        if len(members):
            out[g] = learn_weights(data.subset(members), config, None, center, l2=l2, mask=mask, center=center)
    return out


def fit_weights(data: ValidationData, config: RankerConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Ranker weights on validation: learned (listwise, per L2 penalty of ``ranker_l2_grid``, fitted as one
    :func:`learned_path` per fold) vs linear search, compared on a ``ranker_folds``-fold cross-fit over
    validation users (fit on the other folds, measure NDCG@20 on the held-out one), then the winner refitted
    on all validation users (a learned winner from the mean of its fold weights); all of it on each user's
    ``ranker_fit_candidates`` best columns (:func:`head_columns`) when the catalogue has more than
    ``ranker_fit_min_items`` items (a cube kept on candidates comes from a catalogue above ``ranker_max_items``)."""
    wide = data.items is not None or data.exclude.shape[1] > config.ranker_fit_min_items
    data = head_columns(data, config.ranker_fit_candidates if wide else None)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data.users))
    parts = np.array_split(order, config.ranker_folds)
    splits = [(np.concatenate([p for j, p in enumerate(parts) if j != k]), parts[k]) for k in range(len(parts))]
    mask = feature_mask(config)
    # candidate name -> its weights fitted on each fold's training users
    folds: dict[str, list[np.ndarray]] = {}
    if config.ranker in ("auto", "linear"):
        folds["linear"] = [search_linear_weights(data, a, mask=mask) for a, _ in splits]
    penalties: dict[str, float] = {}
    if config.ranker in ("auto", "learned"):
        grid = config.ranker_l2_grid or [config.ranker_l2]
        penalties = {("learned" if not config.ranker_l2_grid else f"learned l2={l2:g}"): l2 for l2 in grid}
        paths = [learned_path(data, config, a, grid, mask) for a, _ in splits]
        for name, l2 in penalties.items():
            folds[name] = [path[l2] for path in paths]
    # held-out NDCG weighted by the held-out users, so unequal folds count alike per user
    cross = {
        name: float(sum(data.ndcg(w, b) * len(b) for w, (_, b) in zip(fitted, splits, strict=True)) / len(order))
        for name, fitted in folds.items()
    }
    chosen = max(cross, key=lambda k: cross[k])
    if chosen == "linear":
        weights = search_linear_weights(data, mask=mask)
    else:
        weights = learn_weights(data, config, None, np.mean(folds[chosen], axis=0), l2=penalties[chosen], mask=mask)
    report = {
        "cross_fit_ndcg20": cross,
        "chosen": chosen,
        "val_ndcg20": data.ndcg(weights),
        "weights": dict(zip(FEATURES, weights.tolist(), strict=True)),
    }
    if config.ranker_user_groups > 1 and data.sizes is not None:
        report["user_groups"] = _user_groups(data, config, folds[chosen], splits, weights, cross[chosen], mask)
    return weights, report


def _user_groups(
    data: ValidationData,
    config: RankerConfig,
    fold_weights: list[np.ndarray],
    splits: list[tuple[np.ndarray, np.ndarray]],
    weights: np.ndarray,
    global_cross: float,
    mask: np.ndarray,
) -> dict[str, Any]:
    """Per-user adaptive weights (``ranker_user_groups``): the groups' weights for each penalty of
    ``ranker_group_l2_grid`` on the same cross-fit as the global weights (each fold's groups pulled towards that
    fold's global weights), kept (``"weights"`` not None) only when the best beats the global weights' held-out
    NDCG@20; then refitted on every validation user, pulled towards ``weights``."""
    assert data.sizes is not None
    edges = group_edges(data.sizes, config.ranker_user_groups)
    groups = group_of(data.sizes, edges)
    num_groups = len(edges) + 1
    total = sum(len(b) for _, b in splits)
    cross: dict[str, float] = {}
    for l2 in config.ranker_group_l2_grid:
        held = 0.0
        for center, (a, b) in zip(fold_weights, splits, strict=True):
            fitted = fit_group_weights(data, config, center, groups, num_groups, a, l2, mask)
            held += data.ndcg_of(blend_groups(data, fitted, groups)[b], b) * len(b)
        cross[f"l2={l2:g}"] = held / total
    best = max(cross, key=lambda k: cross[k])
    out: dict[str, Any] = {
        "edges": edges,
        "users": np.bincount(groups, minlength=num_groups).tolist(),
        "cross_fit_ndcg20": cross,
        "global_cross_fit_ndcg20": global_cross,
        "weights": None,
    }
    if num_groups > 1 and cross[best] > global_cross:
        l2 = float(best.removeprefix("l2="))
        fitted = fit_group_weights(data, config, weights, groups, num_groups, np.arange(len(data.users)), l2, mask)
        out.update(chosen=best, weights=fitted.tolist(), val_ndcg20=data.ndcg_of(blend_groups(data, fitted, groups)))
    return out
