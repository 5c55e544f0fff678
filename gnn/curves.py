"""Training curves as a picture: loss and validation NDCG@20 per epoch, saved beside every artifact."""

from __future__ import annotations

import io
from typing import Any


def plot_curves(
    history: list[dict[str, Any]], title: str = "training", best_epoch: int | None = None, window: int = 1
) -> bytes:
    """PNG of the loss and validation NDCG@20 per epoch (matplotlib's Agg canvas; no pyplot, no global state):
    with ``window`` > 1 also the mean of each ``window`` rounds at their middle round (what early stopping
    compared), and a dashed line at ``best_epoch`` (default: the best single round)."""
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(7, 4), dpi=110)
    ax_loss = fig.subplots()
    ax_loss.plot(epochs, [h["loss"] for h in history], color="tab:blue", label="BPR loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("train loss", color="tab:blue")
    ax_val = ax_loss.twinx()
    measured = [(h["epoch"], h["val_ndcg"]) for h in history if h.get("val_ndcg") is not None]
    if measured:
        ax_val.plot(
            *zip(*measured, strict=True),
            color="tab:orange",
            label="validation NDCG@20",
            alpha=0.5 if window > 1 else 1.0,
        )
        if 1 < window <= len(measured):
            means = [sum(v for _, v in measured[i : i + window]) / window for i in range(len(measured) - window + 1)]
            ax_val.plot(
                [e for e, _ in measured[window // 2 : window // 2 + len(means)]],
                means,
                color="tab:red",
                label=f"mean of {window} rounds",
            )
        chosen = best_epoch if best_epoch else max(measured, key=lambda p: p[1])[0]
        ax_val.axvline(chosen, color="tab:gray", linestyle="--", linewidth=0.8)
        ax_val.legend(loc="lower right", fontsize=8)
    ax_val.set_ylabel("validation NDCG@20", color="tab:orange")
    ax_loss.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
