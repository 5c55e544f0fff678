"""The blend's configuration: its features, file names and :class:`RankerConfig` (components and ranker)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gnn.config import Device, TrainConfig
from schema.errors import ConfigError

#: Ranker features, in the order of :attr:`gnn.blend.model.RankerModel.weights`.
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
    "peers",  # popularity among users sharing the user's attributes (age band, country, ...): the mean over the
    # user's attributes of each attribute's smoothed share of its users who liked the item; absent (left out of every
    # product, see RankerModel.active) when the data has no user attributes. Keep it last.
)
#: Features left unstandardised by :meth:`gnn.blend.model.RankerModel.standardized` (per-user offsets).
RAW_FEATURES: frozenset[str] = frozenset({"cold_prior"})

DAY = 86_400.0
MODEL_FILE = "ranker.npz"
META_FILE = "ranker.json"
#: The candidate index's HNSW graphs saved with a model (:meth:`gnn.blend.model.RankerModel.save`), by component; their
#: records (parameters, SHA-256) are ``candidate_graphs`` in ``ranker.json``.
GRAPH_FILES = {"lightgcn": "ranker-lightgcn.hnsw", "als": "ranker-als.hnsw"}
FORMAT_VERSION = 6  # 2: item years and the fresh features; 3: lightgcn_cold, cold_prior; 4: social and the
# follows it reads; 5: peers and the user attributes it reads; 6: per-user adaptive weights (user_groups) (older
# models load, their weights mapped by feature name, new features at weight 0: they score as before)
YEAR = 365.2425 * DAY
#: Decimals a served score keeps (:meth:`gnn.blend.model.RankerModel.score`). A blend's scores carry float noise in
#: about the sixth decimal: the same model scores an item 1e-6 apart depending on the BLAS kernel and thread count a
#: process happens to use (an extra all-zero feature column was enough), and near-tied items then swapped places
#: depending on what ran before in the process. Rounded to a grid far above that noise, such items tie exactly and
#: every list cut from the scores breaks the tie by item_idx (:func:`gnn.blend.cold.top_items`).
SCORE_DECIMALS = 4


class RankerConfig(BaseModel):
    """Hyper-parameters of the blend: its components and the ranker on top."""

    model_config = ConfigDict(extra="forbid")

    ease_lambda: float = Field(200.0, gt=0, description="EASE^R L2 regularisation.")
    ease_top_n: int | None = Field(512, ge=1, description="EASE^R weights kept per source item (None: all).")
    ease_max_items: int | None = Field(
        20_000,
        ge=1,
        description="EASE^R: only the items with the most positives, at most this many (its dense "
        "items × items float64 inverse needs about 2 · 8 · n² bytes); the others get no EASE weights (None: all).",
    )
    ease_max_solve: int | None = Field(
        8_000,
        ge=1,
        description="EASE^R: bound on its dense solve, which costs the cube of min(users, items kept) (an items × "
        "items inverse, or users × users by the Woodbury identity when users are fewer): above it only the "
        "this many items with the most positives are kept, so a fit costs at most about 8000³ flops whatever the "
        "data's size (ml-latest-small and Last.fm, with 610 and 1,877 users, solve below it; None: no bound).",
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
    peer_prior: float = Field(
        5.0,
        ge=0,
        description="Peers feature: pseudo-users of global taste added to each user attribute's group, so the share "
        "of a small group (five users of one occupation) leans on overall popularity: (likes in the group + "
        "peer_prior · global share) / (group size + peer_prior).",
    )
    ranker_features: list[str] | None = Field(
        None, description="Features the ranker may weight (None: all of FEATURES; the others get weight 0)."
    )
    als_factors: int = Field(64, ge=0, description="ALS component: factors (0 leaves ALS out).")
    als_regularization: float = Field(30.0, gt=0, description="ALS component: L2 regularisation.")
    als_alpha: float = Field(
        10.0,
        gt=0,
        description="ALS component: extra confidence of a positive (the component search chose 10 on "
        "ml-latest-small and on Last.fm).",
    )
    als_reg_exponent: float = Field(
        0.0,
        ge=0,
        le=2,
        description="ALS component: frequency-scaled regularisation (Rendle et al. 2021, iALS revisited): a user's "
        "or item's λ is als_regularization · (1 + (1 + als_alpha) · positives / other side's count) ** this, in the "
        "fit and in a user's fold-in (0: the same λ for every row, plain ALS).",
    )
    als_iterations: int = Field(10, ge=1, description="ALS component: alternating rounds.")
    als_half_life: float = Field(10.0, gt=0, description="ALS fold-in: history recency half-life.")
    als_cg_steps: int = Field(3, ge=1, description="ALS component: conjugate-gradient steps per half-step.")
    als_large_positives: int | None = Field(
        500_000,
        ge=0,
        description="ALS above this many positives: the per-positive dots of each conjugate-gradient step are one "
        "sampled dense-dense product (float32 sums in another order), and a fit with an earlier fit's item factors "
        "to start from (the refit on every positive from the fit on the fit edges; the component search's choice "
        "on every user from its fit on the sample) runs als_warm_iterations rounds from them. Below it "
        "(ml-latest-small, Last.fm) every fit starts from seeded noise with als_iterations rounds (None: never).",
    )
    als_warm_iterations: int = Field(
        3, ge=1, description="ALS above als_large_positives: rounds of a fit warm-started from earlier item factors."
    )
    component_search: bool = Field(
        True,
        description="Choose EASE^R's λ and ALS's factors, regularisation and alpha on validation before the "
        "ranker weights (:func:`search_components`: each component alone, on the ranker's validation users); off: "
        "the values above as they are.",
    )
    component_search_reuse: float | None = Field(
        0.2,
        ge=0,
        description="kgrec train/retrain: keep the promoted blend's component choice instead of searching "
        "again while the fit positives differ by at most this fraction from those it was searched on and the grids "
        "are the same (a nightly retrain pays for the search only when the data has grown; None: search every time).",
    )
    component_search_exhaustive: bool = Field(
        False,
        description="Component search: score every value of each grid instead of climbing from the current "
        "value (:func:`climb`: step to the next value in the improving direction until one is not better; on "
        "unimodal validation curves the same choice for fewer fits).",
    )
    component_search_extra_fits: int = Field(
        4,
        ge=0,
        description="Component search: fits it may spend, over all its grids, on values past a grid's edge when "
        "the best value is at that edge (each grid grows on its own scale, one value at a time while it helps; "
        "0: the grids as they are).",
    )
    als_factors_max: int = Field(
        1024, ge=1, description="Component search: the most ALS factors a grid grown past its edge may reach."
    )
    als_factors_min_gain: float = Field(
        0.01,
        ge=0,
        description="Component search: more ALS factors are taken only when they raise the ALS component's "
        "validation NDCG@20 by more than this fraction of the best so far (fewer, when they raise it at all; 0: any "
        "gain). An uncached answer's fold-in costs O(n·k² + k³ + I·k) at k factors (on Last.fm's catalogue 2.9 ms "
        "CPU at 256, 38 ms at 1,024), and Last.fm's curve is flat past 256 (+2.7% from 128 to 256, +0.4% to 512): "
        "without a threshold the search crept up to 1,024, with 0.01 it keeps 256 (docs/benchmarks.md §4).",
    )
    component_search_large_positives: int | None = Field(
        500_000,
        ge=0,
        description="Component search above this many fit positives (gnn.blend.path): EASE^R's λ values are all "
        "scored from one eigendecomposition of the Gram matrix (O(m³) once, then O(validation users · m²) per λ, "
        "unpruned weights; the chosen λ fitted once) and ALS's candidates are fitted on a sample of users holding "
        "at most component_search_max_positives positives (the chosen one refitted on every user). Below it "
        "(ml-latest-small, Last.fm) each candidate is one fit on every positive (None: always).",
    )
    component_search_max_positives: int = Field(
        1_000_000,
        ge=1,
        description="Component search above component_search_large_positives: ALS candidates are fitted on the "
        "positives of a seeded sample of users holding at most this many.",
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
    als_scale_grid: list[float] = Field(
        [1.0],
        min_length=1,
        description="Component search: factors by which regularisation and alpha are multiplied together (fourth, "
        "from 1: the diagonal of the two, which interact — both weigh the observed entries against the unobserved "
        "ones). [1.0] (the default): off. Measured with [1, 2, 4]: the ALS component alone gains on Last.fm "
        "(validation NDCG@20 0.1815 → 0.1873 at 128 / 100 / 40), but the API's NDCG@20 on Last.fm fell (0.2856 → "
        "0.2815, retrain choice 64 / 60 / 20) and ml-latest-small's choice was unchanged (docs/benchmarks.md §4).",
    )
    als_reg_exponent_grid: list[float] = Field(
        [0.0, 0.5, 1.0],
        min_length=1,
        description="Component search: ALS frequency-scaled regularisation exponents (als_reg_exponent; fourth, "
        "after alpha, climbed from als_reg_exponent within [0, 2]; [0.0]: plain ALS, no fit more). The ALS "
        "component alone, validation NDCG@20: Last.fm 0.1886 / 0.1897 / 0.1921 at 0 / 0.5 / 1, ml-latest-small "
        "0.1143 / 0.1138 / 0.1099; the blend on Last.fm through the API's rule 0.2892 → 0.2907 at 1 "
        "(docs/benchmarks.md §4).",
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
        default_factory=lambda: {
            "embedding_dim": 64,
            "num_layers": 3,
            "lr": 0.04,
            "lr_decay": 0.97,
            "reg": 1e-4,
            "batch_size": 4096,
            "max_epochs": 300,
            "patience": 10,
            "epoch_edge_budget": 4_000_000,
        },
        description="TrainConfig fields of the LightGCN component (early stopping on validation).",
    )
    ranker: Literal["auto", "learned", "linear"] = Field(
        "learned", description="Weights: listwise-learned, linear coordinate search, or the better on cross-fit."
    )
    ranker_l2: float = Field(1e-3, ge=0, description="L2 penalty of the learned ranker's weights.")
    ranker_l2_grid: list[float] | None = Field(
        [0.01, 0.1, 0.3, 1.0, 3.0],
        description="L2 penalties tried for the learned ranker, the best on the validation cross-fit kept "
        "(None: ranker_l2 only).",
    )
    drop_orderless_features: bool = Field(
        True,
        description="Leave the features that need an order in time out of the ranker when the fit positives have no "
        "time at all (decided from the data at fit, recorded in the artifact's validation report as "
        "dropped_features): sequence (transitions from one item to the next in time), and ease_recent too when "
        "every interaction weight is the same as well (no play counts to order a history by, "
        ":meth:`gnn.blend.model.RankerModel.features`). Off: every feature, as ranker_features says.",
    )
    ranker_user_groups: int = Field(
        1,
        ge=1,
        le=8,
        description="Per-user adaptive weights: the validation users are split into this many groups by the size "
        "of their history (equal-count groups); each group's weights are the global ones plus a deviation learnt on "
        "its users with an L2 pull towards the global ones (ranker_group_l2_grid), kept only when they beat the "
        "global weights on the validation cross-fit. A served user takes the weights of the group their live "
        "history's size falls in. 1 (the default): one set of weights for everybody. Measured with 3 on "
        "ml-latest-small: the cross-fit chose them (0.1377 against 0.1365) but test NDCG@20 fell from 0.1340 to "
        "0.1315 (docs/benchmarks.md §4).",
    )
    ranker_group_l2_grid: list[float] = Field(
        [1.0, 10.0],
        min_length=1,
        description="Per-user adaptive weights: L2 penalties of a group's deviation from the global weights tried "
        "on the cross-fit (the best kept).",
    )
    ranker_folds: int = Field(5, ge=2, le=10, description="Cross-fit folds over validation users.")
    ranker_iterations: int = Field(100, ge=1, description="L-BFGS iterations of the learned ranker.")
    ranker_max_items: int | None = Field(
        20_000,
        ge=1,
        description="Ranker weights: with more items than this, each validation user's features are kept on "
        "ranker_candidates items only (the best by any one feature), not on the whole catalogue, so the users × "
        "features × items cube and every step of the weights' fit stay bounded (None: always the whole catalogue).",
    )
    ranker_candidates: int = Field(
        2_000,
        ge=50,
        description="Ranker weights above ranker_max_items: items per validation user, those with the highest "
        "z-score in any feature (their history excluded); validation items outside them count as misses.",
    )
    ranker_fit_candidates: int | None = Field(
        200,
        ge=20,
        description="Ranker weights: fitted on each validation user's this many best items of the validation "
        "features (the highest z-score in any feature, their history excluded; validation items outside them count "
        "as misses), after the component search, which still scores the whole cube. The listwise ranker then learns "
        "to order the head a list is cut from instead of telling popular items from the tail; served scores still "
        "cover every item. None: every column of the cube (as before). Measured against None: Last.fm through the "
        "API's rule 0.2905 → 0.2933 NDCG@20, paired +0.0029 [+0.0012, +0.0047] (100 to 600 scored alike on its "
        "validation cross-fit); ml-latest-small (bench.quality) 0.1343 → 0.1356 (docs/benchmarks.md §4).",
    )
    ranker_fit_min_items: int = Field(
        5_000,
        ge=0,
        description="ranker_fit_candidates applies to catalogues of more than this many items (measured on "
        "ml-latest-small's 9,742 and Last.fm's 17,632); smaller ones keep every column, as before.",
    )
    lightgcn_max_val_users: int | None = Field(
        3_000,
        ge=1,
        description="LightGCN's early stopping measures validation NDCG@20 on a seeded sample of at most this many "
        "validation users (every round ranks them over all items; None: every validation user).",
    )
    lightgcn_large_positives: int | None = Field(
        500_000,
        ge=0,
        description="Above this many positives LightGCN is trained once, within lightgcn_large_budget, and not "
        "refitted on every positive: the early-stopped embeddings are served (each of its steps propagates over "
        "every edge, so a fit to convergence and its refit would cost steps × positives twice; None: never).",
    )
    lightgcn_large_budget: int = Field(
        80_000_000,
        ge=1,
        description="LightGCN above lightgcn_large_positives: its epochs are bounded so that optimiser steps × "
        "training positives stays within this (at least one epoch; about 100 steps at 800k positives, 10 at 8M).",
    )
    lightgcn_large_step_pairs: int | None = Field(
        1_048_576,
        ge=1,
        description="LightGCN above lightgcn_large_positives: at most this many positive pairs (a fresh random share "
        "each step) form a step's BPR loss (TrainConfig.max_step_pairs); the propagation still runs over every edge "
        "(None: every pair of the batch, which at 8M positives is every positive at every step).",
    )
    lightgcn_large_patience: int | None = Field(
        3,
        ge=1,
        description="LightGCN above lightgcn_large_positives: early stopping's patience, in validation rounds (with "
        "a window of as many rounds), within the lightgcn_large_budget epochs (None: the lightgcn settings' own).",
    )
    ranker_max_users: int | None = Field(
        1000,
        ge=50,
        description="Ranker weights are fitted on a seeded sample of at most this many validation "
        "users (their features form a dense users × features × items cube; None: every validation user).",
    )
    cold_slots: int = Field(
        1,
        ge=0,
        description="New arrivals: at most this many positions of a list are reserved for items without "
        "any positive (cold items), each filled by the best-scoring cold item not yet in the list when it clears "
        "cold_slot_margin (:func:`reserve_cold_slots`; the ranker alone almost never lets them into the top 20). "
        "0 = off. The defaults (1 slot at position 20, margin 4) maximise the validation cold-item NDCG@20 among "
        "the policies costing at most 1% of validation NDCG@20 on ml-latest-small (temporal split, seed 42): "
        "validation NDCG@20 0.1342 → 0.1331 (−0.8%), cold items 0.0008 → 0.0043; test 0.1349 → 0.1337 (−0.9%), "
        "cold items 0 → 0.0013 (most-popular: 0).",
    )
    cold_slot_every: int = Field(
        20,
        ge=1,
        description="The reserved positions are N, 2N, … (1-based, at most cold_slots of them), the same "
        "for any list length, so a shorter list is a prefix of a longer one (lists shorter than N get none).",
    )
    cold_slot_margin: float | None = Field(
        4.0,
        description="A cold item takes a reserved position only if its ranking score is at least the score of "
        "the item it displaces minus this margin (a log-odds gap under the listwise softmax ranker; None: always). "
        "At 4 about half of the validation users get a cold item, at the cost of half of the margin-free policy "
        "(−1.8% validation NDCG@20) for the same cold-item hits.",
    )
    serve_candidates: int | None = Field(
        None,
        ge=1,
        description="Serving (RankerModel.score): score a candidate set instead of every item — the this many best "
        "by LightGCN, by ALS, by EASE^R and by the sequence weights of the latest history items, by popularity "
        "(overall and in the window) and the this many best cold items by LightGCN (their best items from an HNSW "
        "index from 50,000 items: gnn.blend.candidates); every other item scores -inf. A feature's z-score takes the "
        "catalogue's mean and deviation where they are known exactly (those computed for every item; LightGCN's and "
        "ALS's from the items' mean and covariance), else a fixed uniform sample's, on which only those features are "
        "computed; a feature of weight 0 is not computed. A computed answer then costs the candidates' features "
        "instead of every item's (at 50,000 items, docs/benchmarks.md §5). Scores differ from the whole catalogue's "
        "(the sample's z-scores); a set that would hold half the catalogue or more scores every item. None: every "
        "item.",
    )
    seed: int = Field(42, description="Seed of LightGCN, negative sampling and the ranker.")
    device: Device = Field("auto", description="auto (CUDA when available), cpu or cuda.")
    num_threads: int = Field(1, ge=1, le=256, description="Torch CPU threads.")
    progress: bool = Field(True, description="Show tqdm progress bars.")

    def train_config(self) -> TrainConfig:
        """The LightGCN component's training config."""
        try:
            return TrainConfig(
                **{
                    **self.lightgcn,
                    "model": "lightgcn",
                    "seed": self.seed,
                    "device": self.device,
                    "num_threads": self.num_threads,
                    "progress": self.progress,
                }
            )
        except ValueError as exc:
            raise ConfigError(f"invalid lightgcn settings of the ranker: {exc}") from exc
