"""Scoring with a trained artifact: no training code, only embeddings and id maps.

The API loads an :class:`EmbeddingScorer` at start-up (and on reload) and asks it for collaborative scores
of candidate items, for a user's top items, or for the items nearest to an item.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from gnn.artifacts import Artifact, load_artifact


class EmbeddingScorer:
    """Dot-product scores between user and item embeddings of one artifact.

    Args:
        artifact: A loaded artifact.
    """

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self._users = artifact.user_embeddings.float()
        self._items = artifact.item_embeddings.float()
        self._user_index = {user_id: k for k, user_id in enumerate(artifact.user_ids)}
        self._item_index = {item_id: k for k, item_id in enumerate(artifact.item_ids)}
        norms = self._items.norm(dim=1, keepdim=True).clamp(min=1e-12)
        self._items_unit = self._items / norms

    @classmethod
    def load(cls, path: Path) -> EmbeddingScorer:
        """Load the artifact directory ``path``."""
        return cls(load_artifact(path))

    @property
    def version(self) -> str | None:
        return self.artifact.version

    def knows_user(self, user_id: str) -> bool:
        return user_id in self._user_index

    def knows_item(self, item_id: str) -> bool:
        return item_id in self._item_index

    def score(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        """Scores of ``item_ids`` for ``user_id``.

        Returns:
            ``[len(item_ids)]`` float32; NaN for items the artifact does not know, all NaN for an unknown user.
        """
        out = np.full(len(item_ids), np.nan, dtype=np.float32)
        user = self._user_index.get(user_id)
        if user is None or not item_ids:
            return out
        known = [(k, self._item_index[i]) for k, i in enumerate(item_ids) if i in self._item_index]
        if known:
            positions, items = zip(*known, strict=True)
            scores = self._items[list(items)] @ self._users[user]
            out[list(positions)] = scores.numpy()
        return out

    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The user's ``k`` best items by score, ``exclude`` left out (best first; ties by item index).

        Returns:
            ``[(item_id, score)]``; empty for an unknown user.
        """
        user = self._user_index.get(user_id)
        if user is None or k <= 0:
            return []
        scores = self._items @ self._users[user]
        banned = [self._item_index[i] for i in exclude if i in self._item_index]
        if banned:
            scores[banned] = -torch.inf
        top = torch.topk(scores, min(k, scores.numel()))
        return [
            (self.artifact.item_ids[int(i)], float(s))
            for s, i in zip(top.values, top.indices, strict=True)
            if torch.isfinite(s)
        ]

    def similar_items(self, item_id: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` items with the most similar embeddings (cosine), the item itself left out."""
        item = self._item_index.get(item_id)
        if item is None or k <= 0:
            return []
        cosine = self._items_unit @ self._items_unit[item]
        cosine[item] = -torch.inf
        top = torch.topk(cosine, min(k, cosine.numel() - 1))
        return [(self.artifact.item_ids[int(i)], float(s)) for s, i in zip(top.values, top.indices, strict=True)]
