"""The quality table's rows and how they are shown: the console tables, the bar chart and the JSON rows.

:class:`ModelResult` is one row (a model, a recall strategy or the blend), as :mod:`bench.measure` produces it;
``bench.quality`` prints every row with :func:`print_table` and :func:`print_slices`, draws
:func:`write_chart` and writes :func:`model_rows` to its JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from gnn.evaluation import Split

#: The quality benchmark's console (its search, measurements and tables all print here).
console = Console(width=220)


@dataclass
class ModelResult:
    """One row of the quality table: the chosen parameters, validation and test figures, timings, slices."""

    name: str
    params: dict[str, Any]
    at_edge: list[str]
    val: float
    test: dict[str, Any]
    train_seconds: float
    score_seconds: float
    tuning_seconds: float
    trials: int
    info: dict[str, Any]
    ranks: str
    slices: dict[str, dict[str, float]] = field(default_factory=dict)


def print_table(dataset: str, split: Split, results: list[ModelResult]) -> Table:
    """Print the test figures of every row, with the chosen parameters and any axis left at a grid edge."""
    table = Table(
        title=f"{dataset} — split {split.method} per user (test 20%, val 10% of train, seed {split.seed}, "
        f"positives rating >= {split.min_rating}), snapshot {split.snapshot_id}",
        show_edge=False,
    )
    columns = [
        "model",
        "NDCG@20",
        "Recall@20",
        "NDCG@10",
        "Recall@10",
        "Prec@20",
        "MAP@20",
        "HR@20",
        "Cov@20",
        "Div@20",
        "Nov@20",
        "val NDCG@20",
        "train s",
        "score s",
        "chosen (grid edge!)",
    ]
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "chosen (grid edge!)") else "right")
    for r in results:
        t = r.test
        chosen = ", ".join(f"{k}={v}" for k, v in r.params.items() if k in _tuned_or_epochs(r))
        if r.at_edge:
            chosen += f" (edge: {', '.join(r.at_edge)})"
        table.add_row(
            r.name,
            *(
                f"{t[m]:.4f}"
                for m in (
                    "ndcg@20",
                    "recall@20",
                    "ndcg@10",
                    "recall@10",
                    "precision@20",
                    "map@20",
                    "hit_rate@20",
                    "coverage@20",
                    "diversity@20",
                )
            ),
            f"{t['novelty@20']:.2f}",
            f"{r.val:.4f}",
            f"{r.train_seconds:.1f}",
            f"{r.score_seconds:.2f}",
            chosen,
        )
    console.print(table, soft_wrap=False)
    return table


def print_slices(results: list[ModelResult]) -> Table:
    """Print every row's cold-start slices (``bench.measure.cold_start_slices``)."""
    table = Table(title="cold-start slices of the test fold (NDCG@20 / Recall@20; users in the slice)", show_edge=False)
    names = sorted({name for r in results for name in r.slices})
    table.add_column("model", justify="left")
    for name in names:
        table.add_column(name, justify="right")
    for r in results:
        cells = []
        for name in names:
            c = r.slices.get(name)
            cells.append("—" if c is None else f"{c['ndcg@20']:.4f} / {c['recall@20']:.4f} ({c['users']})")
        table.add_row(r.name, *cells)
    console.print(table, soft_wrap=False)
    return table


def _tuned_or_epochs(r: ModelResult) -> set[str]:  # the parameters the table shows as chosen
    keys = {
        "K",
        "factors",
        "regularization",
        "alpha",
        "learning_rate",
        "iterations",
        "lambda",
        "num_layers",
        "lr",
        "lr_decay",
        "reg",
        "epochs",
        "id_dropout",
    }
    return keys & set(r.params)


def write_chart(path: Path, dataset: str, results: list[ModelResult]) -> None:
    """Write a bar chart of every row's test NDCG@20 and Recall@20 to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in results]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    for offset, metric in ((-0.2, "ndcg@20"), (0.2, "recall@20")):
        values = [r.test[metric] for r in results]
        bars = ax.bar(x + offset, values, width=0.4, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel("test score")
    ax.set_title(f"{dataset}: full ranking, per-user temporal split (docs/evaluation.md)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def model_rows(results: list[ModelResult]) -> list[dict[str, Any]]:
    """The rows as the JSON reports hold them: every field, the test figures without the per-user lists."""
    return [
        {
            **{k: v for k, v in asdict(r).items() if k != "test"},
            "test": {k: v for k, v in r.test.items() if k != "per_user"},
        }
        for r in results
    ]
