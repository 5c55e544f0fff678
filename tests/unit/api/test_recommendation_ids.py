"""A served list's id: a UUID of version 7, ordered by the time it was made, unique."""

from __future__ import annotations

import time
import uuid

from api.impressions import new_recommendation_id


def test_an_id_is_a_version_7_uuid_whose_first_48_bits_are_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = new_recommendation_id()
    after = time.time_ns() // 1_000_000
    assert len(made) == 32 and made == made.lower() and int(made, 16) >= 0
    parsed = uuid.UUID(made)
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert before <= int(made[:12], 16) <= after


def test_ids_made_later_sort_after_and_none_repeats() -> None:
    first = new_recommendation_id()
    time.sleep(0.002)
    later = [new_recommendation_id() for _ in range(20_000)]
    assert all(first < made for made in later)  # a later millisecond sorts after, whatever the random bits
    assert len(set(later)) == len(later)
    assert len({made[13:] for made in later}) > 19_990  # the random part varies within a millisecond
