"""Shared pieces of the benchmarks: a private Neo4j server and the dataset folder."""

from __future__ import annotations

import os
from pathlib import Path

from graph.settings import Neo4jSettings

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("KGREC_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "bench" / "out"


def bench_settings() -> Neo4jSettings:
    """A server of the benchmarks' own (never the developer's data): .kgrec/neo4j-bench on 27687/27474."""
    return Neo4jSettings(
        uri="bolt://127.0.0.1:27687",
        password="kgrec-bench-password",
        home=ROOT / ".kgrec" / "neo4j-bench",
        bolt_port=27687,
        http_port=27474,
    )


def require_dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        raise SystemExit(f"dataset folder missing: {path} (set KGREC_DATASETS)")
    return path
