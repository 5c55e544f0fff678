"""The recommendation service: one ranked, explained list per request.

Two paths, the first when a learned model is loaded (see :mod:`api.model`) and the request names no sources:

* **model path** — one query reads the user's live interactions (:func:`graph.explain.user_context`); the model
  scores every item from them (a just-posted interaction counts at once); the best unseen items go, in one
  query, to :func:`graph.explain.explain_items`, which applies the business filters and returns the graph
  paths from the user to each item; maximal marginal relevance re-ranks for diversity (``mmr_lambda``); a blend
  then fills its reserved new-arrival positions with items nobody has liked yet (``RankerConfig.cold_slots``,
  :func:`gnn.ranker.reserve_cold_slots`, the policy bench.quality measures). If
  Neo4j is unreachable, the model answers from the interactions it was fitted on, ``degraded: true``, without
  paths, the genre and year filters applied from the item catalog saved with the model (503 only for users
  the model does not know).
* **graph path** — every named recall source (Cypher: collaborative, knowledge, social, popularity, and
  embedding through the vector index) runs in parallel; each source's scores are divided by that source's
  best score, weighted and summed per item; an item keeps the paths of every source that found it. If
  some sources fail the rest answer with ``degraded: true``; if all fail → 503. Users without positives
  (onboarding) take this path too: popularity in their preferred genres.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TypeVar

from neo4j import Driver
from neo4j.exceptions import DriverError, Neo4jError

import numpy as np

from api.metrics import Metrics
from api.model import ModelHolder, ServingModel
from api.schemas import RecommendationsResponse, RecommendedItem, SimilarItemsResponse
from api.settings import ApiSettings
from graph import recall
from graph.embeddings import recall_embedding
from graph.explain import MAX_EXPLAIN_ITEMS, explain_items, strongest_seeds
from graph.paths import Explanation
from graph.reads import item_exists, most_active_users, read_user_preferred_genres, user_context, user_fingerprint
from graph.recall import Candidate, RecallFilters
from schema.errors import DatabaseUnavailableError, KgrecError

log = logging.getLogger(__name__)

MODEL_VERSION = "graph-recall-v1"

#: Every user recall source the graph path can run, by name.
SOURCES: dict[str, recall.RecallStrategy] = {**recall.STRATEGIES, "embedding": recall_embedding}
MAX_ID_LENGTH = 1024
T = TypeVar("T")
#: What an unreachable Neo4j raises (through kgrec's own wrappers or straight from the driver).
_UNREACHABLE = (DatabaseUnavailableError, DriverError, Neo4jError, OSError)
MAX_EXPLANATIONS = 3


class UnknownEntityError(KgrecError):
    """The user or item does not exist (→ 404)."""


class UnknownSourceError(KgrecError):
    """A requested recall source does not exist (→ 422)."""


@dataclass
class _Blended:
    item_id: str
    title: str | None = None
    score: float = 0.0
    sources: dict[str, float] = field(default_factory=dict)
    explanations: list[tuple[float, Explanation]] = field(default_factory=list)


def blend(
    results: dict[str, list[Candidate]], weights: dict[str, float], k: int, explain: bool = True
) -> list[RecommendedItem]:
    """Combine per-source candidate lists into one ranked list.

    Args:
        results: Candidates per source name, each list best first.
        weights: Blend weight per source (missing = 1.0).
        k: Items to return.
        explain: Keep explanation paths.

    Returns:
        At most ``k`` items, by blended score, ties by item id.
    """
    merged: dict[str, _Blended] = {}
    for source, candidates in results.items():
        if not candidates:
            continue
        top = max(c.score for c in candidates) or 1.0
        weight = weights.get(source, 1.0)
        for c in candidates:
            norm = c.score / top if top > 0 else 0.0
            entry = merged.setdefault(c.item_id, _Blended(c.item_id))
            entry.title = entry.title or c.title
            entry.score += weight * norm
            entry.sources[source] = round(norm, 4)
            if explain:
                entry.explanations.extend((weight * norm, e) for e in c.explanations)
    ranked = sorted(merged.values(), key=lambda b: (-b.score, b.item_id))[:k]
    return [
        RecommendedItem(
            item_id=b.item_id,
            title=b.title,
            score=round(b.score, 6),
            sources=b.sources,
            explanations=[e for _, e in sorted(b.explanations, key=lambda p: -p[0])[:MAX_EXPLANATIONS]],
        )
        for b in ranked
    ]


class Answer:
    """A computed answer with its JSON already rendered, item by item, so that any first ``k`` items are served
    by joining bytes (a cache hit costs no model validation or serialisation).

    Args:
        response: The full answer (its items are the cached pool, best first).
    """

    __slots__ = ("response", "_head", "_items")

    def __init__(self, response: RecommendationsResponse) -> None:
        self.response = response
        head = response.model_dump_json(exclude={"items"}).encode()  # b'{"user_id":..,"degraded":false}'
        self._head = head[:-1] + b',"items":['
        self._items = [item.model_dump_json().encode() for item in response.items]

    def first(self, k: int) -> RecommendationsResponse:
        """The answer cut to its first ``k`` items."""
        return self.response.model_copy(update={"items": self.response.items[:k]})

    def json(self, k: int) -> bytes:
        """The JSON body of :meth:`first` (``k``), exactly as FastAPI would render it, without re-rendering."""
        return self._head + b",".join(self._items[:k]) + b"]}"


class ResponseCache:
    """Answers (model and graph path), keyed by the request *and the user's interaction fingerprint as just read*.

    A new interaction changes the key, so it is reflected at once; what can age (for at most ``ttl``
    seconds) is only what other users did since: the explanation paths through them and nothing else.
    Thread-safe LRU; ``size`` 0 disables it.
    """

    def __init__(self, size: int, ttl: float, metrics: Metrics | None = None) -> None:
        self.size = size
        self.ttl = ttl
        self.metrics = metrics
        self._entries: OrderedDict[tuple, tuple[float, Answer]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Answer | None:
        if self.size <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] <= self.ttl:
                self._entries.move_to_end(key)
                hit = entry[1]
            else:
                hit = None
                if entry is not None:
                    del self._entries[key]
        if self.metrics is not None:
            self.metrics.cache.labels("hit" if hit is not None else "miss").inc()
        return hit

    def put(self, key: tuple, value: Answer) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            entries = len(self._entries)
        if self.metrics is not None:
            self.metrics.cache_entries.set(entries)


def mmr(relevance: np.ndarray, vectors: np.ndarray | None, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: pick ``k`` positions greedily by ``λ·rel − (1−λ)·max cos(to picked)``.

    Args:
        relevance: ``[n]`` scores of the pool, best first or not (min-max scaled here).
        vectors: ``[n, d]`` unit vectors of the pool (None, or ``lam >= 1``: plain relevance order).
        k: Items to pick.
        lam: Trade-off in [0, 1]; 1 = relevance only.

    Returns:
        Positions into the pool, in pick order.
    """
    n = len(relevance)
    order = [int(i) for i in np.argsort(-relevance, kind="stable")]
    if vectors is None or lam >= 1.0 or n <= 1:
        return order[:k]
    span = float(relevance.max() - relevance.min()) or 1.0
    rel = (relevance - relevance.min()) / span
    picked = [order[0]]
    closest = vectors @ vectors[order[0]]
    available = np.ones(n, dtype=bool)
    available[order[0]] = False
    while len(picked) < min(k, n):
        gain = np.where(available, lam * rel - (1.0 - lam) * closest, -np.inf)
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        closest = np.maximum(closest, vectors @ vectors[best])
    return picked


class Recommender:
    """Answers recommendation requests from Neo4j (one instance per app, thread-safe).

    Args:
        driver: Open driver (thread-safe).
        settings: API settings (weights, limits).
        executor: Runs recall sources in parallel.
        metrics: Where query times go.
        database: Neo4j database name.
    """

    def __init__(
        self,
        driver: Driver,
        settings: ApiSettings,
        executor: Executor,
        metrics: Metrics,
        database: str = "neo4j",
        models: ModelHolder | None = None,
    ) -> None:
        self.driver = driver
        self.settings = settings
        self.executor = executor
        self.metrics = metrics
        self.database = database
        self.models = models
        self.cache = ResponseCache(settings.response_cache_size, settings.response_cache_seconds, metrics)

    @property
    def source_names(self) -> list[str]:
        return list(SOURCES)

    @property
    def model(self) -> ServingModel | None:
        return self.models.model if self.models is not None else None

    def recommend(
        self,
        user_id: str,
        k: int,
        *,
        explain: bool = True,
        sources: Sequence[str] | None = None,
        filters: RecallFilters | None = None,
    ) -> RecommendationsResponse:
        """Top-k items for a known user.

        Raises:
            UnknownEntityError: The user does not exist.
            UnknownSourceError: A source name is not a recall strategy.
            DatabaseUnavailableError: Neo4j is unreachable (no source could answer).
        """
        answer, size = self.answer(user_id, k, explain=explain, sources=sources, filters=filters)
        return answer.first(size)

    def answer(
        self,
        user_id: str,
        k: int,
        *,
        explain: bool = True,
        sources: Sequence[str] | None = None,
        filters: RecallFilters | None = None,
    ) -> tuple[Answer, int]:
        """The answer behind :meth:`recommend` and how many of its items to send (``k`` or fewer); the HTTP
        route sends ``answer.json(size)``, so a cache hit is a join of bytes.

        Both paths cache their answers keyed by the request and the user's interaction fingerprint
        (:func:`graph.explain.user_fingerprint`: one index seek), so a repeated request costs that seek and a
        join of bytes, and any new interaction is a miss.
        """
        names = self._check_sources(sources)
        filters = filters or RecallFilters()
        if len(user_id) > MAX_ID_LENGTH:
            raise UnknownEntityError(f"unknown user {user_id[:100]!r}")
        model = self.model if not sources else None
        try:
            fingerprint = self._stage("user_fingerprint", lambda: user_fingerprint(self.driver, user_id, self.database))
        except _UNREACHABLE as exc:
            if model is not None:
                return self._degraded(model, user_id, k, filters, exc)
            raise DatabaseUnavailableError(f"Neo4j is unreachable (user): {' '.join(str(exc).split())}") from exc
        if fingerprint is None:
            raise UnknownEntityError(f"unknown user {user_id[:100]!r}")
        if model is not None and fingerprint[0] > 0:
            answered = self._recommend_with_model(model, user_id, k, explain, filters, fingerprint)
            if answered is not None:
                return answered
        # The graph path: users without positives (onboarding), requests naming sources, or no model.
        wanted, k = k, max(k, self.settings.response_cache_pool)  # as on the model path: smaller k are slices
        key = ("graph", user_id, k, explain, tuple(names), filters.model_dump_json(), fingerprint)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, wanted
        fetch = min(max(3 * k, 30), 300)
        preferred = self.guard("preferences", lambda: read_user_preferred_genres(self.driver, user_id, self.database))

        def call(name: str) -> Callable[[], list[Candidate]]:
            source_filters = filters
            if name == "popularity" and preferred and not filters.include_genres:
                source_filters = filters.model_copy(update={"include_genres": preferred})
            return lambda: SOURCES[name](
                self.driver, user_id, k=fetch, filters=source_filters, database=self.database
            )

        results, failed = self._run({name: call(name) for name in names})
        if failed and len(failed) == len(names):
            raise DatabaseUnavailableError(f"every recall source failed: {', '.join(sorted(failed))}")
        items = blend(results, self.settings.source_weights, k, explain)
        response = RecommendationsResponse(user_id=user_id, model_version=MODEL_VERSION, degraded=bool(failed), items=items)
        answer = Answer(response)
        if not failed:  # a partial (degraded) answer is never reused
            self.cache.put(key, answer)
        return answer, wanted

    def _recommend_with_model(
        self, model: ServingModel, user_id: str, k: int, explain: bool, filters: RecallFilters,
        fingerprint: tuple | None = None,
    ) -> tuple[Answer, int] | None:
        """The model path (module docstring): the answer and how many of its items were asked for; None = no
        positives: let the graph path answer. ``fingerprint``: the user's, if already read."""
        if fingerprint is None:
            try:
                fingerprint = self._stage("user_fingerprint", lambda: user_fingerprint(self.driver, user_id, self.database))
            except _UNREACHABLE as exc:
                return self._degraded(model, user_id, k, filters, exc)
            if fingerprint is None:
                raise UnknownEntityError(f"unknown user {user_id[:100]!r}")
        if fingerprint[0] == 0:
            return None  # no interactions yet (onboarding): the graph path answers
        # The answer for the first `pool` items is computed and cached; greedy MMR is prefix-stable, so any
        # k <= pool is a slice of it. The key holds the fingerprint of the user's interactions: a new one misses.
        wanted, k = k, max(k, self.settings.response_cache_pool)
        key = (user_id, k, explain, filters.model_dump_json(), model.kind, model.version, fingerprint)
        cached = self.cache.get(key)
        if cached is not None:
            return cached, wanted
        try:
            context = self._stage("user_context", lambda: user_context(self.driver, user_id, self.database))
        except _UNREACHABLE as exc:
            return self._degraded(model, user_id, wanted, filters, exc)
        if context is None:
            raise UnknownEntityError(f"unknown user {user_id[:100]!r}")
        min_rating = self.settings.min_rating
        positives = [(i.item_id, i.timestamp) for i in context.interactions if i.rating is None or i.rating >= min_rating]
        if not positives:
            return None
        seen = {i.item_id for i in context.interactions} | set(filters.exclude_items)
        seeds = strongest_seeds(context, min_rating=min_rating)  # spares the explain query a second history scan
        scores = self._stage("model", lambda: model.scores(user_id, positives))
        ranked = self._ranked_unseen(model, scores, seen)
        cold = self._cold_unseen(model, scores, seen, k)  # new-arrival candidates (blend: RankerConfig.cold_slots)

        # Explain the best unseen items; the query drops those that fail the filters, so ask for more if needed.
        # Explaining is the costly query of a miss, and its cost grows with the items asked about: ask for k
        # when nothing can drop items (exclude_items are already unseen-masked); with genre or year filters ask
        # for half as many again; MMR picks from twice k so that it has a choice.
        want = k
        if filters.narrows:
            want = max(want, k + k // 2, 20)
        if self.settings.mmr_lambda < 1.0:
            want = max(want, 2 * k)
        want = min(want, MAX_EXPLAIN_ITEMS)
        survivors: dict[str, object] = {}
        start = 0
        # The new-arrival candidates ride along in the first explain query (the filters apply to them too) but
        # stay out of MMR's pool, which holds the ranked items only, as without new arrivals.
        head = set(ranked[:want])
        # (three per reserved position, more when filters may drop some: each explained item costs the query)
        spare = 3 * getattr(model, "cold_slots", 0) + (k if filters.narrows else 0)
        extra = [model.item_ids[i] for i in cold if i not in head][: max(min(MAX_EXPLAIN_ITEMS - want, spare), 0)]
        arrivals: dict[str, object] = {}
        while len(survivors) < want and start < len(ranked) and start < 5 * MAX_EXPLAIN_ITEMS:
            batch = [model.item_ids[i] for i in ranked[start : start + MAX_EXPLAIN_ITEMS if start else want]]
            start += len(batch)
            in_ranking = set(batch)
            explained = self._stage("explain", lambda batch=batch + extra: self.guard("explain", lambda: explain_items(
                self.driver, user_id, batch, max_paths=MAX_EXPLANATIONS if explain else 0, filters=filters,
                seed_ids=seeds, database=self.database,
            )))
            extra = []
            for item_id, entry in explained.items():
                (survivors if item_id in in_ranking else arrivals)[item_id] = entry
        pool = list(survivors)
        index = model.item_index
        rows = np.array([index[i] for i in pool], dtype=np.int64)
        picked = [int(rows[p]) for p in self._diversify(model, scores, rows, k)]
        if cold:  # the policy the benchmark measures (gnn.ranker.reserve_cold_slots)
            survivors.update(arrivals)
            picked = model.place_cold(picked, scores, k, [i for i in cold if model.item_ids[i] in survivors])
        top = float(scores[picked[0]]) if picked else 1.0
        items = []
        for row in picked:
            entry = survivors[model.item_ids[row]]
            score = float(scores[row])
            items.append(RecommendedItem(
                item_id=entry.item_id, title=entry.title, score=round(score, 6),
                sources={model.kind: round(score / top, 4) if top > 0 else 0.0},
                explanations=list(entry.explanations) if explain else [],
            ))
        answer = Answer(RecommendationsResponse(user_id=user_id, model_version=f"{model.kind}-{model.version}", items=items))
        self.cache.put(key, answer)
        return answer, wanted

    def warm_cache(self, limit: int, stop: threading.Event | None = None) -> int:
        """Precompute the unfiltered answers of the ``limit`` most active users (in the background after a load).

        The model's users by activity when a model serves, else the graph's (graph recall answers); each is
        answered exactly as a request for ``response_cache_pool`` items would be, so later requests for up to
        that many items are cache hits.

        Returns:
            How many users were answered; stops early when ``stop`` is set, the model changes or Neo4j fails.
        """
        if self.cache.size <= 0 or limit <= 0:
            return 0
        model = self.model
        try:
            users = model.users_by_activity()[:limit] if model is not None else self.guard(
                "most active users", lambda: most_active_users(self.driver, limit, self.database))
        except DatabaseUnavailableError as exc:
            log.warning("answer cache not warmed: %s", exc)
            return 0
        done = 0
        for user_id in users:
            if (stop is not None and stop.is_set()) or self.model is not model:
                break
            try:
                answer, _ = self.answer(user_id, self.settings.response_cache_pool)
            except UnknownEntityError:
                continue  # known to the model, gone from the graph
            except DatabaseUnavailableError:
                break
            if answer.response.degraded:
                break  # Neo4j went away: nothing more worth caching
            done += 1
        what = f"{model.kind} {model.version}" if model is not None else "graph recall"
        log.info("answer cache warmed for %d users of %s", done, what)
        return done

    def _ranked_unseen(self, model: ServingModel, scores: np.ndarray, seen: set[str], limit: int = 600) -> list[int]:
        index = model.item_index
        masked = scores.copy()
        banned = [index[i] for i in seen if i in index]
        masked[banned] = -np.inf
        limit = min(limit, len(masked))
        top = np.argpartition(-masked, limit - 1)[:limit] if limit < len(masked) else np.arange(len(masked))
        top = top[np.isfinite(masked[top])]
        return [int(i) for i in top[np.lexsort((top, -masked[top]))]]

    def _cold_unseen(self, model: ServingModel, scores: np.ndarray, seen: set[str], k: int) -> list[int]:
        """Rows of the unseen cold items a blend may put in its reserved new-arrival positions, best first (a
        few more than it has positions, for the ones the filters drop); none for other models."""
        slots = getattr(model, "cold_slots", 0)
        if not slots:
            return []
        masked = scores.copy()
        masked[[model.item_index[i] for i in seen if i in model.item_index]] = -np.inf
        return model.cold_candidates(masked, 3 * slots + k)

    def _diversify(self, model: ServingModel, scores: np.ndarray, rows: np.ndarray, k: int) -> list[int]:
        if len(rows) == 0:
            return []
        vectors = model.item_vectors()
        return mmr(scores[rows].astype(np.float64), None if vectors is None else vectors[rows], k,
                   self.settings.mmr_lambda)

    def _degraded(
        self, model: ServingModel, user_id: str, k: int, filters: RecallFilters, cause: Exception
    ) -> tuple[Answer, int]:
        """Neo4j is away: rank from the interactions the model was fitted on, without paths or titles; the genre and
        year filters come from the model's item catalog."""
        if not model.knows_user(user_id):
            raise DatabaseUnavailableError(
                f"Neo4j is unreachable and the model does not know user {user_id[:100]!r}: {' '.join(str(cause).split())}"
            )
        history = model.fitted_history(user_id)
        scores = model.scores(user_id, history)
        candidates = scores
        if filters.narrows:
            if model.catalog is None:
                raise DatabaseUnavailableError(
                    f"Neo4j is unreachable and model {model.kind}-{model.version} has no item catalog to apply the "
                    "genre and year filters with (retrain to add one); ask without filters for a degraded list"
                )
            allowed = model.catalog.mask(include_genres=filters.include_genres, exclude_genres=filters.exclude_genres,
                                         year_min=filters.year_min, year_max=filters.year_max)
            candidates = np.where(allowed, scores, -np.inf).astype(scores.dtype)
        excluded = {i for i, _ in history} | set(filters.exclude_items)
        ranked = self._ranked_unseen(model, candidates, excluded)
        rows = np.array(ranked[: max(3 * k, 30)], dtype=np.int64)
        picked = [int(rows[p]) for p in self._diversify(model, scores, rows, k)]
        cold = self._cold_unseen(model, candidates, excluded, k)
        if cold:  # the same new-arrival positions as the live path
            picked = model.place_cold(picked, scores, k, cold)
        top = float(scores[picked[0]]) if picked else 1.0
        items = [
            RecommendedItem(
                item_id=model.item_ids[row], title=None, score=round(float(scores[row]), 6),
                sources={model.kind: round(float(scores[row]) / top, 4) if top > 0 else 0.0}, explanations=[],
            )
            for row in picked
        ]
        log.warning("degraded answer for user %s: %s", user_id[:100], cause)
        response = RecommendationsResponse(
            user_id=user_id, model_version=f"{model.kind}-{model.version}", degraded=True, items=items
        )
        return Answer(response), len(items)

    def similar(self, item_id: str, k: int, *, explain: bool = True) -> SimilarItemsResponse:
        """Items similar to ``item_id``.

        Raises:
            UnknownEntityError: The item does not exist.
        """
        if len(item_id) > MAX_ID_LENGTH or not self.guard("item_exists", lambda: item_exists(self.driver, item_id, database=self.database)):
            raise UnknownEntityError(f"unknown item {item_id[:100]!r}")
        candidates = self._stage("similar", lambda: recall.similar_items(self.driver, item_id, k=k, database=self.database))
        return SimilarItemsResponse(item_id=item_id, items=blend({"similar": candidates}, {}, k, explain))

    def _check_sources(self, sources: Sequence[str] | None) -> list[str]:
        names = list(sources) if sources else self.source_names
        unknown = [n for n in names if n not in SOURCES]
        if unknown:
            raise UnknownSourceError(f"unknown source(s) {unknown}; available: {self.source_names}")
        return names

    def _stage(self, name: str, fn: Callable[[], T]) -> T:
        """Run one stage of a request and record its time (``kgrec_recall_query_seconds{strategy=name}``)."""
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self.metrics.recall_seconds.labels(name).observe(time.perf_counter() - started)

    def guard(self, what: str, fn: Callable[[], object]):  # noqa: ANN202 - returns fn's result
        try:
            return fn()
        except (DriverError, Neo4jError, OSError) as exc:
            raise DatabaseUnavailableError(f"Neo4j is unreachable ({what}): {' '.join(str(exc).split())}") from exc

    def _run(self, calls: dict[str, Callable[[], list[Candidate]]]) -> tuple[dict[str, list[Candidate]], set[str]]:
        futures = {name: self.executor.submit(self._stage, name, fn) for name, fn in calls.items()}
        results: dict[str, list[Candidate]] = {}
        failed: set[str] = set()
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except (KgrecError, DriverError, Neo4jError, OSError) as exc:
                log.warning("recall source %s failed: %s", name, exc)
                self.metrics.recall_errors.labels(name).inc()
                failed.add(name)
        return results, failed
