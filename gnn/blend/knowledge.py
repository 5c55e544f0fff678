"""Fitting the blend's knowledge components: item feature vectors, release years, embeddings of cold items.

* **knowledge similarity**: items as IDF-weighted, L2-normalised vectors of their genres, people and tags
  (:func:`knowledge_matrix`); a user's profile is the recency-weighted sum of their items' vectors, and an
  item's score its cosine with the profile: the only component that sees items nobody interacted with;
* items nobody interacted with get LightGCN embeddings predicted from their knowledge features and release
  year (:func:`year_basis`, :func:`content_embeddings`: a ridge regression fitted on the items that have
  embeddings, an attribute-to-feature mapping, Gantner et al., ICDM 2010).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from gnn.data import ROLES, GraphSnapshot
from schema.errors import DataError


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
    block(
        people[0],
        people[1] * len(ROLES) + role,
        np.ones(people.shape[1]),
        len(snapshot.people) * len(ROLES),
        person_weight,
    )
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
