"""Each Cypher recall strategy alone as a row of the quality table (docs/evaluation.md, bench/quality.py).

The recall queries run on Neo4j, so the test interactions of the split must not be in the graph while
they run: :func:`without_test_interactions` deletes them (after writing them, with their properties, to a
ledger file beside the benchmark output) and re-creates them afterwards. A run that dies in between leaves
the ledger behind, and :func:`restore_pending` — called by every run before it exports — puts those
relationships back, so a later ``--skip-load`` never measures a graph with the test fold missing.

:func:`recall_rankings` asks one strategy for ``k`` items for every test user; :func:`ranked_to_topk`
turns the returned item ids into the ``[users, k]`` item_idx lists that :func:`gnn.evaluation.evaluate`
scores like any model's. An item id the snapshot does not know stays ``-1``: it can never be a hit, but it
keeps its slot, so the items after it keep their rank.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from neo4j import Driver
from torch import Tensor

from gnn.data import GraphSnapshot, IdMap
from gnn.evaluation import Split
from graph.recall import STRATEGIES, RecallStrategy
from schema.errors import DataError

BATCH = 5000

_READ = (
    "UNWIND $rows AS row MATCH (u:User {userId: row.u})-[r:INTERACTED]->(i:Item {itemId: row.i}) "
    "RETURN u.userId AS u, i.itemId AS i, properties(r) AS props"
)
_DELETE = (
    "UNWIND $rows AS row MATCH (:User {userId: row.u})-[r:INTERACTED]->(:Item {itemId: row.i}) "
    "DELETE r RETURN count(*) AS n"
)
_RESTORE = (
    "UNWIND $rows AS row MATCH (u:User {userId: row.u}), (i:Item {itemId: row.i}) "
    "MERGE (u)-[r:INTERACTED]->(i) SET r = row.props RETURN count(*) AS n"
)
_COUNT = "MATCH ()-[r:INTERACTED]->() RETURN count(r) AS n"


def _count(driver: Driver, database: str) -> int:
    records, _, _ = driver.execute_query(_COUNT, database_=database)
    return int(records[0]["n"])


def remove_test_interactions(driver: Driver, database: str, snapshot: GraphSnapshot, split: Split, ledger: Path) -> int:
    """Delete the split's test interactions from the graph, first writing them (with properties) to ``ledger``.

    Returns:
        The number of relationships deleted.

    Raises:
        DataError: A ledger is already there (restore it first), or the graph lacks some test interaction
            (it is not the graph the snapshot was exported from).
    """
    if ledger.exists():
        raise DataError(f"{ledger} exists: an earlier run's removed interactions must be restored first")
    users = snapshot.users.to_ids(split.test[0])
    items = snapshot.items.to_ids(split.test[1])
    pairs = [{"u": u, "i": i} for u, i in zip(users, items, strict=True)]
    rows: list[dict[str, Any]] = []
    for start in range(0, len(pairs), BATCH):
        records, _, _ = driver.execute_query(_READ, rows=pairs[start : start + BATCH], database_=database)
        rows.extend({"u": r["u"], "i": r["i"], "props": dict(r["props"])} for r in records)
    if len(rows) != len(pairs):
        raise DataError(f"the graph holds {len(rows)} of the split's {len(pairs)} test interactions")
    ledger.parent.mkdir(parents=True, exist_ok=True)
    tmp = ledger.with_suffix(".tmp")
    tmp.write_text(json.dumps({"database": database, "rows": rows}))
    os.replace(tmp, ledger)  # the ledger is complete before the first relationship goes
    before = _count(driver, database)
    deleted = 0
    for start in range(0, len(pairs), BATCH):
        records, _, _ = driver.execute_query(_DELETE, rows=pairs[start : start + BATCH], database_=database)
        deleted += int(records[0]["n"])
    after = _count(driver, database)
    if deleted != len(pairs) or before - after != len(pairs):
        raise DataError(f"deleted {deleted} (count {before} → {after}) of {len(pairs)} test interactions")
    return deleted


def restore_pending(driver: Driver, database: str, ledger: Path) -> int:
    """Re-create the relationships listed in ``ledger`` (idempotent: MERGE, properties replaced), then remove it.

    Returns:
        The number of relationships restored (0 without a ledger).
    """
    if not ledger.exists():
        return 0
    data = json.loads(ledger.read_text())
    if data.get("database", database) != database:
        raise DataError(f"{ledger} belongs to database {data['database']!r}, not {database!r}")
    rows = data["rows"]
    restored = 0
    for start in range(0, len(rows), BATCH):
        records, _, _ = driver.execute_query(_RESTORE, rows=rows[start : start + BATCH], database_=database)
        restored += int(records[0]["n"])
    if restored != len(rows):
        raise DataError(f"restored {restored} of the {len(rows)} interactions in {ledger}; the ledger is kept")
    ledger.unlink()
    return restored


@contextmanager
def without_test_interactions(
    driver: Driver, database: str, snapshot: GraphSnapshot, split: Split, ledger: Path
) -> Iterator[int]:
    """The graph without the test fold for the duration of the block; restored on the way out, also on errors."""
    removed = 0
    try:
        removed = remove_test_interactions(driver, database, snapshot, split, ledger)
        yield removed
    finally:
        restore_pending(driver, database, ledger)


def ranked_to_topk(lists: Sequence[Sequence[str]], items: IdMap, k: int) -> tuple[Tensor, int]:
    """``[len(lists), k]`` item_idx from ranked item ids, best first.

    Ids the map does not know stay ``-1`` in their slot (never a hit, but they take the rank); short lists
    are padded with ``-1``; entries past ``k`` are dropped.

    Returns:
        The lists and how many ids were unknown.

    Raises:
        DataError: A list names the same item twice (it would count a hit twice).
    """
    out = torch.full((len(lists), k), -1, dtype=torch.long)
    unknown = 0
    for row, ids in enumerate(lists):
        if len(set(ids)) != len(ids):
            raise DataError(f"ranked list {row} repeats an item: {list(ids)}")
        if ids:
            index = torch.from_numpy(items.to_index(list(ids[:k]), strict=False))
            unknown += int((index < 0).sum())
            out[row, : index.numel()] = index
    return out, unknown


@dataclass
class RecallRanking:
    """One strategy's lists for the evaluation users, and what it cost."""

    name: str
    topk: Tensor
    seconds: float  # wall time of all queries, client side
    query_seconds: float  # the part the driver spent on the queries (graph.recall's on_timing)
    info: dict[str, Any] = field(default_factory=dict)


def recall_rankings(
    driver: Driver,
    database: str,
    snapshot: GraphSnapshot,
    users: Tensor,
    k: int = 20,
    strategies: dict[str, RecallStrategy] | None = None,
) -> list[RecallRanking]:
    """Ask each strategy (default: all of graph.recall.STRATEGIES) for ``k`` items for each of ``users``.

    ``users`` are user_idx of ``snapshot``; the lists come back aligned with them.
    """
    user_ids = snapshot.users.to_ids(users)
    out = []
    for name, strategy in (strategies or STRATEGIES).items():
        spent = [0.0]

        def timing(_: str, seconds: float, spent: list[float] = spent) -> None:
            spent[0] += seconds

        started = time.perf_counter()
        lists = [
            [c.item_id for c in strategy(driver, user, k, database=database, on_timing=timing)] for user in user_ids
        ]
        seconds = time.perf_counter() - started
        topk, unknown = ranked_to_topk(lists, snapshot.items, k)
        lengths = [len(items) for items in lists]
        out.append(
            RecallRanking(
                name,
                topk,
                seconds,
                spent[0],
                {
                    "users_with_candidates": sum(1 for n in lengths if n),
                    "users_with_k": sum(1 for n in lengths if n >= k),
                    "mean_list_length": sum(lengths) / max(len(lengths), 1),
                    "unknown_items": unknown,
                    "ms_per_user": 1000 * seconds / max(len(lengths), 1),
                },
            )
        )
    return out
