"""The recommendation service: one ranked, explained list per request.

Two paths, the first when a learned model is loaded (see :mod:`api.model`) and the request names no sources:

* **model path** — one query reads the user's live interactions (:func:`graph.reads.user_context`; a history held
  from an earlier request, :class:`api.cache.HeldHistories`, is not read again while the user's interaction count
  and revision are unchanged); the model scores every item from them (a just-posted interaction counts at once);
  maximal marginal relevance picks the items to show from the best unseen ones (``mmr_lambda``, on the model's item
  vectors, the genre and year filters applied from the item catalog saved with the model); a blend then fills its
  reserved new-arrival positions with items nobody has liked yet (``RankerConfig.cold_slots``,
  :func:`gnn.blend.cold.reserve_cold_slots`, the policy bench.quality measures); one query, :func:`graph.explain.explain_items`, explains only the items shown (and
  applies the filters again), or none when every neighbourhood it needs is held (:class:`graph.explain.HeldUser`). If Neo4j is unreachable, the model answers from the interactions it was fitted on,
  ``degraded: true``, without paths, the genre and year filters applied from the item catalog saved with the model
  (503 only for users the model does not know). The two share their ranking tail (:mod:`api.ranking`).
* **graph path** — every named recall source (Cypher: collaborative, knowledge, social, popularity, and
  embedding through the vector index) runs in parallel; each source's scores are divided by that source's
  best score, weighted and summed per item (:func:`api.ranking.blend`); an item keeps the paths of every source
  that found it. If some sources fail the rest answer with ``degraded: true``; if all fail → 503. Users without
  positives (onboarding) take this path too: popularity in their preferred genres.

Both paths cache their answers (:mod:`api.cache`); a miss is computed only once :class:`api.limits.MissGate` admits
it (the client's budget of uncached work, then a computing slot).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple, TypedDict, TypeVar, Unpack

import numpy as np
from neo4j import Driver

from api.cache import Answer, HeldHistories, ResponseCache
from api.catalogue import Catalogue
from api.errors import UnknownEntityError, UnknownSourceError
from api.exploration import ItemStats, draw, explore_positions, place, sample_order
from api.genres import GenreNames
from api.impressions import SIMILAR_VARIANT, ImpressionRecorder, new_recommendation_id
from api.limits import MissGate, miss_cost
from api.metrics import Metrics
from api.model import ModelHolder, ServingModel
from api.ranking import (
    MAX_EXPLANATIONS,
    MMR_CHOICE,
    Exposure,
    blend,
    cold_unseen,
    pick,
    place_arrivals,
    scored_items,
    unseen_ranking,
    unseen_scores,
)
from api.schemas import RecommendationsResponse, RecommendedItem, SimilarItemsResponse
from api.settings import ApiSettings
from api.variants import Variant, Variants, default_variants
from api.workers import shared_answers_path
from gnn.serving import Positives
from graph import recall
from graph.embeddings import recall_embedding
from graph.errors import reason, unreachable
from graph.explain import (
    MAX_EXPLAIN_ITEMS,
    ExplainedItem,
    HeldUser,
    Neighbourhoods,
    explain_items,
    strongest_seeds,
)
from graph.impressions import open_impression_store
from graph.items import recall_new_arrivals
from graph.reads import (
    UserContext,
    item_exists,
    most_active_users,
    user_context,
    user_fingerprint,
)
from graph.recall import Candidate, RecallFilters
from graph.writers import warm_interaction_writes
from schema.errors import DatabaseUnavailableError, KgrecError

log = logging.getLogger(__name__)

MODEL_VERSION = "graph-recall-v1"

#: Every user recall source the graph path can run, by name.
SOURCES: dict[str, recall.RecallStrategy] = {**recall.STRATEGIES, "embedding": recall_embedding}
MAX_ID_LENGTH = 1024
#: Most items added since the model (most recent first) the new-arrival recall considers per request.
MAX_NEW_ARRIVALS = 200
#: Rounds of MMR's pick on the shown-items path: a picked item the graph cannot explain leaves the pool and MMR picks
#: again, asking only about the items it had not asked about; after this many the candidates are explained in
#: batches instead (Recommender._explain_best, counted by kgrec_explain_fallbacks).
MAX_PICK_ROUNDS = 4
T = TypeVar("T")


class RequestOptions(TypedDict, total=False):
    """The options of a recommendation request (keywords of :meth:`Recommender.answer`).

    Attributes:
        explain: Include explanation paths (default True).
        sources: Recall sources to blend (the graph path); None = the model path when a model serves, else all.
        filters: Business filters; None = none.
    """

    explain: bool
    sources: Sequence[str] | None
    filters: RecallFilters | None


class AskedGraph(NamedTuple):
    """What :meth:`Recommender._explain_shown` asked the graph before it fell back: the item ids asked and the
    explained ones among them (an id asked and absent was dropped by the graph)."""

    ids: frozenset[str]
    explained: dict[str, ExplainedItem]


class Recommender:
    """Answers recommendation requests from Neo4j (one instance per app, thread-safe).

    Args:
        driver: Open driver (thread-safe).
        settings: API settings (weights, limits).
        executor: Runs recall sources in parallel.
        metrics: Where query times go.
        database: Neo4j database name.
        models: The promoted model, when one serves (and the versions variants name).
        variants: The A/B variants (:mod:`api.variants`); None: one variant, ``default``, with these settings.
    """

    def __init__(
        self,
        driver: Driver,
        settings: ApiSettings,
        executor: Executor,
        metrics: Metrics,
        database: str = "neo4j",
        models: ModelHolder | None = None,
        variants: Variants | None = None,
    ) -> None:
        self.driver = driver
        self.variants = variants or default_variants()
        self.settings = settings
        self.executor = executor
        self.metrics = metrics
        self.database = database
        self.models = models
        self.cache = ResponseCache(
            settings.response_cache_size,
            settings.response_cache_seconds,
            metrics,
            shared_answers_path() if settings.shared_answers else None,
        )
        #: Users' interactions as last read, read again only once changed (KGREC_HISTORY_CACHE_SIZE).
        self.histories = HeldHistories(settings.history_cache_size, settings.response_cache_seconds)
        self.gate = MissGate(
            settings.miss_concurrency,
            settings.miss_queue,
            settings.miss_wait_seconds,
            settings.miss_cost_rate,
            settings.miss_cost_burst,
        )
        #: Hidden, windowed and added items (the run-time catalogue), for the model's ranking and the cache keys.
        self.catalogue = Catalogue(driver, database, settings.catalogue_refresh_seconds)
        #: The graph's genre names, which the genre filters of a request must name (re-read as often as the catalogue).
        self.genres = GenreNames(driver, database, settings.catalogue_refresh_seconds)
        #: The explanation query's seed and item sides read lately (graph/explain.py), dropped when the catalogue
        #: or the current model changes.
        self.neighbourhoods = Neighbourhoods(settings.explain_cache_size, settings.explain_cache_seconds)
        #: Popularity recall's window, the same for every user: re-read every KGREC_POPULARITY_REFRESH_SECONDS.
        self.popular = recall.PopularityWindow(settings.popularity_refresh_seconds)
        #: Impressions and clicks per item for exploration (api/exploration.py); counted only when it is on.
        self.item_stats = ItemStats()
        self._exploring = settings.exploration_share > 0 or any(
            (v.exploration_share or 0) > 0 for v in self.variants.variants
        )
        #: Exploration's random draws (KGREC_EXPLORATION_SEED; unset: fresh entropy). One generator for the process:
        #: its methods hold its bit generator's lock, so concurrent requests may share it.
        self.rng = np.random.default_rng(settings.exploration_seed)
        self._stats_read_at = 0.0
        self._stats_lock = threading.Lock()
        #: Set once the first warming of the answer cache is over (or when there is none): /ready waits for it.
        self.warmed = threading.Event()
        #: Where impressions, exposure and attributed clicks are kept (KGREC_IMPRESSION_STORE).
        self.impression_store = open_impression_store(
            settings.impression_store,
            driver,
            database,
            settings.impression_db,
            settings.exposure_items,
            settings.exposure_cache_size,
        )
        #: Where served lists go (KGREC_IMPRESSIONS; None: not recorded).
        self.impressions = (
            ImpressionRecorder(
                driver,
                database,
                metrics,
                settings.impressions_queue,
                settings.impressions_batch_size(),
                settings.impressions_flush_seconds,
                retention_days=settings.impressions_retention_days,
                max_shown=settings.exposure_items,
                timeline=settings.debug_timeline,
                store=self.impression_store,
            )
            if settings.impressions
            else None
        )

    def serve(self, user_id: str, k: int, *, client: str | None = None, **options: Unpack[RequestOptions]) -> bytes:
        """The JSON body of one served list: :meth:`answer`'s list with a new ``recommendation_id``, recorded as an
        impression (queued, never waited for: :mod:`api.impressions`). A cached answer is served by joining bytes.

        Raises:
            The errors of :meth:`answer`.
        """
        answer, count = self.answer(user_id, k, client=client, **options)
        recommendation_id = new_recommendation_id()
        if self._exploring:
            self.item_stats.record_impressions(answer.item_ids[:count])
        if self.impressions is not None:
            self.impressions.record(
                recommendation_id, user_id, answer.variant, answer.model_version, answer.item_ids[:count]
            )
        return answer.json(count, recommendation_id)

    def close(self) -> None:
        """Write the impressions still queued and close their store (the app's shutdown)."""
        if self.impressions is not None:
            self.impressions.close()
        self.impression_store.close()
        self.cache.close()

    @property
    def _exposure_on(self) -> bool:
        return self.settings.fatigue_half_life > 0 or self.settings.rotation_lists > 0

    def read_context(self, user_id: str) -> UserContext | None:
        """The user's context (:func:`graph.reads.user_context`, timed as the ``user_context`` stage), their
        interactions taken from :attr:`histories` when their count and revision have not changed since (one query
        either way); the history read is held for the next request.

        Raises:
            DatabaseUnavailableError: Neo4j is unreachable.
        """
        held = self.histories.get(user_id)
        context = self._stage("user_context", lambda: user_context(self.driver, user_id, self.database, held=held))
        if context is None or context.history is None:
            return context
        outcome = "miss" if held is None else "hit" if context.history is held else "stale"
        self.metrics.history_cache.labels(outcome).inc()
        self.histories.put(user_id, context.history)
        return context

    def _key_fingerprint(self, fingerprint: tuple, user_id: str) -> tuple:
        """The part of a cache key the user's state gives: their interactions (count, rev, preferred genres) and,
        with fatigue or rotation on, how many lists were recorded for them (written or still queued) in steps of
        KGREC_FATIGUE_REFRESH_LISTS (of one with rotation), so exposure refreshes a cached answer that often (the
        lists written: the fingerprint's ``listsShown``, or the impression store's own count)."""
        step = 1 if self.settings.rotation_lists > 0 else self.settings.fatigue_refresh_lists
        if not self._exposure_on or step <= 0:
            return (*fingerprint[:3], 0)
        lists = self.impression_store.lists_shown(user_id, fingerprint[3])
        lists += self.impressions.pending_lists(user_id) if self.impressions is not None else 0
        return (*fingerprint[:3], lists // step)

    def _count_held_exposure(self, outcome: str) -> None:
        self.metrics.exposure_cache.labels(outcome).inc()

    def _exposure(self, context: UserContext | None) -> Exposure | None:
        """The user's exposure (fatigue factors, rotated items) from the impression store (in Neo4j: read with their
        context) and the lists of theirs still waiting to be written
        (:meth:`api.impressions.ImpressionRecorder.pending_exposure`); None when off or none."""
        if context is None or not self._exposure_on:
            return None
        shown, lists_shown = self.impression_store.exposure(context, self._count_held_exposure)
        if self.impressions is not None:
            waiting, pending = self.impressions.pending_exposure(context.user_id)
            if pending:
                seen = context.columns.seen
                shown = dict(shown)
                for item_id, (count, number) in pending.items():
                    if item_id not in seen:
                        shown[item_id] = (shown.get(item_id, (0, 0))[0] + count, lists_shown + number)
                lists_shown += waiting
        if not shown:
            return None
        return Exposure.of(shown, lists_shown, self.settings.fatigue_half_life, self.settings.rotation_lists)

    @property
    def source_names(self) -> list[str]:
        return list(SOURCES)

    @property
    def model(self) -> ServingModel | None:
        return self.models.model if self.models is not None else None

    def genre_names(self) -> frozenset[str] | None:
        """The genres a request's filters may name: the graph's (held, :class:`api.genres.GenreNames`); while Neo4j
        has never answered, those of the served model's item catalog; None when neither is known (no check)."""
        names = self.genres.names()
        model = self.model
        if names is None and model is not None and model.catalog is not None:
            return frozenset(model.catalog.genres)
        return names

    def variant_of(self, key: str) -> Variant:
        """The variant of user ``key`` (:meth:`api.variants.Variants.assign`: a stable hash of salt and id)."""
        return self.variants.assign(key)

    def model_of(self, variant: Variant) -> ServingModel | None:
        """The model that serves ``variant``: the artifact version it names, else the current model."""
        return self.models.model_for(variant.model_version) if self.models is not None else None

    def count_click(self, item_id: str) -> None:
        """Count a new click attributed to a list that showed ``item_id`` (exploration learns from it)."""
        if self._exploring:
            self.item_stats.record_click(item_id)

    def exploration_share(self, variant: Variant) -> float:
        """The share of positions ``variant`` explores (its own, else KGREC_EXPLORATION_SHARE)."""
        own = variant.exploration_share
        return self.settings.exploration_share if own is None else own

    def _explore_order(
        self, model: ServingModel, picked: Sequence[int], candidates: Sequence[int], share: float
    ) -> list[str]:
        """The candidates for ``picked``'s explored positions (``candidates``: rows below the cut, best first), in
        the order of one Thompson draw each over their impressions and clicks, three per position (so that the ones
        the graph cannot explain can be passed over); none when ``share`` gives no position."""
        positions = explore_positions(len(picked), share)
        if not positions:
            return []
        self._refresh_item_stats()
        taken = set(picked)
        pool = [model.item_ids[r] for r in candidates if r not in taken][: 4 * len(picked)]
        ids = [model.item_ids[r] for r in picked]
        return sample_order(pool, ids, self.item_stats, self.rng)[: 3 * len(positions)]

    def _explore(
        self,
        model: ServingModel,
        picked: list[int],
        order: Sequence[str],
        share: float,
        explained: Mapping[str, ExplainedItem],
        explain: bool,
    ) -> tuple[list[int], set[str]]:
        """``picked`` with its explored positions given to the first items of ``order`` (:meth:`_explore_order`)
        that ``explained`` holds, with at least one path when ``explain`` (an explored item is explained like any
        other). Returns the rows to show and the ids of the explored items."""
        fit = [i for i in order if i in explained and (not explain or explained[i].explanations)]
        out = place([model.item_ids[r] for r in picked], fit, share)
        rows = [model.item_index[i] for i in out.items]
        return rows, {i for i, flag in zip(out.items, out.explored, strict=True) if flag}

    def _explore_arrivals(
        self, items: list[RecommendedItem], arrivals: list[Candidate], explain: bool
    ) -> tuple[list[RecommendedItem], list[Candidate]]:
        """Let items added through the API (``arrivals``: unknown to the model, from knowledge recall) compete for
        the explored positions of ``items`` with the items exploration put there, by the same Thompson draws. An
        arrival that wins takes the position (its recall score as its ``knowledge`` source, its paths saying it is
        new); the arrivals that do not win are returned for the model's own new-arrival positions."""
        positions = [n for n, item in enumerate(items) if "exploration" in item.sources]
        by_id: dict[str, RecommendedItem | Candidate] = {items[n].item_id: items[n] for n in positions}
        by_id.update({c.item_id: c for c in arrivals if c.item_id not in by_id})
        pool = list(by_id)
        order = np.argsort(-draw(pool, self.item_stats, self.rng), kind="stable")
        winners = [pool[i] for i in order[: len(positions)]]
        top = max(c.score for c in arrivals) or 1.0
        out = list(items)
        for n, winner in zip(positions, winners, strict=True):
            entry = by_id[winner]
            if isinstance(entry, RecommendedItem):
                out[n] = entry
            else:
                out[n] = RecommendedItem(
                    item_id=entry.item_id,
                    title=entry.title,
                    score=items[n].score,
                    sources={"knowledge": round(entry.score / top, 4) if top > 0 else 0.0, "exploration": 1.0},
                    explanations=list(entry.explanations[:MAX_EXPLANATIONS]) if explain else [],
                )
        taken = set(winners)
        return out, [c for c in arrivals if c.item_id not in taken]

    def _refresh_item_stats(self) -> None:
        """Re-read every item's impressions and clicks from the impression store when the last read is older than
        KGREC_EXPLORATION_REFRESH_SECONDS (one request pays for it; the others go on with the counts they have)."""
        if time.monotonic() - self._stats_read_at < self.settings.exploration_refresh_seconds:
            return
        if not self._stats_lock.acquire(blocking=False):
            return
        try:
            self.item_stats.replace(self.impression_store.item_exposure())
        except KgrecError as exc:
            log.warning("exploration keeps its counts: %s", exc)
        finally:
            self._stats_read_at = time.monotonic()
            self._stats_lock.release()

    def mmr_lambda(self, variant: Variant) -> float:
        """The MMR λ of ``variant`` (its own, else KGREC_MMR_LAMBDA)."""
        return self.settings.mmr_lambda if variant.mmr_lambda is None else variant.mmr_lambda

    def recommend(self, user_id: str, k: int, **options: Unpack[RequestOptions]) -> RecommendationsResponse:
        """Top-k items for a known user.

        Raises:
            UnknownEntityError: The user does not exist.
            UnknownSourceError: A source name is not a recall strategy.
            DatabaseUnavailableError: Neo4j is unreachable (no source could answer).
        """
        answer, size = self.answer(user_id, k, **options)
        return answer.first(size, new_recommendation_id())

    def answer(
        self,
        user_id: str,
        k: int,
        *,
        explain: bool = True,
        sources: Sequence[str] | None = None,
        filters: RecallFilters | None = None,
        client: str | None = None,
    ) -> tuple[Answer, int]:
        """The answer behind :meth:`recommend` and how many of its items to send (``k`` or fewer); the HTTP
        route sends ``answer.json(size)``, so a cache hit is a join of bytes.

        Both paths cache their answers keyed by the request and the user's interaction fingerprint
        (:func:`graph.reads.user_fingerprint`: one index seek), so a repeated request costs that seek and a
        join of bytes, and any new interaction is a miss. A miss is computed only once admitted by
        :class:`api.limits.MissGate` (``client``'s budget of uncached work, then a computing slot; None: the
        service's own work, without budget).

        Raises:
            RefusedError: The miss was not admitted (429 or 503 with Retry-After).
        """
        names = self._check_sources(sources)
        filters = filters or RecallFilters()
        if len(user_id) > MAX_ID_LENGTH:
            raise UnknownEntityError(f"unknown user {user_id[:100]!r}")
        variant = self.variant_of(user_id)
        model = self.model_of(variant) if not sources else None
        if model is not None and not self.cache.may_hold(user_id):
            # No answer held for this user: the lookup is a miss whatever the fingerprint, so the miss is admitted
            # first (a refused or queued request reads nothing) and the context, which carries the fingerprint, is
            # read at once: one round trip fewer.
            with self.gate.admit(client, miss_cost(max(k, self.settings.response_cache_pool), explain)):
                return self._answer(user_id, k, explain, names, filters, client, variant, model, admitted=True)
        return self._answer(user_id, k, explain, names, filters, client, variant, model, admitted=False)

    def _answer(
        self,
        user_id: str,
        k: int,
        explain: bool,
        names: list[str],
        filters: RecallFilters,
        client: str | None,
        variant: Variant,
        model: ServingModel | None,
        *,
        admitted: bool,
    ) -> tuple[Answer, int]:
        """:meth:`answer` once its variant and model are known; ``admitted``: the request already holds a slot of
        :attr:`gate` (a user with no answer held, whose context is read at once in place of the fingerprint)."""
        context: UserContext | None = None
        try:
            if admitted:
                context = self.read_context(user_id)
                fingerprint = context.fingerprint if context is not None else None
            else:
                fingerprint = self._stage(
                    "user_fingerprint", lambda: user_fingerprint(self.driver, user_id, self.database)
                )
        except DatabaseUnavailableError as exc:
            if model is not None:
                return self._degraded(model, user_id, k, filters, exc, variant)
            raise unreachable("user", exc) from exc
        if fingerprint is None:
            raise UnknownEntityError(f"unknown user {user_id[:100]!r}")
        if model is not None and fingerprint[0] > 0:
            answered = self._model_answer(
                model, user_id, k, explain, filters, fingerprint, context, client, variant, admitted=admitted
            )
            if not isinstance(answered, UserContext):
                return answered
            context = answered  # no positives: the graph path answers from the context the model path has read
        # The graph path: users without positives (onboarding), requests naming sources, or no model.
        return self._graph_answer(
            user_id, k, explain, names, filters, fingerprint, client, variant, context, admitted=admitted
        )

    def _graph_answer(
        self,
        user_id: str,
        k: int,
        explain: bool,
        names: list[str],
        filters: RecallFilters,
        fingerprint: tuple,
        client: str | None = None,
        variant: Variant | None = None,
        context: UserContext | None = None,
        *,
        admitted: bool = False,
    ) -> tuple[Answer, int]:
        """The graph path (module docstring): the answer and how many of its items were asked for; ``context``: the
        user's context when this request has read it already; ``admitted``: the request holds a slot of :attr:`gate`
        already."""
        variant = variant or self.variant_of(user_id)
        wanted, k = k, max(k, self.settings.response_cache_pool)  # as on the model path: smaller k are slices
        revision = self.catalogue.state()[0]  # a catalogue change (hide, expiry, new item) is a new key
        key = (
            "graph",
            user_id,
            k,
            explain,
            tuple(names),
            filters.model_dump_json(),
            self._key_fingerprint(fingerprint, user_id),
            revision,
            variant.name,
        )
        cached = self.cache.get(key)
        if cached is not None:
            return cached, wanted
        with self._admit(client, miss_cost(k, explain), admitted):
            return self._graph_compute(user_id, k, wanted, explain, names, filters, key, variant, context)

    def _graph_compute(
        self,
        user_id: str,
        k: int,
        wanted: int,
        explain: bool,
        names: list[str],
        filters: RecallFilters,
        key: tuple,
        variant: Variant,
        context: UserContext | None = None,
    ) -> tuple[Answer, int]:
        """The uncached part of :meth:`_graph_answer`."""
        fetch = min(max(3 * k, 30), 300)
        # One read of the user for every source: the preferred genres, the exposure, and the history the recall
        # queries take as parameters (graph.recall.History) instead of each reading the interactions again.
        if context is None:
            context = self.read_context(user_id)
        preferred = list(context.preferred_genres) if context is not None else []
        history = recall.History(context) if context is not None else None
        exposure = self._exposure(context)
        if exposure is not None and exposure.rotated:  # ask the sources for as many items besides them
            fetch = min(fetch + len(exposure.rotated), 300 + len(exposure.rotated))

        def call(name: str) -> Callable[[], list[Candidate]]:
            shared = {"popular": self.popular} if name == "popularity" else {}

            def run(source_filters: RecallFilters) -> list[Candidate]:
                return SOURCES[name](
                    self.driver,
                    user_id,
                    k=fetch,
                    filters=source_filters,
                    database=self.database,
                    history=history,
                    **shared,
                )

            if name == "popularity" and preferred and not filters.include_genres:
                # the user's chosen genres first; when they hold fewer than k items, the rest from every genre
                return lambda: _filled(run(filters.model_copy(update={"include_genres": preferred})), run, filters, k)
            return lambda: run(filters)

        results, failed = self._run({name: call(name) for name in names})
        if failed and len(failed) == len(names):
            raise DatabaseUnavailableError(f"every recall source failed: {', '.join(sorted(failed))}")
        items = blend(results, self.settings.source_weights, k, explain, exposure)
        response = RecommendationsResponse(
            user_id=user_id, model_version=MODEL_VERSION, degraded=bool(failed), items=items, variant=variant.name
        )
        answer = Answer(response)
        if not failed:  # a partial (degraded) answer is never reused
            self.cache.put(key, answer, user_id)
        return answer, wanted

    def _model_answer(
        self,
        model: ServingModel,
        user_id: str,
        k: int,
        explain: bool,
        filters: RecallFilters,
        fingerprint: tuple,
        context: UserContext | None = None,
        client: str | None = None,
        variant: Variant | None = None,
        *,
        admitted: bool = False,
    ) -> tuple[Answer, int] | UserContext:
        """The model path (module docstring): the answer and how many of its items were asked for; or, when the user
        has no positives, their context as read (the graph path answers from it without reading it again).
        ``context``: the user's context when already read; ``variant``: the user's (its model version, MMR λ and
        exploration share); ``admitted``: the request holds a slot of :attr:`gate` already."""
        variant = variant or self.variant_of(user_id)
        # The answer for the first `pool` items is computed and cached; greedy MMR is prefix-stable, so any
        # k <= pool is a slice of it. The key holds the fingerprint of the user's interactions: a new one misses.
        wanted, k = k, max(k, self.settings.response_cache_pool)
        revision = self.catalogue.state()[0]  # a catalogue change (hide, expiry, new item) is a new key
        key = (
            user_id,
            k,
            explain,
            filters.model_dump_json(),
            model.kind,
            model.version,
            self._key_fingerprint(fingerprint, user_id),
            revision,
            variant.name,
        )
        cached = self.cache.get(key)
        if cached is not None:
            return cached, wanted
        with self._admit(client, miss_cost(k, explain), admitted):
            return self._model_compute(model, user_id, k, wanted, explain, filters, key, context, variant)

    def _model_compute(
        self,
        model: ServingModel,
        user_id: str,
        k: int,
        wanted: int,
        explain: bool,
        filters: RecallFilters,
        key: tuple,
        context: UserContext | None,
        variant: Variant,
    ) -> tuple[Answer, int] | UserContext:
        """The uncached part of :meth:`_model_answer`."""
        if context is None:
            try:
                context = self.read_context(user_id)
            except DatabaseUnavailableError as exc:
                return self._degraded(model, user_id, wanted, filters, exc, variant)
        if context is None:
            raise UnknownEntityError(f"unknown user {user_id[:100]!r}")
        min_rating = self.settings.min_rating
        # every interaction's row in the model, looked up once: the positives' (to score) and the seen items' (to mask)
        rows = model.item_rows(context.columns.item_ids)
        positives = Positives.live(context, min_rating, rows)
        if not len(positives.item_ids):
            return context
        _, unavailable, added = self.catalogue.state()
        # hidden and expired items are left out like seen ones (the explain query drops them too)
        excluded = set(filters.exclude_items) | unavailable
        seen = context.columns.seen | excluded
        seeds = strongest_seeds(context, min_rating=min_rating)  # spares the explain query a second history scan
        scores = self._stage("model", lambda: model.scores(user_id, positives, context.attributes))
        exposure = self._exposure(context)
        if exposure is not None:  # fatigue lowers the scores of items shown and ignored; rotation leaves some out
            scores = exposure.fatigue(model, scores)
            seen |= exposure.rotated
            excluded |= exposure.rotated
        masked = unseen_scores(model, scores, excluded, rows)  # `seen`: the interactions' rows and `excluded`
        ranked = unseen_ranking(model, scores, seen, masked=masked)
        cold = cold_unseen(model, scores, seen, k, masked=masked)  # new-arrival candidates (RankerConfig.cold_slots)
        lam = self.mmr_lambda(variant)
        share = self.exploration_share(variant)
        # explained from held neighbourhoods alone (no query) when every one is held, the user's followees' among them
        held = HeldUser.of(context)
        shown = self._explain_shown(model, user_id, scores, ranked, cold, k, explain, filters, seeds, lam, share, held)
        if shown is not None and not isinstance(shown, AskedGraph):
            picked, explained, explored = shown
        else:
            survivors, arrivals = self._explain_best(
                model, user_id, ranked, cold, k, explain, filters, seeds, lam, held, asked=shown
            )
            pool = [model.item_index[i] for i in survivors]
            survivors.update(arrivals)
            allowed = [i for i in cold if model.item_ids[i] in survivors] if cold else None
            picked = self._stage("rerank", lambda: pick(model, scores, pool, k, lam, allowed))
            order = self._explore_order(model, picked, pool, share) if share > 0 else []
            picked, explored = self._explore(model, picked, order, share, survivors, explain)
            explained = survivors
        items = scored_items(model, scores, picked, explained, explain)
        for item in items:
            if item.item_id in explored:  # flagged among its sources; its explanation paths stay
                item.sources["exploration"] = 1.0
        arrivals = self._new_arrivals(model, user_id, added, seen, seeds, explain, filters, extra=len(explored))
        if arrivals and explored:
            items, arrivals = self._explore_arrivals(items, arrivals, explain)
        if arrivals:
            items = place_arrivals(items, arrivals, k, getattr(model, "cold_slot_every", 0), explain)
        response = RecommendationsResponse(
            user_id=user_id, model_version=f"{model.kind}-{model.version}", items=items, variant=variant.name
        )
        answer = Answer(response)
        self.cache.put(key, answer, user_id)
        return answer, wanted

    def _new_arrivals(
        self,
        model: ServingModel,
        user_id: str,
        added: Sequence[str],
        seen: set[str],
        seeds: list[str],
        explain: bool,
        filters: RecallFilters,
        extra: int = 0,
    ) -> list[Candidate]:
        """Items added through the API that the model does not know (no retrain since), found by knowledge recall
        from the user's seeds, best first: as many as the model reserves new-arrival positions (none for models
        without) plus ``extra`` (exploration's positions, which they compete for). Neo4j failing here costs only
        them."""
        slots = getattr(model, "cold_slots", 0) + extra
        fresh = [i for i in added if i not in model.item_index and i not in seen][:MAX_NEW_ARRIVALS]
        if not slots or not fresh or not seeds:
            return []
        try:
            return self._stage(
                "new_arrivals",
                lambda: recall_new_arrivals(
                    self.driver,
                    user_id,
                    fresh,
                    seeds,
                    k=slots,
                    max_paths=MAX_EXPLANATIONS if explain else 0,
                    filters=filters,
                    database=self.database,
                ),
            )
        except KgrecError as exc:
            log.warning("new arrivals not recalled for user %s: %s", user_id[:100], exc)
            return []

    def _explain_want(self, k: int, filters: RecallFilters, lam: float) -> int:
        """How many of the best unseen items make MMR's pool (before the filters drop some)."""
        # With genre or year filters ask for half as many again; MMR picks from twice k so that it has a choice.
        want = k
        if filters.narrows:
            want = max(want, k + k // 2, 20)
        if lam < 1.0:
            want = max(want, MMR_CHOICE * k)
        return min(want, MAX_EXPLAIN_ITEMS)

    def _explain_shown(
        self,
        model: ServingModel,
        user_id: str,
        scores: np.ndarray,
        ranked: list[int],
        cold: list[int],
        k: int,
        explain: bool,
        filters: RecallFilters,
        seeds: list[str],
        lam: float,
        share: float = 0.0,
        held: HeldUser | None = None,
    ) -> tuple[list[int], dict[str, ExplainedItem], set[str]] | AskedGraph | None:
        """Pick the items to show first (exploration's positions, ``share``, filled too), then explain only those:
        one explain query for ``k`` items (more only when the graph cannot explain a picked one, below).

        MMR needs the model's vectors, not the paths, so the pool :meth:`_explain_best` would build (the same
        batches of the ranking, the same new-arrival candidates) is built here in-process, the genre and year
        filters applied from the item catalog saved with the model; the picked items are then explained (the query
        applies the filters again). If the graph drops a picked item (gone from the graph, or its genres or year
        changed since the model was fitted), or cannot explain it, that item leaves the pool, the next rows of the
        ranking that pass the filters take its place (the pool keeps its size, so MMR's scale of relevance stays that
        of as many items), and MMR picks again; only the newly picked items are asked about. So a list is answered as
        if the request had excluded the picked items the graph could not explain. After :data:`MAX_PICK_ROUNDS`
        rounds the caller takes :meth:`_explain_best`'s way, which asks the graph about the other candidates (those
        asked here are not asked again: :class:`AskedGraph`). None when filters narrow and the model has no catalog
        (nothing asked).

        Returns:
            The rows to show, in order, their explanations by item id and the ids of the explored items; or what was
            asked and found, or None (see above).
        """
        allowed: np.ndarray | None = None
        if filters.narrows:
            if model.catalog is None:
                return None
            allowed = model.catalog.mask(
                include_genres=filters.include_genres,
                exclude_genres=filters.exclude_genres,
                year_min=filters.year_min,
                year_max=filters.year_max,
            )
        want = self._explain_want(k, filters, lam)
        asked_ids: set[str] = set()  # the item ids the graph was asked about
        explained: dict[str, ExplainedItem] = {}
        gone: set[int] = set()  # picked rows the graph dropped or (with explanations) could not explain
        for round_ in range(MAX_PICK_ROUNDS):
            if gone:  # the ranking as if the request had excluded them (as far as the pool can reach into it)
                reach = 6 * MAX_EXPLAIN_ITEMS + 5 * k + len(gone)
                ranked = [r for r in ranked[:reach] if r not in gone]
                cold = [r for r in cold if r not in gone]
            pool, arrivals = self._shown_pool(model, ranked, cold, k, filters, want, allowed)
            picked = self._stage("rerank", functools.partial(pick, model, scores, pool, k, lam, arrivals))
            order: list[str] = []
            if share > 0:  # candidates just below the cut: the ranking's next rows that pass the filters
                below = [i for i in ranked[: 5 * k + want] if allowed is None or allowed[i]]
                order = self._explore_order(model, picked, below, share)[: max(MAX_EXPLAIN_ITEMS - len(picked), 0)]
            ids = [model.item_ids[i] for i in picked]
            fresh = [i for i in ids + order if i not in asked_ids]
            if fresh:  # one query (or none) a round, about the items not asked yet
                asked_ids.update(fresh)
                explained.update(self._explain(user_id, fresh, explain, filters, seeds, held))
            # every shown item carries a path: a picked item without one leaves, and MMR picks again
            missing = {
                r
                for r, i in zip(picked, ids, strict=True)
                if i not in explained or (explain and not explained[i].explanations)
            }
            if not missing:
                break
            if round_ + 1 == MAX_PICK_ROUNDS:
                self.metrics.explain_fallbacks.inc()
                return AskedGraph(frozenset(asked_ids), explained)
            self.metrics.explain_repicks.inc()
            gone |= missing
        explored: set[str] = set()
        if order:
            picked, explored = self._explore(model, picked, order, share, explained, explain)
        return picked, explained, explored

    @staticmethod
    def _shown_pool(
        model: ServingModel,
        ranked: list[int],
        cold: list[int],
        k: int,
        filters: RecallFilters,
        want: int,
        allowed: np.ndarray | None,
    ) -> tuple[list[int], list[int] | None]:
        """MMR's pool and the new-arrival candidates as :meth:`_explain_best` would gather them: the batches it
        would send (the first ``want`` ranked rows, then MAX_EXPLAIN_ITEMS at a time until ``want`` pass the
        filters, every row of a batch that passes joining the pool), and the new-arrival candidates asked about
        beside the first batch (None: the model has none)."""
        pool: list[int] = []
        asked: set[int] = set()
        start = 0
        while len(pool) < want and start < len(ranked) and start < 5 * MAX_EXPLAIN_ITEMS:
            batch = ranked[start : start + MAX_EXPLAIN_ITEMS if start else want]
            start += len(batch)
            asked.update(batch)
            pool.extend(i for i in batch if allowed is None or allowed[i])
        if not cold:
            return pool, None
        head = set(ranked[:want])
        spare = 3 * getattr(model, "cold_slots", 0) + (k if filters.narrows else 0)
        asked.update([i for i in cold if i not in head][: max(min(MAX_EXPLAIN_ITEMS - want, spare), 0)])
        return pool, [i for i in cold if i in asked and (allowed is None or allowed[i])]

    def _explain(
        self,
        user_id: str,
        item_ids: list[str],
        explain: bool,
        filters: RecallFilters,
        seeds: list[str],
        held: HeldUser | None = None,
    ) -> dict[str, ExplainedItem]:
        """Titles and (with ``explain``) paths of ``item_ids`` that pass ``filters``, timed as the ``explain`` stage.
        ``held``: the user as just read, for explaining from held neighbourhoods without a query (the items asked
        about are never hidden or outside their window: the ranking left out the catalogue's unavailable items)."""
        model = self.model
        self.neighbourhoods.keep_for((self.catalogue.state()[0], model.version if model is not None else None))
        return self._stage(
            "explain",
            lambda: explain_items(
                self.driver,
                user_id,
                item_ids,
                max_paths=MAX_EXPLANATIONS if explain else 0,
                filters=filters,
                seed_ids=seeds,
                database=self.database,
                neighbourhoods=self.neighbourhoods,
                seeds_checked=True,  # strongest_seeds of the context this request has just read
                held_user=held,
            ),
        )

    def _explain_best(
        self,
        model: ServingModel,
        user_id: str,
        ranked: list[int],
        cold: list[int],
        k: int,
        explain: bool,
        filters: RecallFilters,
        seeds: list[str],
        lam: float,
        held: HeldUser | None = None,
        asked: AskedGraph | None = None,
    ) -> tuple[dict[str, ExplainedItem], dict[str, ExplainedItem]]:
        """Explain the best ``ranked`` rows until enough pass the filters, and the new-arrival candidates ``cold``.

        With ``explain``, an item the graph finds no path to is not in the pool (every shown item carries an
        explanation, fatigued and explored lists included), unless fewer than ``k`` items with a path are found in
        the batches asked: then the best ones without fill the pool up to ``k``. ``asked``: items this request has
        asked about already (:meth:`_explain_shown`), whose answers are taken as they came (an item's explanation does
        not depend on the others asked with it) instead of being asked again.

        Returns:
            The explained ranked items that passed the filters, best first (MMR's pool), and the new-arrival
            candidates that passed them, by item id.
        """
        # Explain the best unseen items; the query drops those that fail the filters, so ask for more if needed.
        # (The way when _explain_shown cannot be sure of the filters: it asks the graph about every candidate.)
        want = self._explain_want(k, filters, lam)
        survivors: dict[str, ExplainedItem] = {}
        start = 0
        # The new-arrival candidates ride along in the first explain query (the filters apply to them too) but
        # stay out of MMR's pool, which holds the ranked items only, as without new arrivals.
        head = set(ranked[:want])
        # (three per reserved position, more when filters may drop some: each explained item costs the query)
        spare = 3 * getattr(model, "cold_slots", 0) + (k if filters.narrows else 0)
        extra = [model.item_ids[i] for i in cold if i not in head][: max(min(MAX_EXPLAIN_ITEMS - want, spare), 0)]
        arrivals: dict[str, ExplainedItem] = {}
        pathless: dict[str, ExplainedItem] = {}  # ranked items the graph cannot explain: the pool's last resort
        while len(survivors) < want and start < len(ranked) and start < 5 * MAX_EXPLAIN_ITEMS:
            batch = [model.item_ids[i] for i in ranked[start : start + MAX_EXPLAIN_ITEMS if start else want]]
            start += len(batch)
            in_ranking = set(batch)
            explained = self._explain_unasked(user_id, batch + extra, explain, filters, seeds, held, asked)
            extra = []
            for item_id, entry in explained.items():
                if item_id not in in_ranking:
                    arrivals[item_id] = entry
                elif explain and not entry.explanations:
                    pathless[item_id] = entry
                else:
                    survivors[item_id] = entry
        for item_id, entry in pathless.items():  # fewer than k explainable items: fill up with the best others
            if len(survivors) >= k:
                break
            survivors[item_id] = entry
        return survivors, arrivals

    def _explain_unasked(
        self,
        user_id: str,
        item_ids: list[str],
        explain: bool,
        filters: RecallFilters,
        seeds: list[str],
        held: HeldUser | None,
        asked: AskedGraph | None,
    ) -> dict[str, ExplainedItem]:
        """:meth:`_explain` of the ``item_ids`` not in ``asked``, with ``asked``'s answers for the others, in the order
        of ``item_ids`` (an asked item the graph dropped stays dropped)."""
        if asked is None or not asked.ids.intersection(item_ids):
            return self._explain(user_id, item_ids, explain, filters, seeds, held)
        unasked = [i for i in item_ids if i not in asked.ids]
        fresh = self._explain(user_id, unasked, explain, filters, seeds, held) if unasked else {}
        out: dict[str, ExplainedItem] = {}
        for item_id in item_ids:
            entry = asked.explained.get(item_id) if item_id in asked.ids else fresh.get(item_id)
            if entry is not None:
                out[item_id] = entry
        return out

    def _degraded(
        self,
        model: ServingModel,
        user_id: str,
        k: int,
        filters: RecallFilters,
        cause: Exception,
        variant: Variant,
    ) -> tuple[Answer, int]:
        """Neo4j is away: rank from the interactions the model was fitted on, without paths or titles; the genre and
        year filters come from the model's item catalog."""
        if not model.knows_user(user_id):
            raise DatabaseUnavailableError(
                f"Neo4j is unreachable and the model does not know user {user_id[:100]!r}: {reason(cause)}"
            )
        history = model.fitted_history(user_id)
        scores = model.scores(user_id, Positives.of(history))
        candidates = scores
        if filters.narrows:
            if model.catalog is None:
                raise DatabaseUnavailableError(
                    f"Neo4j is unreachable and model {model.kind}-{model.version} has no item catalog to apply the "
                    "genre and year filters with (retrain to add one); ask without filters for a degraded list"
                )
            allowed = model.catalog.mask(
                include_genres=filters.include_genres,
                exclude_genres=filters.exclude_genres,
                year_min=filters.year_min,
                year_max=filters.year_max,
            )
            candidates = np.where(allowed, scores, -np.inf).astype(scores.dtype)
        excluded = {i for i, _ in history} | set(filters.exclude_items) | self.catalogue.unavailable()  # the last read
        pool = unseen_ranking(model, candidates, excluded)[: max(3 * k, 30)]
        cold = cold_unseen(model, candidates, excluded, k)  # the same new-arrival positions as the live path
        items = scored_items(model, scores, pick(model, scores, pool, k, self.mmr_lambda(variant), cold or None))
        log.warning("degraded answer for user %s: %s", user_id[:100], cause)
        response = RecommendationsResponse(
            user_id=user_id,
            model_version=f"{model.kind}-{model.version}",
            degraded=True,
            items=items,
            variant=variant.name,
        )
        return Answer(response), len(items)

    def warm_cache(self, limit: int, stop: threading.Event | None = None, ready_after: int | None = None) -> int:
        """Precompute the unfiltered answers of the ``limit`` most active users (in the background after a load).

        The model's users by activity when a model serves, else the graph's (graph recall answers); each is
        answered exactly as a request for ``response_cache_pool`` items would be, so later requests for up to
        that many items are cache hits. The workers of one ``kgrec serve --workers N`` split the set: each answers
        the users it claims first in the shared answers file (:meth:`api.cache.ResponseCache.claim`) and finds the
        others' answers there when they are asked for.

        Args:
            limit: Users to warm.
            stop: Set to stop early.
            ready_after: Set :attr:`warmed` (/ready) once the first this many users are passed (answered here, or
                claimed by another worker) and warm the rest after it; None = once all are.

        Returns:
            How many users were answered here; stops early when ``stop`` is set, the model changes or Neo4j fails.
            However it ends, :attr:`warmed` is set.
        """
        try:
            if self.impressions is not None and not self.impressions.prepared:  # before /ready, once
                self.impressions.prepare()
            try:  # the posts' statement planned before /ready, not by the first posts (graph/query.py)
                warm_interaction_writes(self.driver, self.database)
            except KgrecError as exc:
                log.warning("the interaction statement was not planned before /ready: %s", exc)
            return self._warm(limit, stop, limit if ready_after is None else ready_after)
        finally:
            self.warmed.set()

    def _warm(self, limit: int, stop: threading.Event | None, ready_after: int) -> int:
        if self.cache.size <= 0 or limit <= 0:
            return 0
        model = self.model
        try:
            users = (
                model.users_by_activity()[:limit]
                if model is not None
                else most_active_users(self.driver, limit, self.database)
            )
        except DatabaseUnavailableError as exc:
            log.warning("answer cache not warmed: %s", exc)
            return 0
        version = f"{model.kind}-{model.version}" if model is not None else "graph recall"
        done = left = 0
        for position, user_id in enumerate(users):
            if position >= ready_after and not self.warmed.is_set():
                log.info(
                    "answer cache: the first %d users warmed, ready; warming the other %d",
                    position,
                    len(users) - position,
                )
                self.warmed.set()
            if (stop is not None and stop.is_set()) or self.model is not model:
                break
            if not self.cache.claim(version, user_id):  # another worker of this serve warms it
                left += 1
                continue
            try:
                answer, _ = self.answer(user_id, self.settings.response_cache_pool)
                if done == 0:
                    # Only requests send the fingerprint read (a held answer is checked with it): its plan is made
                    # here, before /ready, not by the first requests after it, which would wait for it (a plan
                    # costs Neo4j up to a second of CPU on a loaded machine: graph/query.py)
                    user_fingerprint(self.driver, user_id, self.database)
            except UnknownEntityError:
                continue  # known to the model, gone from the graph
            except DatabaseUnavailableError:
                break
            if answer.degraded:
                break  # Neo4j went away: nothing more worth caching
            done += 1
        others = f" ({left} left to the other workers of this serve)" if left else ""
        log.info("answer cache warmed for %d users of %s%s", done, version, others)
        return done

    def similar(self, item_id: str, k: int, *, explain: bool = True) -> SimilarItemsResponse:
        """Items similar to ``item_id``.

        Raises:
            UnknownEntityError: The item does not exist.
        """
        if len(item_id) > MAX_ID_LENGTH or not item_exists(self.driver, item_id, database=self.database):
            raise UnknownEntityError(f"unknown item {item_id[:100]!r}")
        if item_id in self.catalogue.unavailable():
            raise UnknownEntityError(f"item {item_id[:100]!r} is hidden or outside its availability window")
        candidates = self._stage(
            "similar", lambda: recall.similar_items(self.driver, item_id, k=k, database=self.database)
        )
        items = blend({"similar": candidates}, {}, k, explain)
        recommendation_id = new_recommendation_id()
        if self.impressions is not None:  # an item page's list: recorded, attributable, nobody's exposure
            self.impressions.record(recommendation_id, None, SIMILAR_VARIANT, "graph", [i.item_id for i in items])
        return SimilarItemsResponse(item_id=item_id, items=items, recommendation_id=recommendation_id)

    def _check_sources(self, sources: Sequence[str] | None) -> list[str]:
        names = list(sources) if sources else self.source_names
        unknown = [n for n in names if n not in SOURCES]
        if unknown:
            raise UnknownSourceError(f"unknown source(s) {unknown}; available: {self.source_names}")
        return names

    def _admit(self, client: str | None, cost: float, admitted: bool) -> AbstractContextManager[None]:
        """A slot of :attr:`gate` for one uncached answer, or nothing when the request holds one already."""
        return nullcontext() if admitted else self.gate.admit(client, cost)

    def _stage(self, name: str, fn: Callable[[], T]) -> T:
        """Run one stage of a request and record its time (``kgrec_recall_query_seconds{strategy=name}``)."""
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self.metrics.recall_seconds.labels(name).observe(time.perf_counter() - started)

    def _run(self, calls: dict[str, Callable[[], list[Candidate]]]) -> tuple[dict[str, list[Candidate]], set[str]]:
        futures = {name: self.executor.submit(self._stage, name, fn) for name, fn in calls.items()}
        results: dict[str, list[Candidate]] = {}
        failed: set[str] = set()
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except KgrecError as exc:
                log.warning("recall source %s failed: %s", name, exc)
                self.metrics.recall_errors.labels(name).inc()
                failed.add(name)
        return results, failed


def _filled(
    found: list[Candidate], run: Callable[[RecallFilters], list[Candidate]], filters: RecallFilters, k: int
) -> list[Candidate]:
    """``found`` followed, when it has fewer than ``k`` items, by what ``run(filters)`` finds besides them, scored
    below every item of ``found`` (order kept)."""
    if len(found) >= k:
        return found
    have = {c.item_id for c in found}
    extra = [c for c in run(filters) if c.item_id not in have]
    if not extra:
        return found
    floor = min((c.score for c in found), default=1.0)
    top = max(c.score for c in extra) or 1.0
    return found + [c.model_copy(update={"score": 0.5 * floor * c.score / top}) for c in extra]


__all__ = ["MAX_ID_LENGTH", "MODEL_VERSION", "SOURCES", "Recommender", "RequestOptions"]
