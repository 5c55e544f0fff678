"""End to end, as issue 4 checks it: the API's own top-20 on a train-only graph, scored from outside, beside the
reference libraries under the same rule.

1. Load the dataset (ml-latest-small with its knowledge sources, or Last.fm) into the benchmark Neo4j
   (.kgrec/neo4j-bench, 27687, or KGREC_BENCH_BOLT_PORT / KGREC_BENCH_HTTP_PORT).
2. Split its positives as docs/evaluation.md says (per user, seed 42: temporal on MovieLens, seeded random on
   Last.fm) and DELETE the test interactions from Neo4j, so that nothing the service sees contains them.
3. ``kgrec retrain`` (the blend by default) on that train-only graph, with a fresh artifact directory.
4. Start the API (``kgrec serve``) and ask it for ``k=20`` for every test user, over HTTP.
5. Score the answers against the held-out interactions with a metric written here, independently of
   ``gnn.evaluation`` (NDCG@20 with binary relevance and log2 discount, Recall@20).
6. The reference libraries of ``bench.quality`` (most-popular, implicit ALS, EASE^R by default), each tuned on the
   validation split by ``bench.search`` as ``bench.quality`` tunes it, refitted on the same train part and scored
   under the API's rule (every item the user interacted with in train is excluded, ratings below 4 too) with the
   same metric code; a paired bootstrap interval of the API minus the best reference, per test user.

    .venv/bin/python -m bench.acceptance [--dataset ml-latest-small|lastfm] [--model blend|lightgcn]
                                         [--references NAME ...] [--resume] [--keep-server]

Prints the table and writes bench/out/acceptance-<dataset>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from typing import Any

import httpx
import numpy as np
import torch
from rich.console import Console

from bench.api_rule import rated_items, train_only
from bench.baselines import SEED, THREADS, VAL_METRIC
from bench.common import OUT, bench_settings, remove_impressions, serve_api, shut_down
from bench.models import model_specs
from bench.quality import DATASETS, dataset_rows
from bench.search import TrialCache, coordinate_search
from bench.stats import paired_bootstrap
from etl.load import load_dataset
from gnn.config import GnnSettings, resolve_config
from gnn.data import GraphSnapshot, build_graph_snapshot
from gnn.evaluation import Split, split_interactions
from gnn.jobs import retrain_job
from graph.driver import create_driver
from graph.export import export_graph
from graph.neo4j_local import launcher

console = Console()
PORT = 28100
REFERENCES = ("most-popular", "implicit ALS", "EASE^R")


def ndcg_recall(ranked: list[str], relevant: set[str], k: int = 20) -> tuple[float, float]:
    """Binary-relevance NDCG@k (log2 discount, ideal over min(k, |relevant|)) and Recall@k."""
    gains = [1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant]
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    hits = sum(1 for item in ranked[:k] if item in relevant)
    return (sum(gains) / ideal if ideal else 0.0), hits / len(relevant)


def _answer(client: httpx.Client, path: str, attempts: int = 30) -> dict[str, Any]:
    """The API's top-20 at ``path``; a 429 (the API's admission control shedding load on a busy machine) is asked
    again after its Retry-After (at most ``attempts`` times): this benchmark measures answers, not admission."""
    for _ in range(attempts - 1):
        response = client.get(path, params={"k": 20})
        if response.status_code != 429:
            return response.raise_for_status().json()
        time.sleep(min(float(response.headers.get("Retry-After", "1") or 1), 10.0))
    return client.get(path, params={"k": 20}).raise_for_status().json()


def references_under_the_api_rule(
    dataset: str,
    snapshot: GraphSnapshot,
    split: Split,
    names: list[str],
    held: dict[str, set[str]],
    jobs: int = 1,
    resume: bool = False,
    fixed: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each reference tuned on validation as ``bench.quality`` tunes it (``bench.search``, its trial cache in
    bench/out/trials-<dataset>.jsonl shared), refitted on the train part, its top-20 taken among the items seen
    in train without any item the user interacted with in train (the API's rule), scored per test user by
    :func:`ndcg_recall`.

    Args:
        fixed: Per reference name, parameters to fit it with as they are, without its search
            (``--reference-params``); its other parameters are the search's starting values.

    Returns:
        Per reference: chosen parameters, mean NDCG@20 / Recall@20 and the per-user NDCG@20 by user id.
    """
    from threadpoolctl import threadpool_limits

    specs = {s.name: s for s in model_specs(False, snapshot) if s.name in names}
    val_fold, test_fold = split.validation(), split.testing()
    rated = rated_items(train_only(snapshot, split))
    ptr = torch.searchsorted(rated[0].contiguous(), torch.arange(snapshot.num_users + 1))
    unknown = ~test_fold.train_item_mask()
    users = sorted(held)
    rows = torch.as_tensor(snapshot.users.to_index(users), dtype=torch.long)
    cache = TrialCache(
        OUT / f"trials-{dataset}.jsonl",
        {"snapshot_id": snapshot.snapshot_id, "split": split.describe(), "seed": SEED},
        resume,
    )
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = specs[name]
        started = time.perf_counter()
        # implicit's own OpenMP threads call BLAS: more than one BLAS thread inside them only floods the log with
        # OpenBLAS's "OpenMP loop" warnings and oversubscribes the cores
        with threadpool_limits(limits=1 if name.startswith("implicit") else THREADS):
            if fixed and name in fixed:
                params = {**spec.fixed, **spec.start, **fixed[name]}
            elif spec.axes:
                best = coordinate_search(spec, val_fold, val_fold.train_item_mask(), jobs=jobs, cache=cache)[0]
                params = {**spec.fixed, **best.params}
            else:
                params = dict(spec.fixed)
            fitted = spec.fit(test_fold, params, None)
            per_user: dict[str, float] = {}
            recalls = []
            for lo in range(0, len(users), 256):
                batch = rows[lo : lo + 256]
                scores = fitted.score_fn(batch).clone()
                scores[:, unknown] = -torch.inf
                for r, u in enumerate(batch.tolist()):
                    scores[r, rated[1, ptr[u] : ptr[u + 1]]] = -torch.inf
                top = torch.topk(scores, 20, dim=1)
                for r, user in enumerate(users[lo : lo + 256]):
                    finite = torch.isfinite(top.values[r])
                    ranked = snapshot.items.to_ids(top.indices[r][finite])
                    n, rec = ndcg_recall(ranked, held[user])
                    per_user[user] = n
                    recalls.append(rec)
        out[name] = {
            "params": params,
            "ndcg@20": float(np.mean(list(per_user.values()))),
            "recall@20": float(np.mean(recalls)),
            "seconds": time.perf_counter() - started,
            "per_user": per_user,
        }
        console.print(
            f"{name} {params}: NDCG@20 {out[name]['ndcg@20']:.4f}, Recall@20 {out[name]['recall@20']:.4f} "
            f"under the API's rule ({out[name]['seconds']:.0f} s with its search)",
            highlight=False,
        )
    return out


def export_graph_of(settings: Any) -> Any:  # noqa: ANN401 - Neo4jSettings -> GraphExport
    with create_driver(settings) as driver:
        return export_graph(driver, settings.database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=DATASETS, default="ml-latest-small")
    parser.add_argument("--model", default="blend", choices=["blend", "lightgcn", "graphsage"])
    parser.add_argument(
        "--references",
        nargs="*",
        default=list(REFERENCES),
        help=f"reference models of bench.quality to measure beside the API (default: {', '.join(REFERENCES)}; "
        "none: --references with no name)",
    )
    parser.add_argument(
        "--reference-params",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="fit reference NAME with these parameters instead of searching them on validation, e.g. "
        '\'implicit ALS={"factors": 128, "regularization": 100, "alpha": 40}\' (repeatable; NAME must be '
        "among --references)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="trials of a reference's search fitted at once")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse the validation trials recorded in bench/out/trials-<dataset>.jsonl (bench.quality's too)",
    )
    parser.add_argument("--port", type=int, default=PORT, help=f"the API's port (default {PORT})")
    parser.add_argument(
        "--skip-retrain",
        action="store_true",
        help="serve the version an earlier run on the same dataset promoted (in bench/out/acceptance_artifacts-"
        "<dataset>) instead of retraining: to measure a change of serving alone",
    )
    parser.add_argument("--keep-server", action="store_true", help="leave the benchmark Neo4j running")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("gnn.blend").setLevel(logging.INFO)  # the component search's choice and the ranker's
    known = {s.name for s in model_specs(False, None)}  # type: ignore[arg-type]
    unknown_refs = [r for r in args.references if r not in known]
    if unknown_refs:
        parser.error(f"unknown references {unknown_refs}; choose from {sorted(known)}")
    fixed_params: dict[str, dict[str, Any]] = {}
    for text in args.reference_params:
        name, _, params = text.partition("=")
        if name not in args.references:
            parser.error(f"--reference-params {name!r}: not among --references {args.references}")
        try:
            fixed_params[name] = json.loads(params)
        except json.JSONDecodeError as exc:
            parser.error(f"--reference-params {name!r}: not JSON ({exc})")
        if not isinstance(fixed_params[name], dict):
            parser.error(f"--reference-params {name!r}: give a JSON object of parameters")
    OUT.mkdir(parents=True, exist_ok=True)
    artifacts = OUT / f"acceptance_artifacts-{args.dataset}"
    settings = bench_settings()
    launcher.start(settings)
    timings: dict[str, float] = {}
    api = None
    try:
        with create_driver(settings) as driver:
            started = time.perf_counter()
            load_dataset(driver, dataset_rows(args.dataset), replace=True, reject_dir=OUT / "rejects")
            remove_impressions(settings)  # the lists of the graph replaced
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

        if args.skip_retrain:
            from gnn.artifacts import load_artifact
            from gnn.serving import current_version

            current = current_version(artifacts, args.model)
            if current is None:
                raise SystemExit(f"--skip-retrain: no promoted {args.model} under {artifacts}")
            artifact = load_artifact(current)
            if artifact.snapshot_id != build_graph_snapshot(export_graph_of(settings)).snapshot_id:
                raise SystemExit(f"--skip-retrain: {current} was not trained on this train-only graph")
            from gnn.jobs import publish_embeddings

            publish_embeddings(settings, artifact)  # as the retrain that promoted it did
            console.print(f"serving {current.name} without retraining (--skip-retrain)")
        else:
            import shutil

            shutil.rmtree(artifacts, ignore_errors=True)  # a fresh artifact directory: nothing earlier is reused
            gnn = GnnSettings(artifacts_dir=artifacts, snapshots_dir=OUT / "acceptance_snapshots")
            started = time.perf_counter()
            report = retrain_job(settings, gnn, resolve_config(args.model, gnn.train_config), keep=2, publish=True)
            timings["retrain"] = time.perf_counter() - started
            artifact = report.artifact
        search = (artifact.metrics or {}).get("component_search")
        console.print(
            f"model: {artifact.model} {artifact.version}"
            + (f", retrained in {timings['retrain']:.0f} s" if "retrain" in timings else "")
            + (f"; component search {json.dumps(search)}" if search else ""),
            highlight=False,
        )

        api = serve_api(
            settings,
            args.port,
            {"KGREC_ARTIFACTS_DIR": str(artifacts), "KGREC_SERVE_MODEL": args.model, "KGREC_CACHE_WARM_USERS": "0"},
            f"acceptance_server-{args.dataset}.log",
        )
        base = f"http://127.0.0.1:{args.port}"
        version = httpx.get(f"{base}/health", timeout=5).json().get("model_version")
        per_user: dict[str, float] = {}
        recalls, explained, total = [], 0, 0
        started = time.perf_counter()
        with httpx.Client(base_url=base, timeout=60) as client:
            for user in sorted(held):
                body = _answer(client, f"/users/{user}/recommendations")
                ranked = [item["item_id"] for item in body["items"]]
                n, r = ndcg_recall(ranked, held[user])
                per_user[user] = n
                recalls.append(r)
                explained += sum(
                    1 for item in body["items"] if item["explanations"] and item["explanations"][0]["nodes"]
                )
                total += len(body["items"])
        timings["api_all_test_users"] = time.perf_counter() - started
    finally:
        shut_down(api, settings, args.keep_server)

    api_ndcg = float(np.mean(list(per_user.values())))
    partial = OUT / f"acceptance-{args.dataset}.api.json"  # the API's figures survive a stopped reference search
    partial.write_text(json.dumps({"model_version": version, "ndcg@20": api_ndcg, "per_user": per_user}))
    console.print(
        f"[bold]API top-20 on the train-only graph[/] ({version}, {len(per_user)} test users): "
        f"NDCG@20 {api_ndcg:.4f}, Recall@20 {np.mean(recalls):.4f}; "
        f"{100 * explained / max(total, 1):.0f}% of items carry a graph path"
    )
    started = time.perf_counter()
    references = references_under_the_api_rule(
        args.dataset, snapshot, split, args.references, held, args.jobs, args.resume, fixed_params
    )
    timings["references"] = time.perf_counter() - started
    users = sorted(held)
    best = max(references, key=lambda n: references[n]["ndcg@20"]) if references else None
    comparison = None
    console.print(f"\n[bold]{args.dataset}[/], {split.method} split, {len(users)} test users, NDCG@20 / Recall@20:")
    console.print(f"  {'API (' + args.model + ')':<24} {api_ndcg:.4f}  {np.mean(recalls):.4f}", highlight=False)
    for name, ref in sorted(references.items(), key=lambda kv: -kv[1]["ndcg@20"]):
        console.print(f"  {name:<24} {ref['ndcg@20']:.4f}  {ref['recall@20']:.4f}", highlight=False)
    if best is not None:
        diff = np.array([per_user[u] - references[best]["per_user"][u] for u in users])
        comparison = {
            "best_reference": best,
            **paired_bootstrap(diff),
            "ratio": api_ndcg / references[best][VAL_METRIC],
        }
        console.print(
            f"[bold]API − {best}[/]: NDCG@20 {comparison['mean_diff']:+.4f} "
            f"[{comparison['low']:+.4f}, {comparison['high']:+.4f}] (95% paired bootstrap over test users), "
            f"ratio {comparison['ratio']:.3f}",
            highlight=False,
        )
    result = {
        "dataset": args.dataset,
        "model": args.model,
        "model_version": version,
        "snapshot_id": snapshot.snapshot_id,
        "test_users": len(per_user),
        "ndcg@20": api_ndcg,
        "recall@20": float(np.mean(recalls)),
        "items_with_graph_path": explained / max(total, 1),
        "component_search": search,
        "references": {n: {k: v for k, v in r.items() if k != "per_user"} for n, r in references.items()},
        "api_vs_best_reference": comparison,
        "split": split.describe(),
        "timings_seconds": timings,
    }
    console.print(f"timings (s): {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    path = OUT / f"acceptance-{args.dataset}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
