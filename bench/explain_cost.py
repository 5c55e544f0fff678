"""The cost of the explanation query by the number of items explained: ``PROFILE`` db hits and wall time.

For every ``--every``-th user of the benchmark graph (``bench.api_load`` loads ml-latest-small into it), the user's
``--items`` most-rated unseen items are explained from the user's strongest seeds, as a miss of the API does
(``graph/queries/explain_items.cypher``, three paths per item); the mean and largest db hits and wall time are
printed per item count. Neo4j must be running (``--keep-server`` of ``bench.api_load`` leaves it up).

    .venv/bin/python -m bench.explain_cost [--items 20 40 --every 40 --repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from rich.console import Console
from rich.table import Table

from bench.common import bench_settings
from graph import catalog
from graph.driver import create_driver
from graph.explain import ExplainCaps, strongest_seeds
from graph.reads import user_context
from graph.recall import RecallFilters

console = Console()


def _db_hits(plan: dict) -> int:
    return int(plan.get("dbHits", 0)) + sum(_db_hits(child) for child in plan.get("children", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[20, 40], help="item counts to explain")
    parser.add_argument("--every", type=int, default=40, help="take every n-th user (by id)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per user and item count")
    args = parser.parse_args()
    table = Table(title="explain_items: cost by items explained", show_edge=False)
    for col in ("items", "users", "db hits mean", "db hits max", "wall ms mean", "wall ms max"):
        table.add_column(col, justify="right")
    with create_driver(bench_settings()) as driver:
        users = [r["u"] for r in driver.execute_query("MATCH (u:User) RETURN u.userId AS u ORDER BY u")[0]]
        popular = [
            r["i"]
            for r in driver.execute_query(
                "MATCH (i:Item)<-[r:INTERACTED]-() WITH i, count(r) AS n ORDER BY n DESC, i.itemId LIMIT 1000 "
                "RETURN i.itemId AS i"
            )[0]
        ]
        caps = ExplainCaps(max_paths=3).to_params()
        for count in args.items:
            hits: list[int] = []
            walls: list[float] = []
            for user in users[:: args.every]:
                context = user_context(driver, user)
                if context is None:
                    continue
                seen = {i.item_id for i in context.interactions}
                params = {
                    "userId": user,
                    "itemIds": [i for i in popular if i not in seen][:count],
                    "seedIds": strongest_seeds(context),
                    "checkSeeds": True,
                    "readSeeds": None,  # every side read: the query's whole cost
                    "readItems": None,
                    "heldFollowees": [],
                    **caps,
                    **RecallFilters().to_params(),
                }
                hits.append(_db_hits(driver.execute_query("PROFILE " + catalog.EXPLAIN_ITEMS, params)[1].profile))
                started = time.perf_counter()
                for _ in range(args.repeat):
                    driver.execute_query(catalog.EXPLAIN_ITEMS, params)
                walls.append((time.perf_counter() - started) / args.repeat * 1000)
            table.add_row(
                str(count),
                str(len(hits)),
                f"{statistics.mean(hits):,.0f}",
                f"{max(hits):,}",
                f"{statistics.mean(walls):.1f}",
                f"{max(walls):.1f}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
