"""The SQLite store's held exposure (graph/impressions.py): an entry serves only its own version, the bound is on the
rows summed over users, a write moves the entry it was computed from, and the rows a write gives are those the file's
statements give (the integration tests compare them with the file itself)."""

from __future__ import annotations

from graph.impressions import HeldExposure, written_rows

V1, V2, V3 = ("g", 1, 3), ("g", 2, 5), ("g", 3, 6)


def test_an_entry_serves_its_version_only_and_another_version_drops_it() -> None:
    held = HeldExposure(100)
    rows = {"a": (1, 1, 1), "b": (1, 1, 2)}
    held.put("u", V1, rows)
    assert held.get("u", V1) is rows and held.rows == 2
    assert held.get("u", V2) is None  # the file moved on: read again
    assert len(held) == 0 and held.rows == 0
    assert held.get("u", V1) is None


def test_the_bound_is_on_rows_summed_over_users_least_recently_used_first() -> None:
    held = HeldExposure(5)
    held.put("u1", V1, {"a": (1, 1, 1), "b": (1, 1, 2)})
    held.put("u2", V1, {"a": (1, 1, 1), "b": (1, 1, 2)})
    assert held.get("u1", V1) is not None  # u1 used last: u2 goes first
    held.put("u3", V1, {"c": (1, 1, 1), "d": (1, 1, 2)})
    assert held.get("u2", V1) is None and held.get("u1", V1) is not None and held.rows == 4
    held.put("big", V1, {str(n): (1, 1, n) for n in range(6)})  # more than the bound: not held, nothing evicted
    assert held.get("big", V1) is None and held.rows == 4
    off = HeldExposure(0)
    off.put("u", V1, {"a": (1, 1, 1)})
    assert off.get("u", V1) is None and len(off) == 0


def test_windows_wait_beside_the_rows_and_a_read_at_their_version_applies_them() -> None:
    held = HeldExposure(100, max_shown=10, slack=1)
    rows = {"a": (1, 1, 1), "b": (1, 1, 2), "c": (1, 1, 3)}
    held.put("u", V1, rows)
    held.written("u", V1, V2, [("d", 1, 0, 1), ("a", 1, 0, 1)])  # lists 1 -> 2, seq 3 -> 5
    held.written("u", V2, V3, [("e", 1, 0, 1)])  # lists 2 -> 3, seq 5 -> 6
    assert held.get("u", V1) is rows  # the file not yet at the windows' versions: the rows as read
    at_v2 = held.get("u", V2)
    assert at_v2 == {"a": (2, 2, 5), "b": (1, 1, 2), "c": (1, 1, 3), "d": (1, 2, 4)} and held.rows == 4
    assert held.get("u", V1) is None  # held at V2 now: an older version is not served (nor kept)
    held.put("u", V2, at_v2)
    held.written("u", V2, V3, [("e", 1, 0, 1)])
    assert held.get("u", V3) == {**at_v2, "e": (1, 3, 6)}
    assert rows == {"a": (1, 1, 1), "b": (1, 1, 2), "c": (1, 1, 3)}  # never changed in place


def test_a_window_from_another_version_or_one_too_many_drops_the_entry() -> None:
    held = HeldExposure(100)
    held.put("u", V1, {"a": (1, 1, 1)})
    held.written("u", V2, V3, [("x", 1, 0, 1)])  # the rows missed the window before it (another process's)
    assert len(held) == 0
    held.put("u", V1, {"a": (1, 1, 1)})
    assert held.get("u", ("g", 9, 9)) is None and len(held) == 0  # a version no kept window reaches
    held.put("u", V1, {"a": (1, 1, 1)})
    version = V1
    for n in range(HeldExposure.MAX_WINDOWS):
        after = ("g", 2 + n, 4 + n)
        held.written("u", version, after, [("a", 1, 0, 1)])
        version = after
    assert len(held) == 1
    held.written("u", version, ("g", 99, 99), [("a", 1, 0, 1)])  # one more: read again instead
    assert len(held) == 0
    held.written("nobody", V1, V2, [("a", 1, 0, 1)])  # a user not held stays not held
    assert len(held) == 0


def test_written_rows_upserts_in_order_and_cuts_back_to_the_most_recent_beyond_the_slack() -> None:
    held = {"a": (1, 1, 1), "b": (2, 1, 2), "c": (1, 2, 3)}
    # a window of two lists (lists_shown 2 -> 4, seq 3 -> 6): b shown again (its count added, list and seq renewed)
    rows = written_rows(held, [("d", 1, 0, 1), ("b", 1, 0, 2), ("e", 1, 0, 2)], (2, 3), max_shown=10, slack=1)
    assert rows == {"a": (1, 1, 1), "b": (3, 4, 5), "c": (1, 2, 3), "d": (1, 3, 4), "e": (1, 4, 6)}
    assert held == {"a": (1, 1, 1), "b": (2, 1, 2), "c": (1, 2, 3)}  # the held rows are never changed in place
    # bound 3, slack 1: 5 rows > 4, back to the 3 of the highest seq
    assert written_rows(held, [("d", 1, 0, 1), ("b", 1, 0, 2), ("e", 1, 0, 2)], (2, 3), 3, 1) == {
        "b": (3, 4, 5),
        "d": (1, 3, 4),
        "e": (1, 4, 6),
    }
    # 4 rows = bound + slack: kept
    assert len(written_rows(held, [("d", 1, 0, 1)], (2, 3), 3, 1)) == 4


def test_each_read_counts_what_the_held_rows_gave() -> None:
    held, outcomes = HeldExposure(100, max_shown=10), []
    assert held.get("u", V1, outcomes.append) is None
    held.put("u", V1, {"a": (1, 1, 1)})
    held.get("u", V1, outcomes.append)
    held.written("u", V1, V2, [("b", 1, 0, 1)])
    held.get("u", V2, outcomes.append)
    held.get("u", V3, outcomes.append)  # another process wrote: dropped
    assert outcomes == ["miss", "hit", "applied", "stale"]
