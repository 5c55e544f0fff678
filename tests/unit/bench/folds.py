"""A small seeded fold for the benchmark's unit tests: 30 users with 6 of 40 items each, half train, half targets."""

from __future__ import annotations

import torch

from gnn.evaluation import Fold


def tiny_fold(users: int = 30, items: int = 40, per_user: int = 6, name: str = "test") -> Fold:
    gen = torch.Generator().manual_seed(0)
    rows = [(u, int(i)) for u in range(users) for i in torch.randperm(items, generator=gen)[:per_user]]
    pairs = torch.tensor(rows).T
    return Fold(name, users, items, pairs[:, ::2].contiguous(), pairs[:, 1::2].contiguous())
