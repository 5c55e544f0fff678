"""Recall options: caps, filters and argument checks that fail before any query runs (no database)."""

import pytest

from graph import recall
from graph.recall import CollaborativeCaps, PopularityCaps, RecallFilters, SimilarCaps
from schema.errors import ConfigError


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


def test_filters_become_parameters_with_stable_list_types() -> None:
    assert RecallFilters().to_params() == {
        "excludeItems": [],
        "includeGenres": [],
        "excludeGenres": [],
        "yearMin": None,
        "yearMax": None,
        "now": None,
    }
    assert RecallFilters(now=1_700_000_000).to_params()["now"] == 1_700_000_000
    assert RecallFilters(include_genres=["Drama"], year_min=1990).to_params()["includeGenres"] == ["Drama"]


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
