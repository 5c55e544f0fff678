"""The fitted blend as it is served: :class:`Components` and :class:`RankerModel` (features, scores, lists, files).

:meth:`RankerModel.score` takes a live history (item_idx, epoch seconds) and, for a user the model knows, the
user_idx, and returns a score per item; :meth:`RankerModel.place_cold` applies the new-arrival positions
(:mod:`gnn.blend.cold`). No fitting code is imported here: the model is built by :mod:`gnn.blend.fit` and read
back by :meth:`RankerModel.load`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from gnn.artifacts import read_files
from gnn.blend.candidates import InnerProductIndex, LinearMoments, best
from gnn.blend.cold import reserve_cold_slots, top_items
from gnn.blend.config import (
    DAY,
    FEATURES,
    FORMAT_VERSION,
    GRAPH_FILES,
    META_FILE,
    MODEL_FILE,
    RAW_FEATURES,
    SCORE_DECIMALS,
    YEAR,
    RankerConfig,
)
from gnn.blend.scorers import (
    NEGLIGIBLE_WEIGHT,
    UNKNOWN_TIME,
    TimedEvents,
    als_vector,
    distinct,
    ease_scores,
    group_of,
    mean_and_deviation,
    peer_scores,
    recency_weights,
    recent_part,
    social_matrix,
    weighted_rows,
    zscore,
)
from gnn.phases import phase
from schema.errors import DataError

log = logging.getLogger(__name__)

#: Candidate set (``RankerConfig.serve_candidates``): items of the uniform sample whose features' means and
#: deviations stand in for the catalogue's where no exact ones are known (the sample is not scored as candidates).
CANDIDATE_SAMPLE = 2_000


@dataclass
class UserVectors:
    """A user's vectors that item features are dot products with (None where the model or the history gives none):
    the LightGCN embedding (``lightgcn``, ``lightgcn_cold``), the folded-in ALS factors (``als``) and the unit
    knowledge profile (``knowledge``, ``knowledge_cold``)."""

    lightgcn: np.ndarray | None
    als: np.ndarray | None
    knowledge: np.ndarray | None


@dataclass
class CandidateIndex:
    """What :meth:`RankerModel.score` needs to pick and score a candidate set without a product over every item.

    Attributes:
        sample: The uniform sample (item_idx), whose z-score statistics stand in for the catalogue's where no exact
            ones are known.
        popular, cold: The items by overall popularity; the cold items (item_idx).
        lightgcn, als: The best items by LightGCN's and by ALS's product (None without the component).
        moments: By :data:`FEATURES` index, the features linear in one of :class:`UserVectors` (its attribute name)
            with their exact catalogue moments.
        constants: By :data:`FEATURES` index, the (mean, deviation) of the features that are the same for every
            user (``pop_global``, ``cold``).
    """

    sample: np.ndarray
    popular: np.ndarray
    cold: np.ndarray
    lightgcn: InnerProductIndex | None
    als: InnerProductIndex | None
    moments: dict[int, tuple[str, LinearMoments]]
    constants: dict[int, tuple[float, float]]


@dataclass
class Components:
    """Fitted component scorers over one set of positives.

    Attributes:
        ease: ``[I, I]`` float32 CSR, row = history item, column = target item.
        transitions: ``[I, I]`` float32 CSR, row = earlier item, column = later item.
        knowledge: ``[I, F]`` float32 CSR, unit rows.
        user_emb, item_emb: ``[U, d]``, ``[I, d]`` float32 LightGCN embeddings (``d = 0`` without LightGCN);
            rows of items without positives are predicted from their knowledge features and year
            (``cold_embeddings``; zero when off, or for items without any feature).
        als_items: ``[I, k]`` float32 ALS item factors (``k = 0`` without ALS); als_gram: ``[k, k]`` float64
            ``als_itemsᵀ als_items + regularization · I`` (for the fold-in).
        events: Everybody's timed positives.
        hist_ptr, hist_items, hist_times: Each user's positives (CSR by user_idx, oldest first).
        hist_weights: ``[n]`` float32 interaction weights aligned with ``hist_items`` (play counts; 1 for ratings),
            which order a history's positions where times tie (:meth:`RankerModel.features`; None: all 1).
        lightgcn_epochs: Epochs LightGCN was trained for.
        user_attributes: ``[U, A]`` float32 CSR, 1 where the user has the attribute (age band, country, ...), as
            fitted (None: no user attributes).
        attribute_shares: ``[A, I]`` float32 per-attribute item popularity from the fit positives
            (:func:`gnn.blend.scorers.attribute_shares`; None: no user attributes).
        attribute_ids: The user attributes' ids (``"<kind>:<value>"``) by index.
    """

    ease: sp.csr_matrix
    transitions: sp.csr_matrix
    knowledge: sp.csr_matrix
    user_emb: np.ndarray
    item_emb: np.ndarray
    als_items: np.ndarray
    als_gram: np.ndarray
    events: TimedEvents
    hist_ptr: np.ndarray
    hist_items: np.ndarray
    hist_times: np.ndarray
    lightgcn_epochs: int = 0
    item_year: np.ndarray | None = None  # [I] int64 release years, -1 unknown (None: all unknown)
    follows: sp.csr_matrix | None = None  # [U, U] binary, row = follower, column = followee (None: nobody)
    user_attributes: sp.csr_matrix | None = None
    attribute_shares: np.ndarray | None = None
    attribute_ids: list[str] | None = None
    hist_weights: np.ndarray | None = None


class RankerModel:
    """A fitted blend, as the API serves it.

    Args:
        config: Hyper-parameters it was fitted with.
        user_ids, item_ids: External ids by index.
        components: Fitted component scorers.
        weights: ``[len(FEATURES)]`` ranker weights (None: not fitted yet — :meth:`score` raises).
        meta: Provenance and fit report (snapshot id, mode, validation figures, timings).
        group_weights: ``[G, len(FEATURES)]`` per-user adaptive weights (``ranker_user_groups``): a user whose
            history size falls in group ``g`` of ``group_edges`` is scored with row ``g`` instead of ``weights``
            (None: ``weights`` for everybody).
        group_edges: ``G − 1`` ascending history sizes that start groups 1 … G − 1.

    Attributes:
        saved_graphs: The candidate index's HNSW graphs saved with the model, by component (``lightgcn``, ``als``):
            the file and its record, set by :meth:`load` (empty: every graph is built).
    """

    def __init__(
        self,
        config: RankerConfig,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        components: Components,
        weights: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
        group_weights: np.ndarray | None = None,
        group_edges: Sequence[int] = (),
    ) -> None:
        self.config = config
        self.user_ids = list(user_ids)
        self.item_ids = list(item_ids)
        self.num_users, self.num_items = len(self.user_ids), len(self.item_ids)
        self.components = components
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.meta = dict(meta or {})
        self.group_weights = None if group_weights is None else np.asarray(group_weights, dtype=np.float32)
        self.group_edges = [int(e) for e in group_edges]
        self.saved_graphs: dict[str, tuple[Path, dict[str, Any]]] = {}
        if self.group_weights is not None and self.group_weights.shape != (len(self.group_edges) + 1, len(FEATURES)):
            raise DataError(f"group weights of shape {self.group_weights.shape} for {len(self.group_edges) + 1} groups")
        c = components
        self._pop_global = np.log1p(c.events.global_counts).astype(np.float32)
        self._cold = (c.events.global_counts == 0).astype(np.float32)
        self._raw = np.isin(np.asarray(FEATURES), sorted(RAW_FEATURES))
        self._window = config.pop_window_days * DAY
        if c.item_year is None:
            c.item_year = np.full(len(self.item_ids), -1, dtype=np.int64)
        known = c.item_year >= 0
        # release as a fractional year (mid-year), NaN unknown
        self._release = np.where(known, c.item_year.astype(np.float64) + 0.5, np.nan)
        self._social = social_matrix(c.follows, c.hist_ptr, c.hist_items, self.num_items)
        self._attribute_index = {a: k for k, a in enumerate(c.attribute_ids or [])}
        has_peers = c.attribute_shares is not None and c.attribute_shares.shape[0] > 0
        #: Features this model can have: the first ``active`` of FEATURES (``peers``, the last, is absent without
        #: user attributes). Every product of weights and features takes only these, so that a model of data
        #: without user attributes scores bit for bit as before the feature existed.
        self.active = len(FEATURES) if has_peers else FEATURES.index("peers")

    def attribute_index(self, attribute_ids: Sequence[str]) -> np.ndarray:
        """``[n]`` int64 indices of the user attributes the model knows among ``attribute_ids`` (others are left out:
        an attribute nobody had when the model was fitted says nothing)."""
        found = [self._attribute_index[a] for a in attribute_ids if a in self._attribute_index]
        return np.asarray(found, dtype=np.int64)

    def user_attributes(self, user_idx: int) -> np.ndarray:
        """``[n]`` int64 the fitted user's attribute indices (empty without user attributes)."""
        self._check_user(user_idx)
        matrix = self.components.user_attributes
        if matrix is None:
            return np.empty(0, dtype=np.int64)
        return matrix.indices[matrix.indptr[user_idx] : matrix.indptr[user_idx + 1]].astype(np.int64)

    def weights_for(self, size: int) -> np.ndarray:
        """The ranker weights of a user whose history holds ``size`` distinct items: their group's
        (:attr:`group_weights`) or the global ones.

        Raises:
            DataError: The model has no ranker weights.
        """
        if self.weights is None:
            raise DataError("the ranker has no weights yet (fit it with fit_ranker)")
        if self.group_weights is None:
            return self.weights
        return self.group_weights[int(group_of(size, self.group_edges))]

    def combine(self, weights: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``weights · z`` over the :attr:`active` features (``z``: :meth:`standardized` rows, ``[F, …]``)."""
        n = self.active
        return weights[:n] @ z[:n]

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's positives as fitted: (item_idx ``[n]`` int64, epoch seconds ``[n]`` int64), oldest first.

        Raises:
            DataError: ``user_idx`` is out of range.
        """
        self._check_user(user_idx)
        c = self.components
        lo, hi = c.hist_ptr[user_idx], c.hist_ptr[user_idx + 1]
        return c.hist_items[lo:hi].copy(), c.hist_times[lo:hi].copy()

    def history_weights(self, user_idx: int) -> np.ndarray:
        """``[n]`` float64 interaction weights of :meth:`history`'s positives (play counts; 1 for ratings and for a
        model fitted before weights were kept), to pass on as ``weights`` with them."""
        self._check_user(user_idx)
        c = self.components
        lo, hi = c.hist_ptr[user_idx], c.hist_ptr[user_idx + 1]
        if c.hist_weights is None:
            return np.ones(hi - lo, dtype=np.float64)
        return c.hist_weights[lo:hi].astype(np.float64)

    def features(
        self,
        history_items: np.ndarray,
        history_times: np.ndarray,
        user_idx: int | None = None,
        attributes: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Raw (unstandardised) component scores of every item for one user.

        Args:
            history_items: ``[n]`` int64 item_idx of the user's positives (duplicates count once).
            history_times: ``[n]`` int64 epoch seconds, ``-1`` unknown.
            user_idx: The user's index if the model knows the user (LightGCN uses its embedding); None uses
                the mean embedding of the history items.
            attributes: The user's attribute indices (:meth:`attribute_index` of their live attributes); None: the
                fitted user's own (none for a user the model does not know).
            weights: ``[n]`` interaction weights (play counts; None or NaN: 1). Among positives of the same time
                (all of them when times are unknown, as on Last.fm) the more played counts as the more recent, so
                the recency-weighted components (``ease_recent``, ``sequence``, ``knowledge``, the ALS fold-in)
                weigh a history by play count where it has no times.

        Returns:
            ``[len(FEATURES), num_items]`` float32.

        Raises:
            DataError: Shapes differ, or an item_idx / user_idx is out of range.
        """
        items, times = self._check_history(history_items, history_times, weights)
        return self._features(items, times, user_idx, attributes, self._user_vectors(items, times, user_idx))

    def _user_vectors(
        self, items: np.ndarray, times: np.ndarray, user_idx: int | None, floor: float = 0.0
    ) -> UserVectors:
        """The user's :class:`UserVectors` from a checked history; ``floor``: the recency weight below which a positive
        is left out of the weighted sums (:data:`~gnn.blend.scorers.NEGLIGIBLE_WEIGHT` for a candidate set, 0: none)."""
        c = self.components
        lightgcn = None
        if c.item_emb.shape[1]:
            if user_idx is not None:
                self._check_user(user_idx)
                lightgcn = c.user_emb[user_idx]
            elif len(items):
                lightgcn = c.item_emb[items].mean(axis=0)
        als = None
        if c.als_items.shape[1] and len(items):
            cfg = self.config
            als = als_vector(
                c.als_items,
                c.als_gram,
                items,
                times,
                cfg.als_half_life,
                cfg.als_alpha,
                cfg.als_regularization,
                cfg.als_reg_exponent,
                floor,
            )
        knowledge = None
        if len(items):
            recent = recent_part(items, recency_weights(times, self.config.knowledge_half_life), floor)
            profile = weighted_rows(c.knowledge, *recent)
            norm = float(np.linalg.norm(profile))
            if norm > 0:
                knowledge = profile / norm
        return UserVectors(lightgcn, als, knowledge)

    def _every_item(self, items: np.ndarray, times: np.ndarray, floor: float = 0.0) -> dict[int, np.ndarray]:
        """The features of every item that come from the history's rows or counts (by :data:`FEATURES` index:
        ``ease``, ``ease_recent``, ``sequence``, ``pop_window``), from a checked history; those the history cannot
        give are left out (0). ``floor``: :meth:`_user_vectors`'."""
        c = self.components
        cfg = self.config
        rows: dict[int, np.ndarray] = {}
        if len(items):
            rows[0], rows[1] = ease_scores(c.ease, items, times, cfg.ease_half_life, floor)
            rows[2] = weighted_rows(
                c.transitions, *recent_part(items, recency_weights(times, cfg.sequence_half_life), floor)
            )
        rows[6] = np.log1p(c.events.window_counts(self._end(times), self._window))
        return rows

    def _end(self, times: np.ndarray) -> int:
        """The moment of a checked history's features: its latest known time (the latest event's without)."""
        known = times[times >= 0]
        return int(known.max()) if len(known) else self.components.events.latest

    def _features(
        self,
        items: np.ndarray,
        times: np.ndarray,
        user_idx: int | None,
        attributes: np.ndarray | None,
        vectors: UserVectors,
        columns: np.ndarray | None = None,
        every: dict[int, np.ndarray] | None = None,
        only: Collection[int] | None = None,
    ) -> np.ndarray:
        """:meth:`features` of a checked history (:meth:`_check_history`) with the user's :meth:`_user_vectors`,
        at ``columns`` only (``[F, len(columns)]``; None: every item). ``every``: :meth:`_every_item` of the same
        history when the caller has it. ``only``: the features (:data:`FEATURES` indices) to compute, the others
        left 0 (None: all of them)."""
        c = self.components

        def take(values: np.ndarray) -> np.ndarray:
            return values if columns is None else values[columns]

        def wanted(*features: int) -> bool:
            return only is None or any(f in only for f in features)

        every = self._every_item(items, times) if every is None else every
        out = np.zeros((len(FEATURES), self.num_items if columns is None else len(columns)), dtype=np.float32)
        for feature, values in every.items():
            if wanted(feature):
                out[feature] = take(values)
        if vectors.knowledge is not None and wanted(3, 9):
            out[3] = take(c.knowledge) @ vectors.knowledge
        if vectors.lightgcn is not None and wanted(4, 12):
            out[4] = take(c.item_emb) @ vectors.lightgcn
        if vectors.als is not None and wanted(5):
            out[5] = take(c.als_items) @ vectors.als
        end = self._end(times)
        cold = take(self._cold) if wanted(8, 9, 11, 12, 13) else None
        if wanted(7):
            out[7] = take(self._pop_global)
        if wanted(10, 11):
            out[10] = self._fresh(end, columns)
        if cold is not None:
            out[8] = cold
            out[9] = out[3] * cold
            out[11] = out[10] * cold
            out[12] = out[4] * cold
            solo = int((c.events.global_counts[items] <= 1).sum()) if len(items) else 0
            out[13] = cold * np.float32(math.log((solo + 0.5) / (len(items) + 5.0)))
        if user_idx is not None and self._social.nnz and wanted(14):  # the user's row, without scipy's indexing
            row = slice(self._social.indptr[user_idx], self._social.indptr[user_idx + 1])
            social = np.zeros(self.num_items, dtype=np.float32)
            social[self._social.indices[row]] = self._social.data[row]
            out[14] = take(social)
        if c.attribute_shares is not None and c.attribute_shares.shape[0] and wanted(15):
            if attributes is None:
                attributes = self.user_attributes(user_idx) if user_idx is not None else np.empty(0, np.int64)
            out[15] = take(peer_scores(c.attribute_shares, np.asarray(attributes, dtype=np.int64)))
        return out

    def _fresh(self, end: int, columns: np.ndarray | None = None) -> np.ndarray:
        """``[I]`` float32 release recency at epoch second ``end``: 1 for items released at or after it, decaying
        as ``exp(−years / fresh_years)`` for older ones, 0 for unknown years or an unknown moment (at ``columns``
        only: ``[len(columns)]``)."""
        release = self._release if columns is None else self._release[columns]
        if end < 0 or np.isnan(release).all():
            return np.zeros(len(release), dtype=np.float32)
        age = 1970.0 + end / YEAR - release
        fresh = np.exp(-np.maximum(age, 0.0) / self.config.fresh_years)
        return np.nan_to_num(fresh, nan=0.0).astype(np.float32)

    def standardized(
        self,
        history_items: np.ndarray,
        history_times: np.ndarray,
        user_idx: int | None = None,
        attributes: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`features` as per-user z-scores over the items (a constant feature becomes 0); the
        :data:`RAW_FEATURES` stay as they are."""
        return self._zscored(self.features(history_items, history_times, user_idx, attributes, weights))

    def _zscored(self, raw: np.ndarray) -> np.ndarray:
        """Every item's ``raw`` features as per-user z-scores, the :data:`RAW_FEATURES` as they are."""
        z = zscore(raw)
        z[self._raw] = raw[self._raw]
        return z

    def _weighed(self, weights: np.ndarray) -> np.ndarray:
        """``[F]`` bool: the features ``weights`` gives a non-zero weight among the :attr:`active` ones (the only ones
        :meth:`combine` reads)."""
        used = np.zeros(len(FEATURES), dtype=bool)
        used[: self.active] = weights[: self.active] != 0
        return used

    def _weighted_zscores(self, raw: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """:meth:`_zscored` of ``raw`` (overwritten) for the rows that ``weights`` gives a non-zero weight, 0 for the
        others: :meth:`combine` multiplies those by 0, so its sums are the same, bit for bit (a weight fitted to 0 is
        common: a third of the features of a blend fitted at 50,000 items, whose z-scores cost 1 ms a list there)."""
        used = self._weighed(weights)
        scaled = np.flatnonzero(used & ~self._raw)
        raw[scaled] = zscore(raw[scaled])
        raw[~used] = 0.0
        return raw

    def score(
        self,
        history_items: np.ndarray,
        history_times: np.ndarray,
        user_idx: int | None = None,
        attributes: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> np.ndarray:
        """Ranking scores of every item for one user (higher is better).

        Args:
            history_items: ``[n]`` int64 item_idx of the user's positives, e.g. read live from Neo4j, so a
                just-posted interaction counts at once.
            history_times: ``[n]`` int64 epoch seconds, ``-1`` unknown.
            user_idx: The user's index if the model was fitted with the user; None for a user unknown to it
                (e.g. just created at onboarding): history-based components only.
            attributes: The user's attribute indices, e.g. read live with the history (None: as fitted).
            weights: ``[n]`` interaction weights, e.g. play counts read live with the history (None: all 1;
                :meth:`features`).

        Returns:
            ``[num_items]`` float32 rounded to :data:`~gnn.blend.config.SCORE_DECIMALS` decimals (float noise
            cannot reorder near-tied items: they tie, and lists break ties by item_idx); the history items
            themselves get ``-inf`` (never recommended again).

        Raises:
            DataError: The model has no ranker weights, or the inputs are malformed.
        """
        play = weights
        if self.group_weights is None:  # one set of weights: no need to count the history
            ranker = self.weights_for(0)
        else:
            ranker = self.weights_for(len(np.unique(np.asarray(history_items, dtype=np.int64))))
        items, times = self._check_history(history_items, history_times, play)
        n = self.config.serve_candidates
        # a candidate set's sums leave out the positives of a negligible recency weight; every item's keep them all,
        # as fitted (docs/benchmarks.md §5: the same lists)
        floor = 0.0 if n is None else NEGLIGIBLE_WEIGHT
        vectors = self._user_vectors(items, times, user_idx, floor)
        every = None if n is None else self._every_item(items, times, floor)
        columns = None if every is None else self._candidates(every, vectors, n)
        # the features the ranker weighs: a candidate set computes no others (combine multiplies them by 0)
        used = self._weighed(ranker)
        weighed = None if columns is None else set(np.flatnonzero(used).tolist())
        raw = self._features(items, times, user_idx, attributes, vectors, columns, every, weighed)
        if columns is None:  # every item: the features computed to choose candidates are not computed again
            out = np.round(self.combine(ranker, self._weighted_zscores(raw, ranker)), SCORE_DECIMALS)
            out = out.astype(np.float32, copy=False)
        else:
            # each feature's mean and deviation over the catalogue: exact for those computed for every item, for
            # those linear in a user vector (LinearMoments) and for the constant ones; the uniform sample's for the
            # others
            index = self.candidate_index
            mean, std = np.zeros(len(raw), dtype=raw.dtype), np.ones(len(raw), dtype=raw.dtype)
            known = self._raw.copy()  # the raw features take no statistics
            # (a feature of weight 0 takes none: it is 0 and multiplied by 0)
            for feature, values in every.items():
                if used[feature]:
                    mean[feature], std[feature] = mean_and_deviation(values)
                known[feature] = True
            for feature, (name, moments) in index.moments.items():
                vector = getattr(vectors, name)
                if vector is not None and used[feature]:
                    mean[feature], std[feature] = moments(vector)
                    known[feature] = True
            for feature, (centre, spread) in index.constants.items():
                mean[feature], std[feature] = centre, spread
                known[feature] = True
            # the others' over the uniform sample, computed there for those features alone
            rest = np.flatnonzero(~known & used)
            if len(rest):
                sample = self._features(items, times, user_idx, attributes, vectors, index.sample, every, set(rest))
                mean[rest], std[rest] = mean_and_deviation(sample[rest])
            z = (raw - mean[:, None]) / np.where(std > 0, std, 1.0)[:, None]
            z[self._raw] = raw[self._raw]
            out = np.full(self.num_items, -np.inf, dtype=np.float32)
            out[columns] = np.round(self.combine(ranker, z), SCORE_DECIMALS)
        out[np.asarray(history_items, dtype=np.int64)] = -np.inf
        return out

    @functools.cached_property
    def candidate_index(self) -> CandidateIndex:
        """The :class:`CandidateIndex` of this model, built on first use (:class:`gnn.serving.BlendModel` builds it
        when it loads a model with ``serve_candidates``). Its HNSW graphs are read from :attr:`saved_graphs` where
        they match the model's vectors, and built otherwise (at 50,000 items the two take a few seconds to build,
        at 500,000 a minute and a half; docs/benchmarks.md §5)."""
        c = self.components
        rng = np.random.default_rng(self.config.seed)
        size = min(CANDIDATE_SAMPLE, self.num_items)
        cold = self.cold_mask
        moments: dict[int, tuple[str, LinearMoments]] = {}
        if c.item_emb.shape[1]:
            moments[4] = ("lightgcn", LinearMoments.of(c.item_emb))
            moments[12] = ("lightgcn", LinearMoments.of(c.item_emb, cold))
        if c.als_items.shape[1]:
            moments[5] = ("als", LinearMoments.of(c.als_items))
        return CandidateIndex(
            sample=np.sort(rng.choice(self.num_items, size=size, replace=False)),
            popular=np.lexsort((np.arange(self.num_items), -c.events.global_counts)),
            cold=np.flatnonzero(cold),
            lightgcn=InnerProductIndex(c.item_emb, self.saved_graphs.get("lightgcn")) if c.item_emb.shape[1] else None,
            als=InnerProductIndex(c.als_items, self.saved_graphs.get("als")) if c.als_items.shape[1] else None,
            moments=moments,
            constants={f: (float(v.mean()), float(v.std())) for f, v in ((7, self._pop_global), (8, self._cold))},
        )

    def _candidates(self, every: dict[int, np.ndarray], vectors: UserVectors, n: int) -> np.ndarray | None:
        """``RankerConfig.serve_candidates``'s candidate set (sorted item_idx) from a
        user's :meth:`_every_item` features and :class:`UserVectors` (LightGCN's and ALS's best items from their
        :class:`~gnn.blend.candidates.InnerProductIndex`), or None when it would hold half the catalogue or more
        (every item is scored then)."""
        index = self.candidate_index
        picks = [index.popular[:n]]
        picks += [best(every[f], n) for f in (1, 2, 6) if f in every]
        for search, vector in ((index.lightgcn, vectors.lightgcn), (index.als, vectors.als)):
            if search is not None and vector is not None:
                picks.append(search.top(vector, n))
        if vectors.lightgcn is not None:
            cold = self.components.item_emb[index.cold]
            picks.append(index.cold[best(cold @ vectors.lightgcn, n)])
        chosen = np.zeros(self.num_items, dtype=bool)  # their union, sorted: np.unique's, without its hash and sort
        for pick in picks:
            chosen[pick] = True
        columns = np.flatnonzero(chosen)
        return None if 2 * len(columns) >= self.num_items else columns

    @property
    def cold_mask(self) -> np.ndarray:
        """``[num_items]`` bool: items without any positive in the fitted edges (cold items)."""
        return self._cold > 0

    def cold_candidates(self, scores: np.ndarray, limit: int) -> np.ndarray:
        """The cold items with a finite score (callers set excluded items to ``-inf``), best first (ties: lower
        item_idx first), at most ``limit`` of them: what :func:`gnn.blend.cold.reserve_cold_slots` fills its positions
        from."""
        return top_items(scores, np.flatnonzero(self.cold_mask & np.isfinite(scores)), limit)

    def place_cold(
        self, ranked: Sequence[int], scores: np.ndarray, k: int, cold: Sequence[int] | None = None
    ) -> list[int]:
        """``ranked`` (item_idx as they would be shown, excluded items left out) cut to ``k``, with the
        config's reserved new-arrival positions (``cold_slots``, ``cold_slot_every``, ``cold_slot_margin``)
        filled from ``cold`` (default: :meth:`cold_candidates` of ``scores``, so set excluded items to
        ``-inf`` there); the ranked list itself when ``cold_slots`` is 0.

        The one policy of the benchmark's lists (:meth:`recommend`) and the API (:class:`gnn.serving.BlendModel`)."""
        c = self.config
        if cold is None:
            cold = self.cold_candidates(scores, c.cold_slots + k) if c.cold_slots else []
        return reserve_cold_slots(
            ranked, cold, scores, k, slots=c.cold_slots, every=c.cold_slot_every, margin=c.cold_slot_margin
        )

    def recommend(
        self,
        history_items: np.ndarray,
        history_times: np.ndarray,
        user_idx: int | None = None,
        k: int = 20,
        exclude: Sequence[int] = (),
        weights: np.ndarray | None = None,
    ) -> list[int]:
        """The user's top-``k`` item_idx as a list is shown: :meth:`score` order (ties: lower item_idx first),
        the history and ``exclude`` left out, the reserved new-arrival positions applied (:meth:`place_cold`)."""
        scores = self.score(history_items, history_times, user_idx, weights=weights).copy()
        scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        return self.place_cold(top_items(scores, np.flatnonzero(np.isfinite(scores)), k).tolist(), scores, k)

    def _check_user(self, user_idx: int) -> None:
        if not 0 <= user_idx < self.num_users:
            raise DataError(f"user_idx {user_idx} is outside 0..{self.num_users - 1}")

    def _check_history(
        self, history_items: np.ndarray, history_times: np.ndarray, history_weights: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        items = np.asarray(history_items, dtype=np.int64).reshape(-1)
        times = np.asarray(history_times, dtype=np.int64).reshape(-1)
        if items.shape != times.shape:
            raise DataError(f"{len(items)} history items but {len(times)} times")
        if history_weights is None:
            plays = np.ones(len(items), dtype=np.float64)
        else:
            plays = np.asarray(history_weights, dtype=np.float64).reshape(-1)
            if plays.shape != items.shape:
                raise DataError(f"{len(items)} history items but {len(plays)} weights")
            plays = np.where(np.isfinite(plays), plays, 1.0)
        if len(items) and (items.min() < 0 or items.max() >= self.num_items):
            raise DataError(f"history item_idx outside 0..{self.num_items - 1}")
        if len(items) != distinct(items, self.num_items):
            # the latest time of a repeated item
            order = np.lexsort((plays, times, items))
            items, times, plays = items[order], times[order], plays[order]
            last = np.r_[items[1:] != items[:-1], True]
            items, times, plays = items[last], times[last], plays[last]
        times = np.where(times >= 0, times, UNKNOWN_TIME)
        # One order whatever order the history comes in (the API reads it from Neo4j, the fit from the snapshot):
        # by time, ties (all of them when times are unknown, as on Last.fm) by weight (the most played counts as the
        # most recent), then by item_idx, as the split orders them. The recency weights count positions in this
        # order, so the served features are the fitted ones.
        order = np.lexsort((items, plays, times))
        return items[order], times[order]

    # --- persistence -----------------------------------------------------------------------------------

    def save(self, directory: Path, candidate_graphs: bool = False) -> Path:
        """Write ``ranker.npz`` (arrays) and ``ranker.json`` (config, id maps, weights, meta) to ``directory``, and
        with ``candidate_graphs`` the HNSW graphs of :attr:`candidate_index` (:data:`GRAPH_FILES`, built now unless
        they were already), so that a served model reads them instead of building them when it loads.

        Args:
            directory: Where the files go.
            candidate_graphs: Write the graphs, when the catalogue has any (``gnn.blend.candidates.ANN_MIN_ITEMS``
                items or more); what they took is ``timings["candidate_graphs"]`` of :attr:`meta` (and of the
                artifact's ``meta.json``).

        Returns:
            ``directory``.
        """
        directory.mkdir(parents=True, exist_ok=True)
        graphs = self._save_graphs(directory) if candidate_graphs else {}
        for name, file in GRAPH_FILES.items():
            if name not in graphs:  # left by an earlier save to this directory: not this model's
                (directory / file).unlink(missing_ok=True)
        c = self.components
        follows = _follows(c, self.num_users)
        arrays = {
            "ease_data": c.ease.data,
            "ease_indices": c.ease.indices,
            "ease_indptr": c.ease.indptr,
            "seq_data": c.transitions.data,
            "seq_indices": c.transitions.indices,
            "seq_indptr": c.transitions.indptr,
            "kg_data": c.knowledge.data,
            "kg_indices": c.knowledge.indices,
            "kg_indptr": c.knowledge.indptr,
            "kg_shape": np.asarray(c.knowledge.shape, dtype=np.int64),
            "als_items": c.als_items,
            "als_gram": c.als_gram,
            "user_emb": c.user_emb.astype(np.float32),
            "item_emb": c.item_emb.astype(np.float32),
            "event_items": c.events.items,
            "event_times": c.events.times,
            "global_counts": c.events.global_counts,
            "hist_ptr": c.hist_ptr,
            "hist_items": c.hist_items,
            "hist_times": c.hist_times,
            "item_year": c.item_year,
            **({} if c.hist_weights is None else {"hist_weights": c.hist_weights}),
            "follow_ptr": follows.indptr,
            "follow_idx": follows.indices,
        }
        if c.attribute_shares is not None and c.user_attributes is not None:
            arrays.update(
                attr_ptr=c.user_attributes.indptr, attr_idx=c.user_attributes.indices, attr_shares=c.attribute_shares
            )
        np.savez(directory / MODEL_FILE, **arrays)
        meta = {
            "format": FORMAT_VERSION,
            "features": list(FEATURES),
            "weights": None if self.weights is None else self.weights.tolist(),
            "user_groups": None
            if self.group_weights is None
            else {"edges": self.group_edges, "weights": self.group_weights.tolist()},
            "config": self.config.model_dump(mode="json"),
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "lightgcn_epochs": c.lightgcn_epochs,
            "attribute_ids": list(c.attribute_ids or []),
            "candidate_graphs": graphs,
            "meta": self.meta,
        }
        (directory / META_FILE).write_text(json.dumps(meta, default=_json_default), encoding="utf-8")
        return directory

    def _save_graphs(self, directory: Path) -> dict[str, dict[str, Any]]:
        """Write the candidate index's HNSW graphs to ``directory``; their records by component (phase
        ``candidate_graphs``, logged)."""
        started = time.perf_counter()
        records: dict[str, dict[str, Any]] = {}
        with phase("candidate_graphs", items=self.num_items) as published:
            index = self.candidate_index
            for name, search in (("lightgcn", index.lightgcn), ("als", index.als)):
                if search is not None and search.index is not None:
                    records[name] = search.write(directory / GRAPH_FILES[name])
            size = sum((directory / GRAPH_FILES[name]).stat().st_size for name in records)
            published.update(graphs=len(records), bytes=size)
        seconds = time.perf_counter() - started
        if records:
            self.meta.setdefault("timings", {})["candidate_graphs"] = seconds
            log.info(
                "wrote the HNSW graphs of %d items (%s, %.1f MB) in %.1f s",
                self.num_items,
                ", ".join(records),
                size / 1e6,
                seconds,
            )
        return records

    @classmethod
    def load(cls, directory: Path) -> RankerModel:
        """Read a model written by :meth:`save`.

        Raises:
            DataError: Files are missing, of another format, or inconsistent.
        """
        meta, arrays = read_files(directory, "ranker directory", META_FILE, MODEL_FILE)
        features = meta.get("features") or []
        if meta.get("format") not in range(1, FORMAT_VERSION + 1) or not set(features) <= set(FEATURES):
            raise DataError(f"ranker {directory} has format {meta.get('format')} / features {meta.get('features')}")
        num_items, num_users = len(meta["item_ids"]), len(meta["user_ids"])
        if len(arrays["hist_ptr"]) != num_users + 1 or arrays["item_emb"].shape[0] not in (0, num_items):
            raise DataError(f"ranker {directory}: arrays do not match the id maps")
        events = TimedEvents(np.empty(0, np.int64), np.empty(0, np.int64), num_items)
        events.items, events.times = arrays["event_items"], arrays["event_times"]
        events.global_counts = arrays["global_counts"]
        components = Components(
            ease=sp.csr_matrix(
                (arrays["ease_data"], arrays["ease_indices"], arrays["ease_indptr"]), shape=(num_items, num_items)
            ),
            transitions=sp.csr_matrix(
                (arrays["seq_data"], arrays["seq_indices"], arrays["seq_indptr"]), shape=(num_items, num_items)
            ),
            knowledge=sp.csr_matrix(
                (arrays["kg_data"], arrays["kg_indices"], arrays["kg_indptr"]), shape=tuple(arrays["kg_shape"])
            ),
            user_emb=arrays["user_emb"],
            item_emb=arrays["item_emb"],
            als_items=arrays["als_items"],
            als_gram=arrays["als_gram"],
            events=events,
            hist_ptr=arrays["hist_ptr"],
            hist_items=arrays["hist_items"],
            hist_times=arrays["hist_times"],
            lightgcn_epochs=int(meta["lightgcn_epochs"]),
            item_year=arrays.get("item_year", np.full(num_items, -1, dtype=np.int64)),
            follows=sp.csr_matrix(
                (np.ones(len(arrays["follow_idx"]), dtype=np.float32), arrays["follow_idx"], arrays["follow_ptr"]),
                shape=(num_users, num_users),
            )
            if "follow_ptr" in arrays
            else None,
        )
        if "hist_weights" in arrays:  # models fitted before the weights were kept: all 1
            components.hist_weights = arrays["hist_weights"]
        if "attr_shares" in arrays:
            ids = list(meta.get("attribute_ids") or [])
            components.attribute_ids = ids
            components.attribute_shares = arrays["attr_shares"]
            components.user_attributes = sp.csr_matrix(
                (np.ones(len(arrays["attr_idx"]), dtype=np.float32), arrays["attr_idx"], arrays["attr_ptr"]),
                shape=(num_users, len(ids)),
            )
        weights = None
        if meta["weights"] is not None:  # an older model's features keep their weights, new ones get 0
            weights = np.zeros(len(FEATURES), dtype=np.float32)
            weights[[FEATURES.index(f) for f in features]] = np.asarray(meta["weights"], dtype=np.float32)
        groups = meta.get("user_groups")  # format 6
        group_weights = None
        if groups is not None:
            group_weights = np.zeros((len(groups["edges"]) + 1, len(FEATURES)), dtype=np.float32)
            group_weights[:, [FEATURES.index(f) for f in features]] = np.asarray(groups["weights"], dtype=np.float32)
        model = cls(
            RankerConfig(**meta["config"]),
            meta["user_ids"],
            meta["item_ids"],
            components,
            weights,
            meta["meta"],
            group_weights,
            groups["edges"] if groups is not None else (),
        )
        graphs = meta.get("candidate_graphs") or {}  # models saved before the graphs were: built when needed
        model.saved_graphs = {
            name: (directory / GRAPH_FILES[name], graphs[name]) for name in GRAPH_FILES if name in graphs
        }
        return model


def _follows(components: Components, num_users: int) -> sp.csr_matrix:
    return (
        components.follows
        if components.follows is not None
        else sp.csr_matrix((num_users, num_users), dtype=np.float32)
    )


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def directory_size(directory: Path) -> int:
    """Bytes on disk of the files in ``directory``."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
