"""The ingestion scenario of bench.api_load: its events, clean-up list and table."""

from __future__ import annotations

import argparse
import random

from rich.console import Console

from bench.api_ingest import _event, ingest_table, ingested_users


def test_every_event_user_is_cleaned_up_and_timestamps_rise() -> None:
    rng = random.Random(1)
    clock = [1_600_000_000]
    events = [_event(rng, writer, ["i1", "i2"], clock) for writer in range(3) for _ in range(500)]
    assert {e["user_id"] for e in events} <= set(ingested_users(3))
    assert [e["timestamp"] for e in events] == sorted({e["timestamp"] for e in events})


def test_table_has_a_row_per_run() -> None:
    run = {
        "mode": "batch",
        "writers": 4,
        "batch": 500,
        "events_per_s": 2000.0,
        "write_p50_ms": 600.0,
        "write_p99_ms": 6000.0,
        "write_errors": {},
        "read_rps": 390.0,
        "read_p50_ms": 16.0,
        "read_p99_ms": 75.0,
        "read_errors": {},
    }
    console = Console(width=120, record=True)
    console.print(
        ingest_table(
            [run, {**run, "mode": "single", "writers": 20, "batch": 1}],
            argparse.Namespace(ingest_readers=8, ingest_duration=20),
        )
    )
    text = console.export_text()
    assert "batch 4×500" in text and "single ×20" in text and "2000" in text
