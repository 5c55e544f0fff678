"""The impression stores (graph/impressions.py): the SQLite store gives what the graph gives for the same lists and
feedback (exposure and lists shown, attribution, skips, item counts, the variant report, pruning), survives a restart,
and two processes on one file (two API workers) lose nothing of each other's writes."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
from pathlib import Path

import pytest
from neo4j import Driver

from graph.impressions import (
    Attribution,
    ImpressionStore,
    Neo4jImpressionStore,
    SqliteImpressionStore,
    graph_id,
    open_impression_store,
)
from graph.reads import user_context
from graph.writers import (
    BatchWriter,
    impression_batches,
    write_exposure_feedback,
    write_feedback,
    write_interactions,
    write_items,
    write_users,
)
from schema.errors import ConfigError
from schema.kinds import DEFAULT_FEEDBACK_KINDS
from schema.rows import InteractionRow, ItemRow, UserRow

NOW = 1_700_000_000
ITEMS = [f"i{n}" for n in range(12)]


def _world(driver: Driver) -> None:
    writer = BatchWriter(driver)
    write_users(writer, [UserRow(user_id=u) for u in ("u1", "u2", "u3")])
    write_items(writer, [ItemRow(item_id=i) for i in ITEMS])
    write_interactions(writer, [InteractionRow(user_id="u1", item_id="i5", rating=5.0, timestamp=NOW)])


def _world_with_more_items(driver: Driver) -> list[str]:
    """:func:`_world` and 30 more items (``j00`` to ``j29``, returned): more than a bound of 20 holds."""
    _world(driver)
    extra = [f"j{n:02d}" for n in range(30)]
    write_items(BatchWriter(driver), [ItemRow(item_id=i) for i in extra])
    return extra


def _rows(lists: list[tuple[str, str | None, str, list[str]]], at: int = NOW) -> list[dict[str, object]]:
    return [
        {"recommendation_id": r, "user_id": u, "variant": v, "model_version": "m", "shown_at": at, "item_ids": i}
        for r, u, v, i in lists
    ]


#: Windows of served lists: items shown again, more items than the exposure keeps (4), a list of nobody's.
WINDOWS = [
    [("r1", "u1", "A", ["i0", "i1", "i2"]), ("r2", "u1", "A", ["i2", "i3"]), ("r3", "u2", "B", ["i1", "i4"])],
    [("r4", "u1", "A", ["i5", "i6"]), ("r5", None, "similar", ["i7", "i8"])],
    [("r6", "u1", "A", ["i5", "i6"]), ("r7", "u2", "B", ["i1", "i4"]), ("r8", "u2", "B", ["i9"])],
]


def _record(store: ImpressionStore, batch: int = 2) -> None:
    for window in WINDOWS:
        for part in impression_batches(_rows(window), batch):
            store.write(part)


def _both(driver: Driver, tmp_path: Path) -> tuple[Neo4jImpressionStore, SqliteImpressionStore]:
    _world(driver)
    graph, sqlite = Neo4jImpressionStore(driver, max_shown=4), SqliteImpressionStore(tmp_path / "i.db", max_shown=4)
    _record(graph)
    _record(sqlite)
    return graph, sqlite


def _exposure(store: ImpressionStore, driver: Driver, user_id: str) -> tuple[dict[str, tuple[int, int]], int]:
    context = user_context(driver, user_id)
    assert context is not None
    return store.exposure(context)


def _miscounted(path: Path) -> list[tuple[str, int, int]]:
    """The users whose ``users.items`` (kept by triggers) is not their count of exposure rows."""
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT u.user_id, u.items, (SELECT count(*) FROM exposure e WHERE e.user_id = u.user_id) AS rows "
            "FROM users u WHERE u.items != rows"
        ).fetchall()


def test_the_sqlite_store_gives_the_graphs_exposure_for_the_same_lists_and_skips(
    clean_db: Driver, tmp_path: Path
) -> None:
    graph, sqlite = _both(clean_db, tmp_path)
    assert _miscounted(sqlite.path) == []
    skip = DEFAULT_FEEDBACK_KINDS["skip"]
    for user, item in (("u1", "i6"), ("u1", "i11"), ("u2", "i4"), ("u3", "i2")):  # shown, new, shown, a new user's
        write_exposure_feedback(clean_db, user, item, skip, NOW + 5, max_shown=4)
        write_exposure_feedback(clean_db, user, item, skip, NOW + 5, max_shown=4, exposure=False)
        sqlite.record_skip(user, item, NOW + 5)
    for user in ("u1", "u2", "u3"):
        mine = _exposure(sqlite, clean_db, user)
        assert mine == _exposure(graph, clean_db, user), user
        assert sqlite.lists_shown(user, -1) == mine[1]
    # u1: 4 lists, exposure bounded to the 4 most recent items (i5 interacted with: left out), i11 skipped: list 0
    assert _exposure(sqlite, clean_db, "u1") == ({"i3": (1, 2), "i6": (3, 4), "i11": (1, 0)}, 4)
    assert _exposure(sqlite, clean_db, "u2") == ({"i1": (2, 2), "i4": (3, 2), "i9": (1, 3)}, 3)
    assert _exposure(sqlite, clean_db, "u3") == ({"i2": (1, 0)}, 0)
    assert graph.lists_shown("u1", 4) == 4  # the graph's store: what the fingerprint read
    assert _miscounted(sqlite.path) == []
    assert sqlite.item_exposure() == graph.item_exposure()
    assert sqlite.item_exposure()["i1"] == (3, 0)


def test_attribution_follows_the_graphs_rules(clean_db: Driver, tmp_path: Path) -> None:
    graph, sqlite = _both(clean_db, tmp_path)
    cases = [  # (user, item, kind, list, expected)
        ("u1", "i1", "click", "r1", Attribution(True, True, "A", True, False)),
        ("u1", "i1", "click", "r1", Attribution(True, True, "A", False, False)),  # once per list
        ("u1", "i2", "purchase", "r1", Attribution(True, True, "A", True, True)),  # a conversion is a click too
        ("u1", "i2", "purchase", "r1", Attribution(True, True, "A", False, False)),
        ("u1", "i4", "click", "r1", Attribution(True, False, "A", False, False)),  # not shown in it
        ("u2", "i1", "click", "r1", Attribution(True, False, "A", False, False)),  # not u2's list
        ("u2", "i7", "click", "r5", Attribution(True, True, "similar", True, False)),  # nobody's: anyone's
        ("u2", "i4", "view", "r3", Attribution(True, True, "B", False, False)),  # neither a click nor a conversion
        ("u2", "i4", "click", "nope", Attribution(False, False, None, False, False)),
    ]
    for user, item, name, rec, expected in cases:
        kind = DEFAULT_FEEDBACK_KINDS[name]
        click, conversion = kind.outcome.value == "click", kind.outcome.value == "conversion"
        out = write_feedback(
            clean_db,
            user,
            item,
            kind,
            NOW,
            kinds=DEFAULT_FEEDBACK_KINDS,
            recommendation_id=rec,
            click=click,
            conversion=conversion,
        )
        assert out is not None
        in_graph = Attribution(out.found, out.shown, out.variant, out.new_click, out.new_conversion)
        assert in_graph == expected == sqlite.attribute(rec, user, item, click=click, conversion=conversion)
    assert sqlite.item_exposure() == graph.item_exposure()
    assert sqlite.item_exposure()["i1"] == (3, 1) and sqlite.item_exposure()["i7"] == (1, 1)
    assert sqlite.variant_report() == graph.variant_report()
    assert [(f.variant, f.lists, f.impressions, f.clicks, f.conversions) for f in sqlite.variant_report()] == [
        ("A", 4, 9, 2, 1),
        ("B", 3, 5, 0, 0),
        ("similar", 1, 2, 1, 0),
    ]
    assert sqlite.variant_report(since=NOW + 1) == graph.variant_report(since=NOW + 1) == []


def test_pruning_deletes_old_lists_and_their_outcomes_and_keeps_the_exposure(clean_db: Driver, tmp_path: Path) -> None:
    graph, sqlite = _both(clean_db, tmp_path)
    for store in (graph, sqlite):
        for part in impression_batches(_rows([("new", "u2", "B", ["i3"])], at=NOW + 100), 50):
            store.write(part)
    assert sqlite.attribute("r3", "u2", "i1", click=True, conversion=False).new_click
    exposure = _exposure(sqlite, clean_db, "u1")
    assert sqlite.prune(NOW + 1, 3) == graph.prune(NOW + 1, 3) == 3  # at most the limit
    assert sqlite.prune(NOW + 1, 100) == graph.prune(NOW + 1, 100) == 5
    assert sqlite.prune(NOW + 1, 100) == 0
    assert [(f.variant, f.lists) for f in sqlite.variant_report()] == [("B", 1)]
    assert sqlite.attribute("r3", "u2", "i1", click=True, conversion=False).found is False
    assert _exposure(sqlite, clean_db, "u1") == exposure  # the aggregates stay
    assert sqlite.item_exposure()["i1"] == (3, 1)
    assert sqlite.variant_report() == graph.variant_report()


def test_a_new_store_on_the_same_file_sees_what_was_written(clean_db: Driver, tmp_path: Path) -> None:
    _world(clean_db)
    path = tmp_path / "deep" / "dir" / "impressions.sqlite3"  # created with its directory
    first = open_impression_store("sqlite", clean_db, path=path, max_shown=4)
    _record(first)
    before = (_exposure(first, clean_db, "u2"), first.item_exposure(), first.variant_report())
    first.close()
    again = open_impression_store("sqlite", clean_db, path=path, max_shown=4)
    assert (_exposure(again, clean_db, "u2"), again.item_exposure(), again.variant_report()) == before
    assert before[0] == ({"i1": (2, 2), "i4": (2, 2), "i9": (1, 3)}, 3)
    again.close()
    with pytest.raises(ValueError, match="no impression store"):
        open_impression_store("sqlite", clean_db)


def test_the_file_keeps_a_tenth_more_rows_and_gives_the_graphs_most_recent_items(
    clean_db: Driver, tmp_path: Path
) -> None:
    extra = _world_with_more_items(clean_db)
    graph, sqlite = Neo4jImpressionStore(clean_db, max_shown=20), SqliteImpressionStore(tmp_path / "s.db", max_shown=20)
    assert sqlite.slack == 2
    with sqlite3.connect(sqlite.path) as db:
        for n in range(10):  # u2 is shown three new items a list, a window each
            rows = _rows([(f"s{n}", "u2", "A", extra[3 * n : 3 * n + 3])], at=NOW + n)
            for store in (graph, sqlite):
                for part in impression_batches(rows, 10):
                    store.write(part)
            kept = db.execute("SELECT items FROM users WHERE user_id = 'u2'").fetchone()[0]
            assert kept == (3 * n + 3 if 3 * n + 3 <= 22 else 20), n  # 21 and 22 kept; 23 or 24 > 20 + 2: back to 20
            assert _exposure(sqlite, clean_db, "u2") == _exposure(graph, clean_db, "u2"), n
    shown, lists = _exposure(sqlite, clean_db, "u2")
    assert lists == 10 and len(shown) == 20 and min(shown) == "j10"  # the 20 most recent: j10 to j29
    sqlite.record_skip("u2", "i0", NOW + 20)  # 21 rows kept, the 20 most recent read
    write_exposure_feedback(clean_db, "u2", "i0", DEFAULT_FEEDBACK_KINDS["skip"], NOW + 20, max_shown=20)
    assert _exposure(sqlite, clean_db, "u2") == _exposure(graph, clean_db, "u2")
    assert "i0" in _exposure(sqlite, clean_db, "u2")[0]
    assert _miscounted(sqlite.path) == []
    sqlite.close()


def test_a_file_written_before_the_exposure_counts_gets_them_and_stays_bounded(
    clean_db: Driver, tmp_path: Path
) -> None:
    _world(clean_db)
    path = tmp_path / "old.sqlite3"
    first = SqliteImpressionStore(path, max_shown=4)
    for part in impression_batches(_rows(WINDOWS[0]), 2):
        first.write(part)
    first.close()
    with sqlite3.connect(path) as db:  # the file as written before users.items and its triggers
        db.execute("DROP TRIGGER exposure_added")
        db.execute("DROP TRIGGER exposure_removed")
        db.execute("ALTER TABLE users DROP COLUMN items")
    again = SqliteImpressionStore(path, max_shown=4)
    assert _miscounted(path) == []
    with sqlite3.connect(path) as db:
        assert dict(db.execute("SELECT user_id, items FROM users")) == {"u1": 4, "u2": 2}
    for window in WINDOWS[1:]:
        for part in impression_batches(_rows(window), 2):
            again.write(part)
    again.record_skip("u1", "i11", NOW + 5)  # a new item past the bound: the oldest goes
    fresh = SqliteImpressionStore(tmp_path / "new.sqlite3", max_shown=4)
    _record(fresh)
    fresh.record_skip("u1", "i11", NOW + 5)
    for user in ("u1", "u2"):
        assert _exposure(again, clean_db, user) == _exposure(fresh, clean_db, user), user
    assert _miscounted(path) == [] and _miscounted(fresh.path) == []
    again.close()
    fresh.close()


def test_clearing_the_file_forgets_everything_and_recording_goes_on(clean_db: Driver, tmp_path: Path) -> None:
    _world(clean_db)
    path = tmp_path / "impressions.sqlite3"
    api, load = SqliteImpressionStore(path, max_shown=4), SqliteImpressionStore(path, max_shown=4)  # two processes'
    _record(api)
    assert load.variant_report() and load.item_exposure()
    load.clear()  # kgrec load --replace
    assert _miscounted(path) == []
    assert (api.variant_report(), api.item_exposure(), _exposure(api, clean_db, "u2")) == ([], {}, ({}, 0))
    assert api.attribute("r3", "u2", "i1", click=True, conversion=False).found is False
    _record(api)  # the API records on into the same file, from nothing
    assert _exposure(api, clean_db, "u2") == ({"i1": (2, 2), "i4": (2, 2), "i9": (1, 3)}, 3)
    api.close()
    load.close()


def test_a_file_is_read_only_for_the_graph_it_recorded(clean_db: Driver, tmp_path: Path) -> None:
    _world(clean_db)
    graph = graph_id(clean_db)
    assert graph and graph == graph_id(clean_db)  # the database's own id, the same on every read
    path = tmp_path / "impressions.sqlite3"
    store = open_impression_store("sqlite", clean_db, path=path, max_shown=4)  # a new file takes this graph's id
    _record(store)
    store.close()
    open_impression_store("sqlite", clean_db, path=path, max_shown=4).close()  # the same graph: opened as it is
    other = SqliteImpressionStore(path, max_shown=4)
    with pytest.raises(ConfigError, match=f"{path.name} records another graph .*{graph}.*KGREC_IMPRESSION_DB"):
        other.bind("the-id-of-another-graph")
    other.clear()  # kgrec load --replace: emptied, the file takes the next graph that binds it
    other.bind("the-id-of-another-graph")
    with pytest.raises(ConfigError, match="records another graph"):
        open_impression_store("sqlite", clean_db, path=path, max_shown=4)
    other.close()


def _serve(path: Path, number: int, per_worker: int) -> None:
    """One API worker's writes: it shows u1 an item every worker shows and one of its own, and u2 skips an item."""
    store = SqliteImpressionStore(path)
    for n in range(per_worker):
        rows = _rows([(f"w{number}-{n}", "u1", "A", ["i3", f"i{6 + number}"])])
        for part in impression_batches(rows, 50):
            store.write(part)
        store.record_skip("u2", "i3", NOW + n)
    store.close()


def test_two_processes_on_one_file_as_two_workers_lose_no_write(clean_db: Driver, tmp_path: Path) -> None:
    _world(clean_db)
    path = tmp_path / "shared.sqlite3"
    per_worker = 40
    SqliteImpressionStore(path).close()  # the tables, before the workers start
    fork = multiprocessing.get_context("fork")
    workers = [fork.Process(target=_serve, args=(path, n, per_worker)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    store = SqliteImpressionStore(path)
    shown, lists = _exposure(store, clean_db, "u1")
    assert lists == 2 * per_worker
    assert shown["i3"][0] == 2 * per_worker and shown["i6"][0] == shown["i7"][0] == per_worker
    assert _exposure(store, clean_db, "u2")[0] == {"i3": (2 * per_worker, 0)}
    assert store.item_exposure()["i3"] == (2 * per_worker, 0)
    assert [(f.lists, f.impressions) for f in store.variant_report()] == [(2 * per_worker, 4 * per_worker)]
    assert _miscounted(path) == []
    store.close()


def _version(path: Path, user_id: str) -> tuple | None:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT (SELECT value FROM meta WHERE key = 'generation'), lists_shown, seq FROM users WHERE user_id = ?",
            (user_id,),
        ).fetchone()


def test_held_exposure_is_the_files_through_own_and_other_writers_skips_and_clears(
    clean_db: Driver, tmp_path: Path
) -> None:
    extra = _world_with_more_items(clean_db)
    path = tmp_path / "held.sqlite3"
    held = SqliteImpressionStore(path, max_shown=20, held_rows=10_000)
    other = SqliteImpressionStore(path, max_shown=20)  # another worker on the file
    plain = SqliteImpressionStore(path, max_shown=20)  # reads the file every time
    users, pool = ("u1", "u2", "u3"), ITEMS + extra
    rng = random.Random(7)
    outcomes: list[str] = []
    for step in range(80):
        writer = held if rng.random() < 0.7 else other
        action = rng.random()
        if action < 0.75:  # a window of one to three lists of a few users, items shown again among them
            lists = [
                (f"w{step}-{n}", rng.choice(users), "A", rng.sample(pool, rng.randint(1, 8)))
                for n in range(rng.randint(1, 3))
            ]
            for part in impression_batches(_rows(lists, at=NOW + step), 10):
                writer.write(part)
        else:
            writer.record_skip(rng.choice(users), rng.choice(pool), NOW + step)
        for user in users:
            context = user_context(clean_db, user)
            assert context is not None
            assert held.exposure(context, outcomes.append) == plain.exposure(context), (step, user)
    assert {"miss", "hit", "applied", "stale"} <= set(outcomes)  # own windows applied, other writers' read again
    assert len(held.held) == 3 and held.held.rows > 60  # every user held, past the bound of 20 (a tenth more kept)
    assert _miscounted(path) == []

    # the writer keeps its windows beside the rows it holds: the next read applies them instead of reading the rows
    _exposure(held, clean_db, "u2")
    for n in range(2):
        for part in impression_batches(_rows([(f"own{n}", "u2", "A", ["j01", f"j0{n + 2}"])], at=NOW + 100), 10):
            held.write(part)
    version = _version(path, "u2")
    assert version is not None and held.held.get("u2", version) is not None
    assert _exposure(held, clean_db, "u2") == _exposure(plain, clean_db, "u2")

    # another worker clears the file and records the same counts again: a new generation, so the rows are read again
    other.clear()
    for part in impression_batches(_rows([("a", "u3", "A", ["j03", "j04"])], at=NOW + 200), 10):
        held.write(part)
    assert _exposure(held, clean_db, "u3") == ({"j03": (1, 1), "j04": (1, 1)}, 1)  # held at lists 1, seq 2
    at = _version(path, "u3")
    other.clear()
    for part in impression_batches(_rows([("b", "u3", "A", ["j05", "j06"])], at=NOW + 300), 10):
        other.write(part)
    version = _version(path, "u3")
    assert version is not None and at is not None and version[1:] == at[1:] and version[0] != at[0]
    assert _exposure(held, clean_db, "u3") == ({"j05": (1, 1), "j06": (1, 1)}, 1) == _exposure(plain, clean_db, "u3")
    assert _exposure(held, clean_db, "u1") == ({}, 0)  # cleared: nothing recorded for u1 since
    for store in (held, other, plain):
        store.close()
