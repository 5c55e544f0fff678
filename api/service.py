"""The blending service: candidates from several recall sources → one ranked, explained list.

Each source's scores are divided by that source's best score (so sources on different scales
compare), weighted, and summed per item. An item keeps the explanation paths of every source that
found it (strongest source first, at most three). If some sources fail, the rest still answer and
the response says ``degraded``; if all fail, the error propagates (→ 503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from neo4j import Driver
from neo4j.exceptions import DriverError, Neo4jError

from api.metrics import Metrics
from api.schemas import RecommendationsResponse, RecommendedItem, SimilarItemsResponse
from api.settings import ApiSettings
from graph import recall
from graph.paths import Explanation
from graph.recall import Candidate, RecallFilters
from graph.writers import read_user_preferred_genres
from schema.errors import DatabaseUnavailableError, KgrecError

log = logging.getLogger(__name__)

MODEL_VERSION = "graph-recall-v1"
MAX_ID_LENGTH = 1024
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
        self, driver: Driver, settings: ApiSettings, executor: Executor, metrics: Metrics, database: str = "neo4j"
    ) -> None:
        self.driver = driver
        self.settings = settings
        self.executor = executor
        self.metrics = metrics
        self.database = database

    @property
    def source_names(self) -> list[str]:
        return list(recall.STRATEGIES)

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
        names = self._check_sources(sources)
        self._require_user(user_id)
        filters = filters or RecallFilters()
        fetch = min(max(3 * k, 30), 300)
        preferred = self.guard("preferences", lambda: read_user_preferred_genres(self.driver, user_id, self.database))

        def call(name: str) -> Callable[[], list[Candidate]]:
            source_filters = filters
            if name == "popularity" and preferred and not filters.include_genres:
                source_filters = filters.model_copy(update={"include_genres": preferred})
            return lambda: recall.STRATEGIES[name](
                self.driver, user_id, k=fetch, filters=source_filters, database=self.database
            )

        results, failed = self._run({name: call(name) for name in names})
        if failed and len(failed) == len(names):
            raise DatabaseUnavailableError(f"every recall source failed: {', '.join(sorted(failed))}")
        items = blend(results, self.settings.source_weights, k, explain)
        return RecommendationsResponse(user_id=user_id, model_version=MODEL_VERSION, degraded=bool(failed), items=items)

    def similar(self, item_id: str, k: int, *, explain: bool = True) -> SimilarItemsResponse:
        """Items similar to ``item_id``.

        Raises:
            UnknownEntityError: The item does not exist.
        """
        if len(item_id) > MAX_ID_LENGTH or not self.guard("item_exists", lambda: recall.item_exists(self.driver, item_id, database=self.database)):
            raise UnknownEntityError(f"unknown item {item_id[:100]!r}")
        started = time.perf_counter()
        candidates = recall.similar_items(self.driver, item_id, k=k, database=self.database)
        self.metrics.recall_seconds.labels("similar").observe(time.perf_counter() - started)
        return SimilarItemsResponse(item_id=item_id, items=blend({"similar": candidates}, {}, k, explain))

    def _check_sources(self, sources: Sequence[str] | None) -> list[str]:
        names = list(sources) if sources else self.source_names
        unknown = [n for n in names if n not in recall.STRATEGIES]
        if unknown:
            raise UnknownSourceError(f"unknown source(s) {unknown}; available: {self.source_names}")
        return names

    def _require_user(self, user_id: str) -> None:
        exists = len(user_id) <= MAX_ID_LENGTH and self.guard(
            "user_exists", lambda: recall.user_exists(self.driver, user_id, database=self.database)
        )
        if not exists:
            raise UnknownEntityError(f"unknown user {user_id[:100]!r}")

    def guard(self, what: str, fn: Callable[[], object]):  # noqa: ANN202 - returns fn's result
        try:
            return fn()
        except (DriverError, Neo4jError, OSError) as exc:
            raise DatabaseUnavailableError(f"Neo4j is unreachable ({what}): {' '.join(str(exc).split())}") from exc

    def _run(self, calls: dict[str, Callable[[], list[Candidate]]]) -> tuple[dict[str, list[Candidate]], set[str]]:
        def timed(name: str, fn: Callable[[], list[Candidate]]) -> list[Candidate]:
            started = time.perf_counter()
            try:
                return fn()
            finally:
                self.metrics.recall_seconds.labels(name).observe(time.perf_counter() - started)

        futures = {name: self.executor.submit(timed, name, fn) for name, fn in calls.items()}
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
