"""What the read modules share: the caps of a query (typed, sent as camelCase parameters) and running a catalogued
read query with its timing.

Used by :mod:`graph.recall`, :mod:`graph.embeddings`, :mod:`graph.explain` and :mod:`graph.reads`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from neo4j import READ_ACCESS, Driver, Record
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from graph.errors import database_errors
from schema.errors import ConfigError


class Caps(BaseModel):
    """Fan-out caps and weights of one query; sent to it as camelCase parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    min_rating: float = Field(
        4.0, description="Ratings at or above this are positives; unrated interactions always are."
    )
    max_paths: int = Field(3, ge=0, le=10, description="Explanation paths kept per candidate.")

    def to_params(self) -> dict[str, Any]:
        """Query parameters (camelCase) of these caps."""
        return self.model_dump(by_alias=True)


C = TypeVar("C", bound=Caps)


def parse_caps(model: type[C], overrides: Mapping[str, Any]) -> C:
    """``model`` with the caller's overrides (snake_case field names).

    Raises:
        ConfigError: An unknown cap or an invalid value (the message names each).
    """
    try:
        return model(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'caps'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid {model.__name__}: {problems}") from exc


#: What :func:`typed_ids` pads with: no node's id is empty (schema/rows.py), so ``x IN list`` is unchanged by it.
NO_ID = ""

#: The length :func:`typed_ids` pads a list to: every list of 11 to 100 entries is in one size bucket of Neo4j's plan
#: cache (buckets are powers of ten: 0, 1, 2–10, 11–100, …).
ONE_BUCKET = 11


def typed_ids(ids: Sequence[str]) -> list[str]:
    """``ids`` padded with :data:`NO_ID` to at least :data:`ONE_BUCKET` entries, for a list parameter that is only
    tested for membership (or looked up id by id) and holds at most 100 ids.

    Neo4j caches a query's plan per query string and parameter *types*, and by default a list's type includes the
    power-of-ten bucket of its length: an empty list, a list of one, of 2–10 and of 11–100 ids are four types, and a
    query sent with each is planned once for each combination. Planning the explanation query costs Neo4j about a
    second of CPU on an idle machine and up to 6 s on the loaded one, during which every other query waits for the
    cores (docs/benchmarks.md §5). The server kgrec starts leaves lengths out of the cache key (``KgrecNeo4j.java``);
    padded lists give one plan on any other server too."""
    return [*ids, *[NO_ID] * (ONE_BUCKET - len(ids))]


def boxed(value: int | None) -> list[int | None]:
    """``value`` as a list of one, for an int parameter that may be null (``$p[0]`` in the query).

    Null and an int are two parameter types, so a query sent with both is planned for each (:func:`typed_ids`); a
    list of one holding either is one type (a list of non-strings, of length 1)."""
    return [value]


def run_read(
    name: str, query: str, params: dict[str, Any], driver: Driver, database: str
) -> tuple[list[Record], float]:
    """Run one catalogued read query.

    Args:
        name: The query's name in error messages and timings.
        query: Its text (a :mod:`graph.catalog` constant).
        params: Its parameters.
        driver: An open driver.
        database: Neo4j database.

    Returns:
        The records and the query's wall time in seconds.

    Raises:
        DatabaseUnavailableError: Neo4j is unreachable.
        KgrecError: Neo4j refused the query.
    """
    started = time.perf_counter()
    # An auto-commit read: one round trip (a managed transaction adds a COMMIT), and no retry loop that
    # would hold a request for seconds while Neo4j is away; every query here is a single read statement.
    with (
        database_errors(name, refused=f"Neo4j refused the {name} query"),
        driver.session(database=database, default_access_mode=READ_ACCESS) as session,
    ):
        records = list(session.run(query, params))
    return records, time.perf_counter() - started


__all__ = ["NO_ID", "ONE_BUCKET", "Caps", "boxed", "parse_caps", "run_read", "typed_ids"]
