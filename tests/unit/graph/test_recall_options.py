"""Recall options: caps, filters and argument checks that fail before any query runs (no database)."""

import pytest
from pydantic import ValidationError

from graph import recall
from graph.query import NO_ID
from graph.recall import CollaborativeCaps, PopularityCaps, RecallFilters, SimilarCaps
from schema.errors import ConfigError
from tests.fixtures.plans import size_bucket


def test_caps_become_camel_case_parameters() -> None:
    params = CollaborativeCaps(max_neighbours=7).to_params()
    assert params == {
        "minRating": 4.0,
        "maxPaths": 3,
        "maxSeeds": 50,
        "maxRatersScannedPerSeed": 500,
        "maxCoRatersPerSeed": 50,
        "maxNeighbours": 7,
        "maxItemsScannedPerNeighbour": 3000,
        "maxItemsPerNeighbour": 30,
    }
    assert PopularityCaps().to_params()["halfLifeDays"] == 180.0


def _neo4j_type(value: object) -> tuple:
    """The part of a parameter's value that Neo4j 5 keys a cached plan on: its type and, for a list, whether it holds
    strings and the power-of-ten bucket of its length (exact for 0 and 1)."""
    if isinstance(value, list):
        return ("list", bool(value) and all(isinstance(v, str) for v in value), size_bucket(len(value)))
    return (type(value).__name__,)


def test_filters_become_parameters_of_one_type_whatever_is_set() -> None:
    off = RecallFilters().to_params()
    on = RecallFilters(
        exclude_items=["a", "b"],
        include_genres=["Drama"],
        exclude_genres=["Horror"],
        year_min=1990,
        year_max=2000,
        now=1_700_000_000,
    ).to_params()
    assert off.keys() == on.keys()
    assert {k: _neo4j_type(v) for k, v in off.items()} == {k: _neo4j_type(v) for k, v in on.items()}
    assert off["yearMin"] == off["yearMax"] == off["now"] == [None]
    assert on["yearMin"] == [1990] and on["yearMax"] == [2000] and on["now"] == [1_700_000_000]
    # the genre lists are off when their first entry is the sentinel, and the queries test exactly that
    assert off["includeGenres"][0] == off["excludeGenres"][0] == NO_ID
    assert on["includeGenres"][0] == "Drama" and on["excludeGenres"][0] == "Horror"
    assert [i for i in on["excludeItems"] if i != NO_ID] == ["a", "b"]
    with pytest.raises(ValidationError):
        RecallFilters(include_genres=[""])  # the sentinel itself: it would switch the filter off


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: recall.recall_collaborative(None, "42", max_neigbours=5), "max_neigbours"),  # type: ignore[arg-type]
        (lambda: recall.recall_knowledge(None, "42", max_traits=0), "max_traits"),  # type: ignore[arg-type]
        (lambda: recall.recall_social(None, "42", hop_decay=2.0), "hop_decay"),  # type: ignore[arg-type]
        (lambda: recall.recall_popularity(None, "42", k=0), "k must be at least 1"),  # type: ignore[arg-type]
        (lambda: recall.similar_items(None, "1", co_weight=0.0, trait_weight=0.0), "both be 0"),  # type: ignore[arg-type]
    ],
)
def test_bad_options_raise_config_error_before_querying(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=message):
        call()


def test_similar_caps_default_to_both_parts() -> None:
    caps = SimilarCaps()
    assert caps.co_weight == caps.trait_weight == 1.0
