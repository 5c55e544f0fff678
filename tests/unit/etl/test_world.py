"""The synthetic world at size (etl/world.py): deterministic files, Zipf-like activity, planted communities."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np

from etl.synthetic import GENRES
from etl.world import MIN_ACTIVITY, activity, write_world


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    a = write_world(tmp_path / "a", users=300, items=200, interactions=6000, seed=5)
    b = write_world(tmp_path / "b", users=300, items=200, interactions=6000, seed=5)
    c = write_world(tmp_path / "c", users=300, items=200, interactions=6000, seed=6)
    for name in ("items.csv", "interactions.csv", "follows.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "interactions.csv").read_bytes() != (tmp_path / "c" / "interactions.csv").read_bytes()
    assert a.interactions == b.interactions
    assert json.loads((tmp_path / "a" / "world.json").read_text())["interactions"] == a.interactions
    assert c.users == 300


def test_rows_are_unique_pairs_of_known_ids_with_zipf_like_activity(tmp_path: Path) -> None:
    summary = write_world(tmp_path, users=400, items=1000, interactions=12_000, seed=3, communities=3)
    rows = _read(tmp_path / "interactions.csv")
    items = {r["itemId"] for r in _read(tmp_path / "items.csv")}
    assert len(rows) == summary.interactions and 0.9 * 12_000 <= len(rows) <= 12_000
    assert len({(r["userId"], r["itemId"]) for r in rows}) == len(rows)  # no pair twice
    assert {r["itemId"] for r in rows} <= items
    per_user = Counter(r["userId"] for r in rows)
    assert len(per_user) == 400 and min(per_user.values()) >= MIN_ACTIVITY - 1
    counts = sorted(per_user.values(), reverse=True)
    assert sum(counts[:40]) > 3 * sum(counts[-40:])  # the most active tenth far above the least active
    per_item = sorted(Counter(r["itemId"] for r in rows).values(), reverse=True)
    assert sum(per_item[:100]) > 0.2 * len(rows)  # a tenth of the catalogue takes a large share
    assert all(1.0 <= float(r["rating"]) <= 5.0 and int(r["timestamp"]) >= 1_600_000_000 for r in rows)
    users = {f"u{n}" for n in range(1, 401)}
    follows = _read(tmp_path / "follows.csv")
    assert len(follows) == summary.follows > 400
    assert all(f["follower"] in users and f["followee"] in users and f["follower"] != f["followee"] for f in follows)


def test_communities_rate_their_own_genres_higher(tmp_path: Path) -> None:
    summary = write_world(tmp_path, users=400, items=600, interactions=10_000, seed=9, communities=4)
    genres = {r["itemId"]: set(r["genres"].split("|")) for r in _read(tmp_path / "items.csv")}
    assert all(g <= set(GENRES) for g in genres.values())
    ratings = [float(r["rating"]) for r in _read(tmp_path / "interactions.csv")]
    assert np.mean(ratings) > 3.0  # most draws are in taste (rated 3.5 to 5)
    assert {int(k) for k in summary.community_genres} == {0, 1, 2, 3}


def test_activity_sums_to_the_target_and_respects_the_floor_and_cap() -> None:
    counts = activity(1000, 500, 40_000, np.random.default_rng(1))
    assert counts.min() >= MIN_ACTIVITY and counts.max() <= 100  # a fifth of the catalogue
    assert 0.97 * 40_000 <= counts.sum() <= 40_000


def test_a_catalogue_too_small_for_the_target_caps_every_user() -> None:
    counts = activity(40, 30, 10_000, np.random.default_rng(2))
    assert counts.tolist() == [6] * 40  # a fifth of 30 items each, far below the target
