"""What a candidate set (``RankerConfig.serve_candidates``) needs so that a served answer costs less than a product over
every item: the catalogue's exact moments of the features that are linear in a user vector, and the best items by an
inner product from an approximate nearest-neighbour index.

A feature that is ``x_i = v_i · q`` for a user vector ``q`` (LightGCN's and ALS's dot products, and LightGCN's
cold-item product, whose ``v_i`` is 0 for warm items) has over the catalogue the mean ``v̄ · q`` and the variance
``qᵀ Σ q`` (``Σ`` the covariance of the ``v_i``): :class:`LinearMoments` precomputes ``v̄`` and ``Σ`` once per model,
so that the per-user z-score statistics cost O(d²) instead of O(items · d). (The knowledge cosine is linear in the
profile too, but its vectors are sparse over tens of thousands of features: ``qᵀ Σ q`` over a profile's non-zeros
reads the genre rows, which co-occur with every other feature, and cost as much as the product over 50,000 items,
about 1 ms; it keeps the uniform sample's statistics.) :class:`InnerProductIndex`
gives the n items of the largest ``v_i · q`` from an HNSW graph (faiss) instead of the product over every item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

#: Catalogues below this many items choose their best items by the exact product. At 50,000 items (64 dimensions) the
#: two searches for 200 cost 0.5–0.6 ms against 1.5–1.7 ms for the two products, and make the whole candidate-set
#: scoring 29% cheaper than every item's instead of 7% (docs/benchmarks.md §5); smaller catalogues were not measured.
ANN_MIN_ITEMS = 50_000
#: HNSW neighbours per node and candidate-list depth while building (faiss's ``M`` and ``efConstruction``).
HNSW_NEIGHBOURS, HNSW_BUILD_DEPTH = 16, 64
#: A search for the best ``n`` explores ``HNSW_SEARCH_FACTOR · n`` nodes (faiss's ``efSearch``).
HNSW_SEARCH_FACTOR = 2
#: Share of the items, those of the largest norms, that :class:`InnerProductIndex` scores exactly rather than in its
#: graph. ALS's item factors at 50,000 items have a median norm of 0.18 and a largest of 11 (popular items): in one
#: graph over all of them, where the extra coordinate puts the many short vectors about the same point, a search
#: found 29% of the exact best 200; with the longest 5% scored exactly, all of them (2%: 98.6%).
EXACT_HEAD = 0.05


@dataclass
class LinearMoments:
    """Mean and deviation over the catalogue of a feature that is ``v_i · q`` for a user vector ``q``.

    Attributes:
        mean: ``[d]`` float64 ``v̄`` (the items' mean vector).
        covariance: ``[d, d]`` float64 ``Σ``.
    """

    mean: np.ndarray
    covariance: np.ndarray

    @classmethod
    def of(cls, vectors: np.ndarray, rows: np.ndarray | None = None) -> LinearMoments:
        """The moments of ``vectors`` (``[items, d]``), with only ``rows`` (bool ``[items]``) non-zero when given
        (a cold-item product: 0 for every other item, which still counts in the mean)."""
        dense = np.asarray(vectors, dtype=np.float64)
        if rows is not None:
            dense = dense * rows[:, None]
        mean = dense.mean(axis=0) if len(dense) else np.zeros(dense.shape[1])
        centred = dense - mean
        return cls(mean=mean, covariance=centred.T @ centred / max(len(dense), 1))

    def __call__(self, q: np.ndarray) -> tuple[float, float]:
        """(mean, population deviation) over the items of ``v_i · q``."""
        q = np.asarray(q, dtype=np.float64)
        return float(self.mean @ q), math.sqrt(max(float(q @ self.covariance @ q), 0.0))


class InnerProductIndex:
    """The items of the largest inner product with a query, without the product over every item.

    Maximum inner product becomes nearest neighbour by one extra coordinate (``√(R² − |v_i|²)``, ``R`` the largest
    norm; the query gets 0 there): ``|[v_i, ·] − [q, 0]|² = R² + |q|² − 2 v_i · q``. An HNSW graph over those points
    (faiss ``IndexHNSWFlat``, L2) answers in about ``log(items)`` steps; it is built single-threaded, so the same
    vectors give the same graph and the same answers in every process. The :data:`EXACT_HEAD` of the items with the
    largest norms stay out of the graph and are scored exactly with its answers (a product over 5% of the
    catalogue). Catalogues below :data:`ANN_MIN_ITEMS` use the exact product.

    Args:
        vectors: ``[items, d]`` item vectors.
    """

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index: faiss.IndexHNSWFlat | None = None
        self.head = self.rest = np.empty(0, dtype=np.int64)
        self.head_vectors = self.vectors[:0]
        if len(self.vectors) < ANN_MIN_ITEMS:
            return
        norms = np.linalg.norm(self.vectors.astype(np.float64), axis=1)
        order = np.lexsort((np.arange(len(norms)), -norms))  # longest first, ties by item_idx
        head = int(math.ceil(EXACT_HEAD * len(norms)))
        self.head, self.rest = np.sort(order[:head]), np.sort(order[head:])
        self.head_vectors = np.ascontiguousarray(self.vectors[self.head])
        norms = norms[self.rest]
        extra = np.sqrt(np.maximum(norms.max() ** 2 - norms**2, 0.0))
        points = np.hstack([self.vectors[self.rest], extra[:, None].astype(np.float32)])
        points = np.ascontiguousarray(points)
        index = faiss.IndexHNSWFlat(points.shape[1], HNSW_NEIGHBOURS)
        index.hnsw.efConstruction = HNSW_BUILD_DEPTH
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # insertion order, hence the graph, independent of thread timing
        try:
            index.add(points)
        finally:
            faiss.omp_set_num_threads(threads)
        self.index = index

    def top(self, q: np.ndarray, n: int) -> np.ndarray:
        """item_idx of (about, for the HNSW graph) the ``n`` largest ``v_i · q``, in no particular order."""
        if self.index is None:
            return best(self.vectors @ np.asarray(q, dtype=np.float32), n)
        query = np.zeros((1, self.vectors.shape[1] + 1), dtype=np.float32)
        query[0, :-1] = q
        params = faiss.SearchParametersHNSW(efSearch=HNSW_SEARCH_FACTOR * n)
        _, found = self.index.search(query, min(n, len(self.rest)), params=params)
        found = self.rest[found[0][found[0] >= 0]]
        q = np.asarray(q, dtype=np.float32)
        scores = np.concatenate([self.head_vectors @ q, self.vectors[found] @ q])
        return np.concatenate([self.head, found])[best(scores, n)]


def best(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest ``scores`` (any order; all of them when there are no more)."""
    if n >= len(scores):
        return np.arange(len(scores))
    return np.argpartition(-scores, n - 1)[:n]
