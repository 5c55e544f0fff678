"""bench.stats' paired comparison of the table's rows and bench.report's JSON rows."""

from __future__ import annotations

import math

import numpy as np

from bench.report import ModelResult, model_rows
from bench.stats import paired_bootstrap, paired_comparison


def _row(name: str, ndcg: list[float]) -> ModelResult:
    test = {"ndcg@20": float(np.mean(ndcg)), "per_user": {"ndcg@20": ndcg}}
    return ModelResult(
        name=name,
        params={"K": 50},
        at_edge=[],
        val=math.nan,
        test=test,
        train_seconds=0.1,
        score_seconds=0.01,
        tuning_seconds=0.0,
        trials=1,
        info={},
        ranks="items seen in train",
    )


def test_ours_is_compared_with_every_other_row_paired_per_user() -> None:
    rows = [_row("a", [0.1, 0.2, 0.3]), _row("ours", [0.2, 0.2, 0.5]), _row("b", [0.0, 0.1, 0.1])]
    comparison = paired_comparison(rows, "ours")
    assert list(comparison) == ["a", "b"]
    assert comparison["a"] == paired_bootstrap(np.array([0.2, 0.2, 0.5]) - np.array([0.1, 0.2, 0.3]))
    assert math.isclose(comparison["b"]["mean_diff"], 0.7 / 3)
    assert paired_comparison(rows, "absent") == {}


def test_the_json_rows_leave_out_the_per_user_lists() -> None:
    [row] = model_rows([_row("a", [0.1, 0.3])])
    assert row["name"] == "a" and row["params"] == {"K": 50}
    assert row["test"] == {"ndcg@20": 0.2}
