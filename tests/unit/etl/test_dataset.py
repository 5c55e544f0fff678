"""The MovieLens mapping on tiny fixture files that reproduce the real files' quirks."""

from pathlib import Path

import pytest

from etl.dataset import Dataset
from etl.sources import movielens_variables, read_mapping_dataset, shipped_mapping_path
from schema.model import Role

MINI = Path(__file__).parents[2] / "fixtures" / "mini_movielens"


@pytest.fixture(scope="module")
def mini() -> Dataset:
    variables = movielens_variables(MINI, actors=MINI / "actors.csv", hetrec=MINI / "hetrec")
    dataset, _ = read_mapping_dataset(shipped_mapping_path("movielens"), variables)
    return dataset


def test_mini_movielens_keeps_every_good_row(mini: Dataset) -> None:
    assert len(mini.items) == 5
    assert len(mini.interactions) == 8
    assert sorted(u.user_id for u in mini.users) == ["1", "2", "3", "4"]


def test_mini_movielens_rejects_each_bad_rating_with_line_and_reason(mini: Dataset) -> None:
    rejects = [(r.line, r.reason) for r in mini.rejects if r.source == "interactions:ratings"]
    assert rejects == [
        (10, "rating 'four' is not a number"),
        (11, "rating 9.5 outside [0.5, 5]"),
        (12, "missing user id (column 'userId' is empty)"),
        (13, "expected 4 columns, found 3"),
        (14, "unknown item '99' (not in the item catalogue)"),
        (15, "undecodable bytes for encoding utf-8 at byte 9"),
        (16, "duplicate interaction of user '1' with item '1' (first at ratings.csv line 2)"),
        (17, "timestamp -5 is negative"),
    ]
    assert len(mini.rejects) == 8
    assert all(r.path.endswith("ratings.csv") for r in mini.rejects)


def test_mini_movielens_people_merge_across_sources(mini: Dataset) -> None:
    acted = sorted((p.item_id, p.person_id) for p in mini.people if p.role is Role.ACTOR)
    directed = sorted((p.item_id, p.person_id) for p in mini.people if p.role is Role.DIRECTOR)
    assert acted == [
        ("1", "tim_allen"),
        ("1", "tom_hanks"),
        ("3", "helen_hunt"),
        ("3", "tom_hanks"),
        ("5", "al_pacino"),
        ("5", "robert_de_niro"),
    ]
    assert directed == [
        ("1", "ada_lind"),
        ("2", "bo_tran"),
        ("3", "robert_zemeckis"),
        ("5", "cleo_mller"),
        ("5", "michael_mann"),
    ]
    assert mini.merged["people:actors"] == 1  # Tom Hanks listed twice for Toy Story
    assert mini.merged["people:hetrec_directors"] == 1  # Ada Lind in both sources


def test_mini_movielens_knowledge_outside_catalogue_is_skipped_not_invented(mini: Dataset) -> None:
    assert {i.item_id for i in mini.items} == {"1", "2", "3", "4", "5"}
    assert mini.skipped == {
        "people:actors": 2,
        "people:hetrec_directors": 1,
        "genres:hetrec_genres": 1,
        "tags:user_tags": 1,
        "tags:hetrec_movie_tags": 1,
    }


def test_mini_movielens_tags_are_normalised_and_summed(mini: Dataset) -> None:
    tags = {(t.item_id, t.tag): t.weight for t in mini.tags}
    assert tags == {
        ("1", "pixar"): 5.0,  # two user tags "Pixar" / "pixar " + HetRec weight 3
        ("3", "tom hanks"): 1.0,
        ("2", "café society"): 1.0,  # Latin-1 in tags.dat
        ("3", "desert island"): 2.0,
    }


def test_mini_movielens_genres_and_items(mini: Dataset) -> None:
    genres = sorted((g.item_id, g.genre) for g in mini.genres)
    assert ("3", "Adventure") in genres  # only HetRec knows it
    assert not any(item == "4" for item, _ in genres)  # "(no genres listed)"
    assert len(genres) == 13
    items = {i.item_id: i for i in mini.items}
    assert items["2"].title == "American President, The (1995)"
    assert (items["1"].year, items["1"].imdb_id) == (1995, "0114709")
    assert (items["4"].year, items["4"].imdb_id) == (None, None)


def test_movielens_without_knowledge_sources_skips_their_sections() -> None:
    dataset, _ = read_mapping_dataset(shipped_mapping_path("movielens"), movielens_variables(MINI))
    assert dataset.people == []
    assert len(dataset.genres) == 12


def test_dataset_counts_source_rows_and_blank_lines_apart_from_rejects(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("sku,name\ns1,One\n\ns2,Two\n", encoding="utf-8")
    (tmp_path / "clicks.csv").write_bytes(b"user,sku\nu1,s1\n\n \nu2,s2,extra\nu3,s9\n")
    mapping = tmp_path / "shop.yaml"
    mapping.write_text(
        "name: shop\nfiles:\n  items: {path: items.csv}\n  clicks: {path: clicks.csv}\n"
        "items:\n  - {file: items, id: sku}\ninteractions:\n  - {file: clicks, user: user, item: sku}\n",
        encoding="utf-8",
    )
    dataset, _ = read_mapping_dataset(mapping)
    assert dict(dataset.blank) == {"items": 1, "clicks": 2}
    assert dict(dataset.source_rows) == {"items:items": 2, "interactions:clicks": 3}
    assert [r.reason for r in dataset.rejects] == [
        "expected 2 columns, found 3",
        "unknown item 's9' (not in the item catalogue)",
    ]


def test_dataset_refuses_a_column_the_file_does_not_have_before_reading(tmp_path: Path) -> None:
    from schema.errors import DataError

    (tmp_path / "items.csv").write_text("sku;name\ns1;One\n", encoding="utf-8")
    mapping = tmp_path / "shop.yaml"
    mapping.write_text("name: shop\nfiles:\n  items: {path: items.csv}\nitems:\n  - {file: items, id: sku}\n")
    with pytest.raises(DataError, match=r"items:items: column 'sku' is not in .*items.csv \(its columns: 'sku;name'\)"):
        read_mapping_dataset(mapping)


def test_loader_line_limit_applies_unless_the_mapping_sets_its_own(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("sku,name\ns1,One\ns2," + "x" * 200 + "\n", encoding="utf-8")
    mapping = tmp_path / "shop.yaml"
    text = "name: shop\nfiles:\n  items: {path: items.csv%s}\nitems:\n  - {file: items, id: sku, title: name}\n"
    mapping.write_text(text % "", encoding="utf-8")
    dataset, _ = read_mapping_dataset(mapping, max_line_bytes=100)
    assert [i.item_id for i in dataset.items] == ["s1"]
    assert [r.reason for r in dataset.rejects] == ["line longer than 100 bytes (max_line_bytes)"]
    mapping.write_text(text % ", max_line_bytes: 4096", encoding="utf-8")
    dataset, _ = read_mapping_dataset(mapping, max_line_bytes=100)
    assert [i.item_id for i in dataset.items] == ["s1", "s2"] and dataset.rejects == []
