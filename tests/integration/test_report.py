"""`kgrec report` from known events: lists and impressions recorded, feedback attributed, figures and intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from neo4j import Driver
from typer.testing import CliRunner

from graph.impressions import SqliteImpressionStore, open_impression_store
from graph.settings import Neo4jSettings
from graph.writers import (
    BatchWriter,
    impression_batches,
    write_feedback,
    write_items,
    write_users,
)
from kgrec.cli import app
from kgrec.report import difference, wilson
from schema.kinds import DEFAULT_FEEDBACK_KINDS
from schema.rows import ItemRow, UserRow

runner = CliRunner()


@pytest.mark.parametrize("store_kind", ["neo4j", "sqlite"])
def test_report_counts_lists_impressions_clicks_and_conversions_per_variant(
    clean_db: Driver, cli_env: Neo4jSettings, store_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KGREC_IMPRESSION_STORE", store_kind)  # the store `kgrec report` reads
    monkeypatch.setenv("KGREC_IMPRESSION_DB", str(tmp_path / "impressions.sqlite3"))
    store = open_impression_store(store_kind, clean_db, path=tmp_path / "impressions.sqlite3")
    writer = BatchWriter(clean_db)
    write_users(writer, [UserRow(user_id=f"u{n}") for n in range(4)])
    write_items(writer, [ItemRow(item_id=f"i{n}") for n in range(10)])
    lists = [  # (id, user, variant, items): A shows 3 lists of 4 items, B 2 lists of 5
        ("a1", "u0", "A", ["i0", "i1", "i2", "i3"]),
        ("a2", "u1", "A", ["i4", "i5", "i6", "i7"]),
        ("a3", "u0", "A", ["i0", "i1", "i8", "i9"]),
        ("b1", "u2", "B", ["i0", "i1", "i2", "i3", "i4"]),
        ("b2", "u3", "B", ["i5", "i6", "i7", "i8", "i9"]),
    ]
    rows = [
        {
            "recommendation_id": r,
            "user_id": u,
            "variant": v,
            "model_version": "m-1",
            "shown_at": 1_700_000_000,
            "item_ids": i,
        }
        for r, u, v, i in lists
    ]
    for part in impression_batches(rows, 2):  # three transactions
        store.write(part)
    events = [  # (user, item, type, list)
        ("u0", "i1", "click", "a1"),
        ("u0", "i1", "click", "a1"),  # the same item of the same list: one click
        ("u1", "i5", "purchase", "a2"),  # a conversion, and a click
        ("u2", "i0", "click", "b1"),
        ("u2", "i3", "like", "b1"),
        ("u3", "i9", "purchase", "b2"),
        ("u3", "i9", "click", "b1"),  # not u3's list: unattributed
        ("u2", "i2", "dislike", "b1"),  # attributed, but neither a click nor a conversion
    ]
    for user, item, kind, rec in events:
        k = DEFAULT_FEEDBACK_KINDS[kind]
        click, conversion = k.outcome.value == "click", k.outcome.value == "conversion"
        write_feedback(
            clean_db,
            user,
            item,
            k,
            1_700_000_100,
            kinds=DEFAULT_FEEDBACK_KINDS,
            recommendation_id=rec if store.in_graph else None,  # else attributed by the store
            click=click,
            conversion=conversion,
        )
        if isinstance(store, SqliteImpressionStore):
            store.attribute(rec, user, item, click=click, conversion=conversion)
    result = runner.invoke(app, ["report", "--json", "--baseline", "A"])
    assert result.exit_code == 0, result.output
    rows = {r["variant"]: r for r in json.loads(result.output)["variants"]}
    assert [(r["lists"], r["impressions"], r["clicks"], r["conversions"]) for r in rows.values()] == [
        (3, 12, 2, 1),
        (2, 10, 3, 1),
    ]
    assert rows["A"]["ctr"] == 2 / 12 and (rows["A"]["ctr_low"], rows["A"]["ctr_high"]) == wilson(2, 12)
    assert (rows["B"]["ctr_diff"], rows["B"]["ctr_diff_low"], rows["B"]["ctr_diff_high"]) == difference(2, 12, 3, 10)
    table = runner.invoke(app, ["report"])
    assert table.exit_code == 0 and "CTR" in table.output and "baseline" in table.output
    assert runner.invoke(app, ["report", "--days", "1", "--json"]).output.count('"variant"') == 0  # all long ago
    where = "the graph" if store_kind == "neo4j" else "impressions.sqlite3"  # an empty report says where it looked
    assert where in runner.invoke(app, ["report", "--days", "1"]).output
    store.close()
