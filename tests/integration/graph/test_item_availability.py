"""The availability rule in every recall, similar-items and explain query, with an explicit clock, and knowledge
recall among new items (graph/items.py), on the small named graphs of tests/fixtures/graphs.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from neo4j import Driver

from etl.load import load_dataset
from graph import recall
from graph.explain import explain_items
from graph.items import read_restricted_items, recall_new_arrivals, update_item
from graph.recall import RecallFilters
from tests.fixtures import graphs

NOW = graphs.NOW
LN4 = math.log(4.0)


def _load(driver: Driver, name: str, tmp_path: Path) -> Driver:
    load_dataset(driver, graphs.GRAPHS[name](), reject_dir=tmp_path)
    return driver


def _everything(driver: Driver, filters: RecallFilters) -> dict[tuple[str, str], list[str]]:
    """What every user strategy finds for every user, and similar items for every item."""
    users = [r["id"] for r in driver.execute_query("MATCH (u:User) RETURN u.userId AS id")[0]]
    items = [r["id"] for r in driver.execute_query("MATCH (i:Item) RETURN i.itemId AS id")[0]]
    found: dict[tuple[str, str], list[str]] = {}
    for name, strategy in recall.STRATEGIES.items():
        for user in users:
            found[(name, user)] = [c.item_id for c in strategy(driver, user, k=50, filters=filters)]
    for item in items:
        found[("similar", item)] = [c.item_id for c in recall.similar_items(driver, item, k=50, filters=filters)]
    return found


@pytest.mark.parametrize("name", sorted(graphs.GRAPHS))
def test_no_strategy_returns_a_hidden_or_out_of_window_item(clean_db: Driver, tmp_path: Path, name: str) -> None:
    driver = _load(clean_db, name, tmp_path)
    at_now = RecallFilters(now=NOW)
    before = _everything(driver, at_now)
    shown = sorted({i for ids in before.values() for i in ids})
    assert shown  # every graph recalls something
    hidden, expiring, opening = shown[0::3], shown[1::3], shown[2::3]
    for item in hidden:
        update_item(driver, item, {"hidden": True})
    for item in expiring:  # available until NOW: gone at NOW, there a second before
        update_item(driver, item, {"available_until": NOW})
    for item in opening:  # available from NOW + 1: gone at NOW, there a second later
        update_item(driver, item, {"available_from": NOW + 1})
    now = _everything(driver, at_now)
    assert not {i for ids in now.values() for i in ids} & set(shown)
    earlier = {i for ids in _everything(driver, RecallFilters(now=NOW - 1)).values() for i in ids}
    assert set(expiring) <= earlier and not earlier & (set(hidden) | set(opening))
    later = {i for ids in _everything(driver, RecallFilters(now=NOW + 1)).values() for i in ids}
    assert set(opening) <= later and not later & (set(hidden) | set(expiring))
    # the explain query drops them like the filters do
    explained = explain_items(driver, "nobody", shown, filters=at_now)
    assert explained == {}
    assert set(explain_items(driver, "nobody", shown, filters=RecallFilters(now=NOW - 1))) == set(expiring)
    # the catalogue's in-memory read finds exactly these
    restricted = {r.item_id: r for r in read_restricted_items(driver)}
    assert set(restricted) == set(shown)
    assert {i for i, r in restricted.items() if not r.available(NOW)} == set(shown)
    # shown again: the same answers as before
    for item in shown:
        update_item(driver, item, {"hidden": False, "available_from": None, "available_until": None})
    assert _everything(driver, at_now) == before
    assert read_restricted_items(driver) == []


def test_new_arrival_recall_scores_shared_traits_like_knowledge_recall(clean_db: Driver, tmp_path: Path) -> None:
    """shared_actor: knowledge for 42 → [4, 3, 6, 5] at 3.5·ln 4, 2·ln 4, ln 4, 0.5·ln 4; the same among the
    given items, the paths named new arrivals."""
    driver = _load(clean_db, "shared_actor", tmp_path)
    found = recall_new_arrivals(driver, "42", ["6", "5", "4", "3", "1"], ["1", "2"], k=10)
    assert [c.item_id for c in found] == ["4", "3", "6", "5"]  # 1 is the user's own: never
    assert [round(c.score / LN4, 6) for c in found] == [3.5, 2.0, 1.0, 0.5]
    collateral = found[0].explanations
    assert [e.text for e in collateral] == [
        "New: because you liked Heat, also directed by Michael Mann",
        "New: because you liked Heat, also in Crime",
    ]
    assert [c.item_id for c in recall_new_arrivals(driver, "42", ["5", "4"], ["1"], k=10)] == ["5"]  # Toy Story only
    assert recall_new_arrivals(driver, "42", ["4", "3"], ["1", "2"], k=1)[0].item_id == "4"
    update_item(driver, "4", {"hidden": True})
    assert [c.item_id for c in recall_new_arrivals(driver, "42", ["4", "3"], ["1", "2"], k=10)] == ["3"]
