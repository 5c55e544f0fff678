"""The models of the quality table as the search sees them: each fit function with its grids and start.

:func:`model_specs` lists them in the table's order (GraphSAGE on request); ``--quick`` uses the smaller grids
and ``--lean`` holds the axes of :data:`LEAN_FIXED` instead of tuning them.
"""

from __future__ import annotations

from typing import Any

from bench.baselines import (
    fit_als,
    fit_bpr,
    fit_ease,
    fit_item_knn,
    fit_most_popular,
    fit_ours,
    fit_pyg_lightgcn,
    sage_fitter,
)
from bench.search import Axis, ModelSpec
from gnn.config import MODEL_DEFAULTS, TrainConfig
from gnn.data import GraphSnapshot

SAGE_DEFAULTS = MODEL_DEFAULTS["graphsage"]


#: ``--lean``: axes held at a value instead of tuned (model → axis → value), to fit a large catalogue's run in time.
LEAN_FIXED: dict[str, dict[str, Any]] = {
    "PyG LightGCN": {"num_layers": 2},  # the value of PyG's example
    "kgrec LightGCN": {k: TrainConfig.model_fields[k].default for k in ("lr_decay", "num_layers")},  # gnn.config's
    "kgrec GraphSAGE": {"id_dropout": 0.1},
}


def model_specs(
    quick: bool, snapshot: GraphSnapshot, with_graphsage: bool = False, lean: bool = False
) -> list[ModelSpec]:
    """The table's models, in its order.

    Args:
        quick: The smaller grids (``--quick``).
        snapshot: The graph GraphSAGE is fitted over.
        with_graphsage: Include gnn's GraphSAGE (``--with-graphsage``).
        lean: Hold the axes of :data:`LEAN_FIXED` at their values (``--lean``).
    """
    specs = _model_specs(quick, snapshot, with_graphsage)
    if lean:
        for spec in specs:
            for name, value in LEAN_FIXED.get(spec.name, {}).items():
                del spec.axes[name]
                spec.start.pop(name, None)
                spec.fixed[name] = value
    return specs


def _model_specs(quick: bool, snapshot: GraphSnapshot, with_graphsage: bool = False) -> list[ModelSpec]:
    def grid(full: list[Any], small: list[Any]) -> list[Any]:
        return list(small if quick else full)

    return [
        ModelSpec("most-popular", fit_most_popular, {}, {}),
        ModelSpec(
            "item-kNN (cosine)",
            fit_item_knn,
            {"K": Axis(grid([20, 50, 100, 200, 400], [50, 200, 400]), integer=True, low=1)},
            {"K": 100},
        ),
        ModelSpec(
            "implicit ALS",
            fit_als,
            {
                "factors": Axis(grid([32, 64, 128], [32, 64, 128]), integer=True, low=2, high=512),
                "regularization": Axis(grid([1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0], [1.0, 10.0, 50.0])),
                "alpha": Axis(grid([0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0], [0.5, 1.0, 2.0])),
            },
            {"factors": 64, "regularization": 10.0, "alpha": 1.0},
            fixed={"iterations": 15},
            # regularisation and alpha interact (both scale the weight of the observed entries against the
            # unobserved ones): one axis at a time from the light start stops at 512 / 10 / 2 on Last.fm, below
            # the heavily regularised, high-confidence region (128 / 100 / 40 there) that a second start reaches
            starts=[{"factors": 128, "regularization": 100.0, "alpha": 40.0}],
        ),
        ModelSpec(
            "implicit BPR",
            fit_bpr,
            {
                "factors": Axis(grid([32, 64, 128], [32, 64, 128]), integer=True, low=2, high=2048),
                "learning_rate": Axis(grid([0.005, 0.01, 0.02, 0.05], [0.005, 0.01, 0.05])),
                "regularization": Axis(grid([0.001, 0.01, 0.1], [0.001, 0.01, 0.1])),
                "iterations": Axis(grid([50, 100, 200, 400], [50, 100, 200]), integer=True, low=1, high=3200),
            },
            {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100},
        ),
        ModelSpec(
            "EASE^R",
            fit_ease,
            {"lambda": Axis(grid([50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0], [100.0, 500.0, 2000.0]))},
            {"lambda": 500.0},
        ),
        # The example's lr 0.001 needs ~1,300 epochs here (validation NDCG sits on a plateau for 150-300 of
        # them); Adam's lr is tuned like any other axis instead, everything else as the example trains it.
        ModelSpec(
            "PyG LightGCN",
            fit_pyg_lightgcn,
            {
                "lr": Axis(grid([0.005, 0.01, 0.02], [0.005, 0.01, 0.02]), high=0.5),
                "num_layers": Axis(grid([1, 2, 3], [1, 2, 3]), scale="lin", integer=True, low=1, high=6),
            },
            {"lr": 0.01, "num_layers": 2},
            fixed={
                "embedding_dim": 64,
                "batch_size": 8192,
                "max_epochs": 1500,
                "eval_every": 10,
                "patience": 10,
                "min_epochs": 150,
            },
            early_stopping=True,
        ),
        # Patience 50 epochs (PyG's gets 100 after 150): at the slower learning rates validation NDCG@20 sits on a
        # plateau for 40-50 epochs before it climbs again, and a window of 5 rounds (TrainConfig.val_window) judges
        # each epoch, so a lucky single round does not win.
        ModelSpec(
            "kgrec LightGCN",
            fit_ours,
            {
                "lr": Axis(grid([0.02, 0.04, 0.08], [0.02, 0.04, 0.08]), high=0.5),
                "lr_decay": Axis(grid([0.95, 0.97, 0.99], [0.95, 0.97, 0.99]), scale="lin", low=0.5, high=1.0),
                "reg": Axis(grid([1e-5, 1e-4, 1e-3], [1e-5, 1e-4, 1e-3]), high=1.0),
                "num_layers": Axis(grid([2, 3, 4], [2, 3, 4]), scale="lin", integer=True, low=1, high=6),
            },
            {"lr": 0.04, "lr_decay": 0.97, "reg": 1e-4, "num_layers": 3},
            fixed={"embedding_dim": 64, "batch_size": 4096, "max_epochs": 300, "patience": 50},
            reference=False,
            early_stopping=True,
        ),
    ] + (
        [
            # A full-graph pass per step: 4,096 pairs with 4 negatives each (the extra negatives cost nothing next to
            # the pass) need 9 passes per epoch and converge in ~20-40 epochs, ~1-2 s each on a busy 2-core machine.
            ModelSpec(
                "kgrec GraphSAGE",
                sage_fitter(snapshot),
                {
                    "lr": Axis(grid([0.005, 0.01, 0.02], [0.005, 0.01, 0.02]), high=0.1),
                    "id_dropout": Axis(grid([0.0, 0.1, 0.3], [0.0, 0.1, 0.3]), scale="lin", low=0.0, high=0.9),
                },
                {"lr": SAGE_DEFAULTS["lr"], "id_dropout": 0.1},
                fixed={
                    "embedding_dim": 64,
                    "batch_size": 4096,
                    "reg": 1e-4,
                    **{k: v for k, v in SAGE_DEFAULTS.items() if k != "lr"},
                },  # what kgrec train uses
                reference=False,
                early_stopping=True,
            ),
        ]
        if with_graphsage
        else []
    )
