from collections import Counter

import pytest

from etl.synthetic import generate_world
from schema.model import Role


def test_generate_world_is_deterministic() -> None:
    a, b = generate_world(60, 120, seed=3), generate_world(60, 120, seed=3)
    assert a.dataset.interactions == b.dataset.interactions
    assert a.dataset.follows == b.dataset.follows
    assert a.dataset.people == b.dataset.people
    assert generate_world(60, 120, seed=4).dataset.interactions != a.dataset.interactions


def test_generate_world_facts_are_unique_and_consistent() -> None:
    ds = generate_world(80, 150, seed=1).dataset
    users = {u.user_id for u in ds.users}
    items = {i.item_id for i in ds.items}
    assert len(users) == 80 and len(items) == 150
    pairs = [(r.user_id, r.item_id) for r in ds.interactions]
    assert len(pairs) == len(set(pairs))
    assert {u for u, _ in pairs} <= users and {i for _, i in pairs} <= items
    assert all(f.follower_id != f.followee_id for f in ds.follows)
    assert {p.role for p in ds.people} == {Role.ACTOR, Role.DIRECTOR}
    per_item = Counter(p.item_id for p in ds.people if p.role is Role.DIRECTOR)
    assert set(per_item.values()) == {1}


def test_generate_world_plants_taste_communities() -> None:
    world = generate_world(200, 400, seed=42)
    ds = world.dataset
    genres_of: dict[str, set[str]] = {}
    for g in ds.genres:
        genres_of.setdefault(g.item_id, set()).add(g.genre)
    in_taste = total = 0
    for r in ds.interactions:
        if r.rating is not None and r.rating >= 4.0:
            total += 1
            taste = set(world.community_genres[world.user_community[r.user_id]])
            in_taste += bool(genres_of[r.item_id] & taste)
    assert total > 0
    assert in_taste / total > 0.7  # three of twelve genres would give ~0.35 by chance

    same = sum(world.user_community[f.follower_id] == world.user_community[f.followee_id] for f in ds.follows)
    assert same / len(ds.follows) > 0.7


def test_generate_world_rejects_tiny_sizes() -> None:
    with pytest.raises(ValueError):
        generate_world(users=2, items=5)
