"""``kgrec train``, ``kgrec evaluate``, ``kgrec retrain`` and ``kgrec models``: the learning jobs from the shell.

Each command resolves the Neo4j and job settings from the environment (``NEO4J_*``, ``KGREC_*``) and the
model's typed config once (:func:`gnn.config.resolve_config`), runs the job in :mod:`gnn.jobs` and prints what
it did: figures of the evaluation protocol, where the artifact went, and whether it was promoted. Meant for
people and for cron (exit code 1 on a clear error; off a terminal, one plain line per phase and no bars).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kgrec.cli_common import OptionTable, console, fail, run_job, with_options
from kgrec.progress import bars_enabled
from schema.errors import KgrecError

MODEL_HELP = (
    "blend (the two-stage ranker the API serves: EASE^R, LightGCN, time-local popularity and knowledge similarity, "
    "weighted on validation), lightgcn (collaborative) or graphsage (inductive: genres, people, tags, follows)."
)

#: What a ``--config`` YAML may hold, per model (``kgrec train --help``, ``kgrec retrain --help``); the unit tests
#: check that it names every field of both schemas.
CONFIG_HELP = (
    "[bold]--config[/]: a YAML mapping of the chosen model's config fields (default file: KGREC_TRAIN_CONFIG).\n\n"
    "[bold]lightgcn, graphsage[/] (gnn.config.TrainConfig): model, embedding_dim, num_layers, init_std, lr, lr_decay, "
    "reg, batch_size, negatives, epoch_edge_budget, max_step_pairs, max_epochs, patience, min_epochs, eval_every, val_window, supervision_ratio, "
    "id_dropout, user_ids, retrain, final_fit, seed, device, num_threads, progress. "
    "Defaults < the model's defaults (gnn.config.MODEL_DEFAULTS) < the file < KGREC_TRAIN_<FIELD> < flags; "
    "retrain always fits its final version on every positive (final_fit all).\n\n"
    "[bold]blend[/] (gnn.blend.config.RankerConfig): ease_lambda, ease_top_n, ease_max_items, ease_max_solve, "
    "ease_half_life, "
    "knowledge_half_life, sequence_window, sequence_half_life, sequence_top_n, genre_weight, person_weight, "
    "tag_weight, pop_window_days, fresh_years, peer_prior, ranker_features, als_factors, als_regularization, "
    "als_alpha, als_iterations, als_half_life, als_cg_steps, als_large_positives, als_warm_iterations, component_search, component_search_reuse, "
    "component_search_exhaustive, component_search_extra_fits, als_factors_max, als_factors_min_gain, "
    "component_search_large_positives, component_search_max_positives, ease_lambda_grid, als_factors_grid, "
    "als_regularization_grid, als_alpha_grid, als_scale_grid, als_reg_exponent, als_reg_exponent_grid, "
    "drop_orderless_features, "
    "use_lightgcn, cold_embeddings, cold_map_lambda, cold_year_weight, lightgcn, ranker, ranker_l2, "
    "ranker_l2_grid, ranker_user_groups, ranker_group_l2_grid, ranker_folds, ranker_iterations, ranker_max_items, "
    "ranker_candidates, ranker_fit_candidates, ranker_fit_min_items, lightgcn_max_val_users, "
    "lightgcn_large_positives, lightgcn_large_budget, lightgcn_large_step_pairs, lightgcn_large_patience, "
    "ranker_max_users, cold_slots, cold_slot_every, "
    "cold_slot_margin, serve_candidates, seed, device, num_threads, progress. "
    "lightgcn is a mapping of TrainConfig fields for its LightGCN component that replaces the component's "
    "defaults as a whole (keep its epoch_edge_budget in it, or an epoch costs the square of the positives). Defaults < the file < flags: --max-epochs (train: also --embedding-dim, "
    "--lr) sets the LightGCN component's; --seed, --device, --progress, --cold-slots the blend's."
)


def _settings(artifacts: Path | None):  # noqa: ANN202 - (Neo4jSettings, GnnSettings)
    from gnn.config import GnnSettings
    from graph.settings import get_neo4j_settings

    base = GnnSettings()
    return get_neo4j_settings(), base if artifacts is None else base.model_copy(update={"artifacts_dir": artifacts})


def _resolve(options: dict[str, Any]):  # noqa: ANN202 - (Neo4jSettings, GnnSettings, the model's config)
    """The settings and the model's typed config of a learning command's options: ``--config`` (else
    KGREC_TRAIN_CONFIG) and the flags resolved once; progress bars default to on when stderr is a terminal."""
    from gnn.config import resolve_config

    model = options["model"]
    _check_model(model, options.get("cold_slots"))
    neo4j, settings = _settings(options["artifacts"])
    flags = {k: options[k] for k in FLAGS if k in options}
    try:
        typed = resolve_config(
            model, options["config"] or settings.train_config, {**flags, "progress": bars_enabled(options["progress"])}
        )
    except KgrecError as exc:
        raise fail(exc) from exc
    return neo4j, settings, typed


def metrics_table(title: str, rows: dict[str, dict[str, Any] | None]) -> Table:
    """One row per fold (validation, test), the protocol's main figures as columns."""
    columns = {
        "ndcg@10": "NDCG@10",
        "ndcg@20": "NDCG@20",
        "recall@10": "R@10",
        "recall@20": "R@20",
        "map@20": "MAP@20",
        "hit_rate@20": "HR@20",
        "coverage@20": "cov@20",
    }
    table = Table(title=title)
    table.add_column("fold")
    for header in columns.values():
        table.add_column(header, justify="right")
    for name, metrics in rows.items():
        if metrics is None:
            table.add_row(name, *["[dim]-[/]"] * len(columns))
            continue
        table.add_row(name, *[f"{metrics[c]:.4f}" if isinstance(metrics.get(c), float) else "-" for c in columns])
    return table


Model = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)]
Device = Annotated[str | None, typer.Option(help="auto (CUDA when available), cpu or cuda (default: auto).")]
Epochs = Annotated[int | None, typer.Option(min=1, help="Upper bound on epochs (early stopping decides).")]
Dim = Annotated[int | None, typer.Option(min=1, help="Embedding size (default: 64).")]
Lr = Annotated[
    float | None,
    typer.Option(
        help="Learning rate (default: lightgcn 0.02, graphsage 0.01 as gnn.config.MODEL_DEFAULTS, the blend's LightGCN 0.04)."
    ),
]
Seed = Annotated[int | None, typer.Option(help="Seed of the run (default: 42).")]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        exists=True,
        dir_okay=False,
        help=(
            "YAML of hyper-parameters: gnn.config.TrainConfig fields for lightgcn and graphsage, "
            "gnn.blend.config.RankerConfig fields for the blend (e.g. component_search: false, als_factors_grid: [64, 128])."
        ),
    ),
]
Artifacts = Annotated[
    Path | None, typer.Option(help="Artifacts root (default: KGREC_ARTIFACTS_DIR or .kgrec/artifacts).")
]
Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress", help="Show progress bars (default: on in a terminal; off it, one line per phase)."
    ),
]
ColdSlots = Annotated[
    int | None,
    typer.Option(
        min=0,
        help="Blend: new-arrival positions per list, filled with items nobody has liked yet (default: 1, at "
        "position 20; 0 = off).",
    ),
]
Keep = Annotated[int, typer.Option(min=1, help="Versions kept per model (the current one is never deleted).")]
Publish = Annotated[
    bool, typer.Option("--publish/--no-publish", help="Write the promoted embeddings to Neo4j (vector index).")
]

#: The options of ``kgrec train`` and ``kgrec retrain`` (:func:`kgrec.cli_common.with_options`).
OPTIONS: OptionTable = {
    "model": (Model, "blend"),
    "keep": (Keep, 5),
    "publish": (Publish, True),
    "device": (Device, None),
    "max_epochs": (Epochs, None),
    "embedding_dim": (Dim, None),
    "lr": (Lr, None),
    "seed": (Seed, None),
    "config": (ConfigFile, None),
    "artifacts": (Artifacts, None),
    "progress": (Progress, None),
    "cold_slots": (ColdSlots, None),
}
#: The options that are config fields (:func:`gnn.config.resolve_config`'s flags, besides progress).
FLAGS = ("device", "max_epochs", "embedding_dim", "lr", "seed", "cold_slots")


def print_component_search(metrics: dict[str, Any]) -> None:
    """One line on the blend's component settings: searched on this data, or kept from the promoted model."""
    search = metrics.get("component_search")
    if not search:
        return
    how = (
        "kept from the promoted blend (data within component_search_reuse of its search)"
        if search["reused"]
        else f"searched on validation in {search['seconds']:.0f} s"
        + (f", {search['extra_fits']} fits past the grids' edges" if search.get("extra_fits") else "")
    )
    if search.get("grid_edges"):
        how += f"; still at the edge of what it tried: {', '.join(search['grid_edges'])}"
    console.print(
        f"components: EASE^R λ {search['ease_lambda']:g}; ALS {search['als_factors']} factors, "
        f"regularisation {search['als_regularization']:g}, alpha {search['als_alpha']:g} — {how}"
    )


def _check_model(model: str, cold_slots: int | None = None) -> None:
    if model not in ("blend", "lightgcn", "graphsage"):  # gnn.config.MODELS (not imported: it loads torch)
        raise typer.BadParameter(f"unknown model {model!r}: use blend, lightgcn or graphsage", param_hint="--model")
    if cold_slots is not None and model != "blend":
        raise typer.BadParameter(f"only the blend has new-arrival positions, not {model}", param_hint="--cold-slots")


@with_options(
    OPTIONS,
    "model",
    "device",
    "max_epochs",
    "embedding_dim",
    "lr",
    "seed",
    "config",
    "artifacts",
    "progress",
    "cold_slots",
)
def train(**options: Any) -> None:  # noqa: ANN401 - OPTIONS
    """Export the graph, train a model on the protocol's train split, measure it on test, save a new version.

    The version is not promoted (the API keeps serving the current one): see `kgrec retrain`.
    """
    from gnn.jobs import train_job

    neo4j, settings, typed = _resolve(options)
    artifact = run_job("train", lambda: train_job(neo4j, settings, typed))
    metrics = artifact.metrics
    console.print(
        metrics_table(
            f"{artifact.model} {artifact.version}: best epoch {metrics['best_epoch']}, snapshot {artifact.snapshot_id}",
            {"validation": metrics["validation"], "test": metrics["test"]},
        )
    )
    print_component_search(metrics)
    console.print(f"timings (s): {json.dumps({k: round(v, 1) for k, v in artifact.timings.items()})}")
    console.print(
        f"artifact: {artifact.path}  (training curves: {artifact.path / 'curves.png' if artifact.path else '-'})"
    )


def evaluate(
    artifact: Annotated[
        Path | None, typer.Argument(help="Artifact directory (default: the current version of --model).")
    ] = None,
    model: Model = "blend",
    artifacts: Artifacts = None,
) -> None:
    """Measure an artifact on the test split of a fresh export (the protocol of docs/evaluation.md)."""
    from gnn.jobs import evaluate_job

    _check_model(model)
    neo4j, settings = _settings(artifacts)
    report = run_job("evaluate", lambda: evaluate_job(neo4j, settings, artifact, model=model))
    console.print(metrics_table(f"{report['artifact']} on snapshot {report['snapshot_id']}", {"test": report["test"]}))
    if report["artifact_snapshot_id"] != report["snapshot_id"]:
        console.print(
            f"[yellow]note:[/] the artifact was trained on snapshot {report['artifact_snapshot_id']}; if the graph "
            "changed since, it may have seen some of today's test interactions."
        )
    console.print(f"scoring all test users took {report['scoring_seconds']:.2f} s")


@with_options(
    OPTIONS, "model", "keep", "publish", "device", "max_epochs", "seed", "config", "artifacts", "progress", "cold_slots"
)
def retrain(**options: Any) -> None:  # noqa: ANN401 - OPTIONS
    """Export → train (epochs chosen on validation, final fit on every positive) → promote if not worse.

    Promotion compares validation NDCG@20 with the current version's and switches atomically; a current version
    whose items are mostly gone from the graph (other data loaded with --replace) is replaced whatever its figure.
    A running API picks the new version up within KGREC_MODEL_WATCH_SECONDS, or at once on `POST /admin/reload`.
    Run it from cron, e.g. nightly:
    `0 3 * * * cd /srv/kgrec && .venv/bin/kgrec retrain >> .kgrec/retrain.log 2>&1`
    """
    from gnn.jobs import MIN_ITEMS_KEPT, retrain_job

    neo4j, settings, typed = _resolve(options)
    keep, publish = options["keep"], options["publish"]
    report = run_job("retrain", lambda: retrain_job(neo4j, settings, typed, keep=keep, publish=publish))
    artifact = report.artifact
    console.print(metrics_table(f"{artifact.model} {artifact.version}", {"validation": artifact.metrics["validation"]}))
    print_component_search(artifact.metrics)
    previous = "none" if report.current_val is None else f"{report.current_val:.4f}"
    if report.current_val is None:
        data = "first version"
    elif report.items_kept is not None and report.items_kept < MIN_ITEMS_KEPT:
        data = f"on another catalogue: {report.items_kept:.0%} of its items are in the graph"
    else:
        data = "same data" if report.same_data else "the graph changed since"
    if report.promoted:
        console.print(
            f"[green]promoted[/] {artifact.version}: validation NDCG@20 {report.new_val:.4f} "
            f"(current was {previous}, {data})"
        )
    else:
        console.print(f"[yellow]not promoted[/]: validation NDCG@20 {report.new_val:.4f} < current {previous} ({data})")
    if report.embeddings:
        console.print(
            f"embeddings in Neo4j: {report.embeddings['users']} users, {report.embeddings['items']} items "
            f"(vector index item_embedding; {report.embeddings['cleared']} stale vectors removed)"
        )
    if report.pruned:
        console.print(f"removed old versions: {', '.join(p.name for p in report.pruned)}")
    console.print(f"done in {report.seconds:.1f} s; artifact {artifact.path}")


def models(
    artifacts: Artifacts = None,
) -> None:
    """List the saved model versions, their validation figures, and which one is current."""
    from gnn.artifacts import list_versions
    from gnn.serving import current_version

    _, settings = _settings(artifacts)
    root = settings.artifacts_dir
    names = (
        sorted(p.name for p in root.iterdir() if p.is_dir() and list_versions(root, p.name)) if root.is_dir() else []
    )
    if not names:
        console.print(
            f"no saved model under {root}: `kgrec retrain` trains the blend and promotes it (`kgrec train` saves a "
            "version without promoting it); KGREC_ARTIFACTS_DIR or --artifacts chooses another folder",
            highlight=False,
        )
        return
    table = Table(title=f"models under {root}")
    # the version is what `kgrec evaluate DIR` and KGREC_VARIANTS name: shown whole (folded in a narrow terminal, not
    # cut to "20261206…"); it ends with the first 12 characters of its snapshot's id
    for column in ("model", "version", "current", "val NDCG@20", "test NDCG@20", "final fit"):
        table.add_column(column, overflow="fold" if column == "version" else "ellipsis")
    for name in names:
        current = current_version(root, name)
        for path in reversed(list_versions(root, name)):
            meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
            metrics = meta.get("metrics", {})
            val = (metrics.get("validation") or {}).get("ndcg@20")
            test = (metrics.get("test") or {}).get("ndcg@20")
            table.add_row(
                name,
                path.name,
                "*" if path == current else "",
                f"{val:.4f}" if val is not None else "-",
                f"{test:.4f}" if test is not None else "-",
                str(meta.get("config", {}).get("final_fit", "train")),
            )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the learning commands to the ``kgrec`` app."""
    app.command("train", epilog=CONFIG_HELP)(train)
    app.command("evaluate")(evaluate)
    app.command("retrain", epilog=CONFIG_HELP)(retrain)
    app.command("models")(models)
