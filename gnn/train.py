"""Training LightGCN or GraphSAGE with BPR: early stopping on validation, retraining on all of train, an artifact.

The pipeline reads top to bottom (:func:`train`):

1. fit on the split's *fit* part, measure NDCG@20 on *validation* every ``eval_every`` epochs, judge each round
   by the mean of the ``val_window`` rounds around it (one round is noisy, and the best of noisy rounds rewards
   the schedules that oscillate most), stop after ``patience`` rounds without a better mean and keep the
   weights of the best window's middle epoch;
2. retrain from scratch on all of *train* for that many epochs (``retrain``), or keep the early-stopped model;
3. evaluate on *test* with the protocol of ``gnn.evaluation``;
4. return an :class:`gnn.artifacts.Artifact`; :func:`save_artifact` writes it with its training curves (the
   jobs in :mod:`gnn.jobs` do: export → split → train → save).

Runs are seeded and deterministic on CPU: initialisation, shuffling and negative sampling draw from
generators seeded with ``config.seed``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import torch
from torch import Tensor
from torch.profiler import record_function
from tqdm.auto import tqdm

from gnn.artifacts import CATALOG_FILE, Artifact, ItemCatalog, code_version, write_artifact
from gnn.config import TrainConfig, resolve_device
from gnn.curves import plot_curves
from gnn.data import INTERACTED, REV_INTERACTED, GraphSnapshot
from gnn.evaluation import Fold, Split, embedding_score_fn, evaluate
from gnn.models import KnowledgeSAGE, LightGCN, NormalizedAdjacency, RelationGraph, bpr_loss, l2_penalty
from schema.errors import DataError

log = logging.getLogger(__name__)

VAL_METRIC = "ndcg@20"

#: Labels of a training step's phases (``torch.profiler.record_function``): a profile of a fit shows where its
#: time goes (``bench.lightgcn`` reads them; outside a profiler they cost next to nothing).
PHASES = {
    "negatives": "kgrec.negatives",  # batching and negative sampling
    "propagate": "kgrec.propagate",  # message passing to the final embeddings (and, in PyG's loop, the pair scores)
    "loss": "kgrec.loss",  # BPR and the L2 penalty
    "backward": "kgrec.backward",
    "optimizer": "kgrec.optimizer",
    "validation": "kgrec.validation",
}


@dataclass
class EpochRecord:
    """One epoch: mean BPR loss, validation NDCG@20 (when measured) and wall seconds of its training steps."""

    epoch: int
    loss: float
    val_ndcg: float | None
    seconds: float


@dataclass
class FitResult:
    """Outcome of one fit: final embeddings (of the best epoch when validating) and the history; ``best_val`` is
    the best window's mean validation NDCG@20 (``TrainConfig.val_window``)."""

    user_emb: Tensor
    item_emb: Tensor
    best_epoch: int
    best_val: float | None
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0


class NegativeSampler:
    """Uniform item_idx negatives that are not a positive of the user (rejection sampling).

    Args:
        positives: ``[2, n]`` (user_idx, item_idx) pairs to avoid.
        num_items: Item index space.
        generator: Seeded CPU generator.
        max_rounds: Resampling rounds; a negative still colliding after them is kept (dense users only).
    """

    def __init__(self, positives: Tensor, num_items: int, generator: torch.Generator, max_rounds: int = 10) -> None:
        self.num_items = num_items
        self.keys = torch.sort(positives[0] * num_items + positives[1]).values
        self.generator = generator
        self.max_rounds = max_rounds

    def _collides(self, users: Tensor, items: Tensor) -> Tensor:
        flat = users * self.num_items + items
        if self.keys.numel() == 0:
            return torch.zeros_like(flat, dtype=torch.bool)
        pos = torch.searchsorted(self.keys, flat).clamp(max=self.keys.numel() - 1)
        return self.keys[pos] == flat

    def sample(self, users: Tensor, n: int = 1) -> Tensor:
        """``[B]`` (n = 1) or ``[B, n]`` negatives for the (CPU) user_idx ``users``."""
        expanded = users.repeat_interleave(n)
        items = torch.randint(self.num_items, (expanded.numel(),), generator=self.generator)
        pending = torch.arange(expanded.numel())  # only redrawn items can newly collide
        for _ in range(self.max_rounds):
            bad = pending[self._collides(expanded[pending], items[pending])]
            if bad.numel() == 0:
                break
            items[bad] = torch.randint(self.num_items, (bad.numel(),), generator=self.generator)
            pending = bad
        return items if n == 1 else items.view(-1, n)


class _LightGCNRunner:
    """LightGCN: every train edge passes messages and supervises; L2 on the batch's layer-0 embeddings."""

    def __init__(
        self, train_edges: Tensor, num_users: int, num_items: int, config: TrainConfig, device: torch.device
    ) -> None:
        self.train_edges = train_edges
        self.adjacency = NormalizedAdjacency(train_edges, num_users, num_items, device)
        self.model = LightGCN(num_users, num_items, config.embedding_dim, config.num_layers, config.init_std).to(device)

    def epoch_parts(self, generator: torch.Generator) -> Iterator[Tensor]:
        yield self.train_edges

    def embed(self, training: bool) -> tuple[Tensor, Tensor]:
        return self.model(self.adjacency)

    def penalty(self, users: Tensor, pos: Tensor, neg: Tensor, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        ego_u, ego_p = self.model.ego(users, pos)
        return l2_penalty(ego_u, ego_p, self.model.ego(users, neg.reshape(-1))[1], batch_size=users.numel())


class _SAGERunner:
    """GraphSAGE: an epoch cuts the shuffled train edges into ``1 / supervision_ratio`` parts; each part in turn
    supervises while only the other parts pass messages, so the model never predicts an edge it can see and
    every edge supervises once per epoch. Evaluation passes messages on all train edges. Knowledge edges
    (genres, people, tags, follows, onboarding genres, user attributes) always pass messages; their mean-aggregation matrices
    are built once, the interactions' once per part (and once for evaluation)."""

    def __init__(self, snapshot: GraphSnapshot, train_edges: Tensor, config: TrainConfig, device: torch.device) -> None:
        self.train_edges = train_edges
        self.ratio = config.supervision_ratio
        self.device = device
        graph = snapshot.hetero_data(interaction_mask=torch.zeros(snapshot.num_interactions, dtype=torch.bool))
        self.num_nodes = {t: int(graph[t].num_nodes) for t in graph.node_types}
        knowledge: dict[tuple[str, str, str], Tensor] = {}
        for edge_type in graph.edge_types:
            src, rel, dst = edge_type
            index = graph[edge_type].edge_index
            if edge_type == INTERACTED or index.numel() == 0:
                continue
            if src == dst:  # follows: messages both ways along one relation
                knowledge[edge_type] = torch.cat([index, index.flip(0)], dim=1)
            else:
                knowledge[edge_type] = index
                knowledge[(dst, f"rev_{rel}", src)] = index.flip(0)
        edge_types = [*knowledge, INTERACTED, REV_INTERACTED]
        self.model = KnowledgeSAGE(
            edge_types, self.num_nodes, config.embedding_dim, config.num_layers, config.id_dropout, config.user_ids
        ).to(device)
        self.knowledge = RelationGraph(knowledge, self.num_nodes, device)
        self.full_graph = self.knowledge.with_edges(self._interactions(train_edges))
        self.message_graph = self.full_graph
        self.has_id = {
            "user": torch.bincount(train_edges[0], minlength=self.num_nodes["user"]).to(device) > 0,
            "item": torch.bincount(train_edges[1], minlength=self.num_nodes["item"]).to(device) > 0,
        }
        self.generator = torch.Generator().manual_seed(config.seed + 1)

    @staticmethod
    def _interactions(edges: Tensor) -> dict[tuple[str, str, str], Tensor]:
        return {INTERACTED: edges, REV_INTERACTED: edges.flip(0)}

    def epoch_parts(self, generator: torch.Generator) -> Iterator[Tensor]:
        n = self.train_edges.size(1)
        parts = max(1, round(1 / self.ratio))
        order = torch.randperm(n, generator=generator)
        for held in order.tensor_split(parts):
            keep = torch.ones(n, dtype=torch.bool)
            keep[held] = False
            self.message_graph = self.knowledge.with_edges(self._interactions(self.train_edges[:, keep]))
            yield self.train_edges[:, held]

    def embed(self, training: bool) -> tuple[Tensor, Tensor]:
        graph = self.message_graph if training else self.full_graph
        out = self.model(graph, self.has_id, self.generator if training else None)
        return out["user"], out["item"]

    def penalty(self, users: Tensor, pos: Tensor, neg: Tensor, user_emb: Tensor, item_emb: Tensor) -> Tensor:
        return l2_penalty(user_emb[users], item_emb[pos], item_emb[neg.reshape(-1)], batch_size=users.numel())


class FitOptions(TypedDict, total=False):
    """How a fit runs (the keyword arguments of :func:`fit_lightgcn` and :func:`fit_graphsage`).

    Attributes:
        val_fold: When given, validation NDCG@20 every ``eval_every`` epochs, early stopping, and the
            returned embeddings are those of the best epoch.
        epochs: Fixed epoch count (default ``config.max_epochs``).
        desc: Progress bar label (default ``train``).
    """

    val_fold: Fold | None
    epochs: int | None
    desc: str


#: Pairs whose BPR loss is formed at once: a larger batch (``epoch_edge_budget``) is taken in chunks of this many,
#: their gradients summed on the propagated embeddings before one backward pass through the propagation.
LOSS_CHUNK = 65_536


def epoch_batch_size(config: TrainConfig, positives: int) -> int:
    """LightGCN's batch for ``positives`` training pairs: ``batch_size``, or larger so that an epoch takes at most
    ``epoch_edge_budget // positives`` steps (at least one) when the budget is set (each step propagates over every
    edge, so an epoch of ``positives / batch_size`` steps would cost ``positives²``)."""
    size = config.batch_size
    if config.epoch_edge_budget is not None and positives > 0:
        max_steps = max(1, config.epoch_edge_budget // positives)
        if -(-positives // size) > max_steps:
            size = -(-positives // max_steps)
    return size


def _chunked_backward(
    runner: _LightGCNRunner | _SAGERunner,
    reg: float,
    user_emb: Tensor,
    item_emb: Tensor,
    users: Tensor,
    pos: Tensor,
    neg: Tensor,
) -> float:
    """The loss and gradients of one large batch, :data:`LOSS_CHUNK` pairs at a time: each chunk's BPR loss and
    penalty (weighted by its share of the batch, so the sum is the batch's mean) are differentiated against
    detached copies of the propagated embeddings (and the layer-0 rows the penalty reads), then the summed
    gradients go back through the propagation once. Returns the batch's loss."""
    total_pairs = users.numel()
    leaf_u = user_emb.detach().requires_grad_(True)
    leaf_i = item_emb.detach().requires_grad_(True)
    value = 0.0
    for lo in range(0, total_pairs, LOSS_CHUNK):
        u, p, n = users[lo : lo + LOSS_CHUNK], pos[lo : lo + LOSS_CHUNK], neg[lo : lo + LOSS_CHUNK]
        share = u.numel() / total_pairs
        with record_function(PHASES["loss"]):
            loss = bpr_loss(leaf_u, leaf_i, u, p, n) + reg * runner.penalty(u, p, n, leaf_u, leaf_i)
            loss = loss * share
        with record_function(PHASES["backward"]):
            loss.backward()  # the penalty's layer-0 rows reach the model's parameters directly
        value += float(loss.detach())
    with record_function(PHASES["backward"]):
        torch.autograd.backward([user_emb, item_emb], [leaf_u.grad, leaf_i.grad])
    return value


def evaluated_rows(fold: Fold) -> Fold:
    """The fold with ``train`` kept to its evaluation users' rows: all that validation NDCG@20 reads of it (their
    own items are excluded from their rankings), so every round scores the same while it no longer sorts or scans
    every training positive (coverage and novelty, which read the rest, are not what early stopping looks at)."""
    keep = torch.isin(fold.train[0], fold.eval_users)
    if bool(keep.all()):
        return fold
    return dataclasses.replace(fold, train=fold.train[:, keep])


def fit_lightgcn(
    train_edges: Tensor, num_users: int, num_items: int, config: TrainConfig, **options: Unpack[FitOptions]
) -> FitResult:
    """Fit LightGCN with BPR on ``train_edges``.

    Args:
        train_edges: ``[2, n]`` (user_idx, item_idx) positives (message passing and supervision).
        num_users, num_items: Index spaces.
        config: Hyper-parameters.
        **options: :class:`FitOptions` (validation fold, fixed epoch count, progress label).

    Returns:
        Final (or best) embeddings on CPU and the per-epoch history.
    """
    device = _prepare(config)
    runner = _LightGCNRunner(train_edges, num_users, num_items, config, device)
    return _fit(runner, train_edges, num_items, config, device, options)


def fit_graphsage(
    snapshot: GraphSnapshot, train_edges: Tensor, config: TrainConfig, **options: Unpack[FitOptions]
) -> FitResult:
    """Fit the inductive :class:`gnn.models.KnowledgeSAGE` with BPR (arguments as :func:`fit_lightgcn`).

    Args:
        snapshot: Gives the knowledge graph (its interactions are NOT used: ``train_edges`` are).
        train_edges: ``[2, n]`` (user_idx, item_idx) positives.
    """
    device = _prepare(config)
    runner = _SAGERunner(snapshot, train_edges, config, device)
    return _fit(runner, train_edges, snapshot.num_items, config, device, options)


def _prepare(config: TrainConfig) -> torch.device:
    device = resolve_device(config.device)
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    return device


def _fit(
    runner: _LightGCNRunner | _SAGERunner,
    train_edges: Tensor,
    num_items: int,
    config: TrainConfig,
    device: torch.device,
    options: FitOptions,
) -> FitResult:
    """The BPR loop shared by both models: shuffle, sample negatives, step; validate; stop early."""
    unknown = set(options) - FitOptions.__optional_keys__
    if unknown:
        raise TypeError(f"unknown fit options {sorted(unknown)}")
    val_fold, epochs, desc = options.get("val_fold"), options.get("epochs"), options.get("desc", "train")
    started = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    model = runner.model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    sampler = NegativeSampler(train_edges, num_items, generator)
    max_epochs = epochs if epochs is not None else config.max_epochs

    history: list[EpochRecord] = []
    best_val: float | None = None
    best_epoch = 0
    best_state: dict[str, Tensor] | None = None
    rounds_without_gain = 0
    # the last val_window rounds' NDCG@20, and the weights of the rounds a window can still stand for (its middle)
    # (no longer than the rounds the fit can have, so that one window always fills)
    window = min(config.val_window, max(1, max_epochs // config.eval_every))
    window_vals: deque[float] = deque(maxlen=window)
    window_states: deque[tuple[int, dict[str, Tensor]]] = deque(maxlen=window // 2 + 1)
    batch_size = (
        epoch_batch_size(config, train_edges.size(1)) if isinstance(runner, _LightGCNRunner) else config.batch_size
    )
    step_pairs = config.max_step_pairs or batch_size  # a step's supervising pairs (LightGCN at size: a sample)
    if val_fold is not None:
        val_fold = evaluated_rows(val_fold)
    bar = tqdm(range(1, max_epochs + 1), desc=desc, unit="epoch", disable=not config.progress, leave=False)
    for epoch in bar:
        epoch_start = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        for supervision in runner.epoch_parts(generator):
            n = supervision.size(1)
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, batch_size):
                with record_function(PHASES["negatives"]):
                    index = order[start : start + min(batch_size, step_pairs)]
                    users, pos = supervision[0, index], supervision[1, index]
                    neg = sampler.sample(users, config.negatives)
                    users, pos, neg = users.to(device), pos.to(device), neg.to(device)
                with record_function(PHASES["propagate"]):
                    user_emb, item_emb = runner.embed(training=True)
                optimizer.zero_grad(set_to_none=True)
                if users.numel() <= LOSS_CHUNK:
                    with record_function(PHASES["loss"]):
                        loss = bpr_loss(user_emb, item_emb, users, pos, neg)
                        loss = loss + config.reg * runner.penalty(users, pos, neg, user_emb, item_emb)
                    with record_function(PHASES["backward"]):
                        loss.backward()
                    value = float(loss.detach())
                else:
                    value = _chunked_backward(runner, config.reg, user_emb, item_emb, users, pos, neg)
                with record_function(PHASES["optimizer"]):
                    optimizer.step()
                total += value * index.numel()
                seen += index.numel()
        record = EpochRecord(epoch, total / max(seen, 1), None, time.perf_counter() - epoch_start)
        if val_fold is not None and epoch % config.eval_every == 0:
            model.eval()
            with torch.no_grad(), record_function(PHASES["validation"]):
                user_emb, item_emb = runner.embed(training=False)
                record.val_ndcg = evaluate(embedding_score_fn(user_emb, item_emb), val_fold, ks=(20,))[VAL_METRIC]
            window_vals.append(record.val_ndcg)
            window_states.append((epoch, copy.deepcopy(model.state_dict())))
            if len(window_vals) == window_vals.maxlen:
                smoothed = sum(window_vals) / len(window_vals)
                if best_val is None or smoothed > best_val:
                    best_val, rounds_without_gain = smoothed, 0
                    best_epoch, best_state = window_states[0]
                else:
                    rounds_without_gain += 1
        history.append(record)
        schedule.step()
        bar.set_postfix(loss=f"{record.loss:.4f}", val=f"{best_val or 0:.4f}")
        if val_fold is not None and rounds_without_gain >= config.patience and epoch >= config.min_epochs:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = runner.embed(training=False)
    return FitResult(user_emb.cpu(), item_emb.cpu(), best_epoch, best_val, history, time.perf_counter() - started)


def train(
    snapshot: GraphSnapshot,
    split: Split,
    config: TrainConfig,
) -> Artifact:
    """Train on a split and measure on its test part (see the module docstring).

    Args:
        snapshot: The graph the split was made from (id maps, genres for diversity).
        split: Positives divided into fit / validation / test.
        config: Hyper-parameters.

    Returns:
        The artifact (not written yet): embeddings, id maps, config, seed, snapshot id, code version,
        validation and test metrics, history, timings.

    Raises:
        ConfigError: The device is unavailable.
        DataError: The split belongs to another snapshot.
    """
    if split.snapshot_id != snapshot.snapshot_id:
        raise DataError(f"split of snapshot {split.snapshot_id} used with snapshot {snapshot.snapshot_id}")
    genres = snapshot.item_genre_matrix()
    validation = split.validation()
    early = _fit_model(snapshot, split.fit, config, val_fold=validation, desc="fit+validate")
    val_metrics = evaluate(embedding_score_fn(early.user_emb, early.item_emb), validation, item_features=genres)
    timings = {"validation_fit": early.seconds}
    serving = config.final_fit == "all"
    if config.retrain or serving:
        edges = torch.cat([split.train, split.test], dim=1) if serving else split.train
        final = _fit_model(
            snapshot, edges, config, epochs=max(early.best_epoch, 1), desc=f"refit on {config.final_fit}"
        )
        timings["retrain"] = final.seconds
    else:
        final = early
    test_metrics: dict[str, Any] | None = None
    if not serving:  # a model that learned from the test positives has no honest test figure
        started = time.perf_counter()
        test_metrics = evaluate(
            embedding_score_fn(final.user_emb, final.item_emb), split.testing(), item_features=genres
        )
        timings["test_scoring"] = time.perf_counter() - started
    log.info(
        "%s: best epoch %d, validation %s, test %s",
        config.model,
        early.best_epoch,
        val_metrics[VAL_METRIC],
        test_metrics[VAL_METRIC] if test_metrics else "not measured (final fit on all positives)",
    )
    return Artifact(
        model=config.model,
        user_ids=snapshot.users.ids,
        item_ids=snapshot.items.ids,
        user_embeddings=final.user_emb,
        item_embeddings=final.item_emb,
        config=config.model_dump(mode="json"),
        seed=config.seed,
        snapshot_id=snapshot.snapshot_id,
        code_version=code_version(),
        metrics={
            "best_epoch": early.best_epoch,
            "split": split.describe(),
            "validation": val_metrics,
            "test": test_metrics,
        },
        history=[record.__dict__ for record in early.history],
        timings=timings,
    )


def _fit_model(snapshot: GraphSnapshot, edges: Tensor, config: TrainConfig, **options: Unpack[FitOptions]) -> FitResult:
    if config.model == "graphsage":
        return fit_graphsage(snapshot, edges, config, **options)
    return fit_lightgcn(edges, snapshot.num_users, snapshot.num_items, config, **options)


def save_artifact(artifact: Artifact, root: Path, catalog: ItemCatalog | None = None) -> Path:
    """Write the artifact with its training curves (and the item catalog, when given) under ``root``."""
    title = f"{artifact.model} on snapshot {artifact.snapshot_id}"
    files = {
        "curves.png": plot_curves(
            artifact.history, title, artifact.metrics.get("best_epoch"), int(artifact.config.get("val_window", 1))
        )
    }
    if catalog is not None:
        files[CATALOG_FILE] = catalog.to_bytes()
    return write_artifact(artifact, root, files=files)
