"""gnn.blend.knowledge.content_embeddings: the ridge map from item features to embeddings, against its closed form."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from gnn.blend.knowledge import content_embeddings, ridge_block_cg


def _problem(seed: int = 3) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = sp.random(250, 60, density=0.08, random_state=seed, format="csr", dtype=np.float64)
    features = features.tolil()
    features[:, 7] = 0.0  # a feature no item has
    features[200:, 11] = 0.0
    features[:200, 12] = 0.0  # a feature only unknown items have: it gets no weight
    features[200:, 12] = 1.0
    features[5, :] = 0.0  # an item without any feature
    features = features.tocsr()
    targets = rng.standard_normal((250, 5))
    known = np.arange(250) < 200
    return features, targets, known


def _closed_form(features: sp.csr_matrix, targets: np.ndarray, known: np.ndarray, lam: float) -> np.ndarray:
    x = features[known].toarray()
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ targets[known])
    return features.toarray() @ w


@pytest.mark.parametrize("direct_max_features", [2048, 0])  # dense Cholesky, block conjugate gradients
@pytest.mark.parametrize("lam", [0.1, 10.0])
def test_content_embeddings_match_the_dense_closed_form_ridge_solution(direct_max_features: int, lam: float) -> None:
    features, targets, known = _problem()
    expected = _closed_form(features, targets, known, lam)
    scrambled = np.where(known[:, None], targets, 1e6)  # unknown rows' targets are never read
    got = content_embeddings(features, scrambled, known, lam, direct_max_features=direct_max_features)
    assert got.dtype == np.float32 and got.shape == targets.shape
    assert np.abs(got - expected).max() < 1e-5 * max(1.0, np.abs(expected).max())
    assert not got[5].any()  # no features, zero prediction
    assert np.abs(got[200:]).max() > 0.01  # unknown rows are predicted from their features
    # feature 12 (only on unknown rows) carries no weight: moving it changes nothing
    moved = features.tolil()
    moved[200:, 12] = 5.0
    again = content_embeddings(moved.tocsr(), targets, known, lam, direct_max_features=direct_max_features)
    assert np.allclose(again, got, atol=1e-6)


def test_block_cg_solves_every_column_like_a_single_column_solve_and_stops_at_its_limit() -> None:
    features, targets, known = _problem(seed=8)
    x = features[known]
    x = x[:, np.flatnonzero(np.diff(x.tocsc().indptr) > 0)].tocsr()
    y = targets[known]
    block = ridge_block_cg(x, y, 0.5, iterations=500, tol=1e-12)
    for d in range(y.shape[1]):
        single = ridge_block_cg(x, y[:, [d]], 0.5, iterations=500, tol=1e-12)
        assert np.allclose(block[:, [d]], single, atol=1e-9)
    exact = np.linalg.solve((x.T @ x).toarray() + 0.5 * np.eye(x.shape[1]), x.T @ y)
    assert np.abs(block - exact).max() < 1e-8
    one_step = ridge_block_cg(x, y, 0.5, iterations=1, tol=1e-12)
    assert np.abs(one_step - exact).max() > 1e-3  # an iteration limit of 1 is not converged
    assert not ridge_block_cg(x, np.zeros_like(y), 0.5, iterations=50, tol=1e-8).any()
