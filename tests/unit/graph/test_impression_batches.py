"""Impressions aggregated per (user, item) and per item before they are written (graph.writers.impression_batches),
in sums Python's cyclic collector does not track; a finished transaction's list parameters emptied."""

from __future__ import annotations

import gc
from collections import Counter

from graph.writers import ImpressionWindow, impression_batches, release_parameters


def _row(rec: str, user: str | None, items: list[str], at: int = 1_700_000_000) -> dict:
    return {
        "recommendation_id": rec,
        "user_id": user,
        "variant": "default",
        "model_version": "m",
        "shown_at": at,
        "item_ids": items,
    }


def test_exposure_is_summed_per_user_and_item_and_every_list_kept() -> None:
    rows = [
        _row("r1", "u1", ["a", "b"], 10),
        _row("r2", "u2", ["a"], 11),
        _row("r3", "u1", ["b", "c"], 12),
        _row("r4", "u1", ["a"], 13),
    ]
    (batch,) = impression_batches(rows, 50)
    assert [r["recommendation_id"] for r in batch.lists] == ["r1", "r2", "r3", "r4"]  # one node per list, in order
    users = {u[0]: u for u in batch.users}
    assert users["u1"][1] == 3 and users["u2"][1] == 1
    shown = {item_id: (count, number, last_shown) for item_id, count, last_shown, number in users["u1"][2]}
    assert shown == {
        "a": (2, 3, 13),  # shown by u1's first and third list of the window
        "b": (2, 2, 12),
        "c": (1, 2, 12),
    }
    assert dict(batch.items) == {"a": 3, "b": 2, "c": 1}


def test_users_and_items_go_in_id_order() -> None:
    """Every writer locks users and items in one order (fewer deadlocks with concurrent writes of the same nodes)."""
    (batch,) = impression_batches([_row("r1", "u9", ["z", "b", "m"]), _row("r2", "u1", ["y", "a"])], 50)
    assert [u[0] for u in batch.users] == ["u1", "u9"]
    assert [[s[0] for s in u[2]] for u in batch.users] == [["a", "y"], ["b", "m", "z"]]
    assert [i[0] for i in batch.items] == ["a", "b", "m", "y", "z"]


def test_transactions_hold_at_most_batch_lists_and_users_and_lose_nothing() -> None:
    rows = [_row(f"r{n}", f"u{n % 7}", [f"i{n % 5}", f"i{(n + 1) % 5}"]) for n in range(23)]
    batches = impression_batches(rows, 4)
    assert all(len(b.lists) <= 4 and len(b.users) <= 4 for b in batches)
    assert [r["recommendation_id"] for b in batches for r in b.lists] == [f"r{n}" for n in range(23)]
    assert sorted(u[0] for b in batches for u in b.users) == sorted(f"u{n}" for n in range(7))  # each once
    counts: dict[str, int] = {}
    for b in batches:
        for item_id, count in b.items:
            counts[item_id] = counts.get(item_id, 0) + count
    assert counts == Counter(i for r in rows for i in r["item_ids"])  # each item once per transaction
    assert impression_batches([], 4)[0].lists == []


def test_a_list_taken_out_takes_its_users_lists_and_their_counts_and_leaves_the_rest() -> None:
    """A feedback naming a queued list writes that user's lists alone (api/impressions.py ``flush_list``)."""
    window = ImpressionWindow()
    for row in [
        _row("r1", "u1", ["a", "b"], 10),
        _row("r2", "u2", ["a", "c"], 11),
        _row("r3", "u1", ["b"], 12),
        _row("r4", None, ["c"], 13),  # an item page's list: nobody's
    ]:
        window.add(row)
    assert window.take("missing") is None
    taken = window.take("r3")
    assert [r["recommendation_id"] for r in taken.rows] == ["r1", "r3"]
    (part,) = taken.batches(50)
    assert [(u[0], u[1]) for u in part.users] == [("u1", 2)]
    assert {s[0]: (s[1], s[3]) for s in part.users[0][2]} == {"a": (1, 1), "b": (2, 2)}
    assert dict(part.items) == {"a": 1, "b": 2}
    (left,) = window.batches(50)
    assert [r["recommendation_id"] for r in left.lists] == ["r2", "r4"]
    assert [u[0] for u in left.users] == ["u2"]
    assert dict(left.items) == {"a": 1, "c": 2}  # u1's counts went with u1's lists
    nobodys = window.take("r4")
    assert [r["recommendation_id"] for r in nobodys.rows] == ["r4"] and len(window) == 1
    (part,) = nobodys.batches(50)
    assert part.users == [] and list(part.items) == [("c", 1)]


def test_a_windows_sums_add_no_object_for_the_collector_to_walk_per_user_and_item() -> None:
    rows = [_row(f"r{n}", f"u{n % 10}", [f"i{(n + k) % 97}" for k in range(20)], 100 + n) for n in range(300)]
    for row in rows:
        row["item_ids"] = tuple(row["item_ids"])  # as the recorder queues them
    window = ImpressionWindow()
    gc.collect()
    tracked = len(gc.get_objects())
    for row in rows:
        window.add(row)
    assert len(gc.get_objects()) - tracked < 30  # about a container per user, not one per (user, item): 970 pairs
    (batch,) = window.batches(500)
    assert sum(len(u[2]) for u in batch.users) == 970  # every pair still summed


def test_releasing_a_transactions_parameters_empties_its_lists_only() -> None:
    rows = [["r1", "u1"], ["r2", "u2"]]
    parameters = {"lists": rows, "users": [["u1", 1, []]], "maxShown": 500}
    release_parameters(parameters)
    assert parameters == {"lists": [], "users": [], "maxShown": 500}
