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
gives the n items of the largest ``v_i · q`` from an HNSW graph (faiss) instead of the product over every item; the
graph can be written with the model (:meth:`InnerProductIndex.write`) and read back instead of built when it loads.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

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

    Building the graph takes seconds to minutes (about 3 s per graph at 50,000 items, 50 s at 500,000, docs/benchmarks.md
    §5); :meth:`write` saves it with faiss's own serialisation and ``saved`` reads it back, so that a served model need
    not build it again.

    Args:
        vectors: ``[items, d]`` item vectors.
        saved: A graph file written by :meth:`write` and the record :meth:`write` returned: the graph is read from it
            when it is intact and was built from these very vectors with today's parameters (:func:`read_graph`),
            and built otherwise, with a warning that says why.

    Attributes:
        origin: How the graph was obtained, ``"read"`` or ``"built"`` (None without a graph: the exact product).
    """

    def __init__(self, vectors: np.ndarray, saved: tuple[Path, dict[str, Any]] | None = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index: faiss.IndexHNSWFlat | None = None
        self.origin: str | None = None
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
        self.index = None if saved is None else read_graph(*saved, points)
        self.origin = "read"
        if self.index is None:
            self.index, self.origin = build_graph(points), "built"

    def write(self, path: Path) -> dict[str, Any]:
        """Write the graph to ``path`` (``faiss.write_index``) and return the record that ``saved`` needs to read
        it back: its parameters (:func:`graph_parameters`) and the file's SHA-256."""
        if self.index is None:
            raise ValueError("no HNSW graph: a catalogue below ANN_MIN_ITEMS is scored by the exact product")
        faiss.write_index(self.index, str(path))
        return {**graph_parameters(self.index.ntotal, self.index.d), "sha256": file_sha256(path)}

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


def build_graph(points: np.ndarray) -> faiss.IndexHNSWFlat:
    """The HNSW graph (L2) over ``points``, built single-threaded: the same points give the same graph."""
    index = faiss.IndexHNSWFlat(points.shape[1], HNSW_NEIGHBOURS)
    index.hnsw.efConstruction = HNSW_BUILD_DEPTH
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # insertion order, hence the graph, independent of thread timing
    try:
        index.add(points)
    finally:
        faiss.omp_set_num_threads(threads)
    return index


def graph_parameters(points: int, dimension: int) -> dict[str, Any]:
    """What a graph of ``points`` points of ``dimension`` coordinates is built with: a saved graph whose record
    says otherwise is not the one :func:`build_graph` would build today."""
    return {
        "points": int(points),
        "dimension": int(dimension),
        "neighbours": HNSW_NEIGHBOURS,
        "build_depth": HNSW_BUILD_DEPTH,
        "exact_head": EXACT_HEAD,
    }


def read_graph(path: Path, record: dict[str, Any], points: np.ndarray) -> faiss.IndexHNSWFlat | None:
    """The graph saved at ``path`` by :meth:`InnerProductIndex.write` (its ``record``) if it is the graph of
    ``points``, else None, with a warning that says why.

    It must have been built with today's parameters (:func:`graph_parameters`), its bytes must have the recorded
    SHA-256 (checked before faiss parses them: a damaged file could hold neighbour ids out of range), and the points it
    stores must be ``points`` exactly (the model's vectors with their extra coordinate), so that it answers as a
    graph built here would.
    """
    index, reason = _saved_graph(path, record, points)
    if index is None:
        log.warning("the saved HNSW graph %s is not used (%s): building it", path.name, reason)
    return index


def _saved_graph(path: Path, record: dict[str, Any], points: np.ndarray) -> tuple[faiss.IndexHNSWFlat | None, str]:
    """:func:`read_graph`'s graph, or None and why not."""
    expected = graph_parameters(*points.shape)
    stated = {k: record.get(k) for k in expected}
    if stated != expected:
        return None, f"saved for {stated}, expected {expected}"
    try:
        if file_sha256(path) != record.get("sha256"):
            return None, "its bytes do not match their checksum"
        index = faiss.read_index(str(path))
    except OSError as exc:
        return None, f"unreadable: {exc}"
    except RuntimeError as exc:  # written by a faiss that this one cannot read
        return None, f"unreadable by faiss {faiss.__version__}: {exc}"
    if not isinstance(index, faiss.IndexHNSWFlat) or index.ntotal != len(points) or index.d != points.shape[1]:
        return None, "not an HNSW graph of these points"
    if not np.array_equal(index.storage.reconstruct_n(0, index.ntotal), points):
        return None, "built from other vectors"
    return index, ""


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in chunks (a graph at 500,000 items is about 190 MB: never held whole besides the
    graph faiss reads from it)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def best(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` highest ``scores`` (any order; all of them when there are no more)."""
    if n >= len(scores):
        return np.arange(len(scores))
    return np.argpartition(-scores, n - 1)[:n]
