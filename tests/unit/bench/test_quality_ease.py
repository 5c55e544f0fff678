"""bench.baselines' EASE^R reference: the user-space (Woodbury) path gives the item-space closed form exactly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from bench.baselines import ease_scores


def _closed_form(x: sp.csr_matrix, lam: float) -> np.ndarray:
    gram = (x.T @ x).toarray().astype(np.float64) + lam * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    b = np.eye(x.shape[1]) - p / np.diag(p)  # B = I − P·diagMat(1/diag(P)); its diagonal is 0
    return np.asarray(x @ b)


@pytest.mark.parametrize("shape", [(40, 150), (150, 40)])
def test_ease_scores_equal_the_closed_form_in_either_space(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random(shape) < 0.15).astype(np.float32))
    got = ease_scores(x, 5.0)
    assert got.shape == shape
    np.testing.assert_allclose(got, _closed_form(x, 5.0), atol=1e-10)
    # The diagonal of B is zero: a user's own item scores only through the other items.
    x1 = sp.csr_matrix(np.eye(1, shape[1], dtype=np.float32))
    assert abs(ease_scores(sp.vstack([x1, x]).tocsr(), 5.0)[0, 0]) < 1e-12


def test_outputs_are_named_after_the_snapshots_dataset() -> None:
    import argparse
    from pathlib import Path

    from bench.quality import resolve_dataset

    parser = argparse.ArgumentParser()
    assert resolve_dataset(parser, None, None) == "ml-latest-small"
    assert resolve_dataset(parser, None, Path("bench/out/snapshot-lastfm")) == "lastfm"
    assert resolve_dataset(parser, "lastfm", Path("/x/snapshot-lastfm")) == "lastfm"
    assert resolve_dataset(parser, "lastfm", Path("/x/my-copy")) == "lastfm"
    with pytest.raises(SystemExit):  # a Last.fm snapshot filed under MovieLens
        resolve_dataset(parser, "ml-latest-small", Path("bench/out/snapshot-lastfm"))
    with pytest.raises(SystemExit):
        resolve_dataset(parser, None, Path("/x/my-copy"))
