"""Fitting the blend's collaborative components: EASE^R, item-to-next-items transitions and implicit ALS.

* **EASE^R** (Steck 2019): a closed-form item-item regression, kept sparse (the ``top_n`` largest weights of
  each source item's row);
* **transitions**: a sequential item-kNN from each user's time-ordered positives;
* **ALS** (Hu, Koren & Volinsky 2008): item factors only; a user's vector is folded in at serving from the live
  history (:func:`gnn.blend.scorers.als_fold_in`).

Everything is in index space (``user_idx``, ``item_idx``) of one :class:`gnn.data.GraphSnapshot`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from gnn.blend.config import RankerConfig
from gnn.blend.scorers import frequency_regularization
from schema.errors import DataError


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
    max_solve: int | None = None,
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
        max_solve: Bound on the dense solve, ``min(users, items kept)`` on a side (its cost is the cube): when
            both exceed it, only the ``max_solve`` items with the most positives are kept (None: no bound).

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
    if max_solve is not None and max_solve < 1:
        raise DataError(f"EASE needs max_solve >= 1 (or None), got {max_solve}")
    matrix = interaction_matrix(pairs, num_users, num_items)
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    seen = np.flatnonzero(counts > 0)
    if len(seen) == 0:
        return sp.csr_matrix((num_items, num_items), dtype=np.float32)
    cap = max_items
    if max_solve is not None and min(num_users, len(seen), cap or len(seen)) > max_solve:
        cap = max_solve  # users and items both above it: the solve is items × items, bounded
    if cap is not None and len(seen) > cap:
        popular = seen[np.argsort(-counts[seen], kind="stable")[:cap]]
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
            block = b[lo : lo + block_rows]
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
    if len(u) * window > TRANSITIONS_CHUNKED_PAIRS:  # at size: one window offset at a time (bounded temporaries)
        counts = _transition_counts_by_offset(u, i, num_items, window)
        if counts is None:
            return sp.csr_matrix((num_items, num_items), dtype=np.float32)
        return _normalised_transitions(counts, items, num_items, top_n)
    rows, cols, vals = [], [], []
    for d in range(1, window + 1):
        same = u[d:] == u[:-d]
        rows.append(i[:-d][same])
        cols.append(i[d:][same])
        vals.append(np.full(int(same.sum()), 1.0 / d))
    if not rows or not sum(len(r) for r in rows):
        return sp.csr_matrix((num_items, num_items), dtype=np.float32)
    counts = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(num_items, num_items)
    )
    return _normalised_transitions(counts, items, num_items, top_n)


#: Above this many (position, offset) pairs, :func:`fit_transitions` sums its counts one window offset at a time:
#: its peak is then the count matrix and one offset's pairs (about 24 bytes a positive) instead of every offset's
#: (24 · window bytes a positive: 7 GB at 10M positives and a window of 30). Below it (ml-latest-small, Last.fm:
#: about 3M) the counts are summed in one pass, as they always were.
TRANSITIONS_CHUNKED_PAIRS = 50_000_000


def _transition_counts_by_offset(u: np.ndarray, i: np.ndarray, num_items: int, window: int) -> sp.csr_matrix | None:
    """``fit_transitions``' raw counts (``1 / distance`` summed per (earlier, later) item pair) of histories sorted
    by user then time, built one offset at a time; None when no user has two positives."""
    counts: sp.csr_matrix | None = None
    for d in range(1, window + 1):
        same = u[d:] == u[:-d]
        if not same.any():
            continue
        part = sp.csr_matrix(
            (np.full(int(same.sum()), 1.0 / d), (i[:-d][same], i[d:][same])), shape=(num_items, num_items)
        )
        counts = part if counts is None else counts + part
        del part, same
    return counts


def _normalised_transitions(
    counts: sp.csr_matrix, items: np.ndarray, num_items: int, top_n: int | None
) -> sp.csr_matrix:
    """Counts divided by ``sqrt(pop(a) · pop(b))``, the ``top_n`` largest per row kept, float32."""
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
    sampled: bool = False,
    init: np.ndarray | None = None,
    reg_exponent: float = 0.0,
) -> np.ndarray:
    """Item factors of implicit-feedback ALS (Hu, Koren & Volinsky 2008): confidence ``1 + alpha`` on
    positives, 1 elsewhere, preference 1 on positives. Each half-step solves every row's least-squares
    problem by ``cg_steps`` conjugate-gradient steps warm-started from the previous round (Takács, Pilászy &
    Tikk 2011; what ``implicit`` does), all rows at once (:func:`als_half_step`), so that hundreds of factors
    cost matrix products rather than one dense solve per row.

    Users are not kept: at serving a user's vector is folded in from their live history
    (:func:`gnn.blend.scorers.als_fold_in`), so a just-posted interaction counts at once.

    Args:
        pairs: ``[2, n]`` (user_idx, item_idx) positives.
        num_users, num_items: Index spaces.
        factors, regularization, alpha, iterations: The usual ALS hyper-parameters.
        seed: Seed of the initial factors.
        cg_steps: Conjugate-gradient steps per half-step (``factors`` or more: the exact solve, up to rounding).
        sampled: The per-positive products as one sampled dense-dense product (see :func:`als_half_step`).
        init: ``[num_items, factors]`` item factors to start from instead of seeded noise (a warm start: an
            earlier fit on overlapping positives); rows of items without positives start at zero.
        reg_exponent: Frequency-scaled regularisation (:func:`gnn.blend.scorers.frequency_regularization`): each
            user's and item's λ grows with its positives to this power (0: the same λ for every row).

    Returns:
        ``[num_items, factors]`` float32; rows of items without positives are zero.
    """
    rng = np.random.default_rng(seed)
    matrix = interaction_matrix(pairs, num_users, num_items)
    by_item = matrix.T.tocsr()
    users_f = np.zeros((num_users, factors), dtype=np.float32)
    if init is not None:
        if init.shape != (num_items, factors):
            raise DataError(f"ALS warm start of shape {init.shape}, expected {(num_items, factors)}")
        items_f = np.array(init, dtype=np.float32, copy=True)
    else:
        items_f = rng.normal(0.0, 0.01, (num_items, factors)).astype(np.float32)
    items_f[np.diff(by_item.indptr) == 0] = 0.0
    user_reg: float | np.ndarray = regularization
    item_reg: float | np.ndarray = regularization
    if reg_exponent:
        user_reg = frequency_regularization(np.diff(matrix.indptr), num_items, alpha, regularization, reg_exponent)
        item_reg = frequency_regularization(np.diff(by_item.indptr), num_users, alpha, regularization, reg_exponent)
    for _ in range(iterations):
        als_half_step(items_f, users_f, matrix, user_reg, alpha, cg_steps, sampled=sampled)
        als_half_step(users_f, items_f, by_item, item_reg, alpha, cg_steps, sampled=sampled)
    return items_f


#: Positives per block of :func:`als_half_step`'s gathers: two ``[block, k]`` float32 buffers reused for every
#: block, small enough to stay in cache (a fresh ``[nnz, k]`` gather per product cost most of ALS's time and
#: its system time at size).
ALS_GATHER_BLOCK = 1024


def als_half_step(
    source: np.ndarray,
    target: np.ndarray,
    csr: sp.csr_matrix,
    regularization: float | np.ndarray,
    alpha: float,
    cg_steps: int,
    *,
    sampled: bool = False,
) -> None:
    """One ALS half-step in place: each row ``r`` of ``target`` moves towards the solution of
    ``(SᵀS + λI + α Σ_{i ∈ r} s_i s_iᵀ) x = (1 + α) Σ_{i ∈ r} s_i`` (``S`` = ``source``, ``i`` over the row's
    entries in ``csr``) by ``cg_steps`` conjugate-gradient steps from its current value, every row in
    lockstep with its own step sizes; rows without entries become zero.

    ``SᵀS + λI`` is formed once per half-step (the Gram trick); a product ``A p`` costs O(nnz · k + m · k²): the
    per-positive dots ``p_r · s_i`` and their weighted sum ``Σ (p_r · s_i) s_i`` (a sparse × dense product).

    Args:
        source: ``[n, k]`` float32 fixed factors.
        target: ``[m, k]`` float32 factors to update (in place).
        csr: ``[m, n]`` CSR of the positives (values ignored).
        regularization, alpha: λ and α; λ may be ``[m]``, one per row of ``target`` (frequency-scaled
            regularisation), added to each row's ``A p`` instead of to the shared Gram matrix.
        cg_steps: Conjugate-gradient steps.
        sampled: The dots as one sampled dense-dense product (``torch.sparse.sampled_addmm``, several times
            faster at size; float32 sums in another order, so factors differ in the last bits). Otherwise they
            are summed row by row over gathers of ``ALS_GATHER_BLOCK`` positives into reused buffers.
    """
    k = source.shape[1]
    per_row = np.ndim(regularization) > 0
    shared = 0.0 if per_row else float(regularization)
    gram = (source.astype(np.float64).T @ source + shared * np.eye(k)).astype(np.float32)
    rows_reg = np.asarray(regularization, dtype=np.float32)[:, None] if per_row else None
    cols = csr.indices
    row_dots = _sampled_dots(source, csr) if sampled else _blocked_dots(source, csr)

    def apply(p: np.ndarray) -> np.ndarray:  # A p for every row at once
        dots = row_dots(p)
        out = p @ gram + alpha * (sp.csr_matrix((dots, cols, csr.indptr), shape=csr.shape) @ source)
        if rows_reg is not None:
            out += rows_reg * p
        return out

    ones = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), cols, csr.indptr), shape=csr.shape)
    residual = (1.0 + alpha) * (ones @ source) - apply(target)
    del ones
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


def _blocked_dots(source: np.ndarray, csr: sp.csr_matrix) -> Callable[[np.ndarray], np.ndarray]:
    """``p ↦ [p_r · s_i for every entry (r, i) of csr]`` (float32, entry order), gathered ``ALS_GATHER_BLOCK``
    entries at a time into two reused buffers; each dot is the same float32 sum as a whole-array gather's."""
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    cols = csr.indices
    k = source.shape[1]
    block = ALS_GATHER_BLOCK
    left = np.empty((block, k), dtype=np.float32)
    right = np.empty((block, k), dtype=np.float32)

    def dots(p: np.ndarray) -> np.ndarray:
        out = np.empty(len(cols), dtype=np.float32)
        for lo in range(0, len(cols), block):
            hi = min(lo + block, len(cols))
            n = hi - lo
            np.take(p, rows[lo:hi], axis=0, out=left[:n])
            np.take(source, cols[lo:hi], axis=0, out=right[:n])
            np.einsum("ij,ij->i", left[:n], right[:n], out=out[lo:hi])
        return out

    return dots


def _sampled_dots(source: np.ndarray, csr: sp.csr_matrix) -> Callable[[np.ndarray], np.ndarray]:
    """``p ↦ [p_r · s_i for every entry (r, i) of csr]`` by ``torch.sparse.sampled_addmm`` (no gathered copies)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        mask = torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.zeros(len(csr.indices), dtype=torch.float32),
            size=csr.shape,
            check_invariants=False,
        )
    right = torch.from_numpy(np.ascontiguousarray(source.T))

    def dots(p: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            product = torch.sparse.sampled_addmm(mask, torch.from_numpy(np.ascontiguousarray(p)), right, beta=0.0)
        return product.values().numpy()

    return dots


def fit_als_component(
    pairs: Tensor, num_users: int, num_items: int, config: RankerConfig, *, init: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """ALS item factors and the fold-in gram of ``config`` (zero factors without positives or with ALS off).

    Above ``config.als_large_positives`` positives the per-positive products are sampled dense-dense products
    (:func:`als_half_step`), and ``init`` (item factors of an earlier fit with the same factors, e.g. the refit's
    start from the fit on the fit edges) replaces the seeded start, with ``als_warm_iterations`` rounds instead
    of ``als_iterations``. Below it (ml-latest-small, Last.fm) ``init`` is ignored and the fit is the one before.
    """
    als_items = np.zeros((num_items, config.als_factors), dtype=np.float32)
    if config.als_factors and pairs.size(1):
        large = config.als_large_positives is not None and pairs.size(1) > config.als_large_positives
        warm = large and init is not None and init.shape == (num_items, config.als_factors)
        als_items = fit_als(
            pairs,
            num_users,
            num_items,
            factors=config.als_factors,
            regularization=config.als_regularization,
            alpha=config.als_alpha,
            iterations=config.als_warm_iterations if warm else config.als_iterations,
            seed=config.seed,
            cg_steps=config.als_cg_steps,
            sampled=large,
            init=init if warm else None,
            reg_exponent=config.als_reg_exponent,
        )
    als_gram = als_items.astype(np.float64).T @ als_items + config.als_regularization * np.eye(config.als_factors)
    return als_items, als_gram
