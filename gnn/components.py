"""Component scorers of the blend (:mod:`gnn.ranker`): pure functions from timed positives to item scores.

Each component turns what is known of a user — the items of their history, when they were taken, and (for
a user the model was fitted with) their user_idx — into one score per item_idx:

* **EASE^R** (Steck 2019): a closed-form item-item regression, kept sparse (the ``top_n`` largest weights
  of each source item's row), applied to the recency-weighted history;
* **knowledge similarity**: items as IDF-weighted, L2-normalised vectors of their genres, people and tags;
  a user's profile is the recency-weighted sum of their items' vectors, and an item's score its cosine
  with the profile — the only component that sees items nobody interacted with;
* **time-local popularity**: positives of everybody in a window ending at the user's latest interaction
  (MovieLens users rate what the site shows at the time);
* **LightGCN** embeddings (:func:`gnn.train.fit_lightgcn`, applied by :mod:`gnn.ranker`); items nobody
  interacted with get embeddings predicted from their knowledge features and release year
  (:func:`content_embeddings`: a ridge regression fitted on the items that have embeddings — an
  attribute-to-feature mapping, Gantner et al., ICDM 2010).

Everything is in index space (``user_idx``, ``item_idx``) of one :class:`gnn.data.GraphSnapshot`; times
are epoch seconds, ``-1`` = unknown.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from gnn.data import ROLES, GraphSnapshot
from schema.errors import DataError

UNKNOWN_TIME = -1


def pair_times(snapshot: GraphSnapshot, pairs: Tensor) -> np.ndarray:
    """Timestamps of (user_idx, item_idx) pairs, looked up among the snapshot's interactions.

    Args:
        snapshot: The graph the pairs come from.
        pairs: ``[2, n]`` (user_idx, item_idx).

    Returns:
        ``[n]`` int64 epoch seconds (the latest interaction of the pair), ``-1`` where unknown.

    Raises:
        DataError: A pair is not an interaction of the snapshot.
    """
    num_items = snapshot.num_items
    keys = (snapshot.edge_index[0] * num_items + snapshot.edge_index[1]).numpy()
    stamps = snapshot.edge_time.numpy()
    order = np.lexsort((stamps, keys))
    keys, stamps = keys[order], stamps[order]
    query = (pairs[0] * num_items + pairs[1]).numpy()
    if len(keys) == 0:
        if len(query):
            raise DataError("pairs given for a snapshot without interactions")
        return np.empty(0, dtype=np.int64)
    pos = np.searchsorted(keys, query, side="right") - 1
    found = (pos >= 0) & (keys[pos.clip(min=0)] == query)
    if not found.all():
        raise DataError(f"{int((~found).sum())} pairs are not interactions of snapshot {snapshot.snapshot_id}")
    return np.where(stamps[pos] >= 0, stamps[pos], UNKNOWN_TIME).astype(np.int64)


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
    order = np.lexsort((np.arange(n), times))  # oldest first
    position = np.empty(n, dtype=np.float64)
    position[order] = np.arange(n - 1, -1, -1, dtype=np.float64)
    return np.power(0.5, position / half_life)


def interaction_matrix(pairs: Tensor, num_users: int, num_items: int) -> sp.csr_matrix:
    """``[num_users, num_items]`` binary CSR of (user_idx, item_idx) pairs (duplicates count once)."""
    ones = np.ones(pairs.size(1), dtype=np.float32)
    matrix = sp.csr_matrix((ones, (pairs[0].numpy(), pairs[1].numpy())), shape=(num_users, num_items))
    matrix.data[:] = 1.0
    return matrix


def fit_ease(
    pairs: Tensor,
    num_users: int,
    num_items: int,
    lam: float,
    top_n: int | None,
    device: torch.device | str = "cpu",
    max_items: int | None = None,
    block_rows: int = 2048,
) -> sp.csr_matrix:
    """EASE^R weights ``B = I − P·diagMat(1/diag(P))``, ``P = (XᵀX + λI)⁻¹``, over the items with a positive.

    ``XᵀX + λI`` is symmetric positive definite, so ``P`` comes from its Cholesky factor; ``B`` is formed in
    place and pruned per row block, so the peak is about two dense ``n × n`` float64 matrices (``n`` = items
    kept). With ``max_items`` only the ``max_items`` items with the most positives (ties: lower item_idx)
    are kept; the others get empty rows and columns like items without positives.

    Args:
        pairs: ``[2, n]`` (user_idx, item_idx) positives.
        num_users, num_items: Index spaces.
        lam: L2 regularisation λ (> 0).
        top_n: Keep, per source item (row), only the ``top_n`` weights largest in magnitude; ``None`` keeps
            every weight.
        device: Where to invert the Gram matrix (float64; CPU is deterministic). With fewer users than items
            the inverse is the users × users one of the Woodbury identity, on CPU.
        max_items: Cap on the items in the model (None: every item with a positive).
        block_rows: Rows of ``B`` pruned at a time.

    Returns:
        ``[num_items, num_items]`` float32 CSR; row ``j`` holds the weights from history item ``j`` to every
        target item (score = history row vector · B). Items without positives have empty rows and columns.

    Raises:
        DataError: ``lam`` is not positive, or ``max_items`` is below 1.
    """
    if lam <= 0:
        raise DataError(f"EASE needs a positive lambda, got {lam}")
    if max_items is not None and max_items < 1:
        raise DataError(f"EASE needs max_items >= 1 (or None), got {max_items}")
    matrix = interaction_matrix(pairs, num_users, num_items)
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    seen = np.flatnonzero(counts > 0)
    if len(seen) == 0:
        return sp.csr_matrix((num_items, num_items), dtype=np.float32)
    if max_items is not None and len(seen) > max_items:
        popular = seen[np.argsort(-counts[seen], kind="stable")[:max_items]]
        seen = np.sort(popular)
    x = matrix[:, seen].astype(np.float64)
    if x.shape[0] < x.shape[1]:
        b = _ease_inverse_woodbury(x, lam).to(device)  # P
    else:
        gram = torch.from_numpy((x.T @ x).toarray()).to(device)
        gram.diagonal().add_(lam)
        factor = torch.linalg.cholesky(gram)
        del gram
        b = torch.cholesky_inverse(factor)  # P
        del factor
    b.div_((-b.diagonal()).view(1, -1))  # B = P / −diag(P), column-wise, in place
    b.fill_diagonal_(0.0)
    n = len(seen)
    keep = n if top_n is None else min(int(top_n), n)
    if keep < n:
        index_blocks, value_blocks = [], []
        for lo in range(0, n, block_rows):
            block = b[lo:lo + block_rows]
            index = block.abs().topk(keep, dim=1).indices
            index_blocks.append(index.cpu())
            value_blocks.append(block.gather(1, index).cpu().to(torch.float32))
        del b
        index = torch.cat(index_blocks)
        values = torch.cat(value_blocks)
    else:
        index = torch.arange(n).expand(n, n)
        values = b.cpu().to(torch.float32)
        del b
    rows = np.repeat(seen, keep)
    cols = seen[index.numpy().ravel()]
    data = values.numpy().ravel()
    out = sp.csr_matrix((data, (rows, cols)), shape=(num_items, num_items))
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _ease_inverse_woodbury(x: sp.csr_matrix, lam: float) -> Tensor:
    """``P = (XᵀX + λI)⁻¹`` for a users × items ``x`` with fewer users than items, by the Woodbury identity
    ``P = (I − Xᵀ K X) / λ``, ``K = (λI + XXᵀ)⁻¹``: a users × users Cholesky inverse and one sparse × dense
    product (nnz(X) · items multiply-adds) instead of an items × items inverse (Last.fm: 1.9k users, 17k
    items). Returns a dense ``[items, items]`` float64 CPU tensor."""
    gram = torch.from_numpy((x @ x.T).toarray())
    gram.diagonal().add_(lam)
    k = torch.cholesky_inverse(torch.linalg.cholesky(gram)).numpy()
    kx = np.asarray(x.T @ k).T  # K·X = (Xᵀ·K)ᵀ, K symmetric: [users, items] dense
    p = torch.from_numpy(np.asarray(x.T @ kx))  # XᵀKX, [items, items]
    p.neg_()
    p.diagonal().add_(1.0)
    return p.div_(lam)


def knowledge_matrix(
    snapshot: GraphSnapshot,
    *,
    genre_weight: float = 1.0,
    person_weight: float = 1.0,
    tag_weight: float = 1.0,
) -> sp.csr_matrix:
    """Items as IDF-weighted, L2-normalised vectors of their genres, people (by role) and tags.

    A feature shared by few items says more than one shared by many: each column is weighted by
    ``log(num_items / df)``, each block by its weight, and tag columns by the tag's weight on the item.

    Args:
        snapshot: Gives the item-genre, item-person and item-tag edges.
        genre_weight, person_weight, tag_weight: Block weights (0 drops a block).

    Returns:
        ``[num_items, F]`` float32 CSR with unit rows (empty rows for items without any feature).
    """
    num_items = snapshot.num_items
    blocks: list[sp.csr_matrix] = []

    def block(items: np.ndarray, features: np.ndarray, values: np.ndarray, width: int, weight: float) -> None:
        if weight <= 0 or width == 0 or len(items) == 0:
            return
        m = sp.csr_matrix((values.astype(np.float64), (items, features)), shape=(num_items, width))
        df = np.bincount(features, minlength=width).astype(np.float64)
        idf = np.log(num_items / np.maximum(df, 1.0))
        blocks.append((m @ sp.diags(idf * weight)).tocsr())

    genres = snapshot.item_genre_index.numpy()
    block(genres[0], genres[1], np.ones(genres.shape[1]), len(snapshot.genres), genre_weight)
    people = snapshot.item_person_index.numpy()
    role = snapshot.person_role.numpy()
    # A person's roles are separate features: directing a film and acting in it are different links.
    block(people[0], people[1] * len(ROLES) + role, np.ones(people.shape[1]), len(snapshot.people) * len(ROLES),
          person_weight)
    tags = snapshot.item_tag_index.numpy()
    tag_values = np.log1p(np.maximum(snapshot.item_tag_weight.numpy().astype(np.float64), 0.0))
    block(tags[0], tags[1], np.where(tag_values > 0, tag_values, 1.0), len(snapshot.tags), tag_weight)
    if not blocks:
        return sp.csr_matrix((num_items, 1), dtype=np.float32)
    features = sp.hstack(blocks).tocsr()
    norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
    features = (sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ features).tocsr()
    features.eliminate_zeros()
    return features.astype(np.float32)


def year_basis(item_year: np.ndarray, width: float = 5.0, start: int = 1900, end: int = 2030) -> sp.csr_matrix:
    """Release years as smooth features: Gaussian bumps every ``width`` years, unit rows (empty when unknown).

    Args:
        item_year: ``[I]`` int64 release years, ``-1`` unknown.
        width: Spacing and width of the bumps, in years.
        start, end: Range of the bump centres.

    Returns:
        ``[I, B]`` float32 CSR (entries below 1e-3 dropped).
    """
    years = np.asarray(item_year, dtype=np.float64)
    centres = np.arange(start, end + width, width)
    basis = np.exp(-(((years[:, None] - centres[None, :]) / width) ** 2)) * (years >= 0)[:, None]
    basis[basis < 1e-3] = 0.0
    norms = np.linalg.norm(basis, axis=1, keepdims=True)
    basis = basis / np.where(norms > 0, norms, 1.0)
    return sp.csr_matrix(basis.astype(np.float32))


def content_embeddings(
    features: sp.csr_matrix,
    targets: np.ndarray,
    known: np.ndarray,
    lam: float,
    iterations: int = 300,
    *,
    tol: float = 1e-8,
    direct_max_features: int = 2048,
) -> np.ndarray:
    """Item embeddings predicted from item features: the ridge regression
    ``min ‖X_known W − Y_known‖² + λ‖W‖²`` fitted on the ``known`` rows (items with trained embeddings),
    applied to every row.

    Feature columns empty on the known rows get zero weights (the ridge optimum), so only the used columns
    enter the solve. With at most ``direct_max_features`` of them the normal equations
    ``(XᵀX + λI) W = XᵀY`` are solved exactly (dense Cholesky, float64); with more, by conjugate gradients on
    the normal equations for all ``d`` right-hand sides at once (:func:`ridge_block_cg`: each iteration is one
    sparse ``X @ P`` and one ``Xᵀ @ Q`` on ``[·, d]`` blocks; no dense Gram matrix, so it scales to catalogues
    with many items and features).

    Args:
        features: ``[I, F]`` item features (e.g. :func:`knowledge_matrix` next to :func:`year_basis`).
        targets: ``[I, d]`` embeddings; only the ``known`` rows are read.
        known: ``[I]`` bool, the rows to fit on.
        lam: L2 penalty (> 0).
        iterations: Conjugate-gradient iteration limit (the iterative path).
        tol: Conjugate gradients stop when every column's normal-equation residual is below ``tol`` times
            its right-hand side's norm.
        direct_max_features: Used feature columns up to which the dense exact solve is taken.

    Returns:
        ``[I, d]`` float32 predictions (zero rows for items without any feature).

    Raises:
        DataError: ``lam`` is not positive or the shapes disagree.
    """
    if lam <= 0:
        raise DataError(f"content_embeddings needs a positive lambda, got {lam}")
    if features.shape[0] != targets.shape[0] or known.shape != (targets.shape[0],):
        raise DataError(f"features {features.shape}, targets {targets.shape} and known {known.shape} disagree")
    dims = targets.shape[1]
    if dims == 0 or not known.any() or features.nnz == 0:
        return np.zeros(targets.shape, dtype=np.float32)
    features = sp.csr_matrix(features, dtype=np.float64)
    x = features[known]
    used = np.flatnonzero(np.diff(x.tocsc().indptr) > 0)  # columns with an entry on a known row
    if len(used) == 0:
        return np.zeros(targets.shape, dtype=np.float32)
    x = x[:, used].tocsr()
    y = targets[known].astype(np.float64)
    if len(used) <= direct_max_features:
        gram = torch.from_numpy((x.T @ x).toarray())
        gram.diagonal().add_(lam)
        weights = torch.cholesky_solve(torch.from_numpy(x.T @ y), torch.linalg.cholesky(gram)).numpy()
    else:
        weights = ridge_block_cg(x, y, lam, iterations=iterations, tol=tol)
    return np.asarray(features[:, used] @ weights, dtype=np.float32)


def ridge_block_cg(x: sp.csr_matrix, y: np.ndarray, lam: float, *, iterations: int, tol: float) -> np.ndarray:
    """``argmin_W ‖x W − y‖² + λ‖W‖²`` by Jacobi-preconditioned conjugate gradients on the normal equations
    ``(xᵀx + λI) W = xᵀy``, every column of ``y`` at once (each its own step sizes, in lockstep).

    Args:
        x: ``[n, F]`` float64 CSR.
        y: ``[n, d]`` float64.
        lam: L2 penalty (> 0).
        iterations: Iteration limit.
        tol: Stop once every column's residual ``‖xᵀy − (xᵀx + λI) w‖`` is below ``tol · ‖xᵀy‖``.

    Returns:
        ``[F, d]`` float64.
    """
    xt = x.T.tocsr()
    rhs = xt @ y
    diag = np.asarray(x.multiply(x).sum(axis=0)).ravel() + lam  # Jacobi preconditioner: diag(xᵀx) + λ
    inv = (1.0 / diag)[:, None]
    w = np.zeros_like(rhs)
    r = rhs.copy()
    z = inv * r
    p = z.copy()
    rz = np.einsum("fd,fd->d", r, z)
    limit = tol * np.linalg.norm(rhs, axis=0)
    for _ in range(iterations):
        if (np.linalg.norm(r, axis=0) <= limit).all():
            break
        q = xt @ (x @ p) + lam * p
        pq = np.einsum("fd,fd->d", p, q)
        alpha = np.divide(rz, pq, out=np.zeros_like(rz), where=pq > 0)
        w += alpha * p
        r -= alpha * q
        z = inv * r
        rz_next = np.einsum("fd,fd->d", r, z)
        beta = np.divide(rz_next, rz, out=np.zeros_like(rz), where=rz > 0)
        p = z + beta * p
        rz = rz_next
    return w


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
        """``[num_items]`` float64: positives with time in ``(end − window, end]``."""
        hi = int(np.searchsorted(self.times, end, side="right"))
        lo = int(np.searchsorted(self.times, end - window, side="right"))
        return np.bincount(self.items[lo:hi], minlength=self.num_items).astype(np.float64)


def fit_transitions(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    num_items: int,
    window: int,
    top_n: int | None = None,
) -> sp.csr_matrix:
    """Item-to-next-items weights from each user's time-ordered positives (a sequential item-kNN).

    Every pair (a, b) where b follows a within ``window`` positions of the same user's history adds
    ``1 / distance``; the counts are then divided by ``sqrt(pop(a) · pop(b))`` so that popular items do not
    follow everything. Ties in time keep item order.

    Args:
        users, items, times: ``[n]`` positives (user_idx, item_idx, epoch seconds; ``-1`` sorts first).
        num_items: Item index space.
        window: Positions ahead that count as "next".
        top_n: Keep the ``top_n`` largest weights per source item (None: all).

    Returns:
        ``[num_items, num_items]`` float32 CSR, row = earlier item, column = later item.
    """
    order = np.lexsort((items, times, users))
    u, i = users[order], items[order]
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        same = u[d:] == u[:-d]
        rows.append(i[:-d][same])
        cols.append(i[d:][same])
        vals.append(np.full(int(same.sum()), 1.0 / d))
    if not rows or not sum(len(r) for r in rows):
        return sp.csr_matrix((num_items, num_items), dtype=np.float32)
    counts = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(num_items, num_items))
    pop = np.bincount(items, minlength=num_items).astype(np.float64)
    scale = 1.0 / np.sqrt(np.maximum(pop, 1.0))
    weights = (sp.diags(scale) @ counts @ sp.diags(scale)).tocsr()
    if top_n is not None:
        weights = _top_per_row(weights, top_n)
    weights.eliminate_zeros()
    weights.sort_indices()
    return weights.astype(np.float32)


def _top_per_row(matrix: sp.csr_matrix, top_n: int) -> sp.csr_matrix:
    """Keep the ``top_n`` largest entries of each row of a non-negative CSR matrix."""
    matrix = matrix.tocsr()
    data, indices, indptr = [], [], [0]
    for r in range(matrix.shape[0]):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        values, cols = matrix.data[lo:hi], matrix.indices[lo:hi]
        if hi - lo > top_n:
            keep = np.argpartition(-values, top_n)[:top_n]
            values, cols = values[keep], cols[keep]
        data.append(values)
        indices.append(cols)
        indptr.append(indptr[-1] + len(values))
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.asarray(indptr)), shape=matrix.shape)


def fit_als(
    pairs: Tensor,
    num_users: int,
    num_items: int,
    *,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    seed: int,
    cg_steps: int = 3,
) -> np.ndarray:
    """Item factors of implicit-feedback ALS (Hu, Koren & Volinsky 2008): confidence ``1 + alpha`` on
    positives, 1 elsewhere, preference 1 on positives. Each half-step solves every row's least-squares
    problem by ``cg_steps`` conjugate-gradient steps warm-started from the previous round (Takács, Pilászy &
    Tikk 2011; what ``implicit`` does), all rows at once (:func:`als_half_step`), so that hundreds of factors
    cost matrix products rather than one dense solve per row.

    Users are not kept: at serving a user's vector is folded in from their live history
    (:func:`als_fold_in`), so a just-posted interaction counts at once.

    Args:
        pairs: ``[2, n]`` (user_idx, item_idx) positives.
        num_users, num_items: Index spaces.
        factors, regularization, alpha, iterations: The usual ALS hyper-parameters.
        seed: Seed of the initial factors.
        cg_steps: Conjugate-gradient steps per half-step (``factors`` or more: the exact solve, up to rounding).

    Returns:
        ``[num_items, factors]`` float32; rows of items without positives are zero.
    """
    rng = np.random.default_rng(seed)
    matrix = interaction_matrix(pairs, num_users, num_items)
    by_item = matrix.T.tocsr()
    users_f = np.zeros((num_users, factors), dtype=np.float32)
    items_f = rng.normal(0.0, 0.01, (num_items, factors)).astype(np.float32)
    items_f[np.diff(by_item.indptr) == 0] = 0.0
    for _ in range(iterations):
        als_half_step(items_f, users_f, matrix, regularization, alpha, cg_steps)
        als_half_step(users_f, items_f, by_item, regularization, alpha, cg_steps)
    return items_f


def als_half_step(source: np.ndarray, target: np.ndarray, csr: sp.csr_matrix, regularization: float,
                  alpha: float, cg_steps: int) -> None:
    """One ALS half-step in place: each row ``r`` of ``target`` moves towards the solution of
    ``(SᵀS + λI + α Σ_{i ∈ r} s_i s_iᵀ) x = (1 + α) Σ_{i ∈ r} s_i`` (``S`` = ``source``, ``i`` over the row's
    entries in ``csr``) by ``cg_steps`` conjugate-gradient steps from its current value, every row in
    lockstep with its own step sizes; rows without entries become zero.

    Args:
        source: ``[n, k]`` float32 fixed factors.
        target: ``[m, k]`` float32 factors to update (in place).
        csr: ``[m, n]`` CSR of the positives (values ignored).
        regularization, alpha: λ and α.
        cg_steps: Conjugate-gradient steps.
    """
    k = source.shape[1]
    gram = (source.astype(np.float64).T @ source + regularization * np.eye(k)).astype(np.float32)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    cols = csr.indices
    chunk = max(1, (1 << 24) // max(k, 1))

    def apply(p: np.ndarray) -> np.ndarray:  # A p for every row at once
        dots = np.empty(len(cols), dtype=np.float32)
        for lo in range(0, len(cols), chunk):
            hi = lo + chunk
            dots[lo:hi] = np.einsum("ij,ij->i", p[rows[lo:hi]], source[cols[lo:hi]])
        return p @ gram + alpha * (sp.csr_matrix((dots, cols, csr.indptr), shape=csr.shape) @ source)

    ones = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, csr.indptr), shape=csr.shape)
    residual = (1.0 + alpha) * (ones @ source) - apply(target)
    direction = residual.copy()
    norm = np.einsum("ij,ij->i", residual, residual)
    for _ in range(cg_steps):
        image = apply(direction)
        curvature = np.einsum("ij,ij->i", direction, image)
        step = np.divide(norm, curvature, out=np.zeros_like(norm), where=curvature > 0)[:, None]
        target += step * direction
        residual -= step * image
        next_norm = np.einsum("ij,ij->i", residual, residual)
        beta = np.divide(next_norm, norm, out=np.zeros_like(norm), where=norm > 0)[:, None]
        direction = residual + beta * direction
        norm = next_norm
    target[np.diff(csr.indptr) == 0] = 0.0


def als_fold_in(
    item_factors: np.ndarray, gram: np.ndarray, items: np.ndarray, weights: np.ndarray, alpha: float
) -> np.ndarray:
    """A user's ALS vector from their history (one least-squares solve against fixed item factors).

    Args:
        item_factors: ``[I, d]`` from :func:`fit_als`.
        gram: ``[d, d]`` ``item_factorsᵀ item_factors + regularization · I``.
        items: ``[n]`` history item_idx.
        weights: ``[n]`` confidence multipliers (recency weights; 1 = plain ALS).
        alpha: Confidence of a positive.

    Returns:
        ``[d]`` float64.
    """
    y = item_factors[items].astype(np.float64)
    a = gram + alpha * (y.T * weights) @ y
    return np.linalg.solve(a, ((1.0 + alpha * weights)[:, None] * y).sum(axis=0))
