"""End to end, as issue 4 checks it: the API's own top-20 on a train-only graph, scored from outside.

1. Load ml-latest-small with its knowledge sources into the benchmark Neo4j (.kgrec/neo4j-bench, 27687).
2. Split its positives as docs/evaluation.md says (temporal, per user, seed 42) and DELETE the test
   interactions from Neo4j, so that nothing the service sees contains them.
3. ``kgrec retrain`` (the blend by default) on that train-only graph: export → fit → promote.
4. Start the API (``kgrec serve``) and ask it for ``k=20`` for every test user, over HTTP.
5. Score the answers against the held-out interactions with a metric written here, independently of
   ``gnn.evaluation`` (NDCG@20 with binary relevance and log2 discount, Recall@20).

    .venv/bin/python -m bench.acceptance [--model blend|lightgcn] [--keep-server]

Prints the figures and writes bench/out/acceptance.json. Compare with the reference models of
``bench.quality`` on the same split (their figures are in its table; the split is the same function).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import httpx
import numpy as np
from rich.console import Console

from bench.common import OUT, bench_settings, require_dataset, serve_api, shut_down
from etl.load import load_dataset
from etl.sources import movielens_variables, read_mapping_dataset, shipped_mapping_path
from gnn.config import GnnSettings, resolve_config
from gnn.data import build_graph_snapshot
from gnn.evaluation import split_interactions
from gnn.jobs import retrain_job
from graph.driver import create_driver
from graph.export import export_graph
from graph.neo4j_local import launcher

console = Console()
PORT = 28100
ARTIFACTS = OUT / "acceptance_artifacts"


def ndcg_recall(ranked: list[str], relevant: set[str], k: int = 20) -> tuple[float, float]:
    """Binary-relevance NDCG@k (log2 discount, ideal over min(k, |relevant|)) and Recall@k."""
    gains = [1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant]
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    hits = sum(1 for item in ranked[:k] if item in relevant)
    return (sum(gains) / ideal if ideal else 0.0), hits / len(relevant)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="blend", choices=["blend", "lightgcn", "graphsage"])
    parser.add_argument("--keep-server", action="store_true", help="leave the benchmark Neo4j running")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    settings = bench_settings()
    launcher.start(settings)
    timings: dict[str, float] = {}
    api = None
    try:
        with create_driver(settings) as driver:
            started = time.perf_counter()
            variables = movielens_variables(
                require_dataset("ml-latest-small"),
                require_dataset("ml-small-actors-tomasonjo") / "movies.csv",
                require_dataset("hetrec2011-movielens-2k"),
            )
            data, _ = read_mapping_dataset(shipped_mapping_path("movielens"), variables)
            load_dataset(driver, data, replace=True, reject_dir=OUT / "rejects")
            timings["load"] = time.perf_counter() - started
            snapshot = build_graph_snapshot(export_graph(driver, settings.database))
            split = split_interactions(snapshot)
            users = snapshot.users.to_ids(split.test[0])
            items = snapshot.items.to_ids(split.test[1])
            held: dict[str, set[str]] = {}
            for user, item in zip(users, items, strict=True):
                held.setdefault(user, set()).add(item)
            pairs = [{"u": u, "i": i} for u, i in zip(users, items, strict=True)]
            started = time.perf_counter()
            for start in range(0, len(pairs), 5000):
                driver.execute_query(
                    "UNWIND $rows AS row MATCH (:User {userId: row.u})-[r:INTERACTED]->(:Item {itemId: row.i}) "
                    "DELETE r",
                    rows=pairs[start : start + 5000],
                )
            left, _, _ = driver.execute_query("MATCH ()-[r:INTERACTED]->() RETURN count(r) AS n")
            timings["delete_test"] = time.perf_counter() - started
        console.print(
            f"train-only graph: {len(pairs):,} test interactions of {len(held)} users removed, "
            f"{left[0]['n']:,} interactions left"
        )

        gnn = GnnSettings(artifacts_dir=ARTIFACTS, snapshots_dir=OUT / "acceptance_snapshots")
        started = time.perf_counter()
        report = retrain_job(settings, gnn, resolve_config(args.model, gnn.train_config), keep=2, publish=True)
        timings["retrain"] = time.perf_counter() - started
        if not report.promoted:
            from gnn.jobs import promote

            promote(report.artifact.path)  # an older version from another graph must not serve this check
        console.print(f"retrain: {report.artifact.model} {report.artifact.version} in {timings['retrain']:.0f} s")

        api = serve_api(
            settings,
            PORT,
            {"KGREC_ARTIFACTS_DIR": str(ARTIFACTS), "KGREC_SERVE_MODEL": args.model, "KGREC_CACHE_WARM_USERS": "0"},
            "acceptance_server.log",
        )
        base = f"http://127.0.0.1:{PORT}"
        version = httpx.get(f"{base}/health", timeout=5).json().get("model_version")
        ndcgs, recalls, explained, total = [], [], 0, 0
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=60) as client:
            for user in sorted(held):
                body = client.get(f"/users/{user}/recommendations", params={"k": 20}).raise_for_status().json()
                ranked = [item["item_id"] for item in body["items"]]
                n, r = ndcg_recall(ranked, held[user])
                ndcgs.append(n)
                recalls.append(r)
                explained += sum(
                    1 for item in body["items"] if item["explanations"] and item["explanations"][0]["nodes"]
                )
                total += len(body["items"])
        timings["api_all_test_users"] = time.perf_counter() - started
    finally:
        shut_down(api, settings, args.keep_server)

    result = {
        "model_version": version,
        "test_users": len(ndcgs),
        "ndcg@20": float(np.mean(ndcgs)),
        "recall@20": float(np.mean(recalls)),
        "items_with_graph_path": explained / max(total, 1),
        "split": split.describe(),
        "timings_seconds": timings,
    }
    console.print(
        f"[bold]API top-20 on the train-only graph[/] ({version}, {len(ndcgs)} test users): "
        f"NDCG@20 {result['ndcg@20']:.4f}, Recall@20 {result['recall@20']:.4f}; "
        f"{100 * result['items_with_graph_path']:.0f}% of items carry a graph path"
    )
    console.print(f"timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    (OUT / "acceptance.json").write_text(json.dumps(result, indent=2))
    console.print(f"written to {OUT / 'acceptance.json'}")


if __name__ == "__main__":
    main()
