"""user_fingerprint on the real Neo4j: it changes exactly when the user's interactions (or onboarding genres) do;
user_context reads a held history again exactly when the interactions have changed; and a write's reported
versions bring a held history to what a fresh read gives."""

from __future__ import annotations

import numpy as np
import pytest
from neo4j import Driver

from graph.query import run_read
from graph.reads import HeldHistory, InteractionColumns, user_context, user_fingerprint, written_interaction
from graph.writers import (
    BatchWriter,
    create_user,
    read_graph_counts,
    warm_interaction_writes,
    write_feedback,
    write_interaction_groups,
    write_interactions,
    write_items,
    write_users,
)
from schema.kinds import DEFAULT_FEEDBACK_KINDS
from schema.rows import InteractionRow, ItemRow, UserRow
from tests.fixtures.plans import plans_after


def _rows(*specs: tuple[str, float | None, int | None]) -> list[InteractionRow]:
    return [InteractionRow(user_id="me", item_id=item, rating=rating, timestamp=ts) for item, rating, ts in specs]


def test_fingerprint_follows_every_change_and_ignores_identical_writes(clean_db: Driver) -> None:
    writer = BatchWriter(clean_db)
    write_users(writer, [UserRow(user_id="me"), UserRow(user_id="other")])
    write_items(writer, [ItemRow(item_id=i, title=i.upper()) for i in ("a", "b", "c")])
    clean_db.execute_query("MERGE (:Genre {name: 'Comedy'})")
    assert user_fingerprint(clean_db, "nobody") is None
    assert user_fingerprint(clean_db, "me") == (0, 0, 0, 0)

    write_interactions(writer, _rows(("a", 4.0, 100), ("b", 3.0, None)))
    first = user_fingerprint(clean_db, "me")
    assert first is not None and first[0] == 2 and first[1] > 0

    write_interactions(writer, _rows(("a", 4.0, 100), ("b", 3.0, None)))  # a reload: nothing changes, not even rev
    assert user_fingerprint(clean_db, "me") == first

    write_interactions(writer, _rows(("a", 5.0, 100)))  # a new rating for the same item: same degree, new rev
    second = user_fingerprint(clean_db, "me")
    assert second[0] == 2 and second[1] > first[1]

    write_interactions(writer, _rows(("a", None, 100)))  # a value becoming null is a change too
    third = user_fingerprint(clean_db, "me")
    assert third[1] > second[1]

    write_interactions(writer, _rows(("b", 3.0, 200)))  # a timestamp appearing
    fourth = user_fingerprint(clean_db, "me")
    assert fourth[1] > third[1]

    write_interactions(writer, [InteractionRow(user_id="other", item_id="c", rating=5.0)])  # someone else
    assert user_fingerprint(clean_db, "me") == fourth

    write_interactions(writer, _rows(("c", 2.0, 300)))  # a new interaction
    fifth = user_fingerprint(clean_db, "me")
    assert fifth[0] == 3 and fifth[1] > fourth[1]

    clean_db.execute_query("MATCH (:User {userId: 'me'})-[r:INTERACTED]->(:Item {itemId: 'c'}) DELETE r")
    assert user_fingerprint(clean_db, "me")[0] == 2  # removed by a writer that is not kgrec's: the degree says so

    create_user(clean_db, "me", ["Comedy"])  # onboarding genres are part of it
    assert user_fingerprint(clean_db, "me")[2] == 1


def test_reload_of_a_dataset_leaves_every_revision_unchanged(clean_db: Driver) -> None:
    writer = BatchWriter(clean_db)
    write_items(writer, [ItemRow(item_id=str(i)) for i in range(20)])
    rows = [
        InteractionRow(
            user_id=f"u{u}", item_id=str((u * 7 + j) % 20), rating=float(1 + (u + j) % 5), timestamp=1000 + j
        )
        for u in range(10)
        for j in range(8)
    ]
    write_interactions(writer, rows)
    before = {f"u{u}": user_fingerprint(clean_db, f"u{u}") for u in range(10)}
    write_interactions(writer, rows)
    assert {f"u{u}": user_fingerprint(clean_db, f"u{u}") for u in range(10)} == before
    assert all(fp[0] == 8 and fp[1] == 8 for fp in before.values())  # one bump per created interaction


def test_a_held_history_is_read_again_exactly_when_the_fingerprint_changes(clean_db: Driver) -> None:
    """user_context with a held history: the same columns back while the user's interaction count and revision are
    those it was read at (the rest of the context read anew), the interactions read again after any change."""
    writer = BatchWriter(clean_db)
    write_users(writer, [UserRow(user_id="me"), UserRow(user_id="other")])
    write_items(writer, [ItemRow(item_id=i, title=i.upper()) for i in ("a", "b", "c")])
    write_interactions(writer, _rows(("a", 4.0, 100), ("b", 3.0, None)))
    first = user_context(clean_db, "me")
    assert first is not None and first.history is not None and len(first.columns) == 2

    again = user_context(clean_db, "me", held=first.history)
    assert again is not None and again.history is first.history and again.columns is first.columns
    assert again.fingerprint == user_fingerprint(clean_db, "me")
    clean_db.execute_query("MATCH (u:User {userId: 'me'}) SET u.listsShown = 3")  # exposure: read anew, not held
    assert user_context(clean_db, "me", held=first.history).lists_shown == 3

    write_interactions(writer, [InteractionRow(user_id="other", item_id="c", rating=5.0)])  # someone else's
    assert user_context(clean_db, "me", held=first.history).history is first.history

    write_interactions(writer, _rows(("a", 5.0, 100)))  # a new rating for the same item: same count, new rev
    rated = user_context(clean_db, "me", held=first.history)
    assert rated.history is not first.history and rated.columns.row(0).rating == 5.0

    write_interactions(writer, _rows(("c", 1.0, 300)))  # a new interaction: seen at once
    added = user_context(clean_db, "me", held=rated.history)
    assert "c" in added.columns.seen and added.fingerprint == user_fingerprint(clean_db, "me")

    clean_db.execute_query("MATCH (:User {userId: 'me'})-[r:INTERACTED]->(:Item {itemId: 'c'}) DELETE r")
    removed = user_context(clean_db, "me", held=added.history)  # removed by another writer: the count says so
    assert "c" not in removed.columns.seen and len(removed.columns) == 2
    assert user_context(clean_db, "nobody", held=removed.history) is None


def test_user_context_sends_held_as_a_pair_either_way(clean_db: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Neo4j plans a query once per parameter types, and null is a type apart from a list: ``$held`` is a pair of
    ints whether a history is held or not (-1, -1 for none), so the context read keeps one plan."""
    sent: list[object] = []

    def spy(name: str, query: str, params: dict, driver: Driver, database: str) -> tuple:
        sent.append(params["held"])
        return run_read(name, query, params, driver, database)

    writer = BatchWriter(clean_db)
    write_users(writer, [UserRow(user_id="me")])
    write_items(writer, [ItemRow(item_id="a", title="A")])
    write_interactions(writer, _rows(("a", 4.0, 100)))
    monkeypatch.setattr("graph.reads.run_read", spy)
    first = user_context(clean_db, "me")
    assert first is not None and len(first.columns) == 1  # nothing held: read, although no degree is -1
    assert user_context(clean_db, "me", held=first.history).history is first.history
    assert sent[0] == [-1, -1] and sent[1] == [1, first.rev]
    assert all(isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) for x in v) for v in sent)


def _same_columns(ours: InteractionColumns, read: InteractionColumns) -> None:
    """The same interactions in the same order, field by field (NaN where a field is null)."""
    assert ours.rows() == read.rows() and ours.seen == read.seen
    assert ours.item_ids.tolist() == read.item_ids.tolist()
    for name in ("ratings", "weights", "timestamps", "polarities"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(read, name))


def _brought(driver: Driver, held: HeldHistory, rows: list[InteractionRow], before: tuple, after: tuple) -> HeldHistory:
    """``held`` with a write's ``rows`` applied at the version it reports: current for user_context (not read again)
    and equal to a fresh read."""
    assert (held.interactions, held.rev) == before and before != after
    updated = held.written([written_interaction(row) for row in rows], after)
    context = user_context(driver, "me", held=updated)
    assert context is not None and context.history is updated
    fresh = user_context(driver, "me")
    assert fresh is not None
    _same_columns(updated.columns, fresh.columns)
    return updated


def test_a_write_brings_a_held_history_to_what_a_read_gives(clean_db: Driver) -> None:
    """write_interaction_groups and write_feedback report the user's version before and after the write: a history
    held at the version before, with the written rows applied, is what a fresh read gives and user_context takes it
    as current (a new interaction, a changed rating, rows without a time, a dislike); a history held before another
    writer's change is not at the version before, and is read again."""
    writer = BatchWriter(clean_db)
    write_users(writer, [UserRow(user_id="me")])
    write_items(writer, [ItemRow(item_id=i, title=i.upper()) for i in ("a", "b", "c", "d", "e", "f")])
    write_interactions(writer, _rows(("a", 4.0, 100), ("b", 3.0, None)))
    first = user_context(clean_db, "me")
    assert first is not None and first.history is not None
    held = first.history

    def post(*specs: tuple[str, float | None, int | None]) -> tuple[list[InteractionRow], tuple, tuple]:
        rows = _rows(*specs)
        outcomes = write_interaction_groups(writer, list(enumerate(rows)))
        written = [row for index, row in enumerate(rows) if index in outcomes]
        assert {o.before for o in outcomes.values()} | {o.after for o in outcomes.values()} == {
            outcomes[0].before,
            outcomes[0].after,
        }
        return written, outcomes[0].before, outcomes[0].after

    rows, before, after = post(("c", 2.5, 150))  # a new interaction, between the others by its time
    assert after == (before[0] + 1, before[1] + 1)
    held = _brought(clean_db, held, rows, before, after)
    # in one transaction: a changed rating, a new one without time, one tied in time with c, an unknown item
    rows, before, after = post(("a", 5.0, 100), ("d", None, None), ("e", 1.0, 150), ("nope", 1.0, 1))
    assert len(rows) == 3 and after == (before[0] + 2, before[1] + 1)
    held = _brought(clean_db, held, rows, before, after)
    rows, before, after = post(("a", 5.0, 100))  # identical: nothing changes
    assert before == after == (held.interactions, held.rev)

    dislike = DEFAULT_FEEDBACK_KINDS["dislike"]
    outcome = write_feedback(clean_db, "me", "b", dislike, 200, kinds=DEFAULT_FEEDBACK_KINDS)
    assert outcome is not None and outcome.before is not None and outcome.after is not None
    assert outcome.interaction.polarity == -1 and outcome.after[0] == outcome.before[0]
    held = _brought(clean_db, held, [outcome.interaction], outcome.before, outcome.after)
    like = DEFAULT_FEEDBACK_KINDS["like"]
    outcome = write_feedback(clean_db, "me", "f", like, 50, kinds=DEFAULT_FEEDBACK_KINDS)  # a new pair, the oldest
    assert outcome is not None and outcome.before is not None and outcome.after is not None
    held = _brought(clean_db, held, [outcome.interaction], outcome.before, outcome.after)

    # two writers: the second's version before is the first's after, not the version held before both
    _, _, first_after = post(("c", 1.0, 150))
    rows, second_before, second_after = post(("d", 2.0, 400))
    assert second_before == first_after != (held.interactions, held.rev)
    assert user_context(clean_db, "me", held=held).history is not held  # what was held is read again


def test_warm_interaction_writes_plans_the_posts_statement_and_writes_nothing(clean_db: Driver) -> None:
    """The API plans the statement of a post before /ready: after the warm-up, a real post needs no plan of its own,
    and the warm-up itself leaves the graph as it was."""
    writer = BatchWriter(clean_db)
    write_users(writer, [UserRow(user_id="me")])
    write_items(writer, [ItemRow(item_id="a", title="A")])
    before = read_graph_counts(clean_db)
    warmed = plans_after(clean_db, lambda: warm_interaction_writes(clean_db))
    assert read_graph_counts(clean_db) == before

    def warm_then_post() -> None:
        warm_interaction_writes(clean_db)
        write_interaction_groups(writer, [(0, InteractionRow(user_id="me", item_id="a", rating=4.0))])

    assert warmed >= 1 and plans_after(clean_db, warm_then_post) == warmed
    assert user_fingerprint(clean_db, "me")[0] == 1
