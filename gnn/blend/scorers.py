"""Serving-time math of the blend's components: from a user's timed history to one score per item.

Everything here runs on every request (:meth:`gnn.blend.model.RankerModel.features`): recency weights of
history positions, the EASE^R and ALS scores of a history (ALS folds the user's vector in from the live
history), time-local popularity (:class:`TimedEvents`), what followed users liked (:func:`social_matrix`),
and the per-user z-scores the ranker weighs. Everything is in index space (``user_idx``, ``item_idx``);
times are epoch seconds, ``-1`` = unknown.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

#: The time of an interaction without a timestamp.
UNKNOWN_TIME = -1

#: A recency weight below which a candidate set's sums (``floor`` of :func:`ease_scores`, :func:`recent_part`,
#: :func:`als_fold_in`) leave a positive out: ``2⁻¹⁰⁰`` (the 500th most recent positive at a half-life of 5, the
#: 1,000th at 10) times any row of the fitted matrices is far below what a float32 feature or a float64 solve can
#: hold next to the recent positives' terms. A heavy history's old positives are most of its rows: leaving them out
#: took a third off the scoring of histories of 2,000 positives or more at 50,000 items (docs/benchmarks.md §5).
NEGLIGIBLE_WEIGHT = 2.0**-100


def recency_weights(times: np.ndarray, half_life: float) -> np.ndarray:
    """Weights of history items by recency: the k-th most recent item weighs ``0.5 ** (k / half_life)``.

    Positions, not seconds, so that a user who rated fifty films in one evening and one who rated them over
    years are treated alike. Unknown times (``-1``) count as the oldest; ties keep the input order (later
    entries are more recent).

    Args:
        times: ``[n]`` int64 epoch seconds of the history items.
        half_life: Positions after which the weight halves; ``inf`` gives uniform weights.

    Returns:
        ``[n]`` float64 weights in (0, 1], aligned with ``times``.
    """
    n = len(times)
    if n == 0 or not np.isfinite(half_life):
        return np.ones(n, dtype=np.float64)
    position = np.arange(n - 1, -1, -1, dtype=np.float64)
    if np.any(times[1:] < times[:-1]):  # a checked history is oldest first already: no sort (a request sorts it once)
        reordered = np.empty(n, dtype=np.float64)
        reordered[np.lexsort((np.arange(n), times))] = position  # oldest first
        position = reordered
    return np.power(0.5, position / half_life)


#: At most this many running counts (``[checkpoints, items]`` int32) are kept for :meth:`TimedEvents.window_counts`.
CHECKPOINT_CELLS = 2**23


class TimedEvents:
    """Everybody's positives as (time, item_idx), sorted by time, for popularity at a moment.

    Args:
        items: ``[n]`` item_idx of the positives.
        times: ``[n]`` epoch seconds (``-1`` unknown: such events count for global popularity only).
        num_items: Item index space.
    """

    def __init__(self, items: np.ndarray, times: np.ndarray, num_items: int) -> None:
        items = np.asarray(items, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        self.num_items = num_items
        self.global_counts = np.bincount(items, minlength=num_items).astype(np.float64)
        timed = times >= 0
        order = np.lexsort((items[timed], times[timed]))
        self.times = times[timed][order]
        self.items = items[timed][order]

    @property
    def latest(self) -> int:
        """Time of the latest timed event (``-1`` when none)."""
        return int(self.times[-1]) if len(self.times) else UNKNOWN_TIME

    def window_counts(self, end: int, window: float) -> np.ndarray:
        """``[num_items]`` float64: positives with time in ``(end − window, end]``.

        A window of more events than a checkpoint block (:attr:`checkpoints`) is the difference of the running counts
        at the checkpoints nearest its bounds, corrected by the events between each bound and its checkpoint: the
        same integers as counting the window's events (113,000 of them on average for the 3M world's 30-day window:
        0.34 ms a request), reading at most one block's (0.10 ms)."""
        # the bounds as integers: the times are whole seconds, so ``t <= x`` iff ``t <= floor(x)``, and a float
        # bound would have numpy compare in float64, i.e. copy every event time on each call (10M events: ~0.1 s)
        hi = int(np.searchsorted(self.times, int(end), side="right"))
        lo = int(np.searchsorted(self.times, math.floor(end - window), side="right"))
        block, running = self.checkpoints
        if hi - lo <= block:
            return np.bincount(self.items[lo:hi], minlength=self.num_items).astype(np.float64)
        first, last = round(lo / block), round(hi / block)
        counts = running[last].astype(np.float64)
        counts -= running[first]
        for bound, checkpoint, sign in ((hi, last * block, 1), (lo, first * block, -1)):
            # the events between a bound and its checkpoint: in at an upper bound past it, out at one before it, and
            # the other way round at the lower bound (np.add.at of a float64 1.0 into float64: its fast path, which an
            # int32 array and an int 1 miss, 30 times slower)
            low, high = sorted((bound, checkpoint))
            if low < high:
                (np.add.at if sign * (bound - checkpoint) > 0 else np.subtract.at)(counts, self.items[low:high], 1.0)
        return counts

    @functools.cached_property
    def checkpoints(self) -> tuple[int, np.ndarray]:
        """(block, ``[K + 1, num_items]`` int32): the running counts of the events before each multiple of ``block``
        (the last row: all of them), for :meth:`window_counts`. ``block`` keeps the rows to :data:`CHECKPOINT_CELLS`
        counts in all (50,000 items: 64 blocks, 12.8 MB), and to at most 64 blocks; built on first use (2M events:
        about 20 ms)."""
        rows = max(1, min(64, CHECKPOINT_CELLS // max(self.num_items, 1) - 1))
        block = max(1, -(-len(self.items) // rows))
        edges = range(0, len(self.items) + block, block)
        running = np.zeros((len(edges), self.num_items), dtype=np.int32)
        for k in range(1, len(edges)):
            running[k] = running[k - 1] + np.bincount(self.items[edges[k - 1] : edges[k]], minlength=self.num_items)
        return block, running


def frequency_regularization(
    counts: np.ndarray | int, columns: int, alpha: float, regularization: float, exponent: float
) -> np.ndarray:
    """Frequency-scaled ALS regularisation (Rendle et al. 2021, "Revisiting the performance of iALS on item
    recommendation benchmarks"): a row with ``n`` positives among ``columns`` is regularised by
    ``regularization · (1 + (1 + alpha) · n / columns) ** exponent`` — its confidence mass (``1 + alpha`` per
    positive, 1 per other column) relative to an empty row's, to the power ``exponent`` (0: ``regularization``
    for every row, plain ALS).

    Returns:
        ``[rows]`` float64 (or a 0-d array for one count).
    """
    n = np.asarray(counts, dtype=np.float64)
    if exponent == 0:
        return np.full(n.shape, float(regularization))
    return regularization * np.power(1.0 + (1.0 + alpha) * n / max(columns, 1), exponent)


def als_fold_in(
    item_factors: np.ndarray,
    gram: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    alpha: float,
    extra_regularization: float = 0.0,
    floor: float = 0.0,
) -> np.ndarray:
    """A user's ALS vector from their history (one least-squares solve against fixed item factors).

    Args:
        item_factors: ``[I, d]`` from :func:`gnn.blend.linear.fit_als`.
        gram: ``[d, d]`` ``item_factorsᵀ item_factors + regularization · I``.
        items: ``[n]`` history item_idx.
        weights: ``[n]`` confidence multipliers (recency weights; 1 = plain ALS).
        alpha: Confidence of a positive.
        extra_regularization: Added to ``gram``'s diagonal (a user's frequency-scaled regularisation beyond the
            fitted one, :func:`frequency_regularization`).
        floor: Positives of a smaller weight are left out of the confidence term added to ``gram`` (their ``alpha ·
            weight`` is below what the float64 sum holds next to ``gram``; they still count once on the right-hand
            side). 0: all of them (the every-item path and the fit); :data:`NEGLIGIBLE_WEIGHT` for a candidate set.

    Returns:
        ``[d]`` float64.
    """
    y = item_factors[items]
    keep = weights >= floor
    recent = (y if keep.all() else y[keep]).astype(np.float64)
    a = gram + alpha * (recent.T * weights[keep]) @ recent
    if extra_regularization:
        a[np.diag_indices_from(a)] += extra_regularization
    # float64 products of the float32 factors: the same as of their float64 copies, without copying them all
    return np.linalg.solve(a, ((1.0 + alpha * weights)[:, None] * y).sum(axis=0))


#: History length above which :func:`weighted_rows` lets scipy gather the rows (faster in C for long histories).
GATHER_IN_SCIPY = 200
#: Non-zeros of a history's EASE^R rows up to which :func:`ease_scores` reads them from the CSR arrays: at 50,000
#: items 0.09 ms against scipy's 0.17 for 2,000 of them, 0.20 against 0.22 for 16,000 (about 100 items); about even
#: at 18,000, scipy's gather faster beyond.
EASE_FROM_ARRAYS = 16_384


def ease_scores(
    ease: sp.csr_matrix, items: np.ndarray, times: np.ndarray, half_life: float, floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The ``ease`` and ``ease_recent`` features of a (non-empty, checked: oldest first) history: ``[I]`` float32 each;
    ``ease_recent`` may leave out the positives of a recency weight below ``floor`` (:func:`recent_part`).

    Both are scipy's sums of the gathered rows, bit for bit: rows of up to :data:`EASE_FROM_ARRAYS` non-zeros in all
    read straight from the CSR arrays (``ease`` summed in float32 in the history's order by ``np.add.at``,
    ``ease_recent`` as :func:`weighted_rows`), more gathered once by scipy, the recent sum over the last rows of
    that."""
    weights = recency_weights(times, half_life)
    starts, lengths = _rows(ease, items)
    if lengths.sum() <= EASE_FROM_ARRAYS:
        at = _positions(starts, lengths)
        columns, values = ease.indices[at], ease.data[at]
        plain = np.zeros(ease.shape[1], dtype=np.float32)
        np.add.at(plain, columns, values)
        recent = np.bincount(columns, weights=values * np.repeat(weights, lengths), minlength=ease.shape[1])
        return plain, recent.astype(np.float32)
    rows = ease[items]
    plain = rows.T @ np.ones(len(items), dtype=np.float32)  # rows.sum(axis=0): the same float32 sums, no np.matrix
    keep = np.flatnonzero(weights >= floor)
    if 0 < len(keep) < len(items):
        # oldest first, the positives kept are the last rows: a slice of the gathered ones, not a second gather
        part = rows[int(keep[0]) :] if keep[0] + len(keep) == len(items) else rows[keep]
        return plain, (part.T @ weights[keep]).astype(np.float32)
    return plain, (rows.T @ weights).astype(np.float32)


def recent_part(items: np.ndarray, weights: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """The positives (item_idx, recency weight) of a weight of at least ``floor`` (all of them for 0), in order."""
    keep = weights >= floor
    return (items, weights) if keep.all() else (items[keep], weights[keep])


def weighted_rows(matrix: sp.csr_matrix, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``matrix[items].T @ weights`` (``[columns]`` float64), for a history of up to :data:`GATHER_IN_SCIPY` items
    read straight from the CSR arrays: the same products summed in the same order as scipy's, without building the
    gathered matrix (scipy's indexing costs more than the sums for a few dozen items, and every request scores
    several)."""
    if len(items) > GATHER_IN_SCIPY:
        return matrix[items].T @ weights
    starts, lengths = _rows(matrix, items)
    at = _positions(starts, lengths)
    products = matrix.data[at] * np.repeat(weights, lengths)
    return np.bincount(matrix.indices[at], weights=products, minlength=matrix.shape[1]).astype(np.float64, copy=False)


def _rows(matrix: sp.csr_matrix, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the rows ``items`` start in ``matrix``'s CSR arrays, and their lengths."""
    starts = matrix.indptr[items]
    return starts, matrix.indptr[items + 1] - starts


def _positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions in the CSR arrays of the rows that start at ``starts``, one row after the other."""
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)


def als_vector(
    als_items: np.ndarray,
    als_gram: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    half_life: float,
    alpha: float,
    regularization: float = 0.0,
    exponent: float = 0.0,
    floor: float = 0.0,
) -> np.ndarray:
    """The user's ALS vector (``[k]`` float32), folded in from the recency-weighted history: an item's ``als``
    feature is its factors dotted with it (``als_items @`` this for every item; a few items' cost a few dot products).
    With ``exponent`` > 0 the user's regularisation is :func:`frequency_regularization` of their history's size
    (``als_gram`` holds ``regularization``). ``floor``: :func:`als_fold_in`'s."""
    extra = 0.0
    if exponent:
        scaled = frequency_regularization(len(items), len(als_items), alpha, regularization, exponent)
        extra = float(scaled) - regularization
    x = als_fold_in(als_items, als_gram, items, recency_weights(times, half_life), alpha, extra, floor)
    return x.astype(np.float32)


def social_matrix(
    follows: sp.csr_matrix | None, hist_ptr: np.ndarray, hist_items: np.ndarray, num_items: int
) -> sp.csr_matrix:
    """``[U, I]`` float32 CSR: for each user, the positives of the people they follow, each followee's
    weighted ``1/√(their positives)`` (one who liked five items says more about each than one who liked
    five thousand), from the fitted histories (``hist_ptr``/``hist_items``, CSR by user_idx)."""
    num_users = len(hist_ptr) - 1
    if follows is None or follows.nnz == 0:
        return sp.csr_matrix((num_users, num_items), dtype=np.float32)
    liked = sp.csr_matrix(
        (np.ones(len(hist_items), dtype=np.float32), hist_items, hist_ptr), shape=(num_users, num_items)
    )
    liked.sum_duplicates()
    liked.data[:] = 1.0
    counts = np.diff(liked.indptr)
    scale = sp.diags((1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32))
    return (follows @ (scale @ liked)).tocsr().astype(np.float32)


def zscore(rows: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the columns (a constant row becomes 0).

    The same numbers, bit for bit, as ``(rows - rows.mean(axis=1)) / rows.std(axis=1)``: numpy's ``std`` centres the
    rows on the same float mean and sums the same squares, so the rows are centred once here and the squares summed
    from that (two passes over the rows fewer; at 50,000 items a served list's 16 rows cost about 2.9 ms that way,
    1.9 ms this way)."""
    centred = rows - rows.mean(axis=1, keepdims=True)
    std = np.sqrt(np.square(centred).mean(axis=1, keepdims=True))
    return np.divide(centred, np.where(std > 0, std, 1.0), out=centred)


def mean_and_deviation(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, population deviation) over the last axis: ``rows.mean(axis=-1)`` and ``rows.std(axis=-1)`` bit for
    bit (numpy's ``std`` sums the squares about the same float mean), the mean summed once instead of twice."""
    mean = rows.mean(axis=-1, keepdims=True)
    std = np.sqrt(np.square(rows - mean).mean(axis=-1))
    return mean[..., 0], std


def distinct(items: np.ndarray, num_items: int) -> int:
    """How many distinct item_idx (all in ``0..num_items − 1``) ``items`` holds: a mask over the items rather than
    ``np.unique``'s hash and sort (a heavy history's thousands of items: 0.2 ms)."""
    seen = np.zeros(num_items, dtype=bool)
    seen[items] = True
    return int(np.count_nonzero(seen))


def attribute_shares(
    user_attributes: sp.csr_matrix, users: np.ndarray, items: np.ndarray, num_items: int, prior: float
) -> np.ndarray:
    """Per-attribute item popularity: for each user attribute (age band, country, ...), the smoothed share of its
    users with positives who liked each item, ``(likes in the group + prior · global share) / (group size + prior)``.

    Args:
        user_attributes: ``[U, A]`` CSR, non-zero where the user has the attribute.
        users, items: ``[n]`` the positives (user_idx, item_idx) the shares are counted on (the fit part).
        num_items: Item index space.
        prior: Pseudo-users of global taste in every group.

    Returns:
        ``[A, I]`` float32 (``A = 0`` rows when there are no attributes).
    """
    num_users, num_attributes = user_attributes.shape
    if num_attributes == 0:
        return np.zeros((0, num_items), dtype=np.float32)
    liked = sp.csr_matrix((np.ones(len(users), dtype=np.float64), (users, items)), shape=(num_users, num_items))
    liked.data[:] = 1.0  # a pair counts once
    active = np.diff(liked.indptr) > 0
    has = user_attributes.astype(bool).astype(np.float64).tocsr()
    has = sp.diags(active.astype(np.float64)) @ has  # groups of users with positives
    group = np.asarray(has.sum(axis=0)).ravel()
    likes = (has.T @ liked).toarray()
    overall = np.asarray(liked.sum(axis=0)).ravel() / max(int(active.sum()), 1)
    return ((likes + prior * overall) / np.maximum(group + prior, 1e-12)[:, None]).astype(np.float32)


def peer_scores(shares: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """The ``peers`` feature of a user with the attribute indices ``attributes``: the mean of their rows of
    :func:`attribute_shares` (``[I]`` float32, zeros without attributes)."""
    if shares.shape[0] == 0 or len(attributes) == 0:
        return np.zeros(shares.shape[1], dtype=np.float32)
    return shares[np.unique(attributes)].mean(axis=0).astype(np.float32)


def group_of(sizes: np.ndarray | int, edges: Sequence[int]) -> np.ndarray:
    """The group of each history size under ``edges`` (ascending sizes that start a group): 0 below the first
    edge, 1 from the first to below the second, and so on (the ranker's per-user adaptive weights,
    :func:`gnn.blend.weights.group_edges`)."""
    return np.searchsorted(np.asarray(edges, dtype=np.int64), np.asarray(sizes, dtype=np.int64), side="right")
