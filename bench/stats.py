"""Statistics of the quality table: paired per-user comparisons of two models' test NDCG@20.

Every model is measured on the same test users, so two models are compared by the mean of their per-user
differences with a seeded percentile bootstrap over users (:func:`paired_bootstrap`).
"""

from __future__ import annotations

import numpy as np

from bench.baselines import SEED
from bench.report import ModelResult


def paired_comparison(results: list[ModelResult], ours: str) -> dict[str, dict[str, float]]:
    """Per-user paired bootstrap of NDCG@20: ours minus each other model (mean, 95% interval)."""
    base = next((r for r in results if r.name == ours), None)
    if base is None:
        return {}
    mine = np.array(base.test["per_user"]["ndcg@20"])
    return {r.name: paired_bootstrap(mine - np.array(r.test["per_user"]["ndcg@20"])) for r in results if r.name != ours}


def paired_bootstrap(diff: np.ndarray, draws: int = 2000) -> dict[str, float]:
    """Mean of per-user differences with a 95% percentile bootstrap over users (seeded)."""
    rows = np.random.default_rng(SEED).integers(0, len(diff), size=(draws, len(diff)))
    boot = diff[rows].mean(axis=1)
    return {
        "mean_diff": float(diff.mean()),
        "low": float(np.quantile(boot, 0.025)),
        "high": float(np.quantile(boot, 0.975)),
    }
