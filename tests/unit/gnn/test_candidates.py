"""The candidate set's catalogue moments and inner-product index (:mod:`gnn.blend.candidates`) against the full
computation over every item."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

import gnn.blend.candidates as candidates
from gnn.blend.candidates import InnerProductIndex, LinearMoments
from gnn.serving import AUTO_CANDIDATES, ScoringCandidates


@pytest.mark.parametrize("cold", [False, True])
def test_moments_of_dense_vectors_are_the_catalogues(cold: bool) -> None:
    """Mean and deviation of ``v_i · q`` from ``v̄`` and ``Σ`` equal those of the product over every item (with
    a mask: the product of the masked items, 0 for the others)."""
    rng = np.random.default_rng(3)
    vectors = (rng.normal(size=(5_000, 16)) + rng.normal(size=16)).astype(np.float32)
    rows = rng.random(5_000) < 0.1 if cold else None
    moments = LinearMoments.of(vectors, rows)
    for _ in range(5):
        q = rng.normal(size=16).astype(np.float32)
        values = vectors.astype(np.float64) @ q
        if rows is not None:
            values = values * rows
        mean, std = moments(q)
        assert mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-9)
        assert std == pytest.approx(values.std(), rel=1e-9)


def test_the_index_finds_the_largest_inner_products_and_answers_alike_when_rebuilt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The HNSW graph (forced on a small catalogue) finds nine in ten or more of the exact best 50 by inner product, with
    item norms that differ (the case the extra coordinate is for), and two builds of the same vectors answer the same;
    below :data:`~gnn.blend.candidates.ANN_MIN_ITEMS` the answer is the exact one."""
    rng = np.random.default_rng(6)
    vectors = (rng.normal(size=(4_000, 12)) * rng.uniform(0.2, 3.0, size=(4_000, 1))).astype(np.float32)
    exact = InnerProductIndex(vectors)
    assert exact.index is None
    monkeypatch.setattr(candidates, "ANN_MIN_ITEMS", 1)
    graph, again = InnerProductIndex(vectors), InnerProductIndex(vectors)
    assert graph.index is not None
    found = []
    for _ in range(20):
        q = rng.normal(size=12).astype(np.float32)
        best = set(np.argsort(-(vectors @ q), kind="stable")[:50].tolist())
        assert set(exact.top(q, 50).tolist()) == best
        top = graph.top(q, 50)
        assert len(top) == 50
        assert np.array_equal(top, again.top(q, 50))
        found.append(len(best & set(top.tolist())) / 50)
    assert np.mean(found) >= 0.9


def _spread_vectors(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(3_000, 12)) * rng.uniform(0.2, 3.0, size=(3_000, 1))).astype(np.float32)


def test_a_saved_graph_is_read_back_and_answers_as_a_fresh_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """:meth:`InnerProductIndex.write` then ``saved``: the graph is read, not built, and its answers are a fresh
    build's for every query; the build is deterministic (two builds serialise to the same bytes), so a process that
    reads the file answers as one that builds it."""
    monkeypatch.setattr(candidates, "ANN_MIN_ITEMS", 1)
    vectors = _spread_vectors(8)
    built = InnerProductIndex(vectors)
    record = built.write(tmp_path / "graph.hnsw")
    assert built.origin == "built" and record["points"] == 3_000 - 150 and record["dimension"] == 13
    read = InnerProductIndex(vectors, (tmp_path / "graph.hnsw", record))
    fresh = InnerProductIndex(vectors)
    assert read.origin == "read" and fresh.origin == "built"
    assert np.array_equal(faiss.serialize_index(fresh.index), faiss.serialize_index(read.index))
    rng = np.random.default_rng(9)
    for _ in range(30):
        q = rng.normal(size=12).astype(np.float32)
        assert np.array_equal(read.top(q, 40), fresh.top(q, 40))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("a flipped byte", "do not match their checksum"),
        ("a missing file", "unreadable"),
        ("other vectors", "built from other vectors"),
        ("other parameters", "saved for"),
    ],
)
def test_a_saved_graph_that_does_not_match_is_built_again_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str, reason: str
) -> None:
    """A damaged file (checked by its SHA-256 before faiss parses it), a missing one, a graph of other vectors of the
    same shape, or one built with other parameters is not used: the graph is built, one warning says why, and the
    answers are a fresh build's."""
    monkeypatch.setattr(candidates, "ANN_MIN_ITEMS", 1)
    vectors = _spread_vectors(10)
    path = tmp_path / "graph.hnsw"
    record = InnerProductIndex(vectors).write(path)
    if damage == "a flipped byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "a missing file":
        path.unlink()
    elif damage == "other vectors":
        vectors = vectors.copy()
        vectors[7] += 0.01
    else:
        monkeypatch.setattr(candidates, "HNSW_NEIGHBOURS", candidates.HNSW_NEIGHBOURS // 2)
    with caplog.at_level("WARNING", logger="gnn.blend.candidates"):
        again = InnerProductIndex(vectors, (path, record))
    assert again.origin == "built"
    warnings = [r.getMessage() for r in caplog.records if r.name == "gnn.blend.candidates"]
    assert len(warnings) == 1 and "graph.hnsw is not used" in warnings[0] and reason in warnings[0]
    fresh = InnerProductIndex(vectors)
    rng = np.random.default_rng(11)
    for _ in range(10):
        q = rng.normal(size=12).astype(np.float32)
        assert np.array_equal(again.top(q, 40), fresh.top(q, 40))

    """``KGREC_SCORING_CANDIDATES`` wins (0: every item), then the artifact's own ``serve_candidates``; only a blend
    of ``from_items`` items or more that sets nothing gets :data:`~gnn.serving.AUTO_CANDIDATES`."""
    by_size = ScoringCandidates(None, 100_000)
    assert by_size.resolve(None, 99_999) is None
    assert by_size.resolve(None, 100_000) == AUTO_CANDIDATES
    assert by_size.resolve(50, 500_000) == 50
    assert ScoringCandidates(0, 100_000).resolve(50, 500_000) is None
    assert ScoringCandidates(300, 100_000).resolve(None, 10) == 300
    assert ScoringCandidates().resolve(None, 10**7) is None


def test_the_api_settings_give_the_size_switch_and_zero_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """``KGREC_SCORING_CANDIDATES_FROM_ITEMS``: 50,000 by default, a number from the environment, 0 never by size;
    ``KGREC_SCORING_CANDIDATES`` beside it still wins."""
    from api.settings import ApiSettings

    monkeypatch.delenv("KGREC_SCORING_CANDIDATES", raising=False)
    monkeypatch.delenv("KGREC_SCORING_CANDIDATES_FROM_ITEMS", raising=False)
    assert ApiSettings(api_key=None).candidates().resolve(None, 50_000) == AUTO_CANDIDATES
    monkeypatch.setenv("KGREC_SCORING_CANDIDATES_FROM_ITEMS", "0")
    assert ApiSettings(api_key=None).candidates() == ScoringCandidates(None, None)
    assert ApiSettings(api_key=None).candidates().resolve(None, 10**7) is None
    monkeypatch.setenv("KGREC_SCORING_CANDIDATES_FROM_ITEMS", "1000")
    monkeypatch.setenv("KGREC_SCORING_CANDIDATES", "300")
    assert ApiSettings(api_key=None).candidates().resolve(None, 999) == 300
    monkeypatch.setenv("KGREC_SCORING_CANDIDATES", "0")
    assert ApiSettings(api_key=None).candidates().resolve(None, 10**6) is None
