"""A user's history as columns (graph.reads.InteractionColumns) and what the model path derives from them: the
same positives and seeds as the per-interaction definitions, ties, nulls and negatives included."""

from __future__ import annotations

import random

import numpy as np

from graph.explain import strongest_seeds
from graph.reads import Interaction, InteractionColumns, UserContext


def _history(rng: random.Random, n: int) -> tuple[Interaction, ...]:
    """``n`` interactions with few distinct ratings, weights and times (many ties), some of them null or negative."""
    return tuple(
        Interaction(
            f"i{rng.randrange(10 * n)}",
            rng.choice([None, 1.0, 3.5, 4.0, 4.5, 5.0]),
            rng.choice([None, 1.0, 2.0, 7.0]),
            rng.choice([None, 0, 100, 200, 1_700_000_000]),
            rng.choice([1, 1, 1, -1]),
        )
        for _ in range(n)
    )


def _reference_seeds(interactions: tuple[Interaction, ...], max_seeds: int, min_rating: float) -> list[str]:
    """strongest_seeds' definition, one interaction at a time: rating (else weight; neither: first) descending, then
    the most recent (no time as 0), then item id."""
    positives = sorted((i for i in interactions if i.positive(min_rating)), key=lambda i: i.item_id)
    positives.sort(
        key=lambda i: (
            i.rating if i.rating is not None else (i.weight if i.weight is not None else float("inf")),
            i.timestamp or 0,
        ),
        reverse=True,
    )
    return [i.item_id for i in positives[:max_seeds]]


def test_columns_keep_every_field_and_give_the_same_positives() -> None:
    rng = random.Random(3)
    for n in (0, 1, 7, 300):
        interactions = _history(rng, n)
        columns = InteractionColumns.of(interactions)
        rebuilt = InteractionColumns(*zip(*interactions, strict=True)) if n else InteractionColumns((), (), (), (), ())
        assert rebuilt.rows() == interactions and len(rebuilt) == n
        assert [rebuilt.row(p) for p in range(n)] == list(interactions)
        for min_rating in (0.0, 4.0, 4.5):
            expected = [i.positive(min_rating) for i in interactions]
            assert columns.positive(min_rating).tolist() == expected
        assert np.isnan(columns.ratings).tolist() == [i.rating is None for i in interactions]
        assert np.isnan(columns.timestamps).tolist() == [i.timestamp is None for i in interactions]


def test_seeds_from_columns_are_the_per_interaction_definition() -> None:
    rng = random.Random(11)
    for trial in range(60):
        interactions = _history(rng, rng.choice([0, 3, 25, 400]))
        context = UserContext("u", InteractionColumns.of(interactions), ())
        for max_seeds in (1, 5, 20):
            for min_rating in (0.0, 4.0):
                got = strongest_seeds(context, max_seeds=max_seeds, min_rating=min_rating)
                assert got == _reference_seeds(interactions, max_seeds, min_rating), (trial, max_seeds, min_rating)


def test_columns_read_in_any_order_are_put_most_recent_first_then_by_item_id() -> None:
    # user_context.cypher returns the interactions unordered; recent_first gives the order the query's ORDER BY gave:
    # time descending, without time last, then item id (equal in both: the order read)
    rng = random.Random(5)
    for n in (0, 1, 2, 9, 400):
        interactions = _history(rng, n)
        columns = InteractionColumns.recent_first(*(zip(*interactions, strict=True) if n else [()] * 5))
        expected = sorted(interactions, key=lambda i: (i.timestamp is None, -(i.timestamp or 0), i.item_id))
        assert columns.rows() == tuple(expected), n
        assert np.array_equal(np.isnan(columns.timestamps), [i.timestamp is None for i in expected])


def test_written_interactions_are_put_in_place_as_a_read_of_them_would_be() -> None:
    # what the API applies to a held history after a post or a feedback: the columns equal recent_first's of the
    # history with the written interactions replacing those of their items or added (the last of one item wins)
    rng = random.Random(7)
    for n, k in ((0, 1), (1, 1), (9, 2), (400, 3), (400, 1)):
        held = {i.item_id: i for i in _history(rng, n)}  # one interaction per item, as in the graph
        columns = InteractionColumns.recent_first(*(zip(*held.values(), strict=True) if held else [()] * 5))
        written = list(_history(rng, k))
        if held:
            written.append(Interaction(next(iter(held)), 2.0, 1.0, 150, -1))  # a changed one
        merged = {**held, **{i.item_id: i for i in written}}
        updated = columns.written(written)
        _same(updated, merged)
        assert [updated.row(p) for p in range(len(updated))] == list(updated.rows())
        again = [*_history(rng, 2), Interaction(written[0].item_id, None, 3.0, None, 1)]  # a post after a post
        _same(updated.written(again), {**merged, **{i.item_id: i for i in again}})
        assert (
            columns.rows()
            == InteractionColumns.recent_first(*(zip(*held.values(), strict=True) if held else [()] * 5)).rows()
        )  # the held columns are left as they were


def _same(columns: InteractionColumns, interactions: dict[str, Interaction]) -> None:
    """``columns`` are those of a read of ``interactions``, field by field."""
    expected = InteractionColumns.recent_first(*zip(*interactions.values(), strict=True))
    assert columns.rows() == expected.rows() and columns.seen == expected.seen
    for name in ("item_ids", "ratings", "weights", "timestamps", "polarities"):
        assert np.array_equal(getattr(columns, name), getattr(expected, name), equal_nan=name != "item_ids")
