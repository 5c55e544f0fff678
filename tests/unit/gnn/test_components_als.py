"""gnn.blend.linear's ALS: the vectorised conjugate-gradient half-step against the per-row exact solve."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from gnn.blend.linear import als_half_step, fit_als
from gnn.blend.scorers import als_fold_in


def _exact_half_step(source: np.ndarray, csr: sp.csr_matrix, lam: float, alpha: float) -> np.ndarray:
    src = source.astype(np.float64)
    gram = src.T @ src + lam * np.eye(src.shape[1])
    out = np.zeros((csr.shape[0], src.shape[1]))
    for r in range(csr.shape[0]):
        cols = csr.indices[csr.indptr[r] : csr.indptr[r + 1]]
        if len(cols):
            y = src[cols]
            out[r] = np.linalg.solve(gram + alpha * y.T @ y, (1.0 + alpha) * y.sum(axis=0))
    return out


def _positives(seed: int = 5) -> sp.csr_matrix:
    matrix = sp.random(40, 70, density=0.1, random_state=seed, format="csr", dtype=np.float32)
    matrix.data[:] = 1.0
    matrix = matrix.tolil()
    matrix[3, :] = 0.0  # a row without positives
    return matrix.tocsr()


def test_cg_half_step_with_enough_steps_is_the_exact_per_row_solve() -> None:
    rng = np.random.default_rng(0)
    csr = _positives()
    source = rng.normal(0, 0.3, (70, 8)).astype(np.float32)
    target = rng.normal(0, 0.3, (40, 8)).astype(np.float32)  # a warm start far from the answer
    als_half_step(source, target, csr, 2.0, 3.0, cg_steps=24)
    exact = _exact_half_step(source, csr, 2.0, 3.0)
    assert np.abs(target - exact).max() < 1e-4 * max(1.0, np.abs(exact).max())
    assert not target[3].any()
    # and a single step from the same start is not yet there (the test can tell an unconverged solve)
    short = rng.normal(0, 0.3, (40, 8)).astype(np.float32)
    als_half_step(source, short, csr, 2.0, 3.0, cg_steps=1)
    assert np.abs(short - exact).max() > 1e-3


def test_fit_als_is_a_fixed_point_of_exact_alternation_and_fold_in_recovers_the_user() -> None:
    csr = _positives(9)
    coo = csr.tocoo()
    pairs = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    items = fit_als(pairs, 40, 70, factors=6, regularization=1.0, alpha=2.0, iterations=60, seed=1, cg_steps=6)
    assert items.dtype == np.float32 and items.shape == (70, 6)
    assert not items[np.asarray(csr.sum(axis=0)).ravel() == 0].any()  # items nobody liked stay zero
    # converged: one more exact round (users from items, then items from users) leaves the items where they are
    users = _exact_half_step(items, csr, 1.0, 2.0)
    again = _exact_half_step(users.astype(np.float32), csr.T.tocsr(), 1.0, 2.0)
    assert np.abs(again - items).max() < 1e-3
    # the serving fold-in of a user's history (weights 1) is the same exact solve
    gram = items.astype(np.float64).T @ items + 1.0 * np.eye(6)
    row = 0
    history = csr.indices[csr.indptr[row] : csr.indptr[row + 1]]
    folded = als_fold_in(items, gram, history, np.ones(len(history)), 2.0)
    assert np.allclose(folded, users[row], atol=1e-6)
    # and the factors rank the user's own positives above the rest (the fit learnt something)
    scores = items @ folded
    liked = np.zeros(70, dtype=bool)
    liked[history] = True
    assert scores[liked].mean() > scores[~liked].mean()
