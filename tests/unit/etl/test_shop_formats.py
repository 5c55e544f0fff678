"""Timestamps, years, flag columns, attributes, interaction kinds and plain mapping errors (no Neo4j)."""

from pathlib import Path

import pytest

from etl.extract import RawRecord
from etl.mapping import AttributesSpec, GenresSpec, InteractionsSpec, load_mapping
from etl.sources import read_mapping_dataset
from etl.transform import RowError, band, parse_timestamp, parse_year, to_attributes, to_genres, to_interaction
from schema.errors import ConfigError
from schema.kinds import CombineRule, Event, combine


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("1299333731", "auto", 1299333731),
        ("1299333731000", "ms", 1299333731),
        ("2011-03-05", "auto", 1299283200),
        ("2011-03-05T14:02:11Z", "auto", 1299333731),
        ("2011-03-05 15:02:11+01:00", "iso", 1299333731),
        ("05/03/2011 14:02", "%d/%m/%Y %H:%M", 1299333720),
    ],
)
def test_timestamps_in_common_forms(text: str, fmt: str, expected: int) -> None:
    assert parse_timestamp(text, fmt) == expected


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("yesterday", "auto", "is not a number (epoch seconds) or an ISO-8601 date/time; set timestamp_format"),
        ("2011-03-05", "ms", "is not a number (timestamp_format ms: epoch milliseconds)"),
        ("2011-03-05", "%d/%m/%Y", "is not the format '%d/%m/%Y'"),
        ("-3", "auto", "timestamp -3 is negative"),
        ("12.5", "s", "is not a whole number"),
    ],
)
def test_bad_timestamps_say_why(text: str, fmt: str, message: str) -> None:
    with pytest.raises(RowError, match="^timestamp ") as info:
        parse_timestamp(text, fmt)
    assert message in str(info.value)


def test_years_from_dates() -> None:
    assert [parse_year(t) for t in ("1995", "01-Jan-1995", "2003-10-07", "3/1/1999")] == [1995, 1995, 2003, 1999]
    assert parse_year("07/10/03", "%d/%m/%y") == 2003
    with pytest.raises(RowError, match="neither a year nor a date"):
        parse_year("soon")


def test_flag_columns_become_genres_and_attributes() -> None:
    record = RawRecord(2, {"id": "1", "Action": "1", "Comedy": "0", "Drama": " yes ", "unknown": "1"})
    spec = GenresSpec(file="f", item="id", flags=["unknown", "Action", "Comedy", "Drama"], ignore=["unknown"])
    assert [g.genre for g in to_genres(record, spec)] == ["Action", "Drama"]
    named = AttributesSpec(file="f", item="id", kind="style", flags={"Action": "loud", "Comedy": "funny"})
    assert [a.value for a in to_attributes(record, named)] == ["loud"]


def test_attribute_bands_and_category_paths() -> None:
    assert [band(x, [18, 25, 35]) for x in (7, 18, 24.9, 34, 35, 90)] == [
        "<18",
        "18-25",
        "18-25",
        "25-35",
        "35+",
        "35+",
    ]
    record = RawRecord(2, {"sku": "p1", "cat": "Shoes > Running>Trail", "price": ""})
    path = AttributesSpec(file="f", item="sku", kind="category", value="cat", split=">", path=True)
    assert [a.value for a in to_attributes(record, path)] == ["Shoes", "Shoes > Running", "Shoes > Running > Trail"]
    price = AttributesSpec(file="f", item="sku", kind="price_band", value="price", bands=[10, 50])
    assert to_attributes(record, price) == []  # no price: nothing said, no reject


def test_negative_below_and_optional_rating() -> None:
    spec = InteractionsSpec(file="r", user="u", item="i", rating="r", rating_optional=True, negative_below=3)
    assert to_interaction(RawRecord(2, {"u": "1", "i": "2", "r": "2"}), spec).polarity == -1
    assert to_interaction(RawRecord(3, {"u": "1", "i": "2", "r": "3"}), spec).polarity == 1
    unrated = to_interaction(RawRecord(4, {"u": "1", "i": "2", "r": ""}), spec)
    assert (unrated.rating, unrated.polarity) == (None, 1)


def test_combine_rules() -> None:
    view, buy, ret = Event("view", 1, 1, 10), Event("purchase", 5, 1, 20), Event("return", 5, -1, 30)
    assert combine([view, buy, buy]) == combine([buy, view, buy])
    assert (combine([view, buy, buy]).weight, combine([view, buy, buy]).counts) == (11.0, (2, 1))
    assert combine([buy, ret]).polarity == -1 and combine([buy, ret]).weight == 0.0
    assert combine([view, view, ret, buy, buy], CombineRule.SUM).polarity == 1
    assert combine([view, ret, buy], CombineRule.STRONGEST).polarity == -1  # a tie goes to the negative kind
    assert combine([view, buy], CombineRule.STRONGEST).weight == 5.0
    assert combine([buy, ret, view], CombineRule.LATEST).polarity == -1
    assert combine([ret, buy, Event("view", 1, 1, 40)], CombineRule.LATEST).weight == 1.0


def test_repeat_purchase_is_counted_and_unkinded_duplicate_names_both_files(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("sku\np1\np2\n")
    (tmp_path / "orders.csv").write_text("user,sku\nu1,p1\nu1,p1\nu1,p2\n")
    (tmp_path / "ratings.csv").write_text("user,sku,stars\nu1,p2,4\n")
    (tmp_path / "m.yaml").write_text(
        "name: shop\ninteraction_kinds: {purchase: {weight: 5}}\n"
        "files: {items: {path: items.csv}, orders: {path: orders.csv}, ratings: {path: ratings.csv}}\n"
        "items: [{file: items, id: sku}]\n"
        "interactions:\n"
        "  - {file: orders, user: user, item: sku, kind: purchase}\n"
        "  - {file: ratings, user: user, item: sku, rating: stars}\n"
    )
    ds, _ = read_mapping_dataset(tmp_path / "m.yaml")
    by_item = {r.item_id: r for r in ds.interactions}
    assert (by_item["p1"].weight, by_item["p1"].kinds, by_item["p1"].kind_counts) == (10.0, ("purchase",), (2,))
    assert [r.reason for r in ds.rejects] == [
        "duplicate interaction of user 'u1' with item 'p2' (first at orders.csv line 4); give both sections a kind "
        "to combine them"
    ]


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        ("item_labels: [Product, Genre]", "item_labels: item label 'Genre' is one of the model's own labels"),
        ("item_labels: [product]", "item label 'product' must be PascalCase"),
        ("interaction_kinds: {view: {weight: -1}}", "interaction_kinds.view.weight: must be greater than 0 (found -1)"),
        ("combine: average", "combine: 'average' is not allowed; expected 'sum', 'strongest' or 'latest'"),
        ("attributes: [{file: a, kind: brand, value: b}]", "give either item or user"),
        ("interactions: [{file: a, user: u, item: i, kind: buy}]", "interactions[0]: kind 'buy' is not declared"),
        ("genres: [{file: x, item: i, genre: g}]", "genres[0].file: file 'x' is not listed under files: (listed: 'a')"),
        ("items: [{file: a, id: [1, 2]}]", "items[0].id: [1, 2] is not a string"),
    ],
)
def test_mapping_errors_in_plain_words_with_the_yaml_path(tmp_path: Path, yaml_text: str, line: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"name: x\nfiles: {{a: {{path: a.csv}}}}\n{yaml_text}\n")
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    message = str(info.value)
    assert line in message, message
    assert "pydantic" not in message and "type=" not in message


def test_undeclared_kind_in_a_kind_column_is_a_reject(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("sku\np1\n")
    (tmp_path / "events.csv").write_text("user,sku,event\nu1,p1,view\nu1,p1,wishlist\n")
    (tmp_path / "m.yaml").write_text(
        "name: shop\ninteraction_kinds: {view: {weight: 1}}\n"
        "files: {items: {path: items.csv}, events: {path: events.csv}}\n"
        "items: [{file: items, id: sku}]\n"
        "interactions: [{file: events, user: user, item: sku, kind_column: event}]\n"
    )
    ds, _ = read_mapping_dataset(tmp_path / "m.yaml")
    assert [r.reason for r in ds.rejects] == ["interaction kind 'wishlist' is not declared (interaction_kinds: 'view')"]
    assert [(r.kinds, r.kind_counts) for r in ds.interactions] == [(("view",), (1,))]
