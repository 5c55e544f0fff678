from pathlib import Path

import pytest

from etl.mapping import load_mapping, resolve_paths
from etl.sources import read_mapping_dataset, shipped_mapping_path
from schema.errors import ConfigError


def test_shipped_mappings_are_valid() -> None:
    for name in ("movielens", "lastfm"):
        mapping = load_mapping(shipped_mapping_path(name))
        assert mapping.name == name


def test_mapping_rejects_unknown_field_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: x\nfiles: {a: {path: a.csv}}\nitems: [{file: a, id: id, colour: red}]\n")
    with pytest.raises(ConfigError, match="colour"):
        load_mapping(path)


def test_mapping_rejects_section_with_unlisted_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: x\nfiles: {a: {path: a.csv}}\nitems: [{file: b, id: id}]\n")
    with pytest.raises(ConfigError, match="file 'b'"):
        load_mapping(path)


def test_mapping_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_mapping(path)


def test_resolve_paths_requires_variables_of_required_files() -> None:
    mapping = load_mapping(shipped_mapping_path("movielens"))
    with pytest.raises(ConfigError, match="movielens"):
        resolve_paths(mapping, Path("."), {})
    paths = resolve_paths(mapping, Path("."), {"movielens": "/data/ml"})
    assert paths["ratings"] == Path("/data/ml/ratings.csv")
    assert paths["hetrec_genres"] is None


def test_generic_mapping_tsv_without_header_and_follows(tmp_path: Path) -> None:
    (tmp_path / "items.tsv").write_text("a\tAlpha\nb\tBeta\n")
    (tmp_path / "clicks.tsv").write_text("u1\ta\t3\nu2\tb\t1\nu2\tzzz\t1\n")
    (tmp_path / "friends.csv").write_text("src,dst\nu1,u2\nu3,u3\n")
    (tmp_path / "m.yaml").write_text(
        """
name: shop
files:
  items: {path: items.tsv, delimiter: "\\t", header: false, columns: [sku, name]}
  clicks: {path: clicks.tsv, delimiter: "\\t", header: false, columns: [user, sku, n]}
  friends: {path: friends.csv}
items: [{file: items, id: sku, title: name}]
interactions: [{file: clicks, user: user, item: sku, weight: n}]
follows: [{file: friends, follower: src, followee: dst, mutual: true}]
"""
    )
    dataset, _ = read_mapping_dataset(tmp_path / "m.yaml")
    assert [(i.item_id, i.title) for i in dataset.items] == [("a", "Alpha"), ("b", "Beta")]
    assert [(r.user_id, r.item_id, r.weight) for r in dataset.interactions] == [("u1", "a", 3.0), ("u2", "b", 1.0)]
    assert [(f.follower_id, f.followee_id) for f in dataset.follows] == [("u1", "u2"), ("u2", "u1")]
    assert [(r.line, r.reason) for r in dataset.rejects] == [
        (3, "unknown item 'zzz' (not in the item catalogue)"),
        (3, "user 'u3' follows themself"),
    ]
