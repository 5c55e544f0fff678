"""The component search at size: EASE^R's λ path from one eigendecomposition (:class:`EasePath`) and a bounded
sample of users for the search's ALS fits (:func:`sample_user_pairs`).

Below ``RankerConfig.component_search_large_positives`` fit positives neither is used (each λ and each ALS
candidate is one full fit, :func:`gnn.blend.search.search_components`), so ml-latest-small and Last.fm are
searched exactly as before.

EASE^R: ``P(λ) = (G + λI)⁻¹`` for the Gram matrix ``G = XᵀX = V diag(e) Vᵀ`` is ``V diag(1/(e + λ)) Vᵀ``: one
eigendecomposition of ``G`` (O(m³), m ≤ ``ease_max_solve`` items) gives every λ's scores of the search's users
in O(S · m²) (S validation users), instead of a Cholesky inverse, a pruning and a sparse product per λ. The
path's weights are EASE^R's unpruned ``B = I − P·diagMat(1/diag(P))`` (no ``ease_top_n``), which the search uses
only to rank λ values; the chosen λ is then fitted once with :func:`gnn.blend.linear.fit_ease`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from gnn.blend.linear import interaction_matrix
from gnn.blend.scorers import recency_weights


def ease_kept_items(counts: np.ndarray, num_users: int, max_items: int | None, max_solve: int | None) -> np.ndarray:
    """The items :func:`gnn.blend.linear.fit_ease` keeps (sorted item_idx): those with a positive, at most
    ``max_items`` (``max_solve`` when users and items both exceed it) with the most positives, ties to the lower
    item_idx."""
    seen = np.flatnonzero(counts > 0)
    cap = max_items
    if max_solve is not None and min(num_users, len(seen), cap or len(seen)) > max_solve:
        cap = max_solve
    if cap is not None and len(seen) > cap:
        seen = np.sort(seen[np.argsort(-counts[seen], kind="stable")[:cap]])
    return seen


class EasePath:
    """EASE^R's scores of a fixed set of histories for any λ, from one eigendecomposition of the Gram matrix.

    Args:
        pairs: ``[2, n]`` (user_idx, item_idx) fit positives.
        num_users, num_items: Index spaces.
        histories: Each scored user's ``(items, times)`` (item_idx, epoch seconds), as
            :meth:`gnn.blend.model.RankerModel.history` gives them.
        half_life: ``ease_recent``'s recency half-life (history positions).
        max_items, max_solve: As :func:`gnn.blend.linear.fit_ease`'s.
    """

    def __init__(
        self,
        pairs: Tensor,
        num_users: int,
        num_items: int,
        histories: Sequence[tuple[np.ndarray, np.ndarray]],
        half_life: float,
        max_items: int | None,
        max_solve: int | None,
    ) -> None:
        matrix = interaction_matrix(pairs, num_users, num_items)
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        self.num_items = num_items
        self.seen = ease_kept_items(counts, num_users, max_items, max_solve)
        m = len(self.seen)
        x = matrix[:, self.seen]
        gram = torch.from_numpy((x.T @ x).toarray().astype(np.float64))
        del x, matrix
        # float64: the smallest eigenvalues (items seen together by few users) matter at small λ
        values, vectors = torch.linalg.eigh(gram)
        del gram
        self.values = values.clamp_(min=0.0).numpy()
        self.vectors = vectors.to(torch.float32).numpy()  # [m, m], columns are eigenvectors
        self.squares = vectors.square().numpy()  # for diag(P(λ)) = (V∘V) · 1/(e+λ), float64
        del vectors
        position = np.full(num_items, -1, dtype=np.int64)
        position[self.seen] = np.arange(m)
        s = len(histories)
        self.history = np.zeros((2 * s, m), dtype=np.float32)  # plain rows, then recency-weighted rows
        for r, (items, times) in enumerate(histories):
            if not len(items):
                continue
            where = position[np.asarray(items)]
            kept = where >= 0
            np.add.at(self.history[r], where[kept], 1.0)
            np.add.at(self.history[s + r], where[kept], recency_weights(times, half_life)[kept].astype(np.float32))
        self.projected = self.history @ self.vectors  # [2S, m]: the histories in the eigenbasis

    def scores(self, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """The ``ease`` and ``ease_recent`` features of every history at ``lam``: two ``[S, num_items]`` float32
        arrays (items outside the kept ones score 0, as their empty rows and columns do in a fit)."""
        inverse = 1.0 / (self.values + lam)  # float64
        diagonal = (self.squares @ inverse).astype(np.float32)  # diag(P)
        xp = (self.projected * inverse.astype(np.float32)) @ self.vectors.T  # x·P, [2S, m]
        kept = self.history - xp / diagonal  # x·B: −(x·P)_j / P_jj + x_j (B's diagonal is zero)
        s = len(kept) // 2
        out = np.zeros((2, s, self.num_items), dtype=np.float32)
        out[0][:, self.seen] = kept[:s]
        out[1][:, self.seen] = kept[s:]
        return out[0], out[1]


def sample_user_pairs(pairs: Tensor, max_positives: int, seed: int) -> Tensor:
    """The positives of a seeded random sample of users holding at most ``max_positives`` of them (users in a
    random order, each taken whole while the total stays within the bound); ``pairs`` itself when it is within."""
    n = pairs.size(1)
    if n <= max_positives:
        return pairs
    users = pairs[0].numpy()
    ids, counts = np.unique(users, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(ids))
    taken = ids[order][np.cumsum(counts[order]) <= max_positives]
    keep = np.isin(users, taken)
    return pairs[:, torch.from_numpy(keep)]
