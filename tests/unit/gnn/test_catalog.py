"""The item catalog saved beside a model: the API's genre and year filters while Neo4j is away."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gnn.artifacts import CATALOG_FILE, ItemCatalog
from schema.errors import DataError


def _catalog() -> ItemCatalog:
    # items a: Drama 1995; b: Drama+Horror 2001; c: Comedy, year unknown; d: no genre 1980
    pairs = np.array([[0, 1, 1, 2], [0, 0, 1, 2]])
    return ItemCatalog(["a", "b", "c", "d"], ["Drama", "Horror", "Comedy"], pairs, np.array([1995, 2001, -1, 1980]))


def _names(catalog: ItemCatalog, mask: np.ndarray) -> list[str]:
    return [i for i, keep in zip(catalog.item_ids, mask, strict=True) if keep]


def test_mask_follows_the_recall_queries_filters() -> None:
    c = _catalog()
    assert _names(c, c.mask()) == ["a", "b", "c", "d"]
    assert _names(c, c.mask(include_genres=["Drama", "Comedy"])) == ["a", "b", "c"]
    assert _names(c, c.mask(exclude_genres=["Horror"])) == ["a", "c", "d"]
    assert _names(c, c.mask(include_genres=["Drama"], exclude_genres=["Horror"])) == ["a"]
    assert _names(c, c.mask(year_min=1990)) == ["a", "b"]  # an unknown year never passes a bound
    assert _names(c, c.mask(year_max=1999)) == ["a", "d"]
    assert _names(c, c.mask(include_genres=["Western"])) == []  # an unknown genre matches nothing
    assert _names(c, c.mask(exclude_genres=["Western"])) == ["a", "b", "c", "d"]


def test_aligned_reorders_and_fills_unknown_items(tmp_path: Path) -> None:
    c = _catalog()
    moved = c.aligned(["d", "x", "b", "a"])  # "x" is not in the catalog, "c" is not in the model
    assert moved.item_ids == ["d", "x", "b", "a"]
    assert moved.item_year.tolist() == [1980, -1, 2001, 1995]
    assert _names(moved, moved.mask(include_genres=["Drama"])) == ["b", "a"]
    assert _names(moved, moved.mask(exclude_genres=["Drama"])) == ["d", "x"]
    assert c.aligned(list(c.item_ids)) is c


def test_catalog_round_trips_and_a_broken_file_is_a_data_error(tmp_path: Path) -> None:
    assert ItemCatalog.read(tmp_path) is None
    (tmp_path / CATALOG_FILE).write_bytes(_catalog().to_bytes())
    back = ItemCatalog.read(tmp_path)
    assert back is not None and back.item_ids == ["a", "b", "c", "d"] and back.genres == ["Drama", "Horror", "Comedy"]
    assert back.item_genres.tolist() == _catalog().item_genres.tolist()
    assert back.item_year.tolist() == [1995, 2001, -1, 1980]
    (tmp_path / CATALOG_FILE).write_text('{"items": ["a"]}', encoding="utf-8")
    with pytest.raises(DataError, match="unreadable item catalog"):
        ItemCatalog.read(tmp_path)
