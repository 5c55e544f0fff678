"""Settings of the HTTP service (prefix ``KGREC_``), built by :func:`get_api_settings`, never at import."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gnn.serving import CANDIDATES_FROM_ITEMS, ScoringCandidates
from schema.errors import ConfigError

#: Lists a transaction of recorded impressions holds at most, by store, when ``KGREC_IMPRESSIONS_BATCH`` is unset.
SQLITE_IMPRESSIONS_BATCH = 10
GRAPH_IMPRESSIONS_BATCH = 50

_PLACEHOLDERS = ("changeme", "change-me", "secret", "password", "xxx", "example", "qwerty", "letmein")
#: A key must have at least this many characters ...
MIN_KEY_LENGTH = 16
#: ... and at least this many bits by :func:`key_strength_bits`.
MIN_KEY_BITS = 48
_KEY_ADVICE = "make one with `openssl rand -hex 16`"


def key_strength_bits(key: str) -> float:
    """A rough strength of a key in bits: its effective length times log2 of its distinct characters.

    The effective length counts each run of repeated or consecutive characters ("aaaa", "1234", "dcba") once, so
    padding a word with a run adds almost nothing: ``password1234`` scores 9 x log2(11) ≈ 31 bits, a key from
    ``openssl rand -hex 16`` about 100 on average.

    Args:
        key: The key.

    Returns:
        The estimate in bits (0 for an empty key).
    """
    if not key:
        return 0.0
    effective = 1 + sum(1 for a, b in zip(key, key[1:], strict=False) if abs(ord(b) - ord(a)) > 1)
    return effective * math.log2(max(len(set(key)), 2))


def check_api_key(key: str) -> None:
    """Refuse a weak API key.

    A key must have at least 16 characters, no whitespace, no placeholder word (password, changeme, secret, …), and
    at least 48 bits by :func:`key_strength_bits`.

    Args:
        key: The key.

    Raises:
        ValueError: The key is weak; the message says why and how to make a good one.
    """
    if any(c.isspace() for c in key):
        raise ValueError(f"KGREC_API_KEY must not contain whitespace; {_KEY_ADVICE}")
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"KGREC_API_KEY must have at least {MIN_KEY_LENGTH} characters; {_KEY_ADVICE}")
    if any(word in key.lower() for word in _PLACEHOLDERS):
        raise ValueError(f"KGREC_API_KEY must not contain a placeholder word such as 'password'; {_KEY_ADVICE}")
    if key_strength_bits(key) < MIN_KEY_BITS:
        raise ValueError(
            f"KGREC_API_KEY is too easy to guess (repeated or consecutive characters, few distinct ones); {_KEY_ADVICE}"
        )


class ApiSettings(BaseSettings):
    """How the API serves and protects itself."""

    model_config = SettingsConfigDict(env_prefix="KGREC_", env_file=".env", extra="ignore")

    api_key: SecretStr | None = Field(
        None,
        description="Key required in X-API-Key for writes (and reads if read_requires_key). Unset: writes refused.",
    )
    read_requires_key: bool = Field(False, description="Also require the key for reads.")
    host: str = Field("127.0.0.1", description="Address `kgrec serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `kgrec serve` listens on.")
    default_k: int = Field(10, ge=1, le=100, description="Items returned when the request gives no k.")
    max_k: int = Field(100, ge=1, le=1000, description="Largest k a request may ask for.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body in bytes (larger bodies answer 413)."
    )
    source_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "collaborative": 1.0,
            "knowledge": 0.6,
            "social": 0.5,
            "popularity": 0.15,
            "embedding": 0.8,
        },
        description="Blend weight of each recall source (scores are max-normalised per source first).",
    )
    recall_workers: int = Field(4, ge=1, le=32, description="Threads that run recall sources in parallel.")
    scoring_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="Threads one model scoring may use (torch, BLAS); requests already run in parallel, so more "
        "oversubscribes the cores under load.",
    )
    scoring_candidates: int | None = Field(
        None,
        ge=0,
        description="A blend scores a candidate set of this many items per component instead of every item "
        "(gnn.blend.config.RankerConfig.serve_candidates: cheaper at a large catalogue, scores estimated; "
        "docs/benchmarks.md §5); 0: every item; unset: as the artifact was fitted, or by "
        "scoring_candidates_from_items.",
    )
    scoring_candidates_from_items: int = Field(
        CANDIDATES_FROM_ITEMS,
        ge=0,
        description="A blend of this many items or more scores a candidate set of gnn.serving.AUTO_CANDIDATES per "
        "component when neither scoring_candidates nor its artifact sets one: its best LightGCN and ALS items from "
        "an HNSW index, the z-scores from exact catalogue moments, so that an answer's cost stops growing with the "
        "catalogue (docs/benchmarks.md §5); 0: never by size. kgrec retrain saves that index's HNSW graphs with a "
        "blend of the default's size or more, and the API reads them when it loads; otherwise it builds them.",
    )

    def candidates(self) -> ScoringCandidates:
        """The blend's every item or candidate set from ``scoring_candidates`` and ``scoring_candidates_from_items``."""
        return ScoringCandidates(self.scoring_candidates, self.scoring_candidates_from_items or None)

    min_rating: float = Field(
        4.0, description="Ratings at or above this are positives (unrated interactions always are)."
    )
    artifacts_dir: Path = Field(Path(".kgrec/artifacts"), description="Where `kgrec retrain` promotes models.")
    serve_model: str = Field(
        "auto",
        pattern="^(auto|none|blend|lightgcn|graphsage)$",
        description="Model to rank with: auto (blend, else lightgcn, else graphsage), none (graph recall only), or one kind.",
    )
    model_watch_seconds: float = Field(
        30.0, ge=0, description="How often to look for a newly promoted model (0 = only on POST /admin/reload)."
    )
    response_cache_size: int = Field(
        20_000,
        ge=0,
        description="Model-path answers kept (keyed by request and the user's current interactions; 0 = off).",
    )
    response_cache_seconds: float = Field(
        900.0,
        ge=0,
        description="Longest a cached answer is reused (bounds how stale other users' paths can be).",
    )
    shared_answers: bool = Field(
        True,
        description="With `kgrec serve --workers N`, the workers share their computed answers through a SQLite file "
        "in the directory serve gives them (created and removed with it), so that an answer one worker computed is a "
        "hit in the others; a lookup a worker cannot answer costs one indexed read of the file. One process: no "
        "effect.",
    )
    history_cache_size: int = Field(
        500_000,
        ge=0,
        description="Interactions of users' histories held between requests, summed over users (about 240 bytes "
        "each): a user whose interaction count and revision are unchanged is answered without their history being "
        "read again (any new interaction, feedback or dislike is read at once; held for at most "
        "KGREC_RESPONSE_CACHE_SECONDS; 0 = off).",
    )
    explain_cache_size: int = Field(
        20_000,
        ge=0,
        description="Neighbourhoods kept for the explanation query (a seed's or item's first raters and its traits, a "
        "followee's first positives, which do not depend on the user asking, and a user's followees; 0 = off).",
    )
    explain_cache_seconds: float = Field(
        300.0,
        ge=0,
        description="Longest a kept neighbourhood is reused (bounds how stale the paths through other users can be, "
        "as KGREC_RESPONSE_CACHE_SECONDS does for answers; 0 = off).",
    )
    catalogue_refresh_seconds: float = Field(
        5.0,
        ge=0,
        description="How often the hidden, windowed and added items are re-read for the model's ranking (changes "
        "made through this process apply at once; through another, within this; 0 = only on this process's changes).",
    )
    popularity_refresh_seconds: float = Field(
        10.0,
        ge=0,
        description="How often popularity recall's window (the most recent positives, time-decayed; the same for "
        "every user) is re-read, in the background; 0 = read by every popularity call.",
    )
    response_cache_pool: int = Field(
        20,
        ge=1,
        le=100,
        description="Items computed (and cached) per answer; requests for fewer are slices of it, for more are computed.",
    )
    cache_warm_users: int = Field(
        5000,
        ge=0,
        description="After a model loads (or at start, for graph recall without one), precompute the answers of this "
        "many most active users (0 = off).",
    )
    cache_warm_ready_users: int = Field(
        1000,
        ge=0,
        description="How many of those (the most active first) /ready waits for; the rest are warmed in the "
        "background after /ready turns 200, so a large warm set does not hold the service back "
        "(0 = /ready does not wait for warming).",
    )
    mmr_lambda: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Maximal marginal relevance trade-off: 1 = relevance only, lower = more diverse. 0.6 is the "
        "smallest λ whose validation NDCG@20 stays within 1% of λ = 1 on ml-latest-small (bench/mmr.py).",
    )
    variants: Path | None = Field(
        None,
        description="YAML file of A/B variants (salt; name, share, model_version, mmr_lambda, exploration_share each); "
        "unset: one variant, 'default', with these settings (docs/api.md).",
    )

    ingest_max_rows: int = Field(
        10_000, ge=1, le=100_000, description="Most interactions one POST /interactions/batch may carry (more: 413)."
    )
    ingest_max_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest body POST /interactions/batch reads (more: 413)."
    )
    write_group_rows: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Most single POST /interactions written in one transaction: posts that arrive while a write is "
        "running are written together next, each answered on its own (1 = one transaction per post).",
    )
    write_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Longest a POST /interactions waits for its write (queued and written); Neo4j also ends the write "
        "transaction after it. Past it the post is answered 503 with Retry-After (the write may still land).",
    )
    read_rate: float = Field(
        50.0, ge=0, description="Reads per second each client may sustain (by API key, else IP; 0 = no limit)."
    )
    read_burst: int = Field(100, ge=1, description="Reads a client may send at once before KGREC_READ_RATE applies.")
    max_inflight_reads: int = Field(
        64, ge=0, description="Reads answered or waiting at once; one more is refused at once with 503 (0 = no bound)."
    )
    miss_concurrency: int = Field(
        4, ge=1, le=256, description="Uncached answers (cache misses) computed at once; more wait (KGREC_MISS_QUEUE)."
    )
    miss_queue: int = Field(
        16, ge=0, description="Uncached reads that may wait for a computing slot; one more is refused with 503."
    )
    miss_wait_seconds: float = Field(
        0.2, ge=0, le=60, description="Longest an uncached read waits for a computing slot before a 503."
    )
    miss_cost_rate: float = Field(
        20.0,
        ge=0,
        description="Cost units of uncached work each client may spend per second (an uncached read costs "
        "max(k, 20)/20, half without explanations; over budget: 429; 0 = no budget).",
    )
    miss_cost_burst: float = Field(40.0, ge=1, description="Cost units of uncached work a client may spend at once.")

    gc_freeze: bool = Field(
        True,
        description="Freeze the heap alive once the service has started and after each warming of the answer cache "
        "(gc.freeze), so that Python's full garbage collections walk only what requests allocate and do not stall "
        "them (api/heap.py).",
    )
    gc_young_threshold: int = Field(
        5_000,
        ge=0,
        description="Net allocations between two collections of Python's youngest garbage-collector generation "
        "(CPython's default is 700: a miss then runs several, each walking the objects of every request in flight; "
        "api/heap.py). 0 = Python's default.",
    )
    gil_switch_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Longest a thread holds Python's interpreter lock while another waits for it, in ms (CPython's "
        "switch interval, 5 ms: a request on the event loop can wait that long each time it resumes while a background "
        "thread computes; api/heap.py). 0 = Python's default.",
    )

    debug_timeline: bool = Field(
        False,
        description="Log (INFO, logger api.timeline) each of the process's garbage collections and each impression "
        "write transaction with its wall-clock start and length, to set slow requests against them "
        "(bench/tail_events.py). For diagnosis: a line per collection and per transaction.",
    )

    # impressions, feedback and exposure (api/impressions.py, api/feedback.py, api/ranking.py)
    impressions: bool = Field(True, description="Record every served list and its items (impressions).")
    impression_store: str = Field(
        "sqlite",
        pattern="^(neo4j|sqlite)$",
        description="Where impressions, exposure and attributed clicks are kept (graph/impressions.py): sqlite (a file "
        "on this host, KGREC_IMPRESSION_DB: Neo4j does none of the recording's work, and the read path's tail pays "
        "less for recording than with the graph's, docs/benchmarks.md §5) or neo4j (the graph: list nodes, exposure "
        "arrays on the user, item counters). One file per host: API processes on several hosts behind one graph need "
        "neo4j.",
    )
    impression_db: Path = Field(
        Path(".kgrec/impressions.sqlite3"),
        description="The SQLite file of KGREC_IMPRESSION_STORE=sqlite (created with its directory; every API process "
        "of the host opens the same one; relative to the working directory; it records the graph it was written for "
        "and is opened for no other).",
    )
    impressions_queue: int = Field(
        10_000, ge=1, description="Served lists waiting to be written; one more is dropped (counted), never waited for."
    )
    impressions_batch: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Most served lists (and most users' summed exposure) written per transaction (small transactions "
        "interleave with reads: fewer stalls). Unset: 10 with the SQLite store, whose transaction of 50 lists took "
        "several milliseconds of a core from the requests (cached hits' p99 was lower at 10 than at 50 in each of three "
        "alternated quiet rounds, docs/benchmarks.md §5); 50 with the graph's, where more transactions cost Neo4j more.",
    )
    impressions_flush_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Lists are written every this many seconds, their exposure summed per (user, item) and per item "
        "over the window (fewer writes: a longer window costs Neo4j and the API less per list); the longest a served "
        "list waits, so what a crash can lose. Fatigue and rotation count the lists still waiting; a feedback naming "
        "a waiting list writes its user's lists first.",
    )
    impressions_retention_days: float = Field(
        90.0,
        ge=0,
        description="Recorded lists (attribution, kgrec report: rows of the SQLite file, or Recommendation nodes in the "
        "graph) older than this many days are deleted in the background, in small batches; exposure counts (each user's "
        "exposure, listsShown, item impressions) are kept. 0 = keep every list.",
    )
    exposure_cache_size: int = Field(
        500_000,
        ge=0,
        description="Exposure rows of users held between requests with KGREC_IMPRESSION_STORE=sqlite, summed over "
        "users (about 160 bytes each, per worker; a user at the KGREC_EXPOSURE_ITEMS bound holds up to a tenth more "
        "rows than it): while the file's version of a user (their lists and items recorded) is the one held, a miss "
        "reads one row instead of their few hundred; the process that records a user's lists keeps them beside the "
        "rows it holds for the next read to apply, and a list another process records makes them read again (0 = off).",
    )
    exposure_items: int = Field(
        500,
        ge=1,
        le=100_000,
        description="Most items a user's exposure keeps (the most recently shown; older ones are forgotten and no "
        "longer fatigued): the arrays on the user node that fatigue and rotation read, written once per user per "
        "impression window.",
    )
    feedback_kinds: Path | None = Field(
        None,
        description="YAML file of the feedback types of POST /feedback (weight, polarity, outcome of each; combine "
        "rule); unset: the defaults of schema/kinds.py.",
    )
    exploration_share: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Exploration: share of a list's positions (in its lower half, never the first) given to items just "
        "below the cut, chosen by Thompson sampling over their impressions and clicks; each is marked by the source "
        "'exploration' and explained like any item. 0 = off; a variant's exploration_share overrides it.",
    )
    exploration_seed: int | None = Field(
        None,
        ge=0,
        description="Seed of exploration's random draws (Thompson sampling), so that a run can be repeated exactly: "
        "the same requests in the same order give the same explored items. Unset = fresh entropy at each start.",
    )
    exploration_refresh_seconds: float = Field(
        30.0,
        gt=0,
        description="How often exploration re-reads every item's impressions and clicks from Neo4j (between reads, "
        "this process's own lists and clicks are counted in memory).",
    )
    fatigue_half_life: float = Field(
        5.0,
        ge=0,
        description="Exposure fatigue: an item shown to a user this many times without an interaction loses half its "
        "score (score x 0.5^(shown/half-life)); 0 = off. Users without recorded impressions are unaffected.",
    )
    fatigue_refresh_lists: int = Field(
        0,
        ge=0,
        description="Also recompute a user's cached answer (with fatigue) every this many lists recorded for them, "
        "at the cost of one miss each time; 0 = fatigue applies whenever an answer is computed (a new interaction "
        "or feedback, KGREC_RESPONSE_CACHE_SECONDS passed, other options), and exposure alone never misses.",
    )
    rotation_lists: int = Field(
        0,
        ge=0,
        description="Rotation: leave out items shown in the user's last N recorded lists (0 = off); each recorded "
        "list then refreshes the user's cached answer.",
    )

    def impressions_batch_size(self) -> int:
        """``impressions_batch``, or the impression store's default when it is unset."""
        if self.impressions_batch is not None:
            return self.impressions_batch
        return SQLITE_IMPRESSIONS_BATCH if self.impression_store == "sqlite" else GRAPH_IMPRESSIONS_BATCH

    @field_validator("api_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        check_api_key(value.get_secret_value())
        return value


def load_api_settings(**values: object) -> ApiSettings:
    """The API settings from the environment (and ``.env``), ``values`` overriding them, for a command to use.

    Raises:
        ConfigError: A KGREC_* variable is invalid; the message names each one, the value given, what is expected
            and the default that unsetting it gives.
    """
    try:
        return ApiSettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_invalid_settings(exc)) from None


def describe_invalid_settings(exc: ValidationError) -> str:
    """One paragraph for a person: each invalid KGREC_* variable with its value, what is expected and its default."""
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = ApiSettings.model_fields.get(name)
        variable = f"KGREC_{name.upper()}" if name else "the API settings"
        secret = field is not None and "SecretStr" in str(field.annotation)  # never echo a key
        given = f"={error['input']!r}" if name and not secret and not isinstance(error.get("input"), dict) else ""
        default = f" (default when unset: {field.get_default(call_default_factory=True)!r})" if field else ""
        problems.append(f"{variable}{given}: {error['msg']}{default}")
    return (
        f"invalid API setting{'s' if len(problems) > 1 else ''} in the environment or .env: {'; '.join(problems)}. "
        f"Correct or unset {'them' if len(problems) > 1 else 'it'} and run the command again."
    )


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    """Return the process-wide API settings."""
    return ApiSettings()
