"""The explanation join (graph/explain.py's vectorised ``_explained``) against the per-item Python join it replaced,
kept here as the reference: the same paths, byte for byte, on random sides with every tie and corner the rules name
(an item that is also a seed, the user among a seed's raters, equal degrees, co-raters of equal reach, preferred
genres, followees)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from graph import explain
from graph.explain import ExplainCaps, ExplainedItem

KINDS = ("ACTED_IN", "DIRECTED", "HAS_TAG", "HAS_ATTRIBUTE", "IN_GENRE")


# The join as it was before it was vectorised (one Python pass per item), as the reference.
def reference_explained(
    user_id: str,
    items: list[list[Any]],
    seeds: list[list[Any]],
    followed_rows: Sequence[Sequence[str]],
    preferred_genres: Sequence[str],
    seed_sides: list[Any],
    item_sides: list[Any],
    limits: ExplainCaps,
) -> dict[str, ExplainedItem]:
    """The per-item join, by the rules :func:`graph.explain._explained` states (kept as the test's reference)."""
    max_paths = limits.max_paths
    # each item's candidate paths of each kind, as (builder, arguments): only the ones kept are built
    kinds: list[dict[int, list[tuple[Any, tuple]]]] = [{}, {}, {}, {}]
    if max_paths > 0 and items:
        seed_ids = [seed[0] for seed in seeds]
        item_ids = [item[0] for item in items]

        def via_for(vias: list[int], n: int) -> int:
            """The strongest seed of ``vias`` (ascending: they are appended in seed order) that is not item ``n``
            itself (-1: none)."""
            item_id = item_ids[n]
            for x in vias:
                if seed_ids[x] != item_id:
                    return x
            return -1

        # co_interaction: the seeds each co-rater v reaches, joined with the items v rated positively
        co_vias: dict[str, list[int]] = {}
        for via, (raters, *_) in enumerate(seed_sides):
            for v in [v for v in raters if v != user_id][: limits.max_co_raters_per_seed]:
                co_vias.setdefault(v, []).append(via)
        # shared_trait: the seeds each (type, key) trait reaches
        trait_vias: dict[tuple[str, str], list[int]] = {}
        for via, (_, traits, *_) in enumerate(seed_sides):
            for kind, key in traits:
                trait_vias.setdefault((kind, key), []).append(via)
        followed: dict[str, list[str]] = {}
        for item_id, followee in followed_rows:
            followed.setdefault(item_id, []).append(followee)
        preferred = set(preferred_genres)
        co_raters = co_vias.keys()
        for n, (raters, traits, *_) in enumerate(item_sides):
            reach: dict[int, list[tuple[int, str]]] = {}
            for v in co_raters & raters:  # the item's raters who co-rated a seed (C-level; the order does not matter)
                vias = co_vias[v]
                if (via := via_for(vias, n)) >= 0:
                    reach.setdefault(via, []).append((-len(vias), v))
            if reach:
                kinds[0][n] = [
                    (explain._co_path, (seeds[via], min(reach[via])[1], items[n])) for via in sorted(reach)[:max_paths]
                ]
            options = []
            genres = []
            for kind, key, name, degree in traits:
                vias = trait_vias.get((kind, key))
                if vias is not None and (via := via_for(vias, n)) >= 0:
                    options.append((explain._TRAIT_RANK.get(kind, 0), degree, via, kind, key, name))
                if kind == "IN_GENRE" and key in preferred:
                    genres.append((degree, key))
            if options:
                options.sort(key=lambda o: o[:5])
                kinds[1][n] = [
                    (explain._trait_path, (seeds[o[2]], o[3], o[4], o[5], items[n])) for o in options[:max_paths]
                ]
            if item_ids[n] in followed:
                kinds[2][n] = [
                    (explain._followee_path, (f, items[n])) for f in sorted(followed[item_ids[n]])[:max_paths]
                ]
            if genres:
                kinds[3][n] = [(explain._genre_path, (genre, items[n])) for _, genre in sorted(genres)[:max_paths]]
    return explain._built(user_id, items, kinds, max_paths)  # the assembly both joins share


def random_request(rng: random.Random, arrays: bool) -> tuple:
    users = [f"u{n}" for n in range(rng.randint(1, 40))]
    item_pool = [f"i{n}" for n in range(60)]
    traits = [(kind, f"{kind[:2]}{n}") for kind in KINDS for n in range(rng.randint(1, 8))]
    degree = {t: rng.randint(1, 4) for t in traits}  # few values: many ties
    user_id = rng.choice(users)
    seeds = [[s, f"title {s}" if rng.random() < 0.8 else None] for s in rng.sample(item_pool, rng.randint(0, 20))]
    items = [[i, f"title {i}"] for i in rng.sample(item_pool, rng.randint(1, 20))]  # some are seeds too

    def side(item: bool) -> tuple:
        raters = rng.sample(users, rng.randint(0, min(len(users), 25)))
        chosen = rng.sample(traits, rng.randint(0, min(len(traits), 12)))
        rows = [[k, key, f"name {key}", degree[(k, key)]] if item else [k, key] for k, key in chosen]
        if arrays and rng.random() < 0.7:
            return explain._held_side(raters, rows, None, item)
        return (raters, rows, None)

    seed_sides = [side(False) if rng.random() < 0.9 else explain._NO_SIDE for _ in seeds]
    item_sides = [side(True) if rng.random() < 0.9 else explain._NO_SIDE for _ in items]
    followed = [[i[0], rng.choice(users)] for i in items if rng.random() < 0.2]
    preferred = [key for kind, key in traits if kind == "IN_GENRE" and rng.random() < 0.4]
    limits = ExplainCaps(
        max_paths=rng.choice([0, 1, 2, 3, 5]), max_co_raters_per_seed=rng.choice([1, 3, 20]), max_seeds=20
    )
    return user_id, items, seeds, followed, preferred, seed_sides, item_sides, limits


def dumped(found: dict[str, ExplainedItem]) -> list[str]:
    return [item.model_dump_json() for item in found.values()]


@pytest.mark.parametrize("seed", range(300))
def test_vectorised_join_gives_the_reference_paths(seed: int) -> None:
    rng = random.Random(seed)
    request = random_request(rng, arrays=seed % 2 == 0)
    assert dumped(explain._explained(*request)) == dumped(reference_explained(*request))


def test_the_reference_finds_paths_of_every_kind() -> None:
    """The comparison above is not vacuous: the random requests give paths of all four kinds."""
    texts = []
    for seed in range(100):
        found = explain._explained(*random_request(random.Random(seed), arrays=True))
        texts += [path.text for item in found.values() for path in item.explanations]
    assert any(t.startswith("Because users who liked") for t in texts)
    assert any("whom you follow" in t for t in texts)
    assert any(t.startswith("Because you like ") for t in texts)
    assert any(t.startswith("Because you liked ") for t in texts)  # shared trait


def test_sides_of_an_older_interner_are_converted_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A side made before the interner was replaced (past MAX_INTERNED values) joins like a fresh one."""
    request = random_request(random.Random(7), arrays=True)
    expected = dumped(reference_explained(*request))
    monkeypatch.setattr(explain, "_INTERNED", [explain._Interner()])
    assert dumped(explain._explained(*request)) == expected


@pytest.mark.parametrize("seed", range(50))
def test_reach_finds_the_runs_np_unique_finds(seed: int) -> None:
    """``_reach`` finds the runs of its sorted values itself: the same distinct values, counts, first and second vias
    as ``np.unique`` gives on them (repeated values and vias, a value reached from one via only, nothing at all)."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 40))
    values, vias = rng.integers(0, 8, size), rng.integers(0, 5, size)
    order = np.lexsort((vias, values))
    sorted_values, sorted_vias = values[order], vias[order]
    distinct, starts, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    first = sorted_vias[starts]
    group = np.repeat(np.arange(len(distinct)), counts)
    later = sorted_vias != first[group]
    second = np.full(len(distinct), -1, dtype=np.int64)
    groups, at = np.unique(group[later], return_index=True)
    second[groups] = sorted_vias[later][at]
    found = explain._reach(values, vias)
    for got, want in zip(found, (distinct, counts, first, second), strict=True):
        assert got.tolist() == want.tolist()
