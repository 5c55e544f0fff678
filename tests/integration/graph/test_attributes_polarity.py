"""Item attributes are traits of knowledge recall and explanations; a negative interaction (a return) is never a seed
or a co-rater's positive, and still hides the item from its user."""

from __future__ import annotations

from pathlib import Path

import pytest
from neo4j import Driver

from etl.load import load_dataset
from etl.sources import read_mapping_dataset
from graph import reads, recall
from graph.explain import explain_items
from graph.writers import BatchWriter, write_interaction_groups
from schema.rows import InteractionRow

SHOP = """
name: shop
item_labels: [Product]
interaction_kinds:
  purchase: {weight: 5}
  return: {weight: 5, polarity: negative}
files:
  products: {path: products.csv}
  orders: {path: orders.csv}
  returns: {path: returns.tsv, delimiter: "\\t"}
  customers: {path: customers.csv}
items:
  - {file: products, id: sku, title: name}
attributes:
  - {file: products, item: sku, kind: brand, value: brand}
  - {file: customers, user: customer, kind: country, value: country}
interactions:
  - {file: orders, user: customer, item: sku, timestamp: ordered_at, kind: purchase}
  - {file: returns, user: customer, item: sku, timestamp: returned_on, timestamp_format: "%d/%m/%Y", kind: return}
"""


@pytest.fixture
def shop(clean_db: Driver, tmp_path: Path) -> Driver:
    (tmp_path / "products.csv").write_text(
        "sku,name,brand\np1,Trail Shoe,Acme\np2,Road Shoe,Acme\np3,Rain Jacket,Zeta\np4,Wind Jacket,Zeta\np5,Sock,\n"
    )
    (tmp_path / "orders.csv").write_text(
        "customer,sku,ordered_at\n"
        "u1,p1,2024-01-02T10:00:00Z\nu1,p3,2024-01-03T10:00:00Z\n"
        "u3,p1,2024-01-04T10:00:00Z\nu3,p4,2024-01-05T10:00:00+01:00\n"
        "u4,p5,2024-01-06\n"
    )
    (tmp_path / "returns.tsv").write_text("customer\tsku\treturned_on\nu1\tp3\t10/01/2024\nu4\tp1\t11/01/2024\n")
    (tmp_path / "customers.csv").write_text("customer,country\nu1,FR\nu3,DE\nu9,FR\n")
    (tmp_path / "shop.yaml").write_text(SHOP)
    dataset, _ = read_mapping_dataset(tmp_path / "shop.yaml")
    assert not dataset.rejects, dataset.rejects
    load_dataset(clean_db, dataset, reject_dir=tmp_path)
    return clean_db


def _path(candidate: recall.Candidate | object, n: int = 0) -> list[tuple[str, str]]:
    explanation = candidate.explanations[n]  # type: ignore[attr-defined]
    return [(node.label, node.id) for node in explanation.nodes]


def test_knowledge_recall_reaches_items_through_a_shared_attribute(shop: Driver) -> None:
    result = recall.recall_knowledge(shop, "u1", k=10)
    # u1's only positive is p1 (p3 was returned): Acme leads to p2; Zeta (p3's brand) leads nowhere
    assert [c.item_id for c in result] == ["p2"]
    assert _path(result[0]) == [("User", "u1"), ("Item", "p1"), ("Attribute", "brand:Acme"), ("Item", "p2")]
    assert result[0].explanations[0].text == "Because you liked Trail Shoe, also brand Acme"
    assert recall.recall_knowledge(shop, "u1", k=10, attribute_weight=0.0) == []


def test_negative_interactions_are_neither_seeds_nor_co_rater_positives(shop: Driver) -> None:
    # u3 shares p1 with u1 and bought p4; u4 returned p1, so u4's Sock is not "liked by users who liked p1"
    assert [c.item_id for c in recall.recall_collaborative(shop, "u1", k=10)] == ["p4"]
    context = reads.user_context(shop, "u1")
    assert context is not None
    by_item = {i.item_id: i for i in context.interactions}
    assert by_item["p3"].polarity == -1 and not by_item["p3"].positive(4.0)
    assert by_item["p1"].positive(4.0)
    assert by_item["p3"].timestamp == 1704844800  # the return's date, 10/01/2024, is the latest event


def test_explanations_use_attribute_paths(shop: Driver) -> None:
    explained = explain_items(shop, "u1", ["p2", "p4"])
    assert [e.text for e in explained["p2"].explanations] == ["Because you liked Trail Shoe, also brand Acme"]
    # p4 shares Zeta only with the returned p3, which is not a seed; its co-interaction path goes through p1
    assert [(n.label, n.id) for n in explained["p4"].explanations[0].nodes] == [
        ("User", "u1"),
        ("Item", "p1"),
        ("User", "u3"),
        ("Item", "p4"),
    ]


def test_grouped_writes_set_and_clear_polarity(shop: Driver) -> None:
    writer = BatchWriter(shop)
    dislike = InteractionRow(user_id="u3", item_id="p2", weight=1.0, polarity=-1)
    first = write_interaction_groups(writer, [(0, dislike)])
    again = write_interaction_groups(writer, [(0, dislike)])
    assert (first[0].status, again[0].status) == ("created", "unchanged")
    assert "p2" not in [c.item_id for c in recall.recall_knowledge(shop, "u3", k=10)]  # seen, so hidden
    context = reads.user_context(shop, "u3")
    assert context is not None and {i.item_id: i.polarity for i in context.interactions}["p2"] == -1
    like = write_interaction_groups(writer, [(0, dislike.model_copy(update={"polarity": 1}))])
    assert like[0].status == "updated"
    context = reads.user_context(shop, "u3")
    assert context is not None and {i.item_id: i.polarity for i in context.interactions}["p2"] == 1


def test_cold_user_gets_what_users_sharing_an_attribute_liked(shop: Driver) -> None:
    # u9 has no interaction; u1 shares the country FR and liked p1 (its p3 was returned)
    result = recall.recall_popularity(shop, "u9", k=10)
    assert result[0].item_id == "p1"
    assert result[0].explanations[0].text == "Popular with users who share your country FR"
    assert [(n.label, n.id) for n in result[0].explanations[0].nodes] == [
        ("User", "u9"),
        ("Attribute", "country:FR"),
        ("User", "u1"),
        ("Item", "p1"),
    ]
    plain = recall.recall_popularity(shop, "u9", k=10, peer_boost=0.0)
    assert {c.item_id for c in plain} == {c.item_id for c in result}
    boosted = {c.item_id: c.score for c in result}
    assert boosted["p1"] == pytest.approx(2 * {c.item_id: c.score for c in plain}["p1"])
    assert all(e.text == "Popular lately" for c in plain for e in c.explanations)
