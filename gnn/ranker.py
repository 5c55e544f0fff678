"""The blend: component scorers fitted on timed positives, combined by a ranker fitted on validation.

Two stages (see ../shared/QUALITY_LEVERS.md):

1. **Components** (:mod:`gnn.components`, plus LightGCN from :func:`gnn.train.fit_lightgcn`) turn a user's
   history into one score per item: EASE^R on the recency-weighted history, knowledge-graph similarity
   (genres, people, tags — the only signal for items nobody interacted with), item-to-next-items
   transitions, LightGCN, implicit ALS folded in from the live history, popularity in a window before the
   user's latest interaction, global popularity, release freshness (item year vs the user's latest
   interaction; years come from the snapshot and are stored in the model), and what the people the user
   follows liked (``social``; the follows come from the snapshot). Items without positives get
   LightGCN embeddings predicted from their knowledge features and year
   (:func:`gnn.components.content_embeddings`), so the LightGCN score reaches them too.
   With ``component_search`` (the default), EASE^R's λ and ALS's factors, regularisation and alpha are first
   chosen per dataset on the validation users, each component alone (:func:`search_components`).
2. **Ranker**: per user, every component's scores are standardised over the items (z-scores), and the
   ranking score is a weighted sum of these features, the "cold" features included (whether the item has
   no positives at all, and the knowledge, freshness and predicted-LightGCN scores of such items). One
   feature stays raw (not standardised): ``cold_prior``, the cold indicator times the log share of the
   user's history liked by nobody else — a per-user offset for cold items, which a z-score would erase.
   The weights are fitted on the validation split — components fitted on ``split.fit``, the weights learnt
   on ``split.val`` targets with a listwise softmax loss (a learned ranker, its L2 penalty chosen from
   ``ranker_l2_grid``) and, with ``ranker="auto"``, a coordinate search of linear weights on validation
   NDCG@20; the candidate best on a ``ranker_folds``-fold cross-fit over validation users is kept.
   ``ranker_features`` restricts the weighted features. Then the components are refitted, with the same
   hyper-parameters, on the final edges: ``split.train`` (honest test figures) or every positive of the
   snapshot (production).

Serving (:class:`RankerModel`) needs no training code: :meth:`RankerModel.score` takes a live history
(item_idx, epoch seconds) and, for a user the model knows, the user_idx, and returns a score per item.
**New arrivals**: the ranker rightly keeps items without positives out of the top 20 (they hit less often
than the warm items they would displace), so a list reserves ``cold_slots`` positions (every
``cold_slot_every``-th) for the best-scoring such items whose score is within ``cold_slot_margin`` of the
item they displace (:func:`reserve_cold_slots`) — exposure for new items bought with a little accuracy,
measured by bench.quality on :meth:`RankerModel.ranked_lists` and applied by the API after its MMR re-ranking
(:meth:`RankerModel.place_cold`), one implementation for both.
Runs are seeded and deterministic on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from tqdm.auto import tqdm

from gnn.components import (
    UNKNOWN_TIME,
    TimedEvents,
    als_fold_in,
    content_embeddings,
    fit_als,
    fit_ease,
    fit_transitions,
    knowledge_matrix,
    pair_times,
    recency_weights,
    year_basis,
)
from gnn.config import Device, TrainConfig, resolve_device
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, ScoreFn, Split, evaluate, positive_mask
from schema.errors import ConfigError, DataError

log = logging.getLogger(__name__)
T = TypeVar("T", int, float)  # a grid value of the component search

#: Ranker features, in the order of :attr:`RankerModel.weights`.
FEATURES: tuple[str, ...] = (
    "ease",  # EASE^R on the whole history
    "ease_recent",  # EASE^R on the recency-weighted history
    "sequence",  # item-to-next-items weights from the recency-weighted history
    "knowledge",  # cosine of the item's genre/people/tag vector with the user's profile
    "lightgcn",  # LightGCN dot product (0 for items without positives)
    "als",  # implicit ALS, the user's vector folded in from the recency-weighted live history
    "pop_window",  # log1p(positives in the window before the user's latest interaction)
    "pop_global",  # log1p(positives overall)
    "cold",  # 1 for items without any positive in the fitted edges
    "knowledge_cold",  # knowledge score of cold items only (lets them rank by their traits)
    "fresh",  # release recency: exp(−years between the item's release and the user's latest interaction / τ)
    "fresh_cold",  # fresh of cold items only (new releases nobody has rated yet)
    "lightgcn_cold",  # lightgcn of cold items only (their embeddings predicted from knowledge and year)
    "cold_prior",  # raw: cold · log((history items liked by nobody else + ½) / (history size + 5))
    "social",  # what the people the user follows liked, each followee's positives weighted 1/√(their count)
)
#: Features left unstandardised by :meth:`RankerModel.standardized` (per-user offsets).
RAW_FEATURES: frozenset[str] = frozenset({"cold_prior"})

DAY = 86_400.0
VAL_METRIC = "ndcg@20"
MODEL_FILE = "ranker.npz"
META_FILE = "ranker.json"
FORMAT_VERSION = 4  # 2: item years and the fresh features; 3: lightgcn_cold, cold_prior; 4: social and the
# follows it reads (older models load, their weights mapped by feature name, new features at weight 0: they
# score as before)
YEAR = 365.2425 * DAY


class RankerConfig(BaseModel):
    """Hyper-parameters of the blend: its components and the ranker on top."""

    model_config = ConfigDict(extra="forbid")

    ease_lambda: float = Field(200.0, gt=0, description="EASE^R L2 regularisation.")
    ease_top_n: int | None = Field(512, ge=1, description="EASE^R weights kept per source item (None: all).")
    ease_max_items: int | None = Field(
        20_000, ge=1, description="EASE^R: only the items with the most positives, at most this many (its dense "
        "items × items float64 inverse needs about 2 · 8 · n² bytes); the others get no EASE weights (None: all)."
    )
    ease_half_life: float = Field(
        5.0, gt=0, description="ease_recent: history positions after which EASE weights halve."
    )
    knowledge_half_life: float = Field(
        10.0, gt=0, description="History positions after which knowledge-profile weights halve."
    )
    sequence_window: int = Field(30, ge=1, description="Sequence component: positions ahead that count as next.")
    sequence_half_life: float = Field(10.0, gt=0, description="Sequence component: history recency half-life.")
    sequence_top_n: int | None = Field(256, ge=1, description="Sequence weights kept per source item.")
    genre_weight: float = Field(1.0, ge=0, description="Knowledge similarity: weight of the genre block.")
    person_weight: float = Field(1.0, ge=0, description="Knowledge similarity: weight of the people block.")
    tag_weight: float = Field(1.0, ge=0, description="Knowledge similarity: weight of the tag block.")
    pop_window_days: float = Field(30.0, gt=0, description="Time-local popularity: window before the user's latest.")
    fresh_years: float = Field(2.0, gt=0, description="Freshness: years after release at which it falls to 1/e.")
    ranker_features: list[str] | None = Field(
        None, description="Features the ranker may weight (None: all of FEATURES; the others get weight 0)."
    )
    als_factors: int = Field(64, ge=0, description="ALS component: factors (0 leaves ALS out).")
    als_regularization: float = Field(30.0, gt=0, description="ALS component: L2 regularisation.")
    als_alpha: float = Field(
        10.0, gt=0, description="ALS component: extra confidence of a positive (the component search chose 10 on "
        "ml-latest-small and on Last.fm).",
    )
    als_iterations: int = Field(10, ge=1, description="ALS component: alternating rounds.")
    als_half_life: float = Field(10.0, gt=0, description="ALS fold-in: history recency half-life.")
    als_cg_steps: int = Field(3, ge=1, description="ALS component: conjugate-gradient steps per half-step.")
    component_search: bool = Field(
        True, description="Choose EASE^R's λ and ALS's factors, regularisation and alpha on validation before the "
        "ranker weights (:func:`search_components`: each component alone, on the ranker's validation users); off: "
        "the values above as they are.",
    )
    component_search_reuse: float | None = Field(
        0.2, ge=0, description="kgrec train/retrain: keep the promoted blend's component choice instead of searching "
        "again while the fit positives differ by at most this fraction from those it was searched on and the grids "
        "are the same (a nightly retrain pays for the search only when the data has grown; None: search every time).",
    )
    component_search_exhaustive: bool = Field(
        False, description="Component search: score every value of each grid instead of climbing from the current "
        "value (:func:`climb`: step to the next value in the improving direction until one is not better; on "
        "unimodal validation curves the same choice for fewer fits).",
    )
    ease_lambda_grid: list[float] = Field(
        [50.0, 100.0, 200.0, 400.0, 800.0], min_length=1, description="Component search: EASE^R λ values."
    )
    als_factors_grid: list[int] = Field(
        [32, 64, 128, 256, 512], min_length=1, description="Component search: ALS factors (searched first)."
    )
    als_regularization_grid: list[float] = Field(
        [3.0, 10.0, 30.0, 100.0], min_length=1, description="Component search: ALS regularisation (second)."
    )
    als_alpha_grid: list[float] = Field(
        [1.0, 3.0, 10.0, 30.0], min_length=1, description="Component search: ALS alpha (third)."
    )
    use_lightgcn: bool = Field(True, description="Fit LightGCN embeddings as a component.")
    cold_embeddings: bool = Field(
        True, description="Predict LightGCN embeddings of items without positives from their knowledge and year."
    )
    cold_map_lambda: float = Field(
        0.1, gt=0, description="Cold embeddings: ridge penalty of the feature→embedding map."
    )
    cold_year_weight: float = Field(0.5, ge=0, description="Cold embeddings: weight of the release-year block.")
    lightgcn: dict[str, Any] = Field(
        default_factory=lambda: {"embedding_dim": 64, "num_layers": 3, "lr": 0.04, "lr_decay": 0.97, "reg": 1e-4,
                                 "batch_size": 4096, "max_epochs": 300, "patience": 10},
        description="TrainConfig fields of the LightGCN component (early stopping on validation).",
    )
    ranker: Literal["auto", "learned", "linear"] = Field(
        "learned", description="Weights: listwise-learned, linear coordinate search, or the better on cross-fit."
    )
    ranker_l2: float = Field(1e-3, ge=0, description="L2 penalty of the learned ranker's weights.")
    ranker_l2_grid: list[float] | None = Field(
        [0.01, 0.1, 0.3, 1.0, 3.0], description="L2 penalties tried for the learned ranker, the best on the validation cross-fit kept "
        "(None: ranker_l2 only).",
    )
    ranker_folds: int = Field(5, ge=2, le=10, description="Cross-fit folds over validation users.")
    ranker_iterations: int = Field(100, ge=1, description="L-BFGS iterations of the learned ranker.")
    ranker_max_users: int | None = Field(
        1000, ge=50, description="Ranker weights are fitted on a seeded sample of at most this many validation "
        "users (their features form a dense users × features × items cube; None: every validation user).",
    )
    cold_slots: int = Field(
        1, ge=0, description="New arrivals: at most this many positions of a list are reserved for items without "
        "any positive (cold items), each filled by the best-scoring cold item not yet in the list when it clears "
        "cold_slot_margin (:func:`reserve_cold_slots`; the ranker alone almost never lets them into the top 20). "
        "0 = off. The defaults (1 slot at position 20, margin 4) maximise the validation cold-item NDCG@20 among "
        "the policies costing at most 1% of validation NDCG@20 on ml-latest-small (temporal split, seed 42): "
        "validation NDCG@20 0.1342 → 0.1331 (−0.8%), cold items 0.0008 → 0.0043; test 0.1349 → 0.1337 (−0.9%), "
        "cold items 0 → 0.0013 (most-popular: 0).",
    )
    cold_slot_every: int = Field(
        20, ge=1, description="The reserved positions are N, 2N, … (1-based, at most cold_slots of them), the same "
        "for any list length, so a shorter list is a prefix of a longer one (lists shorter than N get none).",
    )
    cold_slot_margin: float | None = Field(
        4.0, description="A cold item takes a reserved position only if its ranking score is at least the score of "
        "the item it displaces minus this margin (a log-odds gap under the listwise softmax ranker; None: always). "
        "At 4 about half of the validation users get a cold item, at the cost of half of the margin-free policy "
        "(−1.8% validation NDCG@20) for the same cold-item hits.",
    )
    seed: int = Field(42, description="Seed of LightGCN, negative sampling and the ranker.")
    device: Device = Field("auto", description="auto (CUDA when available), cpu or cuda.")
    num_threads: int = Field(1, ge=1, le=256, description="Torch CPU threads.")
    progress: bool = Field(True, description="Show tqdm progress bars.")

    def train_config(self) -> TrainConfig:
        """The LightGCN component's training config."""
        try:
            return TrainConfig(**{**self.lightgcn, "model": "lightgcn", "seed": self.seed, "device": self.device,
                                  "num_threads": self.num_threads, "progress": self.progress})
        except ValueError as exc:
            raise ConfigError(f"invalid lightgcn settings of the ranker: {exc}") from exc


# --- the fitted model ----------------------------------------------------------------------------------


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
        lightgcn_epochs: Epochs LightGCN was trained for.
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


class RankerModel:
    """A fitted blend, as the API serves it.

    Args:
        config: Hyper-parameters it was fitted with.
        user_ids, item_ids: External ids by index.
        components: Fitted component scorers.
        weights: ``[len(FEATURES)]`` ranker weights (None: not fitted yet — :meth:`score` raises).
        meta: Provenance and fit report (snapshot id, mode, validation figures, timings).
    """

    def __init__(
        self,
        config: RankerConfig,
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        components: Components,
        weights: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.user_ids = list(user_ids)
        self.item_ids = list(item_ids)
        self.components = components
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.meta = dict(meta or {})
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

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def history(self, user_idx: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's positives as fitted: (item_idx ``[n]`` int64, epoch seconds ``[n]`` int64), oldest first.

        Raises:
            DataError: ``user_idx`` is out of range.
        """
        if not 0 <= user_idx < self.num_users:
            raise DataError(f"user_idx {user_idx} is outside 0..{self.num_users - 1}")
        c = self.components
        lo, hi = c.hist_ptr[user_idx], c.hist_ptr[user_idx + 1]
        return c.hist_items[lo:hi].copy(), c.hist_times[lo:hi].copy()

    def features(
        self, history_items: np.ndarray, history_times: np.ndarray, user_idx: int | None = None
    ) -> np.ndarray:
        """Raw (unstandardised) component scores of every item for one user.

        Args:
            history_items: ``[n]`` int64 item_idx of the user's positives (duplicates count once).
            history_times: ``[n]`` int64 epoch seconds, ``-1`` unknown.
            user_idx: The user's index if the model knows the user (LightGCN uses its embedding); None uses
                the mean embedding of the history items.

        Returns:
            ``[len(FEATURES), num_items]`` float32.

        Raises:
            DataError: Shapes differ, or an item_idx / user_idx is out of range.
        """
        items, times = self._check_history(history_items, history_times)
        c = self.components
        out = np.zeros((len(FEATURES), self.num_items), dtype=np.float32)
        if len(items):
            out[0], out[1] = ease_scores(c.ease, items, times, self.config.ease_half_life)
            out[2] = c.transitions[items].T @ recency_weights(times, self.config.sequence_half_life)
            w = recency_weights(times, self.config.knowledge_half_life)
            profile = c.knowledge[items].T @ w
            norm = float(np.linalg.norm(profile))
            if norm > 0:
                out[3] = c.knowledge @ (profile / norm)
        if c.item_emb.shape[1]:
            if user_idx is not None:
                if not 0 <= user_idx < self.num_users:
                    raise DataError(f"user_idx {user_idx} is outside 0..{self.num_users - 1}")
                out[4] = c.item_emb @ c.user_emb[user_idx]
            elif len(items):
                out[4] = c.item_emb @ c.item_emb[items].mean(axis=0)
        if c.als_items.shape[1] and len(items):
            out[5] = als_scores(c.als_items, c.als_gram, items, times, self.config.als_half_life,
                                self.config.als_alpha)
        known = times[times >= 0]
        end = int(known.max()) if len(known) else c.events.latest
        out[6] = np.log1p(c.events.window_counts(end, self._window))
        out[7] = self._pop_global
        out[8] = self._cold
        out[9] = out[3] * self._cold
        out[10] = self._fresh(end)
        out[11] = out[10] * self._cold
        out[12] = out[4] * self._cold
        solo = int((c.events.global_counts[items] <= 1).sum()) if len(items) else 0
        out[13] = self._cold * np.float32(math.log((solo + 0.5) / (len(items) + 5.0)))
        if user_idx is not None and self._social.nnz:
            out[14] = self._social[user_idx].toarray().ravel()
        return out

    def _fresh(self, end: int) -> np.ndarray:
        """``[I]`` float32 release recency at epoch second ``end``: 1 for items released at or after it, decaying
        as ``exp(−years / fresh_years)`` for older ones, 0 for unknown years or an unknown moment."""
        if end < 0 or np.isnan(self._release).all():
            return np.zeros(self.num_items, dtype=np.float32)
        age = 1970.0 + end / YEAR - self._release
        fresh = np.exp(-np.maximum(age, 0.0) / self.config.fresh_years)
        return np.nan_to_num(fresh, nan=0.0).astype(np.float32)

    def standardized(
        self, history_items: np.ndarray, history_times: np.ndarray, user_idx: int | None = None
    ) -> np.ndarray:
        """:meth:`features` as per-user z-scores over the items (a constant feature becomes 0); the
        :data:`RAW_FEATURES` stay as they are."""
        raw = self.features(history_items, history_times, user_idx)
        mean = raw.mean(axis=1, keepdims=True)
        std = raw.std(axis=1, keepdims=True)
        z = (raw - mean) / np.where(std > 0, std, 1.0)
        z[self._raw] = raw[self._raw]
        return z

    def score(
        self, history_items: np.ndarray, history_times: np.ndarray, user_idx: int | None = None
    ) -> np.ndarray:
        """Ranking scores of every item for one user (higher is better).

        Args:
            history_items: ``[n]`` int64 item_idx of the user's positives, e.g. read live from Neo4j, so a
                just-posted interaction counts at once.
            history_times: ``[n]`` int64 epoch seconds, ``-1`` unknown.
            user_idx: The user's index if the model was fitted with the user; None for a user unknown to it
                (e.g. just created at onboarding): history-based components only.

        Returns:
            ``[num_items]`` float32; the history items themselves get ``-inf`` (never recommended again).

        Raises:
            DataError: The model has no ranker weights, or the inputs are malformed.
        """
        if self.weights is None:
            raise DataError("the ranker has no weights yet (fit it with fit_ranker)")
        z = self.standardized(history_items, history_times, user_idx)
        out = self.weights @ z
        out[np.asarray(history_items, dtype=np.int64)] = -np.inf
        return out.astype(np.float32, copy=False)

    @property
    def cold_mask(self) -> np.ndarray:
        """``[num_items]`` bool: items without any positive in the fitted edges (cold items)."""
        return self._cold > 0

    def cold_candidates(self, scores: np.ndarray, limit: int) -> np.ndarray:
        """The cold items with a finite score (callers set excluded items to ``-inf``), best first (ties: lower
        item_idx first), at most ``limit`` of them: what :func:`reserve_cold_slots` fills its positions from."""
        return _top(scores, np.flatnonzero(self.cold_mask & np.isfinite(scores)), limit)

    def place_cold(self, ranked: Sequence[int], scores: np.ndarray, k: int,
                   cold: Sequence[int] | None = None) -> list[int]:
        """``ranked`` (item_idx as they would be shown, excluded items left out) cut to ``k``, with the
        config's reserved new-arrival positions (``cold_slots``, ``cold_slot_every``, ``cold_slot_margin``)
        filled from ``cold`` (default: :meth:`cold_candidates` of ``scores``, so set excluded items to
        ``-inf`` there); the ranked list itself when ``cold_slots`` is 0.

        The one policy of the benchmark (:meth:`recommend`) and the API (:mod:`api.service`)."""
        c = self.config
        if cold is None:
            cold = self.cold_candidates(scores, c.cold_slots + k) if c.cold_slots else []
        return reserve_cold_slots(ranked, cold, scores, k, slots=c.cold_slots, every=c.cold_slot_every,
                                  margin=c.cold_slot_margin)

    def recommend(
        self, history_items: np.ndarray, history_times: np.ndarray, user_idx: int | None = None, k: int = 20,
        exclude: Sequence[int] = (),
    ) -> list[int]:
        """The user's top-``k`` item_idx as a list is shown: :meth:`score` order (ties: lower item_idx first),
        the history and ``exclude`` left out, the reserved new-arrival positions applied (:meth:`place_cold`)."""
        scores = self.score(history_items, history_times, user_idx).copy()
        scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        return self.place_cold(_top(scores, np.flatnonzero(np.isfinite(scores)), k).tolist(), scores, k)

    def ranked_lists(self, fold: Fold, k: int = 20) -> Tensor:
        """``[len(fold.eval_users), k]`` :meth:`recommend` lists of the fold's users from their fitted
        histories, the fold's train items excluded (``-1`` pads), for :func:`gnn.evaluation.evaluate`."""
        users = fold.eval_users
        order = torch.argsort(fold.train[0], stable=True)
        counts = torch.bincount(fold.train[0], minlength=fold.num_users)
        ptr = np.zeros(fold.num_users + 1, dtype=np.int64)
        ptr[1:] = np.cumsum(counts.numpy())
        train_items = fold.train[1, order].numpy()
        out = torch.full((users.numel(), k), -1, dtype=torch.long)
        for r, u in enumerate(users.tolist()):
            items, times = self.history(u)
            picked = self.recommend(items, times, u, k, exclude=train_items[ptr[u]:ptr[u + 1]])
            out[r, : len(picked)] = torch.as_tensor(picked, dtype=torch.long)
        return out

    def score_fn(self, *, standardized_weights: np.ndarray | None = None) -> ScoreFn:
        """Adapter to :data:`gnn.evaluation.ScoreFn`: each user scored from their fitted history.

        Args:
            standardized_weights: Weights to use instead of :attr:`weights` (e.g. one component alone).
        """
        weights = self.weights if standardized_weights is None else np.asarray(standardized_weights, np.float32)
        if weights is None:
            raise DataError("the ranker has no weights yet (fit it with fit_ranker)")

        def score(users: Tensor) -> Tensor:
            rows = []
            for u in users.tolist():
                items, times = self.history(u)
                rows.append(weights @ self.standardized(items, times, u))
            return torch.from_numpy(np.stack(rows).astype(np.float32))

        return score

    def _check_history(self, history_items: np.ndarray, history_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items = np.asarray(history_items, dtype=np.int64).reshape(-1)
        times = np.asarray(history_times, dtype=np.int64).reshape(-1)
        if items.shape != times.shape:
            raise DataError(f"{len(items)} history items but {len(times)} times")
        if len(items) and (items.min() < 0 or items.max() >= self.num_items):
            raise DataError(f"history item_idx outside 0..{self.num_items - 1}")
        if len(items) != len(np.unique(items)):
            # the latest time of a repeated item
            order = np.lexsort((times, items))
            items, times = items[order], times[order]
            last = np.r_[items[1:] != items[:-1], True]
            items, times = items[last], times[last]
        return items, np.where(times >= 0, times, UNKNOWN_TIME)

    # --- persistence -----------------------------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        """Write ``ranker.npz`` (arrays) and ``ranker.json`` (config, id maps, weights, meta) to ``directory``.

        Returns:
            ``directory``.
        """
        directory.mkdir(parents=True, exist_ok=True)
        c = self.components
        follows = _follows(c, self.num_users)
        arrays = {
            "ease_data": c.ease.data, "ease_indices": c.ease.indices, "ease_indptr": c.ease.indptr,
            "seq_data": c.transitions.data, "seq_indices": c.transitions.indices,
            "seq_indptr": c.transitions.indptr,
            "kg_data": c.knowledge.data, "kg_indices": c.knowledge.indices, "kg_indptr": c.knowledge.indptr,
            "kg_shape": np.asarray(c.knowledge.shape, dtype=np.int64),
            "als_items": c.als_items, "als_gram": c.als_gram,
            "user_emb": c.user_emb.astype(np.float32), "item_emb": c.item_emb.astype(np.float32),
            "event_items": c.events.items, "event_times": c.events.times,
            "global_counts": c.events.global_counts,
            "hist_ptr": c.hist_ptr, "hist_items": c.hist_items, "hist_times": c.hist_times,
            "item_year": c.item_year,
            "follow_ptr": follows.indptr, "follow_idx": follows.indices,
        }
        np.savez(directory / MODEL_FILE, **arrays)
        meta = {
            "format": FORMAT_VERSION,
            "features": list(FEATURES),
            "weights": None if self.weights is None else self.weights.tolist(),
            "config": self.config.model_dump(mode="json"),
            "user_ids": self.user_ids,
            "item_ids": self.item_ids,
            "lightgcn_epochs": c.lightgcn_epochs,
            "meta": self.meta,
        }
        (directory / META_FILE).write_text(json.dumps(meta, default=_json_default), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path) -> RankerModel:
        """Read a model written by :meth:`save`.

        Raises:
            DataError: Files are missing, of another format, or inconsistent.
        """
        try:
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
            arrays = dict(np.load(directory / MODEL_FILE))
        except FileNotFoundError as exc:
            raise DataError(f"not a ranker directory: {directory} ({exc.filename} missing)") from exc
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
            ease=sp.csr_matrix((arrays["ease_data"], arrays["ease_indices"], arrays["ease_indptr"]),
                               shape=(num_items, num_items)),
            transitions=sp.csr_matrix((arrays["seq_data"], arrays["seq_indices"], arrays["seq_indptr"]),
                                      shape=(num_items, num_items)),
            knowledge=sp.csr_matrix((arrays["kg_data"], arrays["kg_indices"], arrays["kg_indptr"]),
                                    shape=tuple(arrays["kg_shape"])),
            user_emb=arrays["user_emb"], item_emb=arrays["item_emb"], als_items=arrays["als_items"],
            als_gram=arrays["als_gram"], events=events,
            hist_ptr=arrays["hist_ptr"], hist_items=arrays["hist_items"], hist_times=arrays["hist_times"],
            lightgcn_epochs=int(meta["lightgcn_epochs"]),
            item_year=arrays.get("item_year", np.full(num_items, -1, dtype=np.int64)),
            follows=sp.csr_matrix((np.ones(len(arrays["follow_idx"]), dtype=np.float32), arrays["follow_idx"],
                                   arrays["follow_ptr"]), shape=(num_users, num_users))
            if "follow_ptr" in arrays else None,
        )
        weights = None
        if meta["weights"] is not None:  # an older model's features keep their weights, new ones get 0
            weights = np.zeros(len(FEATURES), dtype=np.float32)
            weights[[FEATURES.index(f) for f in features]] = np.asarray(meta["weights"], dtype=np.float32)
        return cls(RankerConfig(**meta["config"]), meta["user_ids"], meta["item_ids"], components, weights,
                   meta["meta"])


def ease_scores(ease: sp.csr_matrix, items: np.ndarray, times: np.ndarray,
                half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """The ``ease`` and ``ease_recent`` features of a (non-empty) history: ``[I]`` float32 each."""
    rows = ease[items]
    return (np.asarray(rows.sum(axis=0)).ravel().astype(np.float32),
            (rows.T @ recency_weights(times, half_life)).astype(np.float32))


def als_scores(als_items: np.ndarray, als_gram: np.ndarray, items: np.ndarray, times: np.ndarray,
               half_life: float, alpha: float) -> np.ndarray:
    """The ``als`` feature of a (non-empty) history: the user's vector folded in from the recency-weighted
    history, dotted with every item's factors (``[I]`` float32)."""
    x = als_fold_in(als_items, als_gram, items, recency_weights(times, half_life), alpha)
    return als_items @ x.astype(np.float32)


def _follows(components: Components, num_users: int) -> sp.csr_matrix:
    return components.follows if components.follows is not None else sp.csr_matrix((num_users, num_users),
                                                                                   dtype=np.float32)


def follow_matrix(snapshot: GraphSnapshot) -> sp.csr_matrix:
    """``[U, U]`` float32 CSR, 1 where the row user follows the column user (duplicates and self-loops dropped)."""
    follower, followee = snapshot.follow_index.numpy().astype(np.int64)
    keep = follower != followee
    n = snapshot.num_users
    out = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (follower[keep], followee[keep])), shape=(n, n))
    out.data[:] = 1.0  # duplicates summed by the constructor count once
    return out


def social_matrix(follows: sp.csr_matrix | None, hist_ptr: np.ndarray, hist_items: np.ndarray,
                  num_items: int) -> sp.csr_matrix:
    """``[U, I]`` float32 CSR: for each user, the positives of the people they follow, each followee's
    weighted ``1/√(their positives)`` (one who liked five items says more about each than one who liked
    five thousand), from the fitted histories (``hist_ptr``/``hist_items``, CSR by user_idx)."""
    num_users = len(hist_ptr) - 1
    if follows is None or follows.nnz == 0:
        return sp.csr_matrix((num_users, num_items), dtype=np.float32)
    liked = sp.csr_matrix((np.ones(len(hist_items), dtype=np.float32), hist_items, hist_ptr),
                          shape=(num_users, num_items))
    liked.sum_duplicates()
    liked.data[:] = 1.0
    counts = np.diff(liked.indptr)
    scale = sp.diags((1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32))
    return (follows @ (scale @ liked)).tocsr().astype(np.float32)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _top(scores: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` best of ``items`` by ``scores``, best first, ties by lower item_idx (so the best ``k`` are a
    prefix of the best ``k + 1``)."""
    if k <= 0 or len(items) == 0:
        return items[:0]
    if len(items) > k:
        kth = np.partition(scores[items], len(items) - k)[len(items) - k]
        items = items[scores[items] >= kth]  # every item tied with the k-th stays in the running
    return items[np.lexsort((items, -scores[items]))][:k]


def reserve_cold_slots(
    ranked: Sequence[int], cold: Sequence[int], scores: np.ndarray, k: int, *, slots: int, every: int,
    margin: float | None,
) -> list[int]:
    """A list of at most ``k`` distinct items: ``ranked`` in order, except that the 1-based positions
    ``every, 2·every, …`` (at most ``slots`` of them) go to the first item of ``cold`` not yet in the list —
    when its score is at least ``scores`` of the item it displaces (the next of ``ranked``) minus ``margin``
    (``None``: always; nothing to displace: always). A reserved position whose candidate fails keeps the
    ranked item; a cold item that ``ranked`` puts earlier stays there (it does not use up a slot). Position by
    position, so the list for ``k`` is a prefix of the list for any larger ``k``.

    Args:
        ranked: item_idx best first, as they would be shown (seen and filtered-out items already left out).
        cold: Candidate cold item_idx, best first (likewise already unseen and allowed).
        scores: ``[num_items]`` ranking scores.
        k: List length.
        slots, every, margin: The policy (:class:`RankerConfig` ``cold_slots``, ``cold_slot_every``,
            ``cold_slot_margin``).
    """
    out: list[int] = []
    taken: set[int] = set()
    w = c = 0
    while len(out) < k:
        while w < len(ranked) and ranked[w] in taken:
            w += 1
        position = len(out) + 1
        if slots > 0 and position % every == 0 and position // every <= slots:
            while c < len(cold) and cold[c] in taken:
                c += 1
            if c < len(cold):
                displaced = float(scores[ranked[w]]) if w < len(ranked) else -math.inf
                if margin is None or float(scores[cold[c]]) >= displaced - margin:
                    out.append(int(cold[c]))
                    taken.add(int(cold[c]))
                    c += 1
                    continue
        if w >= len(ranked):
            break
        out.append(int(ranked[w]))
        taken.add(int(ranked[w]))
        w += 1
    return out


def directory_size(directory: Path) -> int:
    """Bytes on disk of the files in ``directory``."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


# --- fitting -------------------------------------------------------------------------------------------


def fit_components(
    snapshot: GraphSnapshot,
    pairs: Tensor,
    config: RankerConfig,
    *,
    val_fold: Fold | None = None,
    lightgcn_epochs: int | None = None,
    desc: str = "components",
) -> Components:
    """Fit every component on the positives ``pairs`` (their times looked up in the snapshot).

    Args:
        snapshot: Gives times, knowledge edges and index spaces.
        pairs: ``[2, n]`` (user_idx, item_idx) positives.
        config: Hyper-parameters.
        val_fold: For LightGCN's early stopping (the epoch count is kept in the result).
        lightgcn_epochs: Fixed LightGCN epoch count (a refit with the count found on validation).
        desc: Progress label.

    Returns:
        The fitted components.
    """
    num_users, num_items = snapshot.num_users, snapshot.num_items
    device = resolve_device(config.device)
    torch.set_num_threads(config.num_threads)
    times = pair_times(snapshot, pairs)
    users, items = pairs[0].numpy().astype(np.int64), pairs[1].numpy().astype(np.int64)
    steps = tqdm(total=5, desc=desc, disable=not config.progress, leave=False)
    ease = fit_ease(pairs, num_users, num_items, config.ease_lambda, config.ease_top_n, device,
                    max_items=config.ease_max_items)
    steps.update()
    knowledge = knowledge_matrix(snapshot, genre_weight=config.genre_weight, person_weight=config.person_weight,
                                 tag_weight=config.tag_weight)
    steps.update()
    events = TimedEvents(items, times, num_items)
    order = np.lexsort((np.arange(len(users)), times, users))
    hist_ptr = np.zeros(num_users + 1, dtype=np.int64)
    hist_ptr[1:] = np.cumsum(np.bincount(users, minlength=num_users))
    transitions = fit_transitions(users, items, times, num_items, config.sequence_window, config.sequence_top_n)
    steps.update()
    als_items, als_gram = _fit_als_component(pairs, num_users, num_items, config)
    steps.update()
    user_emb = np.zeros((num_users, 0), dtype=np.float32)
    item_emb = np.zeros((num_items, 0), dtype=np.float32)
    epochs = 0
    if config.use_lightgcn and pairs.size(1):
        from gnn.train import fit_lightgcn  # training code only where fitting happens

        train_config = config.train_config()
        result = fit_lightgcn(pairs, num_users, num_items, train_config, val_fold=val_fold,
                              epochs=lightgcn_epochs, desc=f"{desc}: lightgcn")
        epochs = result.best_epoch
        user_emb = result.user_emb.numpy().astype(np.float32)
        item_emb = result.item_emb.numpy().astype(np.float32)
        cold = events.global_counts == 0
        item_emb[cold] = 0.0  # untrained rows are initial noise
        if config.cold_embeddings and cold.any():
            features = sp.hstack([knowledge, config.cold_year_weight * year_basis(snapshot.item_year.numpy())]).tocsr()
            item_emb[cold] = content_embeddings(features, item_emb, ~cold, config.cold_map_lambda)[cold]
    steps.update()
    steps.close()
    return Components(ease, transitions, knowledge, user_emb, item_emb, als_items, als_gram, events, hist_ptr,
                      items[order], times[order], epochs, snapshot.item_year.numpy().astype(np.int64),
                      follow_matrix(snapshot))


def _fit_als_component(pairs: Tensor, num_users: int, num_items: int,
                       config: RankerConfig) -> tuple[np.ndarray, np.ndarray]:
    """ALS item factors and the fold-in gram of ``config`` (zero factors without positives or with ALS off)."""
    als_items = np.zeros((num_items, config.als_factors), dtype=np.float32)
    if config.als_factors and pairs.size(1):
        als_items = fit_als(pairs, num_users, num_items, factors=config.als_factors,
                            regularization=config.als_regularization, alpha=config.als_alpha,
                            iterations=config.als_iterations, seed=config.seed, cg_steps=config.als_cg_steps)
    als_gram = als_items.astype(np.float64).T @ als_items + config.als_regularization * np.eye(config.als_factors)
    return als_items, als_gram


@dataclass
class ValidationData:
    """Standardised features of every validation user over all items, and their targets.

    Attributes:
        users: ``[U]`` user_idx (the fold's evaluation users).
        features: ``[len(FEATURES), U, I]`` float32 z-scores, feature-major: a blend of them is one
            matrix-vector product over a contiguous ``[F, U·I]`` matrix, in NumPy and in autograd (about 5×
            faster than contracting a user-major cube).
        exclude: ``[U, I]`` bool, the user's fit items (never ranked).
        target: ``[U, I]`` bool, the user's validation items.
    """

    users: np.ndarray
    features: np.ndarray
    exclude: np.ndarray
    target: np.ndarray

    def ndcg(self, weights: np.ndarray, rows: np.ndarray | None = None, k: int = 20) -> float:
        """Mean NDCG@k over the users ``rows`` (default all) of the blend ``weights``."""
        rows = np.arange(len(self.users)) if rows is None else rows
        return ndcg_of_scores(self.blend(weights)[rows], self.exclude[rows], self.target[rows], k)

    def blend(self, weights: np.ndarray) -> np.ndarray:
        """``[U, I]`` float32 scores of every user and item under ``weights`` (``[len(FEATURES)]``)."""
        f, u, i = self.features.shape
        return (weights.astype(np.float32) @ self.features.reshape(f, u * i)).reshape(u, i)


def ndcg_of_scores(scores: np.ndarray, exclude: np.ndarray, target: np.ndarray, k: int = 20) -> float:
    """Mean NDCG@k of ``[U, I]`` scores against ``[U, I]`` bool targets, ``exclude`` never ranked (the
    scores are overwritten there)."""
    scores[exclude] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
    hits = np.take_along_axis(target, top, axis=1)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    n = np.minimum(target.sum(axis=1), k)
    ideal = np.cumsum(discount)[np.maximum(n, 1) - 1]
    return float(((hits * discount).sum(axis=1) / ideal).mean())


def _zscore(rows: np.ndarray) -> np.ndarray:
    """Per-row z-scores over the columns (a constant row becomes 0), as :meth:`RankerModel.standardized`."""
    std = rows.std(axis=1, keepdims=True)
    return (rows - rows.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def search_grids(config: RankerConfig) -> dict[str, Any]:
    """The grids and starting values a component search explores (a reused choice must come from the same)."""
    return {name: getattr(config, name) for name in (
        "ease_lambda_grid", "als_factors_grid", "als_regularization_grid", "als_alpha_grid", "als_factors",
        "als_regularization", "als_alpha", "ease_top_n", "ease_max_items", "als_iterations", "als_cg_steps",
        "ease_lambda", "component_search_exhaustive")}


def climb(
    grid: Sequence[T], start: T, score: Callable[[T], float], exhaustive: bool = False,
) -> tuple[T, dict[T, float]]:
    """The best value of ``grid ∪ {start}`` by ``score``, found by hill-climbing from ``start``: the lower neighbour
    first, then down while each step is better; if going down did not help, up the same way. With
    ``exhaustive``, every value is scored. Ties keep the value reached first.

    Returns:
        The chosen value and the score of every value tried.
    """
    values = sorted({*grid, start})
    scored: dict[T, float] = {}

    def tried(v: T) -> float:
        if v not in scored:
            scored[v] = score(v)
        return scored[v]

    if exhaustive:
        for v in values:
            tried(v)
        return max(scored, key=lambda v: scored[v]), scored
    best, at = start, values.index(start)
    tried(start)
    for step in (-1, 1):
        j = at + step
        while 0 <= j < len(values) and tried(values[j]) > scored[best]:
            best, j = values[j], j + step
        if best != start:
            break
    return best, scored


def reusable_search(directory: Path | None, config: RankerConfig, fit_positives: int) -> dict[str, Any] | None:
    """The component search recorded in the blend saved in ``directory`` (e.g. the promoted one), if it may stand
    for a new search under ``config``: searching is on, ``component_search_reuse`` is set, the grids are the same
    and the fit positives differ by at most that fraction from the ones it was searched on. None otherwise
    (including a missing or unreadable model)."""
    if directory is None or not config.component_search or config.component_search_reuse is None:
        return None
    try:
        saved = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    search = (saved.get("meta") or {}).get("validation", {}).get("component_search")
    if not isinstance(search, dict) or not {"chosen", "fit_positives", "grids"} <= search.keys():
        return None
    if json.loads(json.dumps(search_grids(config))) != search["grids"]:
        return None
    if abs(fit_positives - search["fit_positives"]) > config.component_search_reuse * search["fit_positives"]:
        return None
    return search


def search_components(
    snapshot: GraphSnapshot, pairs: Tensor, probe: RankerModel, data: ValidationData,
) -> tuple[RankerModel, dict[str, Any]]:
    """Choose EASE^R's λ and ALS's factors, regularisation and alpha on validation: each candidate is fitted
    on ``pairs`` (the split's fit part) and its feature alone ranks ``data``'s users (their fitted histories,
    fit items excluded, validation items the targets). EASE^R scores a λ by the better of its two features
    (``ease``, ``ease_recent``); ALS is a coordinate search, factors first, then regularisation, then alpha,
    each from the best so far. Every grid is climbed from the config's value (:func:`climb`), or scored whole
    with ``component_search_exhaustive``. A choice at a grid's edge is logged (the grid may be too narrow).

    The winners replace ``probe``'s components, their z-scored features replace ``data``'s (in place, rows
    ``ease``, ``ease_recent`` and ``als``: z-scores are per feature, so the others stand), so the ranker
    weights are fitted on them and the refit uses them.

    Returns:
        A model like ``probe`` with the chosen config and components, and the search report (NDCG@20 per
        candidate, the choice, seconds).
    """
    config = probe.config
    started = time.perf_counter()
    num_users, num_items = snapshot.num_users, snapshot.num_items
    histories = [probe.history(int(u)) for u in data.users]
    device = resolve_device(config.device)

    def ranked(score_rows: np.ndarray) -> float:
        return ndcg_of_scores(score_rows.copy(), data.exclude, data.target)

    def feature_rows(fn: Any) -> np.ndarray:  # noqa: ANN401 - history -> [I] scores
        out = np.zeros((len(histories), num_items), dtype=np.float32)
        for r, (items, times) in enumerate(histories):
            if len(items):
                out[r] = fn(items, times)
        return out

    ease_report: dict[str, dict[str, float]] = {}
    best_ease: tuple[float, float, sp.csr_matrix, np.ndarray, np.ndarray] | None = None  # only the best fit is kept
    ease_bar = tqdm(desc="search: EASE^R λ", disable=not config.progress, leave=False)

    def try_ease(lam: float) -> float:
        nonlocal best_ease
        ease = fit_ease(pairs, num_users, num_items, lam, config.ease_top_n, device, max_items=config.ease_max_items)
        plain = feature_rows(lambda i, t, e=ease: ease_scores(e, i, t, config.ease_half_life)[0])
        recent = feature_rows(lambda i, t, e=ease: ease_scores(e, i, t, config.ease_half_life)[1])
        ease_report[f"{lam:g}"] = {"ease": ranked(plain), "ease_recent": ranked(recent)}
        value = max(ease_report[f"{lam:g}"].values())
        if best_ease is None or value > best_ease[0]:
            best_ease = (value, lam, ease, plain, recent)
        ease_bar.update()
        return value

    climb(config.ease_lambda_grid, config.ease_lambda, try_ease, config.component_search_exhaustive)
    ease_bar.close()
    assert best_ease is not None
    _, lam, ease, plain, recent = best_ease  # the climb's choice: both keep the first of equal scores

    als_report: dict[str, float] = {}
    als_scores_of: dict[tuple[int, float, float], float] = {}
    best_als: tuple[float, tuple[int, float, float], np.ndarray, np.ndarray, np.ndarray] | None = None
    point = (config.als_factors, config.als_regularization, config.als_alpha)

    bar = tqdm(desc="search: ALS candidates", disable=not config.progress or not config.als_factors, leave=False)

    def try_als(candidate: tuple[int, float, float]) -> float:
        nonlocal best_als
        if candidate not in als_scores_of:
            bar.update()
            trial = config.model_copy(update=dict(zip(("als_factors", "als_regularization", "als_alpha"),
                                                      candidate, strict=True)))
            items_f, gram = _fit_als_component(pairs, num_users, num_items, trial)
            rows = feature_rows(lambda i, t: als_scores(items_f, gram, i, t, config.als_half_life, candidate[2]))
            value = als_scores_of[candidate] = ranked(rows)
            name = f"factors={candidate[0]} regularization={candidate[1]:g} alpha={candidate[2]:g}"
            als_report[name] = value
            log.debug("component search: ALS %s: validation NDCG@20 %.4f", name, value)
            if best_als is None or value > best_als[0]:
                best_als = (value, candidate, items_f, gram, rows)  # only the best fit's arrays are kept
        return als_scores_of[candidate]

    edges: list[str] = []
    if config.als_factors:
        axes = (("als_factors", config.als_factors_grid), ("als_regularization", config.als_regularization_grid),
                ("als_alpha", config.als_alpha_grid))
        for axis, (name, grid) in enumerate(axes):

            def along(value: Any, axis: int = axis) -> float:  # noqa: ANN401 - a value of this axis
                return try_als(tuple(value if j == axis else v for j, v in enumerate(point)))  # type: ignore[arg-type]

            # from the current value (always tried: each axis can only improve)
            pick, _ = climb(grid, point[axis], along, config.component_search_exhaustive)
            point = tuple(pick if j == axis else v for j, v in enumerate(point))  # type: ignore[assignment]
            if len(grid) > 1 and pick in (min(grid), max(grid)):
                edges.append(f"{name}={pick:g}")
    bar.close()
    if len(config.ease_lambda_grid) > 1 and lam in (min(config.ease_lambda_grid), max(config.ease_lambda_grid)):
        edges.append(f"ease_lambda={lam:g}")
    if edges:
        log.warning("component search chose grid edges (%s): widen the grids to look further", ", ".join(edges))

    chosen = config.model_copy(update={"ease_lambda": lam, "als_factors": point[0],
                                       "als_regularization": point[1], "als_alpha": point[2]})
    updates: dict[str, Any] = {"ease": ease}
    data.features[FEATURES.index("ease")] = _zscore(plain)
    data.features[FEATURES.index("ease_recent")] = _zscore(recent)
    if best_als is not None:
        _, point, items_f, gram, rows = best_als
        updates.update(als_items=items_f, als_gram=gram)
        data.features[FEATURES.index("als")] = _zscore(rows)
    components = dataclasses.replace(probe.components, **updates)
    report = {"ease": ease_report, "als": als_report,
              "chosen": {"ease_lambda": lam, "als_factors": point[0], "als_regularization": point[1],
                         "als_alpha": point[2]},
              "grid_edges": edges, "fit_positives": int(pairs.size(1)), "grids": search_grids(config),
              "seconds": time.perf_counter() - started}
    log.info("component search: EASE^R λ %g, ALS factors %d, regularisation %g, alpha %g (%.0f s)", lam, *point,
             report["seconds"])
    return RankerModel(chosen, probe.user_ids, probe.item_ids, components, probe.weights, probe.meta), report


def sample_fold_users(fold: Fold, max_users: int | None, seed: int) -> Fold:
    """The fold with its targets restricted to a seeded sample of ``max_users`` evaluation users (the fold
    itself when it has no more than that, or ``max_users`` is None); ``train`` is kept whole."""
    users = fold.eval_users.numpy()
    if max_users is None or len(users) <= max_users:
        return fold
    keep = np.random.default_rng(seed).choice(users, size=max_users, replace=False)
    chosen = torch.from_numpy(np.isin(fold.target[0].numpy(), keep))
    return dataclasses.replace(fold, target=fold.target[:, chosen])


def validation_data(model: RankerModel, fold: Fold, desc: str = "features") -> ValidationData:
    """Features of the fold's evaluation users from a model fitted on the fold's train part."""
    users = fold.eval_users.numpy()
    num_items = model.num_items
    feats = np.zeros((len(FEATURES), len(users), num_items), dtype=np.float32)
    exclude = np.zeros((len(users), num_items), dtype=bool)
    target = np.zeros((len(users), num_items), dtype=bool)
    row_of = {int(u): r for r, u in enumerate(users)}
    for r, u in enumerate(tqdm(users.tolist(), desc=desc, disable=not model.config.progress, leave=False)):
        items, times = model.history(u)
        feats[:, r] = model.standardized(items, times, u)
        exclude[r, items] = True
    t_users, t_items = fold.target[0].numpy(), fold.target[1].numpy()
    rows = np.array([row_of.get(int(u), -1) for u in t_users], dtype=np.int64)
    target[rows[rows >= 0], t_items[rows >= 0]] = True
    return ValidationData(users, feats, exclude, target)


def feature_mask(config: RankerConfig) -> np.ndarray:
    """``[len(FEATURES)]`` bool: the features the ranker may weight (``config.ranker_features``).

    Raises:
        ConfigError: An unknown feature name.
    """
    if config.ranker_features is None:
        return np.ones(len(FEATURES), dtype=bool)
    unknown = sorted(set(config.ranker_features) - set(FEATURES))
    if unknown:
        raise ConfigError(f"unknown ranker features {unknown}; known: {list(FEATURES)}")
    return np.isin(np.asarray(FEATURES), config.ranker_features)


def search_linear_weights(
    data: ValidationData, rows: np.ndarray | None = None, rounds: int = 3, mask: np.ndarray | None = None
) -> np.ndarray:
    """Coordinate search of linear blend weights on validation NDCG@20 (the floor a learned ranker must beat).

    Starts from recency-weighted EASE alone (weight 1); each round tries, per other allowed feature (``mask``,
    default all), a grid of weights relative to it.
    """
    grid = [-2.0, -1.0, -0.5, -0.25, -0.1, 0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0]
    mask = np.ones(len(FEATURES), dtype=bool) if mask is None else mask
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    weights[FEATURES.index("ease_recent")] = 1.0
    best = data.ndcg(weights, rows)
    for _ in range(rounds):
        changed = False
        for f in range(len(FEATURES)):
            if FEATURES[f] == "ease_recent" or not mask[f]:
                continue
            for value in sorted({*grid, *(float(weights[f]) * m for m in (0.6, 0.8, 1.25, 1.6))}):
                trial = weights.copy()
                trial[f] = value
                score = data.ndcg(trial, rows)
                if score > best + 1e-6:
                    best, weights, changed = score, trial, True
        if not changed:
            break
    return weights


def learn_weights(
    data: ValidationData,
    config: RankerConfig,
    rows: np.ndarray | None = None,
    init: np.ndarray | None = None,
    *,
    l2: float | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Listwise ranker: the weights maximising, per validation user, the softmax likelihood of their
    validation items among every item they could be shown (ListNet with binary relevance), with an L2
    penalty (a convex problem); L-BFGS from ``init`` (default: recency-weighted EASE alone).

    Args:
        l2: L2 penalty (default ``config.ranker_l2``).
        mask: Features allowed a non-zero weight (default all).

    Returns:
        ``[len(FEATURES)]`` float32 weights.
    """
    rows = np.arange(len(data.users)) if rows is None else rows
    rows = rows[data.target[rows].any(axis=1)]
    l2 = config.ranker_l2 if l2 is None else l2
    allowed = np.ones(len(FEATURES), dtype=bool) if mask is None else mask
    if init is None:
        init = np.eye(len(FEATURES), dtype=np.float32)[FEATURES.index("ease_recent")]
    num_features, num_users, num_items = data.features.shape
    x = data.features.reshape(num_features, num_users * num_items)  # a view, no copy
    # Loss and gradient by hand, in place on one [users, items] buffer: autograd's temporaries over every
    # user's items cost three times the two matrix-vector products. Users outside ``rows`` are scored too
    # (no copy of the cube) and weigh 0. Each fitted user's validation items share the user's weight.
    user_weight = np.zeros(num_users, dtype=np.float64)
    user_weight[rows] = 1.0 / max(len(rows), 1)
    t_user, t_item = np.nonzero(data.target & ~data.exclude & (user_weight > 0)[:, None])
    t_flat = t_user * num_items + t_item
    t_value = user_weight[t_user] / np.bincount(t_user, minlength=num_users)[t_user]  # sums to 1
    scores = np.empty((num_users, num_items), dtype=np.float32)
    flat = scores.reshape(-1)
    w = torch.from_numpy(init[allowed].astype(np.float32)).clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([w], lr=1.0, max_iter=config.ranker_iterations, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        full = np.zeros(num_features, dtype=np.float32)
        full[allowed] = w.detach().numpy()
        np.matmul(full, x, out=flat)
        np.copyto(scores, -np.inf, where=data.exclude)
        np.subtract(scores, scores.max(axis=1, keepdims=True), out=scores)
        picked = flat[t_flat].astype(np.float64)  # the targets' s − max
        log_total = np.log(np.exp(scores, out=scores).sum(axis=1, dtype=np.float64))  # scores now exp(s − max)
        loss = -float(t_value @ (picked - log_total[t_user]))  # −Σ y · log p
        # d loss / d s = weight_u · p − y, in place
        np.multiply(scores, (user_weight / np.exp(log_total)).astype(np.float32)[:, None], out=scores)
        flat[t_flat] -= t_value.astype(np.float32)
        grad = (x @ flat)[allowed] + 2.0 * l2 * full[allowed]
        w.grad = torch.from_numpy(grad.astype(np.float32))
        return torch.tensor(loss + l2 * float(full @ full))

    optimizer.step(closure)
    state = optimizer.state[w]
    log.debug("listwise ranker, l2 %g, %d users: %d L-BFGS iterations, %d evaluations", l2, len(rows),
              state.get("n_iter", 0), state.get("func_evals", 0))
    out = np.zeros(len(FEATURES), dtype=np.float32)
    out[allowed] = w.detach().numpy()
    return out


def learned_path(
    data: ValidationData, config: RankerConfig, rows: np.ndarray | None, penalties: Sequence[float],
    mask: np.ndarray | None = None, init: np.ndarray | None = None,
) -> dict[float, np.ndarray]:
    """:func:`learn_weights` for each L2 penalty, from the largest down, each fit starting from the previous
    one's weights (a regularisation path: the problem is strictly convex, so a warm start changes only how
    many L-BFGS steps reach the same optimum: on Last.fm the smallest penalty took 23 evaluations warm, 31 cold).

    Returns:
        penalty → ``[len(FEATURES)]`` float32 weights.
    """
    out: dict[float, np.ndarray] = {}
    for l2 in sorted(set(penalties), reverse=True):
        init = learn_weights(data, config, rows, init, l2=l2, mask=mask)
        out[l2] = init
    return out


def fit_weights(data: ValidationData, config: RankerConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Ranker weights on validation: learned (listwise, per L2 penalty of ``ranker_l2_grid``, fitted as one
    :func:`learned_path` per fold) vs linear search, compared on a ``ranker_folds``-fold cross-fit over
    validation users (fit on the other folds, measure NDCG@20 on the held-out one), then the winner refitted
    on all validation users (a learned winner from the mean of its fold weights)."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data.users))
    parts = np.array_split(order, config.ranker_folds)
    splits = [(np.concatenate([p for j, p in enumerate(parts) if j != k]), parts[k]) for k in range(len(parts))]
    mask = feature_mask(config)
    # candidate name -> its weights fitted on each fold's training users
    folds: dict[str, list[np.ndarray]] = {}
    if config.ranker in ("auto", "linear"):
        folds["linear"] = [search_linear_weights(data, a, mask=mask) for a, _ in splits]
    penalties: dict[str, float] = {}
    if config.ranker in ("auto", "learned"):
        grid = config.ranker_l2_grid or [config.ranker_l2]
        penalties = {("learned" if not config.ranker_l2_grid else f"learned l2={l2:g}"): l2 for l2 in grid}
        paths = [learned_path(data, config, a, grid, mask) for a, _ in splits]
        for name, l2 in penalties.items():
            folds[name] = [path[l2] for path in paths]
    # held-out NDCG weighted by the held-out users, so unequal folds count alike per user
    cross = {name: float(sum(data.ndcg(w, b) * len(b) for w, (_, b) in zip(fitted, splits, strict=True))
                         / len(order)) for name, fitted in folds.items()}
    chosen = max(cross, key=lambda k: cross[k])
    if chosen == "linear":
        weights = search_linear_weights(data, mask=mask)
    else:
        weights = learn_weights(data, config, None, np.mean(folds[chosen], axis=0), l2=penalties[chosen], mask=mask)
    report = {"cross_fit_ndcg20": cross, "chosen": chosen, "val_ndcg20": data.ndcg(weights),
              "weights": dict(zip(FEATURES, weights.tolist(), strict=True))}
    return weights, report


def all_positives(snapshot: GraphSnapshot, min_rating: float = 4.0) -> Tensor:
    """``[2, n]`` every positive (user_idx, item_idx) of the snapshot (the production refit's edges)."""
    mask = positive_mask(snapshot, min_rating)
    return snapshot.edge_index[:, mask]


def fit_ranker(
    snapshot: GraphSnapshot,
    split: Split,
    config: RankerConfig | None = None,
    *,
    final: Literal["train", "all"] = "train",
    reuse: dict[str, Any] | None = None,
) -> RankerModel:
    """Fit the blend: components on ``split.fit``, ranker weights on ``split.val``, components refitted.

    Args:
        snapshot: The graph the split was made from.
        split: Positives divided into fit / validation / test.
        config: Hyper-parameters (defaults when None).
        final: Refit the components on ``split.train`` (test figures stay honest) or on every positive of the
            snapshot (production: each user's most recent interactions count).
        reuse: An earlier component search's report (:func:`reusable_search`): its choice is taken as it is
            instead of searching again, and recorded with ``"reused": true``.

    Returns:
        The fitted model; ``meta`` holds the validation report and timings.

    Raises:
        DataError: The split belongs to another snapshot.
    """
    config = config or RankerConfig()
    if split.snapshot_id != snapshot.snapshot_id:
        raise DataError(f"split of snapshot {split.snapshot_id} used with snapshot {snapshot.snapshot_id}")
    search: dict[str, Any] | None = None
    if reuse is not None:
        config = config.model_copy(update=reuse["chosen"])
        search = {**{k: v for k, v in reuse.items() if k != "seconds"}, "reused": True}
        log.info("component search: the earlier choice %s is kept (searched on %d fit positives, now %d)",
                 reuse["chosen"], reuse["fit_positives"], split.fit.size(1))
    timings: dict[str, float] = {}
    started = time.perf_counter()
    validation = split.validation()
    early = fit_components(snapshot, split.fit, config, val_fold=validation, desc="fit components")
    timings["fit_components"] = time.perf_counter() - started
    probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
    t = time.perf_counter()
    sample = sample_fold_users(validation, config.ranker_max_users, config.seed)
    data = validation_data(probe, sample)
    if config.component_search and reuse is None:
        probe, search = search_components(snapshot, split.fit, probe, data)
        config = probe.config
        early = probe.components
    weights, report = fit_weights(data, config)
    report["ranker_users"] = len(data.users)  # validation users the weights were fitted on
    if search is not None:
        report["component_search"] = search
    del data
    timings["fit_ranker"] = time.perf_counter() - t
    t = time.perf_counter()
    edges = split.train if final == "train" else all_positives(snapshot, split.min_rating)
    epochs = max(early.lightgcn_epochs, 1)
    components = fit_components(snapshot, edges, config, lightgcn_epochs=epochs, desc=f"refit on {final}")
    timings["refit"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    meta = {"snapshot_id": snapshot.snapshot_id, "final": final, "split": split.describe(), "validation": report,
            "lightgcn_epochs": epochs, "timings": timings}
    log.info("ranker: %s weights %s, validation NDCG@20 %.4f", report["chosen"], report["weights"],
             report["val_ndcg20"])
    return RankerModel(config, snapshot.users.ids, snapshot.items.ids, components, weights, meta)


def component_score_fn(model: RankerModel, feature: str) -> ScoreFn:
    """A score function of one feature alone (for tuning and ablations)."""
    weights = np.zeros(len(FEATURES), dtype=np.float32)
    weights[FEATURES.index(feature)] = 1.0
    return model.score_fn(standardized_weights=weights)


def evaluate_components(model: RankerModel, fold: Fold) -> dict[str, float]:
    """Validation NDCG@20 of each history-based component alone."""
    return {name: evaluate(component_score_fn(model, name), fold, ks=(20,))[VAL_METRIC]
            for name in ("ease", "ease_recent", "sequence", "knowledge", "lightgcn", "als", "pop_window", "fresh",
                         "social")}


__all__: list[str] = [
    "FEATURES", "RAW_FEATURES", "Components", "RankerConfig", "RankerModel", "ValidationData", "all_positives",
    "component_score_fn", "directory_size", "evaluate_components", "feature_mask", "fit_components", "fit_ranker",
    "fit_weights", "learn_weights", "learned_path", "reserve_cold_slots", "sample_fold_users", "search_linear_weights",
    "als_scores", "climb", "ease_scores", "ndcg_of_scores", "reusable_search", "search_components", "search_grids",
    "validation_data",
]
