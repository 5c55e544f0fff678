"""Fitting the blend: every component on a set of positives (:func:`fit_components`), then the whole two-stage
fit (:func:`fit_ranker`: components on ``split.fit``, component search and ranker weights on validation, refit).

Each step runs as a named phase (:mod:`gnn.phases`) so that a listener can time it: ``fit_components`` (each
call) with ``ease``, ``knowledge``, ``sequence``, ``als``, ``peers`` (with user attributes), ``lightgcn`` and
``cold_embeddings`` inside, and in :func:`fit_ranker` ``val_features``, ``component_search``, ``ranker_weights`` and
``refit``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from tqdm.auto import tqdm

from gnn.blend.config import FEATURES, RankerConfig
from gnn.blend.knowledge import content_embeddings, knowledge_matrix, year_basis
from gnn.blend.linear import fit_als_component, fit_ease, fit_transitions
from gnn.blend.model import Components, RankerModel
from gnn.blend.scorers import UNKNOWN_TIME, TimedEvents, attribute_shares
from gnn.blend.search import search_components
from gnn.blend.weights import fit_weights, sample_fold_users, validation_data
from gnn.config import TrainConfig, resolve_device
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, Split, positive_mask
from gnn.phases import phase
from schema.errors import DataError

log = logging.getLogger(__name__)


def pair_times(snapshot: GraphSnapshot, pairs: Tensor) -> np.ndarray:
    """Timestamps of (user_idx, item_idx) pairs, looked up among the snapshot's interactions.

    Args:
        snapshot: The graph the pairs come from.
        pairs: ``[2, n]`` (user_idx, item_idx).

    Returns:
        ``[n]`` int64 epoch seconds (the latest interaction of the pair), ``-1`` where unknown.

    Raises:
        DataError: A pair is not an interaction of the snapshot.
    """
    return pair_times_weights(snapshot, pairs)[0]


def pair_times_weights(snapshot: GraphSnapshot, pairs: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pair_times` and the interaction weights (play counts; 1 for ratings) of the same interactions:
    ``[n]`` int64 and ``[n]`` float32 (a weight that is not finite or not positive counts as 1)."""
    num_items = snapshot.num_items
    keys = (snapshot.edge_index[0] * num_items + snapshot.edge_index[1]).numpy()
    stamps = snapshot.edge_time.numpy()
    plays = snapshot.edge_weight.numpy().astype(np.float32)
    order = np.lexsort((plays, stamps, keys))
    keys, stamps, plays = keys[order], stamps[order], plays[order]
    query = (pairs[0] * num_items + pairs[1]).numpy()
    if len(keys) == 0:
        if len(query):
            raise DataError("pairs given for a snapshot without interactions")
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    pos = np.searchsorted(keys, query, side="right") - 1
    found = (pos >= 0) & (keys[pos.clip(min=0)] == query)
    if not found.all():
        raise DataError(f"{int((~found).sum())} pairs are not interactions of snapshot {snapshot.snapshot_id}")
    weights = plays[pos]
    weights = np.where(np.isfinite(weights) & (weights > 0), weights, 1.0).astype(np.float32)
    return np.where(stamps[pos] >= 0, stamps[pos], UNKNOWN_TIME).astype(np.int64), weights


def follow_matrix(snapshot: GraphSnapshot) -> sp.csr_matrix:
    """``[U, U]`` float32 CSR, 1 where the row user follows the column user (duplicates and self-loops dropped)."""
    follower, followee = snapshot.follow_index.numpy().astype(np.int64)
    keep = follower != followee
    n = snapshot.num_users
    out = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (follower[keep], followee[keep])), shape=(n, n))
    out.data[:] = 1.0  # duplicates summed by the constructor count once
    return out


def user_attribute_matrix(snapshot: GraphSnapshot) -> sp.csr_matrix | None:
    """``[U, A]`` float32 CSR, 1 where the user has the attribute (age band, country, ...); None without any."""
    if not len(snapshot.user_attributes):
        return None
    users, attributes = snapshot.user_attribute_index.numpy().astype(np.int64)
    shape = (snapshot.num_users, len(snapshot.user_attributes))
    out = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, attributes)), shape=shape)
    out.data[:] = 1.0
    return out


def all_positives(snapshot: GraphSnapshot, min_rating: float = 4.0) -> Tensor:
    """``[2, n]`` every positive (user_idx, item_idx) of the snapshot (the production refit's edges)."""
    mask = positive_mask(snapshot, min_rating)
    return snapshot.edge_index[:, mask]


def fit_components(
    snapshot: GraphSnapshot,
    pairs: Tensor,
    config: RankerConfig,
    *,
    val_fold: Fold | None = None,
    lightgcn_epochs: int | None = None,
    lightgcn: tuple[np.ndarray, np.ndarray, int] | None = None,
    als_init: np.ndarray | None = None,
    desc: str = "components",
) -> Components:
    """Fit every component on the positives ``pairs`` (their times looked up in the snapshot).

    Args:
        snapshot: Gives times, knowledge edges and index spaces.
        pairs: ``[2, n]`` (user_idx, item_idx) positives.
        config: Hyper-parameters.
        val_fold: For LightGCN's early stopping (the epoch count is kept in the result).
        lightgcn_epochs: Fixed LightGCN epoch count (a refit with the count found on validation).
        lightgcn: LightGCN's user and item embeddings and epoch count taken as they are instead of a fit (a
            refit above ``lightgcn_large_positives`` keeps the early-stopped ones).
        als_init: ALS item factors to warm-start from above ``als_large_positives`` (the refit: the fit's).
        desc: Progress label.

    Returns:
        The fitted components.
    """
    num_users, num_items = snapshot.num_users, snapshot.num_items
    with phase("fit_components"):
        device = resolve_device(config.device)
        torch.set_num_threads(config.num_threads)
        times, plays = pair_times_weights(snapshot, pairs)
        users, items = pairs[0].numpy().astype(np.int64), pairs[1].numpy().astype(np.int64)
        steps = tqdm(total=5, desc=desc, disable=not config.progress, leave=False)
        with phase("ease"):
            ease = fit_ease(
                pairs,
                num_users,
                num_items,
                config.ease_lambda,
                config.ease_top_n,
                device,
                max_items=config.ease_max_items,
                max_solve=config.ease_max_solve,
            )
        steps.update()
        with phase("knowledge"):
            knowledge = knowledge_matrix(
                snapshot,
                genre_weight=config.genre_weight,
                person_weight=config.person_weight,
                tag_weight=config.tag_weight,
            )
        steps.update()
        events = TimedEvents(items, times, num_items)
        # each history oldest first, ties in time by weight (the most played as the most recent), then by item:
        # the order RankerModel.features puts a served history in
        order = np.lexsort((items, plays, times, users))
        hist_ptr = np.zeros(num_users + 1, dtype=np.int64)
        hist_ptr[1:] = np.cumsum(np.bincount(users, minlength=num_users))
        with phase("sequence"):
            transitions = fit_transitions(users, items, times, num_items, config.sequence_window, config.sequence_top_n)
        steps.update()
        with phase("als"):
            als_items, als_gram = fit_als_component(pairs, num_users, num_items, config, init=als_init)
        steps.update()
        user_attributes, shares = user_attribute_matrix(snapshot), None
        if user_attributes is not None:
            with phase("peers"):
                shares = attribute_shares(user_attributes, users, items, num_items, config.peer_prior)
        if lightgcn is not None:
            user_emb, item_emb, epochs = lightgcn
        else:
            user_emb, item_emb, epochs = lightgcn_embeddings(
                snapshot,
                pairs,
                knowledge,
                events.global_counts == 0,
                config,
                val_fold=val_fold,
                epochs=lightgcn_epochs,
                desc=desc,
            )
        steps.update()
        steps.close()
        return Components(
            ease,
            transitions,
            knowledge,
            user_emb,
            item_emb,
            als_items,
            als_gram,
            events,
            hist_ptr,
            items[order],
            times[order],
            epochs,
            snapshot.item_year.numpy().astype(np.int64),
            follow_matrix(snapshot),
            user_attributes,
            shares,
            snapshot.user_attributes.ids if user_attributes is not None else None,
            plays[order],
        )


def lightgcn_embeddings(
    snapshot: GraphSnapshot,
    pairs: Tensor,
    knowledge: sp.csr_matrix,
    cold: np.ndarray,
    config: RankerConfig,
    *,
    val_fold: Fold | None,
    epochs: int | None,
    desc: str,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The LightGCN component: user and item embeddings fitted on ``pairs``, the rows of the ``cold`` items
    (``[I]`` bool, without positives) predicted from their knowledge features and year (``cold_embeddings``) or
    zero.

    Returns:
        ``[U, d]`` and ``[I, d]`` float32 embeddings (``d = 0`` with LightGCN off or without positives) and the
        epochs LightGCN was trained for (0 when it was not).
    """
    num_users, num_items = snapshot.num_users, snapshot.num_items
    if not config.use_lightgcn or not pairs.size(1):
        return np.zeros((num_users, 0), dtype=np.float32), np.zeros((num_items, 0), dtype=np.float32), 0
    from gnn.train import fit_lightgcn  # the GNN trainer (and PyG) only when LightGCN is fitted

    train_config = lightgcn_config(config, int(pairs.size(1)), fixed=epochs is not None)
    with phase("lightgcn"):
        result = fit_lightgcn(
            pairs,
            num_users,
            num_items,
            train_config,
            val_fold=val_fold,
            epochs=epochs,
            desc=f"{desc}: lightgcn",
        )
        user_emb = result.user_emb.numpy().astype(np.float32)
        item_emb = result.item_emb.numpy().astype(np.float32)
    item_emb[cold] = 0.0  # untrained rows are initial noise
    if config.cold_embeddings and cold.any():
        with phase("cold_embeddings"):
            features = sp.hstack([knowledge, config.cold_year_weight * year_basis(snapshot.item_year.numpy())]).tocsr()
            item_emb[cold] = content_embeddings(features, item_emb, ~cold, config.cold_map_lambda)[cold]
    return user_emb, item_emb, result.best_epoch


def lightgcn_config(config: RankerConfig, positives: int, fixed: bool = False) -> TrainConfig:
    """The LightGCN component's training config for ``positives`` training pairs: above
    ``lightgcn_large_positives`` (and without a ``fixed`` epoch count), ``max_epochs`` bounded so that its
    optimiser steps × positives stay within ``lightgcn_large_budget``: each step propagates over every edge, so
    the fit costs O(budget) and its epochs, each at most ``epoch_edge_budget`` of work, stay linear in the positives.
    There too, a step's BPR loss is formed on at most ``lightgcn_large_step_pairs`` of its pairs, and early stopping
    waits ``lightgcn_large_patience`` rounds (its window as many) instead of the settings' own."""
    from gnn.train import epoch_batch_size

    train_config = config.train_config()
    limit = config.lightgcn_large_positives
    if fixed or limit is None or positives <= limit:
        return train_config
    steps = -(-positives // epoch_batch_size(train_config, positives))
    epochs = max(1, min(train_config.max_epochs, config.lightgcn_large_budget // (steps * positives)))
    update: dict[str, Any] = {"max_epochs": epochs}
    if config.lightgcn_large_step_pairs is not None:
        update["max_step_pairs"] = config.lightgcn_large_step_pairs
    if config.lightgcn_large_patience is not None:
        update["patience"] = config.lightgcn_large_patience
        update["val_window"] = min(train_config.val_window, config.lightgcn_large_patience)
        update["min_epochs"] = 0
    log.info(
        "LightGCN on %d positives: at most %d epochs of %d steps (lightgcn_large_budget), %s pairs a step, patience %d",
        positives,
        epochs,
        steps,
        update.get("max_step_pairs", "all"),
        update.get("patience", train_config.patience),
    )
    return train_config.model_copy(update=update)


def orderless_features(components: Components, config: RankerConfig) -> list[str]:
    """The features ``drop_orderless_features`` leaves out of the ranker for these fitted components: none when
    any fit positive has a time; else ``sequence`` (its transitions follow an order in time the data does not
    have), and ``ease_recent`` too when every interaction weight is the same (no play counts to order a history
    by either, so its recency weights would follow item ids)."""
    if not config.drop_orderless_features or not len(components.hist_times) or (components.hist_times >= 0).any():
        return []
    plays = components.hist_weights
    if plays is None or not len(plays) or float(plays.min()) == float(plays.max()):
        return ["sequence", "ease_recent"]
    return ["sequence"]


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
        reuse: An earlier component search's report (:func:`gnn.blend.search.reusable_search`): its choice is
            taken as it is instead of searching again, and recorded with ``"reused": true``.

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
        log.info(
            "component search: the earlier choice %s is kept (searched on %d fit positives, now %d)",
            reuse["chosen"],
            reuse["fit_positives"],
            split.fit.size(1),
        )
    timings: dict[str, float] = {}
    started = time.perf_counter()
    validation = split.validation()
    # LightGCN's early stopping ranks its validation users over every item every round: a bounded sample of them
    lightgcn_val = sample_fold_users(validation, config.lightgcn_max_val_users, config.seed)
    early = fit_components(snapshot, split.fit, config, val_fold=lightgcn_val, desc="fit components")
    timings["fit_components"] = time.perf_counter() - started
    probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, early)
    t = time.perf_counter()
    sample = sample_fold_users(validation, config.ranker_max_users, config.seed)
    # above ranker_max_items the features are kept on each user's best candidates (a bounded cube)
    large = config.ranker_max_items is not None and snapshot.num_items > config.ranker_max_items
    with phase("val_features"):
        data = validation_data(probe, sample, candidates=config.ranker_candidates if large else None)
    if config.component_search and reuse is None:
        with phase("component_search"):
            probe, search = search_components(snapshot, split.fit, probe, data)
        config = probe.config
        early = probe.components
    dropped = orderless_features(early, config)
    if dropped:  # decided from the data: recorded in the config and the report the artifact keeps
        kept = [f for f in (config.ranker_features or FEATURES) if f not in dropped]
        config = config.model_copy(update={"ranker_features": kept})
        log.info("no fit positive has a time: %s left out of the ranker", ", ".join(dropped))
    with phase("ranker_weights"):
        weights, report = fit_weights(data, config)
    report["dropped_features"] = dropped
    report["ranker_users"] = len(data.users)  # validation users the weights were fitted on
    if search is not None:
        report["component_search"] = search
    del data
    timings["fit_ranker"] = time.perf_counter() - t
    t = time.perf_counter()
    with phase("refit"):
        edges = split.train if final == "train" else all_positives(snapshot, split.min_rating)
        epochs = max(early.lightgcn_epochs, 1)
        keep = None  # above lightgcn_large_positives the early-stopped LightGCN is served as it is
        limit = config.lightgcn_large_positives
        if limit is not None and edges.size(1) > limit:
            keep = (early.user_emb, early.item_emb, early.lightgcn_epochs)
            log.info("LightGCN not refitted: %d positives > lightgcn_large_positives %d", edges.size(1), limit)
        components = fit_components(
            snapshot,
            edges,
            config,
            lightgcn_epochs=epochs,
            lightgcn=keep,
            als_init=early.als_items,  # used above als_large_positives only: a warm start, fewer rounds
            desc=f"refit on {final}",
        )
    timings["refit"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    meta = {
        "snapshot_id": snapshot.snapshot_id,
        "final": final,
        "split": split.describe(),
        "validation": report,
        "lightgcn_epochs": epochs,
        "timings": timings,
    }
    log.info(
        "ranker: %s weights %s, validation NDCG@20 %.4f", report["chosen"], report["weights"], report["val_ndcg20"]
    )
    groups = report.get("user_groups") or {}
    group_weights = groups.get("weights")
    return RankerModel(
        config,
        snapshot.users.ids,
        snapshot.items.ids,
        components,
        weights,
        meta,
        None if group_weights is None else np.asarray(group_weights, dtype=np.float32),
        groups.get("edges", []) if group_weights is not None else (),
    )
