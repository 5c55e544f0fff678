"""How many lists a transaction of recorded impressions holds: the store's default unless KGREC_IMPRESSIONS_BATCH says."""

from __future__ import annotations

import pytest

from api.settings import GRAPH_IMPRESSIONS_BATCH, SQLITE_IMPRESSIONS_BATCH, ApiSettings


def test_an_unset_batch_is_the_stores_own_and_a_set_one_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KGREC_IMPRESSIONS_BATCH", raising=False)
    assert ApiSettings(api_key=None, impression_store="sqlite").impressions_batch_size() == SQLITE_IMPRESSIONS_BATCH
    assert ApiSettings(api_key=None, impression_store="neo4j").impressions_batch_size() == GRAPH_IMPRESSIONS_BATCH
    assert SQLITE_IMPRESSIONS_BATCH < GRAPH_IMPRESSIONS_BATCH  # SQLite's transactions are kept short
    monkeypatch.setenv("KGREC_IMPRESSIONS_BATCH", "30")
    for store in ("sqlite", "neo4j"):
        assert ApiSettings(api_key=None, impression_store=store).impressions_batch_size() == 30
