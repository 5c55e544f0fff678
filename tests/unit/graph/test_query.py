"""graph.query's parameter helpers."""

from __future__ import annotations

import math

from graph.query import NO_ID, ONE_BUCKET, typed_ids


def _bucket(length: int) -> int:
    """The size bucket Neo4j 5 keys a list parameter's plan on (exact for 0 and 1, else the next power of ten)."""
    return length if length <= 1 else 10 ** math.ceil(math.log10(length))


def test_typed_ids_puts_every_length_up_to_a_hundred_in_one_bucket() -> None:
    for length in range(101):
        ids = [f"i{n}" for n in range(length)]
        padded = typed_ids(ids)
        assert _bucket(len(padded)) == 100, length
        assert padded[:length] == ids and set(padded[length:]) <= {NO_ID}
    assert typed_ids([]) == [NO_ID] * ONE_BUCKET
    assert typed_ids(("a", "b")) == ["a", "b", *[NO_ID] * (ONE_BUCKET - 2)]
