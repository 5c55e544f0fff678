"""gnn.blend.linear's ALS: the vectorised conjugate-gradient half-step against the per-row exact solve; the
blocked and sampled products; the warm start above ``als_large_positives``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import gnn.blend.linear as linear
from gnn.blend.config import RankerConfig
from gnn.blend.linear import als_half_step, fit_als, fit_als_component
from gnn.blend.scorers import als_fold_in
from schema.errors import DataError


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


@pytest.mark.parametrize("sampled", [False, True])
def test_cg_half_step_with_enough_steps_is_the_exact_per_row_solve(sampled: bool) -> None:
    rng = np.random.default_rng(0)
    csr = _positives()
    source = rng.normal(0, 0.3, (70, 8)).astype(np.float32)
    target = rng.normal(0, 0.3, (40, 8)).astype(np.float32)  # a warm start far from the answer
    als_half_step(source, target, csr, 2.0, 3.0, cg_steps=24, sampled=sampled)
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


def _whole_gather_half_step(
    source: np.ndarray, target: np.ndarray, csr: sp.csr_matrix, lam: float, alpha: float, cg_steps: int
) -> None:
    """The half-step as it was written before the blocked gathers: every product gathers all entries at once."""
    k = source.shape[1]
    gram = (source.astype(np.float64).T @ source + lam * np.eye(k)).astype(np.float32)
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    cols = csr.indices

    def apply(p: np.ndarray) -> np.ndarray:
        dots = np.einsum("ij,ij->i", p[rows], source[cols])
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


@pytest.mark.parametrize("block", [7, 1024])  # several blocks with a partial last one; one block
def test_blocked_gathers_give_the_whole_gather_half_step_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(linear, "ALS_GATHER_BLOCK", block)
    rng = np.random.default_rng(3)
    csr = _positives(4)
    assert csr.nnz > 7 and csr.nnz % 7
    source = rng.normal(0, 0.3, (70, 8)).astype(np.float32)
    start = rng.normal(0, 0.3, (40, 8)).astype(np.float32)
    blocked, whole = start.copy(), start.copy()
    als_half_step(source, blocked, csr, 2.0, 3.0, cg_steps=3)
    _whole_gather_half_step(source, whole, csr, 2.0, 3.0, cg_steps=3)
    assert np.array_equal(blocked, whole)  # ml-latest-small's and Last.fm's factors are the ones before
    assert not np.array_equal(blocked, start)


def _pairs(csr: sp.csr_matrix) -> torch.Tensor:
    coo = csr.tocoo()
    return torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))


def test_warm_start_begins_from_the_given_factors_and_checks_their_shape() -> None:
    csr = _positives(9)
    pairs = _pairs(csr)
    kw = {"factors": 6, "regularization": 1.0, "alpha": 2.0, "seed": 1, "cg_steps": 6}
    converged = fit_als(pairs, 40, 70, iterations=60, **kw)
    cold_one = fit_als(pairs, 40, 70, iterations=1, **kw)
    warm_one = fit_als(pairs, 40, 70, iterations=1, init=converged, **kw)
    # one round from converged factors stays there; one round from noise does not get there
    assert np.abs(warm_one - converged).max() < 1e-3
    assert np.abs(cold_one - converged).max() > 1e-2
    with pytest.raises(DataError, match="warm start"):
        fit_als(pairs, 40, 70, iterations=1, init=converged[:, :5], **kw)


def test_fit_als_component_warm_starts_only_above_als_large_positives() -> None:
    csr = _positives(9)
    pairs = _pairs(csr)
    base = {"als_factors": 6, "als_regularization": 1.0, "als_alpha": 2.0, "als_cg_steps": 6, "seed": 1}
    converged, _ = fit_als_component(pairs, 40, 70, RankerConfig(**base, als_iterations=60, als_large_positives=None))
    small = RankerConfig(**base, als_iterations=1, als_large_positives=csr.nnz)  # at the threshold: below it
    cold, _ = fit_als_component(pairs, 40, 70, small)
    ignored, _ = fit_als_component(pairs, 40, 70, small, init=converged)
    assert np.array_equal(cold, ignored)  # below the threshold the fit is the one before, init or not
    large = RankerConfig(**base, als_iterations=1, als_warm_iterations=1, als_large_positives=csr.nnz - 1)
    warm, gram = fit_als_component(pairs, 40, 70, large, init=converged)
    assert np.abs(warm - converged).max() < 1e-3 < np.abs(cold - converged).max()
    expected = fit_als(
        pairs,
        40,
        70,
        factors=6,
        regularization=1.0,
        alpha=2.0,
        iterations=1,
        seed=1,
        cg_steps=6,
        sampled=True,
        init=converged,
    )
    assert np.array_equal(warm, expected)  # the sampled products, als_warm_iterations rounds from init
    assert np.allclose(gram, warm.astype(np.float64).T @ warm + np.eye(6))
    # factors of another width cannot warm-start: a seeded fit of als_iterations rounds instead
    other, _ = fit_als_component(pairs, 40, 70, large, init=converged[:, :5])
    assert np.abs(other - converged).max() > 1e-2


@pytest.mark.parametrize("sampled", [False, True])
def test_frequency_scaled_regularisation_is_the_exact_solve_with_each_rows_own_lambda(sampled: bool) -> None:
    """iALS with frequency-scaled regularisation: each row's λ grows with its positives, and the half-step (both
    product paths) and a user's fold-in solve with that row's λ."""
    from gnn.blend.scorers import als_vector, frequency_regularization

    rng = np.random.default_rng(1)
    csr = _positives()
    counts = np.diff(csr.indptr)
    lam = frequency_regularization(counts, 70, 3.0, 2.0, 1.0)
    assert lam[3] == 2.0 and np.all(np.diff(lam[np.argsort(counts)]) >= 0) and lam.max() > 2.5
    assert np.array_equal(frequency_regularization(counts, 70, 3.0, 2.0, 0.0), np.full(40, 2.0))
    source = rng.normal(0, 0.3, (70, 8)).astype(np.float32)
    target = rng.normal(0, 0.3, (40, 8)).astype(np.float32)
    als_half_step(source, target, csr, lam, 3.0, cg_steps=24, sampled=sampled)
    for r in (0, 7, 21):
        exact = _exact_half_step(source, csr[r], float(lam[r]), 3.0)[0]
        assert np.abs(target[r] - exact).max() < 1e-4 * max(1.0, np.abs(exact).max())
    plain = rng.normal(0, 0.3, (40, 8)).astype(np.float32)
    als_half_step(source, plain, csr, 2.0, 3.0, cg_steps=24, sampled=sampled)
    assert np.abs(plain - target).max() > 1e-3  # the scaling changed the rows with positives
    # the fold-in of a history with its own λ: the gram holds the fitted λ (2), the scaling adds the rest
    gram = source.astype(np.float64).T @ source + 2.0 * np.eye(8)
    history = csr.indices[csr.indptr[0] : csr.indptr[1]]
    scores = source @ als_vector(source, gram, history, np.full(len(history), -1), np.inf, 3.0, 2.0, 1.0)
    assert np.allclose(scores, source @ target[0], atol=1e-4)


def test_fit_als_with_exponent_zero_is_plain_als_and_with_an_exponent_differs() -> None:
    csr = _positives(9)
    coo = csr.tocoo()
    pairs = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    kw = dict(factors=6, regularization=1.0, alpha=2.0, iterations=5, seed=1, cg_steps=3)
    plain = fit_als(pairs, 40, 70, **kw)
    assert np.array_equal(fit_als(pairs, 40, 70, reg_exponent=0.0, **kw), plain)
    scaled = fit_als(pairs, 40, 70, reg_exponent=1.0, **kw)
    assert np.abs(scaled - plain).max() > 1e-3
    config = RankerConfig(
        als_factors=6, als_regularization=1.0, als_alpha=2.0, als_iterations=5, als_reg_exponent=1.0, seed=1
    )
    assert np.array_equal(fit_als_component(pairs, 40, 70, config)[0], scaled)
