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


def test_a_write_moves_the_entry_it_was_computed_from_and_drops_any_other() -> None:
    held = HeldExposure(100)
    held.put("u", V1, {"a": (1, 1, 1)})
    after = {"a": (2, 2, 4), "b": (1, 2, 5)}
    held.written("u", V1, V2, after)
    assert held.get("u", V2) is after and held.held_at("u", V1) is None
    held.written("u", V1, V3, {"x": (1, 3, 6)})  # computed from a version no longer held: dropped, not replaced
    assert len(held) == 0
    held.put("u", V2, after)
    held.written("u", V2, V3, None)  # nothing computed (e.g. the window's rows were not known): dropped
    assert held.get("u", V3) is None and held.get("u", V2) is None
    held.written("nobody", V1, V2, after)  # a user not held stays not held
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
