"""What the API scores with: the promoted model of each kind, loaded without any training code.

A :class:`ServingModel` scores every item for a user from the user's *live* positives (read from Neo4j on
each request, so a just-posted interaction counts at once) and, when the model knows the user, their
learned embedding. Two kinds of artifact can serve:

* ``blend`` — the two-stage ranker of :mod:`gnn.blend` (EASE^R, LightGCN, ALS, time-local popularity,
  knowledge similarity, with weights fitted on validation): the product's default (:class:`BlendModel`);
* ``lightgcn`` / ``graphsage`` — one embedding model (dot products; a user the model does not know is folded in
  as the mean of their positives' item embeddings) (:class:`EmbeddingModel`).

Which version of a kind serves is the promotion pointer ``<artifacts>/<kind>/current.json`` (:data:`CURRENT_FILE`,
written by :func:`gnn.jobs.promote`, read only by :func:`current_version`); :func:`pointer_stamps` tells a
holder of the model when a promotion happened.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from gnn.artifacts import ItemCatalog, load_artifact
from gnn.blend.model import RankerModel
from gnn.blend.scorers import UNKNOWN_TIME
from graph.reads import UserContext, float_column

log = logging.getLogger(__name__)

#: Artifact kinds the API can serve, in the order ``auto`` tries them.
SERVABLE = ("blend", "lightgcn", "graphsage")
#: The promotion pointer of a model kind, ``<artifacts>/<kind>/current.json``: ``{"version": <directory>, …}``.
CURRENT_FILE = "current.json"


def current_version(root: Path, kind: str) -> Path | None:
    """The promoted version directory of ``kind`` under the artifacts root ``root``, if any (None also for an
    unreadable pointer or a version directory that is gone)."""
    pointer = root / kind / CURRENT_FILE
    if not pointer.is_file():
        return None
    try:
        version = json.loads(pointer.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None
    path = root / kind / version
    return path if path.is_dir() else None


def pointer_stamps(root: Path) -> tuple[float, ...]:
    """The modification times of the promotion pointers of every :data:`SERVABLE` kind (0 where there is none):
    a change means that a version was promoted since."""
    stamps = []
    for kind in SERVABLE:
        pointer = root / kind / CURRENT_FILE
        stamps.append(pointer.stat().st_mtime if pointer.is_file() else 0.0)
    return tuple(stamps)


class Positives(NamedTuple):
    """A user's positives as columns, one array per field (a heavy user has thousands, read on every computed answer:
    no Python call per positive).

    Attributes:
        item_ids: ``[n]`` item ids (any that the model does not know are left out).
        timestamps: ``[n]`` float64 epoch seconds, NaN where unknown.
        weights: ``[n]`` float64 interaction weights (play counts), NaN where unknown (counts as 1); None: all 1.
        rows: ``[n]`` int64 the items' rows in the serving model's ``item_ids`` (-1 for an id it does not know), when
            the caller has looked them up with that model's :attr:`ServingModel.item_rows` (the API looks up a
            history's ids once per answer, for these and for the seen items); None: the model looks them up.
    """

    item_ids: Sequence[str] | np.ndarray
    timestamps: np.ndarray
    weights: np.ndarray | None = None
    rows: np.ndarray | None = None

    @classmethod
    def of(cls, pairs: Sequence[tuple[str, int | None]], weights: Sequence[float | None] | None = None) -> Positives:
        """The columns of ``(item id, unix time or None)`` pairs and of the weights aligned with them (None: all 1)."""
        return cls(
            [item for item, _ in pairs],
            float_column([moment for _, moment in pairs]),
            None if weights is None else float_column(weights),
        )

    @classmethod
    def live(cls, context: UserContext, min_rating: float, rows: np.ndarray | None = None) -> Positives:
        """The positives of a user's context as read from Neo4j (:meth:`graph.reads.InteractionColumns.positive`),
        with their weights: play counts order a history without times (:meth:`BlendModel.scores`). ``rows``: the
        serving model's rows of every interaction of the context, in its order, when the caller has them."""
        columns = context.columns
        keep = columns.positive(min_rating)
        return cls(
            columns.item_ids[keep],
            columns.timestamps[keep],
            columns.weights[keep],
            None if rows is None else rows[keep],
        )

    def rows_in(self, model: ServingModel) -> np.ndarray:
        """``[n]`` int64 the items' rows in ``model`` (:attr:`rows` when the caller looked them up)."""
        return model.item_rows(self.item_ids) if self.rows is None else self.rows


class ItemRows:
    """Item ids to rows of a model's ``item_ids``, a whole sequence at once: one dict lookup per id, mapped in C
    (a pandas index's ``get_indexer`` costs a few hundred microseconds a call before hashing anything, more than
    this takes for a heavy user's thousands of ids; a miss makes two such calls)."""

    def __init__(self, index: Mapping[str, int]) -> None:
        self._get = index.get

    def __call__(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """``[n]`` int64 rows of ``item_ids``, -1 for an id the model does not know."""
        return np.fromiter(map(self._get, item_ids, repeat(-1)), dtype=np.int64, count=len(item_ids))


class ServingModel(Protocol):
    """What the recommender needs from a learned model."""

    kind: str
    version: str
    item_ids: list[str]
    item_index: dict[str, int]
    #: :attr:`item_index` for many ids at once.
    item_rows: ItemRows
    #: Each item's genres and year in ``item_ids`` order (None: an artifact saved before catalogs existed).
    catalog: ItemCatalog | None

    def users_by_activity(self) -> list[str]:
        """Users the model knows, most positives first (for warming the answer cache)."""
        ...

    def knows_user(self, user_id: str) -> bool: ...

    def scores(self, user_id: str, positives: Positives, attributes: Sequence[str] | None = None) -> np.ndarray:
        """``[len(item_ids)]`` float32 scores (higher is better) from the user's positives (item ids, unix times and
        interaction weights, e.g. play counts) and attributes (ids ``"<kind>:<value>"`` read live with them; None: as
        the model was fitted)."""
        ...

    def fitted_history(self, user_id: str) -> list[tuple[str, int | None]]:
        """The user's positives as the model saw them when fitted (used while Neo4j is away)."""
        ...

    def item_vectors(self) -> np.ndarray | None:
        """``[len(item_ids), d]`` unit vectors for diversity (MMR), or None."""
        ...


class EmbeddingModel:
    """A LightGCN or GraphSAGE artifact as a :class:`ServingModel`."""

    def __init__(self, path: Path) -> None:
        artifact = load_artifact(path)
        self.kind = artifact.model
        self.version = artifact.version or path.name
        self.item_ids = list(artifact.item_ids)
        self._users = artifact.user_embeddings.float().numpy()
        self._items = artifact.item_embeddings.float().numpy()
        self._user_index = {u: k for k, u in enumerate(artifact.user_ids)}
        self._item_index = {i: k for k, i in enumerate(self.item_ids)}
        self.item_index = self._item_index
        self.item_rows = ItemRows(self.item_index)
        self.catalog = _catalog(path, self.item_ids)
        norms = np.linalg.norm(self._items, axis=1, keepdims=True).clip(min=1e-12)
        self._unit = (self._items / norms).astype(np.float32)

    def knows_user(self, user_id: str) -> bool:
        return user_id in self._user_index

    def scores(self, user_id: str, positives: Positives, attributes: Sequence[str] | None = None) -> np.ndarray:
        # user attributes reach an embedding model through training (GraphSAGE's user_attribute nodes), not here
        row = self._user_index.get(user_id)
        if row is not None:
            vector = self._users[row]
        else:
            known = positives.rows_in(self)
            known = known[known >= 0]
            if not len(known):
                return np.zeros(len(self.item_ids), dtype=np.float32)
            vector = self._items[known].mean(axis=0)
        return (self._items @ vector).astype(np.float32)

    def fitted_history(self, user_id: str) -> list[tuple[str, int | None]]:
        return []  # embedding artifacts keep no interactions: degraded lists cannot exclude seen items

    def users_by_activity(self) -> list[str]:
        return list(self._user_index)  # no interaction counts in an embedding artifact: id order

    def item_vectors(self) -> np.ndarray | None:
        return self._unit


#: Candidates per component of a blend that scores a candidate set because of its catalogue's size
#: (:attr:`ScoringCandidates.from_items`): on the whole blend their top 20 share 0.98–0.99 with every item's, and a
#: scoring costs 29% less than every item's at 50,000 items, half at 100,000, a quarter at 500,000 (docs/benchmarks.md §5).
AUTO_CANDIDATES = 200
#: The size switch's default (``KGREC_SCORING_CANDIDATES_FROM_ITEMS``): a blend of this many items or more scores
#: :data:`AUTO_CANDIDATES` per component, and ``kgrec retrain`` saves its candidate index's graphs with it.
CANDIDATES_FROM_ITEMS = 50_000


@dataclass(frozen=True)
class ScoringCandidates:
    """Whether a blend scores every item or a candidate set (``RankerConfig.serve_candidates``).

    Attributes:
        per_component: A candidate set of this many items per component (``KGREC_SCORING_CANDIDATES``; 0: every
            item; None: as the artifact was fitted, or by size).
        from_items: A blend of this many items or more whose artifact and ``per_component`` set nothing scores
            :data:`AUTO_CANDIDATES` per component (``KGREC_SCORING_CANDIDATES_FROM_ITEMS``; None: never by size).
    """

    per_component: int | None = None
    from_items: int | None = None

    def resolve(self, fitted: int | None, items: int) -> int | None:
        """``serve_candidates`` for a blend of ``items`` items fitted with ``fitted`` (None: every item)."""
        if self.per_component is not None:
            return self.per_component or None
        if fitted is None and self.from_items is not None and items >= self.from_items:
            return AUTO_CANDIDATES
        return fitted


#: As the artifact was fitted, whatever its size (the default outside the API, whose settings choose).
AS_FITTED = ScoringCandidates()
#: The API's default: as the artifact was fitted, or :data:`AUTO_CANDIDATES` from :data:`CANDIDATES_FROM_ITEMS` items.
BY_SIZE = ScoringCandidates(None, CANDIDATES_FROM_ITEMS)


class BlendModel:
    """The two-stage ranker of :mod:`gnn.blend` as a :class:`ServingModel`.

    Args:
        path: The artifact's version directory.
        candidates: Every item or a candidate set (default: as the artifact was fitted). With a candidate set the
            model's :attr:`~gnn.blend.model.RankerModel.candidate_index` is made here, not on the first request: its
            HNSW graphs read from the artifact when ``kgrec retrain`` saved them there (a blend of
            :data:`CANDIDATES_FROM_ITEMS` items or more), built otherwise.
    """

    def __init__(self, path: Path, candidates: ScoringCandidates = AS_FITTED) -> None:
        self._model = RankerModel.load(path)
        fitted = self._model.config.serve_candidates
        chosen = candidates.resolve(fitted, self._model.num_items)
        if chosen != fitted:
            self._model.config = self._model.config.model_copy(update={"serve_candidates": chosen})
        if chosen is not None:
            started = time.perf_counter()
            index = self._model.candidate_index  # made now, not on the first request
            origins = sorted({s.origin for s in (index.lightgcn, index.als) if s is not None and s.origin is not None})
            log.info(
                "blend of %d items scores %d candidates per component; its candidate index (%s) was %s in %.1f s",
                self._model.num_items,
                chosen,
                "HNSW graphs" if origins else "exact products",
                " and ".join(origins) or "built",
                time.perf_counter() - started,
            )
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8")) if (path / "meta.json").is_file() else {}
        self.kind = "blend"
        self.version = str(meta.get("version") or path.name)
        self.item_ids = list(self._model.item_ids)
        self._user_index = {u: k for k, u in enumerate(self._model.user_ids)}
        self._item_index = {i: k for k, i in enumerate(self.item_ids)}
        self.item_index = self._item_index
        self.item_rows = ItemRows(self.item_index)
        self.catalog = _catalog(path, self.item_ids)
        items = np.asarray(self._model.components.item_emb, dtype=np.float32)  # its LightGCN component
        self._unit = None
        if items.ndim == 2 and items.shape[1] > 0:
            self._unit = items / np.linalg.norm(items, axis=1, keepdims=True).clip(min=1e-12)

    def knows_user(self, user_id: str) -> bool:
        return user_id in self._user_index

    def scores(self, user_id: str, positives: Positives, attributes: Sequence[str] | None = None) -> np.ndarray:
        rows = positives.rows_in(self)
        known = rows >= 0
        times = np.where(np.isnan(positives.timestamps), UNKNOWN_TIME, positives.timestamps)[known].astype(np.int64)
        # an unknown weight (NaN) counts as 1 (RankerModel.features)
        play = np.ones(int(known.sum())) if positives.weights is None else positives.weights[known]
        index = None if attributes is None else self._model.attribute_index(attributes)
        out = self._model.score(rows[known], times, self._user_index.get(user_id), index, play)
        return np.asarray(out, dtype=np.float32)

    @property
    def cold_slots(self) -> int:
        """Positions reserved for items without positives (``RankerConfig.cold_slots``; 0 = none)."""
        return self._model.config.cold_slots

    @property
    def cold_slot_every(self) -> int:
        """The spacing of the reserved positions (``RankerConfig.cold_slot_every``): positions N, 2N, …"""
        return self._model.config.cold_slot_every

    def cold_candidates(self, scores: np.ndarray, limit: int) -> list[int]:
        """Rows of the best cold items with a finite score (:meth:`gnn.blend.model.RankerModel.cold_candidates`)."""
        return self._model.cold_candidates(scores, limit).tolist()

    def place_cold(self, ranked: Sequence[int], scores: np.ndarray, k: int, cold: Sequence[int]) -> list[int]:
        """``ranked`` rows cut to ``k`` with the new-arrival positions filled from ``cold``
        (:meth:`gnn.blend.model.RankerModel.place_cold`, the policy the benchmark measures)."""
        return self._model.place_cold(ranked, scores, k, cold)

    def fitted_history(self, user_id: str) -> list[tuple[str, int | None]]:
        row = self._user_index.get(user_id)
        if row is None:
            return []
        items, times = self._model.history(row)
        return [(self.item_ids[int(i)], None if int(t) < 0 else int(t)) for i, t in zip(items, times, strict=True)]

    def item_vectors(self) -> np.ndarray | None:
        return self._unit

    def users_by_activity(self) -> list[str]:
        counts = np.diff(self._model.components.hist_ptr)
        order = np.lexsort((np.arange(len(counts)), -counts))
        return [self._model.user_ids[int(i)] for i in order]


def _catalog(path: Path, item_ids: list[str]) -> ItemCatalog | None:
    catalog = ItemCatalog.read(path)
    if catalog is None:
        log.warning("artifact %s has no item catalog: genre and year filters fail while Neo4j is away", path.name)
        return None
    return catalog.aligned(item_ids)


def load_serving_model(
    root: Path, kind: str = "auto", candidates: ScoringCandidates = AS_FITTED
) -> ServingModel | None:
    """Load the current artifact of ``kind`` (``auto``: the first of :data:`SERVABLE` that has one); ``candidates``:
    a blend's (:class:`BlendModel`)."""
    for candidate in SERVABLE if kind == "auto" else (kind,):
        path = current_version(root, candidate)
        if path is None:
            continue
        return BlendModel(path, candidates) if candidate == "blend" else EmbeddingModel(path)
    return None


def find_version(root: Path, version: str, kind: str = "auto") -> Path | None:
    """The directory of artifact ``version`` of ``kind`` (``auto``: the first of :data:`SERVABLE` that has it), or
    None when no such version exists. ``version`` is a directory name; ``<kind>-<version>`` (a response's
    ``model_version``) names the same one."""
    for candidate in SERVABLE if kind == "auto" else (kind,):
        for name in (version, version.removeprefix(f"{candidate}-")):
            if name and "/" not in name and name not in (".", "..") and (root / candidate / name).is_dir():
                return root / candidate / name
    return None


def load_serving_version(
    root: Path, version: str, kind: str = "auto", candidates: ScoringCandidates = AS_FITTED
) -> ServingModel | None:
    """Load artifact ``version`` of ``kind`` (:func:`find_version`), promoted or not; None when it does not exist;
    ``candidates``: a blend's (:class:`BlendModel`)."""
    path = find_version(root, version, kind)
    if path is None:
        return None
    return BlendModel(path, candidates) if path.parent.name == "blend" else EmbeddingModel(path)


def limit_scoring_threads(threads: int) -> None:
    """Cap the threads each scoring operation may use (torch's intra-op pool, and the BLAS and OpenMP pools of numpy
    and scipy), for the whole process.

    A server answers requests on several threads at once; letting each request's matrix products fan out over every
    core as well oversubscribes the cores (busy-waiting thread pools), which under load makes scoring many times
    slower. One thread per operation is the serving default (``KGREC_SCORING_THREADS``).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)
