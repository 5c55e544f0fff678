"""Prometheus metrics of one app instance (own registry, so several apps can live in one process).

With several worker processes behind one port (``kgrec serve --workers N``), each process counts in files under
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, which ``kgrec serve`` sets up), and ``/metrics``
answers the sum over every worker, whichever one a scrape reaches (:func:`exposition`).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

#: Set (to a directory shared by the workers) when several processes serve behind one port.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def exposition(registry: CollectorRegistry) -> bytes:
    """The text of ``/metrics``: ``registry``'s metrics, or, in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``
    set), every worker's summed (gauges: the live workers' sum)."""
    if os.environ.get(MULTIPROC_ENV):
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)
        return generate_latest(merged)
    return generate_latest(registry)


_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Requests and latency per route; Neo4j query time per recall strategy."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kgrec_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kgrec_http_request_seconds",
            "HTTP request latency by route.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.recall_seconds = Histogram(
            "kgrec_recall_query_seconds",
            "Neo4j time of each recall strategy call.",
            ["strategy"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.cache = Counter(
            "kgrec_response_cache",
            "Model-path answer cache lookups by outcome (hit, miss).",
            ["outcome"],
            registry=self.registry,
        )
        self.cache_entries = Gauge(
            "kgrec_response_cache_entries",
            "Answers held by the model-path cache (every worker's).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.history_cache = Counter(
            "kgrec_history_cache",
            "Users' context reads by what the held histories gave: hit (the held interactions were still current and "
            "not read again), stale (held but changed: read again), miss (none held).",
            ["outcome"],
            registry=self.registry,
        )
        self.exposure_cache = Counter(
            "kgrec_exposure_cache",
            "Exposure reads of the SQLite impression store by what the rows held in the process gave: hit (held at the "
            "file's version), applied (this process's windows applied to them), stale (another process wrote since: "
            "read again), miss (none held).",
            ["outcome"],
            registry=self.registry,
        )
        self.shared_answers = Counter(
            "kgrec_shared_answers",
            "The answers the workers of one `kgrec serve --workers N` share (KGREC_SHARED_ANSWERS), by outcome: hit (an "
            "answer another worker computed), miss, stored, failed (a statement of the shared file failed: the request "
            "went on without it).",
            ["outcome"],
            registry=self.registry,
        )
        self.explain_fallbacks = Counter(
            "kgrec_explain_fallbacks",
            "Model-path answers whose shown items the graph did not all confirm within the rounds of picking again "
            "(the candidates were then explained in batches).",
            registry=self.registry,
        )
        self.explain_repicks = Counter(
            "kgrec_explain_repicks",
            "Rounds in which MMR picked a model-path answer's items again because the graph dropped a picked item or "
            "found no path to it (that item left the pool, the next ranked one joined it).",
            registry=self.registry,
        )
        self.refused = Counter(
            "kgrec_refused_requests",
            "Read requests refused before any work: overload (the bound on in-flight or uncached work, 503) or a "
            "client over its budget of uncached work (429).",
            ["reason"],
            registry=self.registry,
        )
        self.write_seconds = Histogram(
            "kgrec_write_stage_seconds",
            "Where writes spend their time: single POST /interactions waiting in the writer's queue (queued) and in "
            "their grouped transaction (transaction); recorded impressions' transactions (impressions).",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.write_group_rows = Histogram(
            "kgrec_write_group_rows",
            "Single posts written per grouped transaction.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=self.registry,
        )
        self.recall_errors = Counter(
            "kgrec_recall_errors", "Recall strategy calls that failed.", ["strategy"], registry=self.registry
        )
        # online figures (api/impressions.py, api/feedback.py): what was shown and what users did with it, by variant
        self.lists = Counter(
            "kgrec_recommendation_lists",
            "Recommendation lists served, by variant.",
            ["variant"],
            registry=self.registry,
        )
        self.impressions = Counter(
            "kgrec_impressions", "Items shown in served lists, by variant.", ["variant"], registry=self.registry
        )
        self.impressions_dropped = Counter(
            "kgrec_impressions_dropped",
            "Served lists (queue_full) or list rows (write_failed) not recorded in Neo4j.",
            ["reason"],
            registry=self.registry,
        )
        self.clicks = Counter(
            "kgrec_clicks",
            "Shown items clicked (a conversion counts too), attributed to their list, by its variant.",
            ["variant"],
            registry=self.registry,
        )
        self.conversions = Counter(
            "kgrec_conversions",
            "Shown items converted (purchased), attributed to their list, by its variant.",
            ["variant"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "kgrec_feedback",
            "Feedback events recorded, by type and attribution (attributed, unattributed, none).",
            ["type", "attribution"],
            registry=self.registry,
        )
