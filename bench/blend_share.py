"""What LightGCN adds to the blend at a size, and whether ALS's width is chosen right on a sample of users.

On one saved snapshot (``GraphSnapshot.save``: ``bench.quality``'s ``bench/out/snapshot-<dataset>``, or the one
``bench.scaling`` keeps of an ``--existing`` world), split as ``kgrec retrain`` splits it (``serving_split``):

1. the components are fitted on the fit part exactly as the retrain's first pass fits them (LightGCN early-stopped
   on its validation sample), with the process's CPU seconds of each (``gnn.phases``);
2. the validation features of the ranker's users are computed once (``validation_data``), and the ranker weights
   fitted on them twice: with every feature, and with LightGCN's two features (``lightgcn``, ``lightgcn_cold``)
   left out (``ranker_features``). Printed: LightGCN's weights, the cross-fit and validation NDCG@20 of both, and
   LightGCN's validation NDCG@20 per epoch;
3. ALS alone at each width of ``--als-factors``, fitted on every fit positive and on a seeded sample of whole
   users holding ``--als-sample`` positives (what the component search's candidates are fitted on above
   ``component_search_large_positives``: ``component_search_max_positives``), each ranked on the same users as
   the search ranks them (its feature alone, the users' fit items excluded).

    nice -n 10 .venv/bin/python -m bench.blend_share --snapshot bench/out/snapshot-ml-latest-small \\
        [--set ease_lambda=12800 --set als_factors=8] [--als-factors 8,32,64] [--als-sample 1000000]

Writes bench/out/blend-share-<snapshot directory name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import OUT
from gnn.phases import PhaseEvent, listening

LIGHTGCN_FEATURES = ("lightgcn", "lightgcn_cold")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuPerPhase:
    """A :mod:`gnn.phases` listener: CPU seconds of each phase of the fit (by name; the first call of a name)."""

    def __init__(self) -> None:
        self.started: dict[tuple[tuple[str, ...], str], float] = {}
        self.cpu: dict[str, float] = {}

    def __call__(self, event: PhaseEvent) -> None:
        key = (tuple(event.path), event.name)
        if event.kind == "start":
            self.started[key] = cpu_seconds()
        elif key in self.started:
            self.cpu.setdefault(event.name, cpu_seconds() - self.started.pop(key))


def parse_sets(values: list[str]) -> dict[str, Any]:
    """``key=value`` pairs of ``--set`` (values read as JSON when they parse, else as strings)."""
    out: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {value!r}: expected KEY=VALUE, e.g. ease_lambda=12800")
        try:
            out[key.strip()] = json.loads(raw)
        except ValueError:
            out[key.strip()] = raw
    return out


def find_snapshot(directory: Path) -> Path:
    """``directory`` when it holds a snapshot, else its one snapshot sub-directory (a snapshots folder)."""
    from gnn.data import META_FILE

    if (directory / META_FILE).is_file():
        return directory
    found = sorted(p.parent for p in directory.glob(f"*/{META_FILE}"))
    if len(found) != 1:
        raise SystemExit(f"{directory}: expected a snapshot or a folder with exactly one, found {len(found)}")
    return found[0]


def als_widths(
    probe: Any,  # noqa: ANN401 - RankerModel
    data: Any,  # noqa: ANN401 - ValidationData
    pairs: Any,  # noqa: ANN401 - Tensor
    num_users: int,
    num_items: int,
    factors: list[int],
    sample: int,
) -> dict[str, Any]:
    """Validation NDCG@20 of ALS alone at each width, fitted on ``pairs`` and on a sample of whole users holding at
    most ``sample`` positives (``gnn.blend.path.sample_user_pairs``, the search's own), with CPU seconds."""
    from gnn.blend.linear import fit_als_component
    from gnn.blend.path import sample_user_pairs
    from gnn.blend.scorers import als_vector

    config = probe.config
    histories = [probe.history(int(u)) for u in data.users]
    sampled = sample_user_pairs(pairs, sample, config.seed)
    out: dict[str, Any] = {"fit_positives": int(pairs.size(1)), "sample_positives": int(sampled.size(1))}
    for name, edges in (("all", pairs), ("sample", sampled)):
        for k in factors:
            trial = config.model_copy(update={"als_factors": k})
            started = cpu_seconds()
            items_f, gram = fit_als_component(edges, num_users, num_items, trial)
            rows = np.zeros((len(histories), num_items), dtype=np.float32)
            for r, (items, times) in enumerate(histories):
                if len(items):
                    rows[r] = items_f @ als_vector(items_f, gram, items, times, config.als_half_life, config.als_alpha)
            ndcg = data.ndcg_of(data.columns(rows).copy())
            out[f"{name} {k}"] = {"ndcg20": ndcg, "cpu_seconds": cpu_seconds() - started}
            print(f"  ALS {k:>3} factors on {name} ({int(edges.size(1)):,} positives): NDCG@20 {ndcg:.4f}", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", type=Path, required=True, help="a saved snapshot (or a folder holding one)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a RankerConfig field for the fit (e.g. what a retrain's component search chose); repeatable",
    )
    parser.add_argument(
        "--als-factors", default="8,32,64", help="ALS widths compared (default %(default)s; empty: none)"
    )
    parser.add_argument(
        "--als-sample",
        type=int,
        default=None,
        help="positives of the user sample the ALS widths are also fitted on (default: component_search_max_positives)",
    )
    args = parser.parse_args(argv)

    from gnn.blend.config import FEATURES, RankerConfig
    from gnn.blend.fit import fit_components
    from gnn.blend.model import RankerModel
    from gnn.blend.weights import fit_weights, sample_fold_users, validation_data
    from gnn.data import GraphSnapshot
    from gnn.jobs import serving_split

    folder = find_snapshot(args.snapshot)
    snapshot = GraphSnapshot.load(folder)
    config = RankerConfig(**{"progress": False, "device": "cpu", "component_search": False, **parse_sets(args.set)})
    split = serving_split(snapshot)
    validation = split.validation()
    print(
        f"{folder}: {snapshot.num_users:,} users, {snapshot.num_items:,} items, {int(split.fit.size(1)):,} fit "
        f"positives",
        flush=True,
    )
    phases = CpuPerPhase()
    started = time.perf_counter()
    lightgcn_val = sample_fold_users(validation, config.lightgcn_max_val_users, config.seed)

    with listening(phases):
        components = fit_components(snapshot, split.fit, config, val_fold=lightgcn_val, desc="fit components")
    fit_seconds = time.perf_counter() - started
    probe = RankerModel(config, snapshot.users.ids, snapshot.items.ids, components)
    sample = sample_fold_users(validation, config.ranker_max_users, config.seed)
    large = config.ranker_max_items is not None and snapshot.num_items > config.ranker_max_items
    data = validation_data(probe, sample, candidates=config.ranker_candidates if large else None)
    reports: dict[str, Any] = {}
    for name, features in (
        ("with LightGCN", None),
        ("without LightGCN", [f for f in FEATURES if f not in LIGHTGCN_FEATURES]),
    ):
        t = cpu_seconds()
        _, report = fit_weights(data, config.model_copy(update={"ranker_features": features}))
        report["cpu_seconds"] = cpu_seconds() - t
        reports[name] = report
        print(
            f"  {name}: cross-fit NDCG@20 {max(report['cross_fit_ndcg20'].values()):.4f}, validation "
            f"{report['val_ndcg20']:.4f}, LightGCN weights "
            + ", ".join(f"{f} {report['weights'][f]:.3f}" for f in LIGHTGCN_FEATURES),
            flush=True,
        )
    factors = [int(k) for k in args.als_factors.split(",") if k.strip()]
    als = (
        als_widths(
            probe,
            data,
            split.fit,
            snapshot.num_users,
            snapshot.num_items,
            factors,
            args.als_sample or config.component_search_max_positives or int(split.fit.size(1)),
        )
        if factors
        else {}
    )
    payload = {
        "snapshot": str(folder),
        "counts": {"users": snapshot.num_users, "items": snapshot.num_items, "fit_positives": int(split.fit.size(1))},
        "config": parse_sets(args.set),
        "fit_components_seconds": fit_seconds,
        "cpu_seconds": phases.cpu,
        "lightgcn_epochs": components.lightgcn_epochs,
        "ranker": reports,
        "als_widths": als,
        "loadavg": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = OUT / f"blend-share-{args.snapshot.name}.json"
    out.write_text(json.dumps(payload, indent=2))
    print(f"LightGCN CPU seconds {phases.cpu.get('lightgcn', 0):.1f} ({components.lightgcn_epochs} epochs); {out}")


if __name__ == "__main__":
    main()
