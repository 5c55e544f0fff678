"""MMR re-ranking of the blend's lists: accuracy against diversity for a grid of λ, on the validation split.

The API (``api.service``) re-ranks the blend's top pool with maximal marginal relevance — greedy picks by
``λ·relevance − (1−λ)·max cosine to the items already picked``, cosines of the blend's item vectors
(``gnn.serving.BlendModel.item_vectors``: its LightGCN component's item embeddings, unit-normalised), relevance
scaled between the pool's best score and its ``2k``-th best (``api.ranking.MMR_CHOICE``; a deeper pool does not
change the scale). This measures that re-ranking as the API does it — the same ``mmr()``, a pool
of the blend's best ``--pool`` unseen items (the API asks for ``response_cache_pool`` = 50 items and explains
``50 + 50 // 2`` = 75 candidates), the first 20 picks — on the validation split, so λ is chosen without
seeing test: components fitted on ``split.fit``, ranker weights fitted on ``split.val`` (as
:func:`gnn.blend.fit.fit_ranker` does before its refit), the lists measured against ``split.val``.

Per λ: NDCG@20, Recall@20, intra-list diversity (genre Jaccard, docs/evaluation.md, and embedding cosine:
``1 − mean pairwise cosine`` of the item vectors), coverage and novelty. The recommended λ is the smallest
of the grid whose NDCG@20 stays within ``--tolerance`` (1%) of λ = 1 (no re-ranking). ``--test`` also
refits on train and reports test once at λ = 1 and at the recommended λ.

    .venv/bin/python -m bench.mmr --snapshot bench/out/snapshot-ml-latest-small [--pool 75] [--test [--final DIR]]
                                  [--save-probe DIR | --probe DIR]

Writes bench/out/mmr-<snapshot>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from api.ranking import mmr
from bench.common import OUT
from gnn.blend.config import RankerConfig
from gnn.blend.fit import fit_components, fit_ranker
from gnn.blend.model import RankerModel
from gnn.blend.weights import fit_weights, validation_data
from gnn.data import GraphSnapshot
from gnn.evaluation import Fold, evaluate, split_interactions

console = Console(width=200)
SEED = 42
GRID = (1.0, 0.98, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5, 0.3)


def unit_vectors(model: RankerModel) -> np.ndarray:
    """The item vectors the API diversifies with (BlendModel.item_vectors): unit LightGCN item embeddings."""
    items = np.asarray(model.components.item_emb, dtype=np.float32)
    return items / np.linalg.norm(items, axis=1, keepdims=True).clip(min=1e-12)


def mmr_lists(model: RankerModel, fold: Fold, lams: list[float], pool: int, k: int = 20) -> dict[float, torch.Tensor]:
    """Top-k lists of the fold's users for each λ: MMR over the model's best ``pool`` unseen items."""
    vectors = unit_vectors(model)
    users = fold.eval_users.tolist()
    out = {lam: torch.full((len(users), k), -1, dtype=torch.long) for lam in lams}
    for row, user in enumerate(users):
        items, times = model.history(user)
        plays = model.history_weights(user)
        scores = model.score(items, times, user, weights=plays).astype(np.float64)  # history items are -inf
        n = min(pool, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.lexsort((top, -scores[top]))]
        for lam in lams:
            picks = mmr(scores[top], vectors[top], k, lam)
            out[lam][row, : len(picks)] = torch.from_numpy(top[picks])
    return out


def embedding_diversity(lists: torch.Tensor, vectors: np.ndarray) -> float:
    """Mean over lists of ``1 − mean pairwise cosine`` of the items' unit vectors."""
    values = []
    for row in lists.numpy():
        row = row[row >= 0]
        if len(row) < 2:
            continue
        v = vectors[row]
        sim = v @ v.T
        n = len(row)
        values.append(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))
    return float(np.mean(values))


def sweep(model: RankerModel, fold: Fold, genres: torch.Tensor, lams: list[float], pool: int) -> list[dict[str, float]]:
    vectors = unit_vectors(model)
    rows = []
    for lam, lists in mmr_lists(model, fold, lams, pool).items():
        m = evaluate(lists, fold, ks=(10, 20), item_features=genres)
        rows.append(
            {
                "lambda": lam,
                "ndcg@20": m["ndcg@20"],
                "recall@20": m["recall@20"],
                "ndcg@10": m["ndcg@10"],
                "diversity_genre@20": m["diversity@20"],
                "diversity_embedding@20": embedding_diversity(lists, vectors),
                "coverage@20": m["coverage@20"],
                "novelty@20": m["novelty@20"],
            }
        )
    return rows


def recommend(rows: list[dict[str, float]], tolerance: float) -> float:
    """The smallest λ whose NDCG@20 is within ``tolerance`` (relative) of λ = 1."""
    base = next(r["ndcg@20"] for r in rows if r["lambda"] == 1.0)
    ok = [r["lambda"] for r in rows if r["ndcg@20"] >= (1.0 - tolerance) * base]
    return min(ok)


def print_table(title: str, rows: list[dict[str, float]], chosen: float | None = None) -> None:
    table = Table(title=title, show_edge=False)
    for col in ("λ", "NDCG@20", "Recall@20", "NDCG@10", "ILD genre", "ILD emb", "Cov@20", "Nov@20", "ΔNDCG@20"):
        table.add_column(col, justify="right")
    base = next(r["ndcg@20"] for r in rows if r["lambda"] == 1.0)
    for r in rows:
        mark = " ←" if chosen is not None and r["lambda"] == chosen else ""
        table.add_row(
            f"{r['lambda']:g}{mark}",
            f"{r['ndcg@20']:.4f}",
            f"{r['recall@20']:.4f}",
            f"{r['ndcg@10']:.4f}",
            f"{r['diversity_genre@20']:.4f}",
            f"{r['diversity_embedding@20']:.4f}",
            f"{r['coverage@20']:.4f}",
            f"{r['novelty@20']:.2f}",
            f"{100 * (r['ndcg@20'] / base - 1):+.1f}%",
        )
    console.print(table)


def write_chart(path: Path, rows: list[dict[str, float]], chosen: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for ax, key, label in (
        (axes[0], "diversity_genre@20", "intra-list diversity (genre Jaccard)"),
        (axes[1], "diversity_embedding@20", "intra-list diversity (embedding cosine)"),
    ):
        x = [r[key] for r in rows]
        y = [r["ndcg@20"] for r in rows]
        ax.plot(x, y, marker="o")
        for r in rows:
            ax.annotate(
                f"λ={r['lambda']:g}",
                (r[key], r["ndcg@20"]),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
                color="red" if r["lambda"] == chosen else "black",
            )
        ax.set_xlabel(label)
        ax.set_ylabel("validation NDCG@20")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", type=Path, required=True, help="saved snapshot directory (GraphSnapshot.save)")
    parser.add_argument("--pool", type=int, default=75, help="candidates MMR picks from (the API: 75)")
    parser.add_argument("--lambdas", type=float, nargs="*", default=list(GRID))
    parser.add_argument("--tolerance", type=float, default=0.01, help="relative NDCG@20 loss allowed for the default")
    parser.add_argument(
        "--test", action="store_true", help="also refit on train and report test at λ=1 and the chosen λ"
    )
    parser.add_argument(
        "--final",
        type=Path,
        help="with --test: a saved blend fitted on this split's train part (e.g. bench.quality's "
        "bench/out/blend-<dataset>) instead of a refit",
    )
    parser.add_argument("--probe", type=Path, help="reuse a validation model saved by --save-probe (same snapshot)")
    parser.add_argument("--save-probe", type=Path, help="save the validation model (fit components, val weights)")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    lams = sorted({1.0, *args.lambdas}, reverse=True)
    snapshot = GraphSnapshot.load(args.snapshot)
    split = split_interactions(snapshot, seed=SEED)
    genres = snapshot.item_genre_matrix()
    config = RankerConfig(seed=SEED, device="cpu", num_threads=1, progress=False)
    report: dict[str, object] = {
        "snapshot_id": snapshot.snapshot_id,
        "split": split.describe(),
        "pool": args.pool,
        "config": config.model_dump(mode="json"),
    }
    validation = split.validation()
    with threadpool_limits(limits=1, user_api="blas"):
        started = time.perf_counter()
        if args.probe is not None:
            probe = RankerModel.load(args.probe)
            if probe.meta.get("snapshot_id") != snapshot.snapshot_id or probe.weights is None:
                raise SystemExit(f"{args.probe} is not a validation model of snapshot {snapshot.snapshot_id}")
            fit_report = probe.meta["validation"]
        else:
            components = fit_components(snapshot, split.fit, config, val_fold=validation)
            probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, components)
            weights, fit_report = fit_weights(validation_data(probe, validation), config)
            probe.weights = weights
            probe.meta = {"snapshot_id": snapshot.snapshot_id, "final": "fit", "validation": fit_report}
            if args.save_probe is not None:
                probe.save(args.save_probe)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rows = sweep(probe, validation, genres, lams, args.pool)
        sweep_seconds = time.perf_counter() - started
    chosen = recommend(rows, args.tolerance)
    title = (
        f"blend + MMR over its top {args.pool}, validation split ({split.describe()['val_users']} users), "
        f"snapshot {snapshot.snapshot_id}"
    )
    print_table(title, rows, chosen)
    console.print(
        f"recommended KGREC_MMR_LAMBDA = {chosen:g} (smallest λ within {100 * args.tolerance:g}% of λ=1 on "
        f"validation NDCG@20); fit {fit_seconds:.0f}s, sweep {sweep_seconds:.0f}s",
        highlight=False,
    )
    report.update(
        {
            "validation": rows,
            "recommended_lambda": chosen,
            "tolerance": args.tolerance,
            "ranker": fit_report["chosen"],
            "val_ndcg20_no_mmr": fit_report["val_ndcg20"],
            "seconds": {"fit": fit_seconds, "sweep": sweep_seconds},
        }
    )
    if args.test:
        with threadpool_limits(limits=1, user_api="blas"):
            if args.final is not None:
                final = RankerModel.load(args.final)
                if final.meta.get("snapshot_id") != snapshot.snapshot_id or final.meta.get("final") != "train":
                    raise SystemExit(f"{args.final} is not a blend fitted on the train part of {snapshot.snapshot_id}")
            else:
                final = fit_ranker(snapshot, split, config, final="train")
            test_rows = sweep(final, split.testing(), genres, sorted({1.0, chosen}, reverse=True), args.pool)
        print_table(f"test (refit on train), λ = 1 and the recommended {chosen:g}", test_rows)
        report["test"] = test_rows
    OUT.mkdir(parents=True, exist_ok=True)
    stem = f"mmr-{args.snapshot.name.removeprefix('snapshot-')}"
    (OUT / f"{stem}.json").write_text(json.dumps(report, indent=2))
    write_chart(OUT / f"{stem}.png", rows, chosen, title)
    console.print(f"written: {OUT / (stem + '.json')}, {OUT / (stem + '.png')}")


if __name__ == "__main__":
    main()
