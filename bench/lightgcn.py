"""LightGCN parity: gnn's LightGCN against torch_geometric's, over several seeds, and where the time goes.

``bench.quality`` measures each model once, with one seed; on 603 test users two LightGCNs a few thousandths
apart are inside each other's seed noise. This benchmark takes both models' hyper-parameters and epoch counts
as ``bench.quality`` chose them on validation (from its JSON, or by tuning here when the JSON lacks them),
refits each on all of train with every seed of ``--seeds``, and reports test NDCG@20 / Recall@20 as mean ± sd
over seeds, a paired per-user bootstrap of the seed-averaged NDCG@20 (ours − PyG's), training seconds, and a
profile of a few epochs split by phase (``gnn.train.PHASES``: batching and negatives, propagation, loss,
backward, optimiser step) — the same labels in both training loops.

    .venv/bin/python -m bench.lightgcn [--snapshot bench/out/snapshot-ml-latest-small] [--seeds 1,2,3]
                                        [--retune "kgrec LightGCN"]

Prints the tables, writes bench/out/lightgcn-<dataset>.json and lightgcn-<dataset>.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.profiler import ProfilerActivity, profile

from bench.baselines import TORCH_THREADS, FitFn
from bench.common import OUT
from bench.measure import run_model
from bench.models import model_specs
from bench.quality import DATASETS, resolve_dataset
from bench.search import ModelSpec
from bench.stats import paired_bootstrap
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, evaluate, split_interactions
from gnn.train import PHASES

console = Console(width=140)

OURS, PYG = "kgrec LightGCN", "PyG LightGCN"
PHASE_ORDER = ("negatives", "propagate", "loss", "backward", "optimizer")


def chosen_params(
    dataset: str,
    specs: dict[str, ModelSpec],
    snapshot_id: str,
    split: Any,
    genres: torch.Tensor,
    quality_json: Path,
    retune: frozenset[str] = frozenset(),
) -> dict[str, dict[str, Any]]:
    """Each LightGCN's tuned parameters (epochs included) from ``bench.quality``'s JSON of the same snapshot, or
    tuned here on validation (``bench.measure.run_model``) when the JSON does not have them or the model is in
    ``retune`` (its training code changed since that JSON was written)."""
    rows: dict[str, dict[str, Any]] = {}
    if quality_json.is_file():
        report = json.loads(quality_json.read_text())
        if report.get("snapshot_id") == snapshot_id:
            rows = {r["name"]: r for r in report["models"] if r["name"] in (OURS, PYG)}
        else:
            console.print(f"{quality_json} is of snapshot {report.get('snapshot_id')}, not {snapshot_id}: tuning here")
    out = {}
    for name in (OURS, PYG):
        if name in rows and name not in retune:
            row = rows[name]
            console.print(f"{name}: parameters from {quality_json.name}: {row['params']}", highlight=False)
            out[name] = {
                "params": row["params"],
                "val": row["val"],
                "tuning_seconds": row["tuning_seconds"],
                "source": str(quality_json),
            }
        else:
            console.print(f"[bold]{name}[/]: tuning on validation ({dataset}) …")
            result = run_model(specs[name], split, genres)
            out[name] = {
                "params": result.params,
                "val": result.val,
                "tuning_seconds": result.tuning_seconds,
                "source": "tuned in this run",
            }
    return out


def phase_profile(fit: FitFn, fold: Fold, params: dict[str, Any], epochs: int) -> dict[str, float]:
    """Share of a fit's profiled CPU time per training phase (``gnn.train.PHASES``), the rest as ``other``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        fit(fold, {**params, "epochs": epochs}, None)
        wall = time.perf_counter() - started
    totals = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
    seconds = {phase: totals.get(PHASES[phase], 0.0) for phase in PHASE_ORDER}
    seconds["other"] = max(wall - sum(seconds.values()), 0.0)
    total = sum(seconds.values()) or 1.0
    return {phase: s / total for phase, s in seconds.items()}


def write_chart(path: Path, dataset: str, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [OURS, PYG]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=110, gridspec_kw={"width_ratios": [1, 1.4]})
    for x, name in enumerate(names):
        values = [run["ndcg@20"] for run in report["models"][name]["runs"]]
        left.scatter([x] * len(values), values, color=f"C{x}", alpha=0.7)
        left.hlines(np.mean(values), x - 0.25, x + 0.25, color=f"C{x}")
    left.set_xticks(range(len(names)), names)
    left.set_xlim(-0.6, len(names) - 0.4)
    left.set_ylabel("test NDCG@20 (one dot per seed, line = mean)")
    left.set_title(f"{dataset}: quality over seeds")
    starts = np.zeros(len(names))
    for i, phase in enumerate((*PHASE_ORDER, "other")):
        ms = np.array([report["models"][n]["ms_per_epoch"][phase] for n in names])
        right.barh(range(len(names)), ms, left=starts, color=f"C{i}", label=phase)
        starts += ms
    for y, name in enumerate(names):
        m = report["models"][name]
        right.text(starts[y], y, f"  × {m['epochs']} epochs = {m['train_seconds_mean']:.0f} s", va="center", fontsize=8)
    right.set_yticks(range(len(names)), names)
    right.set_xlim(0, starts.max() * 1.6)
    right.set_xlabel("ms per training epoch, by phase (1 torch thread)")
    right.set_title("where the training time goes")
    right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--snapshot",
        type=Path,
        default=OUT / "snapshot-ml-latest-small",
        help="a saved snapshot (bench.quality writes bench/out/snapshot-<dataset> on its first run)",
    )
    parser.add_argument("--dataset", choices=DATASETS, help="default: the one the snapshot directory is named after")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds of the test refits (default 1,2,3)")
    parser.add_argument("--profile-epochs", type=int, default=3, help="epochs of each model run under the profiler")
    parser.add_argument(
        "--quality-json",
        type=Path,
        help="bench.quality's results to take the tuned parameters from "
        "(default bench/out/quality-<dataset>.json; tuned here when it lacks them)",
    )
    parser.add_argument(
        "--retune",
        nargs="+",
        choices=(OURS, PYG),
        default=[],
        metavar="MODEL",
        help=f"tune these here even when the JSON has them ({OURS!r}, {PYG!r}): after a change to their training code",
    )
    args = parser.parse_args()
    dataset = resolve_dataset(parser, args.dataset, args.snapshot)
    if not args.snapshot.is_dir():
        parser.error(
            f"no snapshot at {args.snapshot}; make one with: python -m bench.quality --dataset {dataset} "
            "--models most-popular --no-recall --no-blend"
        )
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds!r}: give integers separated by commas")
    if not seeds:
        parser.error("--seeds: give at least one seed")
    torch.set_num_threads(TORCH_THREADS)
    OUT.mkdir(parents=True, exist_ok=True)

    snapshot = GraphSnapshot.load(args.snapshot)
    split = split_interactions(snapshot, seed=42)
    genres = snapshot.item_genre_matrix()
    test = split.testing()
    specs = {s.name: s for s in model_specs(False, snapshot)}
    chosen = chosen_params(
        dataset,
        specs,
        snapshot.snapshot_id,
        split,
        genres,
        args.quality_json or OUT / f"quality-{dataset}.json",
        frozenset(args.retune),
    )

    models: dict[str, dict[str, Any]] = {}
    per_user: dict[str, list[np.ndarray]] = {OURS: [], PYG: []}
    for name in (OURS, PYG):
        spec, params = specs[name], chosen[name]["params"]
        candidates = test.train_item_mask() if spec.reference else None
        runs = []
        for seed in seeds:
            fitted = spec.fit(test, {**params, "seed": seed}, None)
            metrics = evaluate(fitted.score_fn, test, ks=(20,), candidates=candidates, per_user=True)
            per_user[name].append(np.array(metrics["per_user"]["ndcg@20"]))
            runs.append(
                {
                    "seed": seed,
                    "ndcg@20": metrics["ndcg@20"],
                    "recall@20": metrics["recall@20"],
                    "train_seconds": fitted.seconds,
                    "seconds_per_epoch": fitted.info["seconds_per_epoch"],
                }
            )
            console.print(
                f"{name} seed {seed}: test NDCG@20 {metrics['ndcg@20']:.4f}, Recall@20 "
                f"{metrics['recall@20']:.4f} ({fitted.seconds:.1f} s)",
                highlight=False,
            )
        shares = phase_profile(spec.fit, test, {**params, "seed": seeds[0]}, args.profile_epochs)
        per_epoch = float(np.mean([r["seconds_per_epoch"] for r in runs]))
        models[name] = {
            **chosen[name],
            "epochs": int(params["epochs"]),
            "runs": runs,
            "ndcg@20_mean": float(np.mean([r["ndcg@20"] for r in runs])),
            "ndcg@20_sd": float(np.std([r["ndcg@20"] for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
            "recall@20_mean": float(np.mean([r["recall@20"] for r in runs])),
            "recall@20_sd": float(np.std([r["recall@20"] for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
            "train_seconds_mean": float(np.mean([r["train_seconds"] for r in runs])),
            "seconds_per_epoch": per_epoch,
            "phase_shares": shares,
            "ms_per_epoch": {phase: 1000 * share * per_epoch for phase, share in shares.items()},
        }
    paired = paired_bootstrap(np.mean(per_user[OURS], axis=0) - np.mean(per_user[PYG], axis=0))

    table = Table(title=f"{dataset}: LightGCN over {len(seeds)} seeds (snapshot {snapshot.snapshot_id}, test fold)")
    for column in ("model", "epochs", "NDCG@20", "Recall@20", "val NDCG@20", "train s", "s/epoch", "tuning s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, m in models.items():
        table.add_row(
            name,
            str(m["epochs"]),
            f"{m['ndcg@20_mean']:.4f} ± {m['ndcg@20_sd']:.4f}",
            f"{m['recall@20_mean']:.4f} ± {m['recall@20_sd']:.4f}",
            f"{m['val']:.4f}",
            f"{m['train_seconds_mean']:.1f}",
            f"{m['seconds_per_epoch']:.3f}",
            f"{m['tuning_seconds']:.0f}",
        )
    console.print(table)
    phases = Table(title="where a training epoch's time goes (ms per epoch, share of the profiled time)")
    phases.add_column("model")
    for phase in (*PHASE_ORDER, "other"):
        phases.add_column(phase, justify="right")
    for name, m in models.items():
        phases.add_row(
            name, *(f"{m['ms_per_epoch'][p]:.0f} ({100 * m['phase_shares'][p]:.0f}%)" for p in (*PHASE_ORDER, "other"))
        )
    console.print(phases)
    console.print(
        f"{OURS} − {PYG}, seed-averaged per user: NDCG@20 {paired['mean_diff']:+.4f} "
        f"(95% bootstrap [{paired['low']:+.4f}, {paired['high']:+.4f}])",
        highlight=False,
    )

    report = {
        "dataset": dataset,
        "snapshot_id": snapshot.snapshot_id,
        "split": split.describe(),
        "seeds": seeds,
        "torch_threads": TORCH_THREADS,
        "profile_epochs": args.profile_epochs,
        "models": models,
        "paired_ndcg20_ours_minus_pyg": paired,
        "loadavg_end": list(os.getloadavg()),
    }
    json_path, png_path = OUT / f"lightgcn-{dataset}.json", OUT / f"lightgcn-{dataset}.png"
    json_path.write_text(json.dumps(report, indent=2))
    write_chart(png_path, dataset, report)
    console.print(f"written: {json_path}, {png_path}")


if __name__ == "__main__":
    main()
