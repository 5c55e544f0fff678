"""graph.query's parameter helpers."""

from __future__ import annotations

from graph.query import NO_ID, ONE_BUCKET, typed_ids
from tests.fixtures.plans import size_bucket


def test_typed_ids_puts_every_length_up_to_a_hundred_in_one_bucket() -> None:
    for length in range(101):
        ids = [f"i{n}" for n in range(length)]
        padded = typed_ids(ids)
        assert size_bucket(len(padded)) == 100, length
        assert padded[:length] == ids and set(padded[length:]) <= {NO_ID}
    assert typed_ids([]) == [NO_ID] * ONE_BUCKET
    assert typed_ids(("a", "b")) == ["a", "b", *[NO_ID] * (ONE_BUCKET - 2)]
