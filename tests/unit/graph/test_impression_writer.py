"""The SQLite impression store's writer process (graph/impression_writer.py): a child started on first use, a call's
refusal answered as a KgrecError, a child that died replaced at the next call, the child ended with the store."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from graph.impression_writer import WriterProcess
from graph.impressions import SqliteImpressionStore
from graph.writers import impression_batches
from schema.errors import KgrecError


def _batch(rec: str, user: str, items: list[str]):  # noqa: ANN202
    row = {"recommendation_id": rec, "user_id": user, "variant": "A", "model_version": "m", "shown_at": 100}
    (batch,) = impression_batches([{**row, "item_ids": items}], 10)
    return batch


def _lists(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT recommendation_id, size FROM lists ORDER BY recommendation_id").fetchall()


def test_writes_run_in_a_child_and_land_in_the_file(tmp_path: Path) -> None:
    store = SqliteImpressionStore(tmp_path / "i.db", writer_nice=0)
    assert store.writer is not None and store.writer.pid is None  # started on first use
    try:
        stats = store.write(_batch("r1", "u1", ["a", "b"]))
        child = store.writer.pid
        assert child is not None and child != os.getpid()
        assert stats.rows == 1 and stats.seconds > 0
        assert _lists(tmp_path / "i.db") == [("r1", 2)]
        assert store.lists_shown("u1", -1) == 1  # read in this process from what the child wrote
        assert store.prune(101, 10) == 1 and _lists(tmp_path / "i.db") == []
    finally:
        store.close()
    assert store.writer.pid is None


def test_a_child_that_died_is_replaced_at_the_next_call(tmp_path: Path) -> None:
    store = SqliteImpressionStore(tmp_path / "i.db", writer_nice=0)
    try:
        store.write(_batch("r1", "u1", ["a"]))
        first = store.writer.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while store.writer.pid is not None and time.monotonic() < deadline:  # until the store sees it exited
            time.sleep(0.01)
        store.write(_batch("r2", "u1", ["b"]))
        assert store.writer.pid not in (None, first) and store.writer.started == 2
        assert _lists(tmp_path / "i.db") == [("r1", 1), ("r2", 1)]
    finally:
        store.close()


def test_the_child_runs_only_the_stores_writes_and_answers_a_refusal_as_an_error(tmp_path: Path) -> None:
    writer = WriterProcess(tmp_path / "i.db", max_shown=10, busy_seconds=1.0)
    try:
        with pytest.raises(KgrecError, match="not 'clear'"):
            writer.call("clear")
        assert writer.call("prune", 0, 10) == 0  # the child lives on after a refusal
    finally:
        writer.close()


def test_a_niced_child_runs_at_the_niceness_it_was_given(tmp_path: Path) -> None:
    store = SqliteImpressionStore(tmp_path / "i.db", writer_nice=5)
    try:
        store.prepare()
        assert store.writer.pid is not None
        assert os.getpriority(os.PRIO_PROCESS, store.writer.pid) == os.getpriority(os.PRIO_PROCESS, 0) + 5
    finally:
        store.close()
