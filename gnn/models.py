"""Graph models: LightGCN (collaborative embeddings of users and items).

LightGCN (He et al., SIGIR 2020) propagates free embeddings over the symmetrically normalised user–item
graph without weights or non-linearities and averages the layers. We write the propagation as a sparse
matrix product with a hand-written backward: the normalised adjacency is symmetric, so the gradient of
``A @ x`` is ``A @ grad``. On CPU the product runs in scipy's CSR kernel (several times faster than
``torch.sparse.mm`` or message passing with scatter on this workload); on CUDA in ``torch.sparse.mm``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NormalizedAdjacency:
    """``D^-1/2 A D^-1/2`` of the bipartite user–item graph, as one symmetric ``[U + I, U + I]`` matrix.

    Node ``u`` is user_idx ``u``; node ``U + i`` is item_idx ``i``.

    Args:
        edge_index: ``[2, E]`` (user_idx, item_idx) training positives (each pair once).
        num_users, num_items: Index spaces.
        device: Where products run.
    """

    def __init__(self, edge_index: Tensor, num_users: int, num_items: int, device: torch.device | str = "cpu") -> None:
        self.num_users, self.num_items = num_users, num_items
        self.device = torch.device(device)
        n = num_users + num_items
        users = edge_index[0].cpu().numpy()
        items = edge_index[1].cpu().numpy() + num_users
        rows = np.concatenate([users, items])
        cols = np.concatenate([items, users])
        degree = np.bincount(rows, minlength=n).astype(np.float64)
        inv_sqrt = np.zeros(n)
        inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
        values = (inv_sqrt[rows] * inv_sqrt[cols]).astype(np.float32)
        self._csr = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
        self._csr.sum_duplicates()
        self._torch: Tensor | None = None
        if self.device.type != "cpu":
            coo = self._csr.tocoo()
            index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
            self._torch = torch.sparse_coo_tensor(index, torch.from_numpy(coo.data), (n, n)).coalesce()
            self._torch = self._torch.to_sparse_csr().to(self.device)

    @property
    def nnz(self) -> int:
        return int(self._csr.nnz)

    def matmul(self, x: Tensor) -> Tensor:
        """``A @ x`` for ``x`` of shape ``[U + I, d]`` (no autograd; see :func:`propagate`)."""
        if self._torch is not None:
            return torch.sparse.mm(self._torch, x)
        return torch.from_numpy(self._csr @ x.detach().numpy())


class _Propagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, adjacency: NormalizedAdjacency) -> Tensor:
        ctx.adjacency = adjacency
        return adjacency.matmul(x.contiguous())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return ctx.adjacency.matmul(grad.contiguous()), None  # A is symmetric: (A x)' = A grad


def propagate(x: Tensor, adjacency: NormalizedAdjacency) -> Tensor:
    """Differentiable ``adjacency @ x``."""
    return _Propagate.apply(x, adjacency)


class LightGCN(nn.Module):
    """LightGCN: ``e = mean_{l=0..L} A^l e0`` over users and items; score(u, i) = ``e_u · e_i``.

    Args:
        num_users, num_items: Index spaces (user_idx, item_idx).
        embedding_dim: Size of every embedding.
        num_layers: Propagation steps L.
        init_std: Standard deviation of the normal initialisation of ``e0`` (0.1 as in the paper's code).
    """

    def __init__(self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3,
                 init_std: float = 0.1) -> None:
        super().__init__()
        self.num_users, self.num_items = num_users, num_items
        self.embedding_dim, self.num_layers = embedding_dim, num_layers
        self.embedding = nn.Embedding(num_users + num_items, embedding_dim)
        nn.init.normal_(self.embedding.weight, std=init_std)

    def forward(self, adjacency: NormalizedAdjacency) -> tuple[Tensor, Tensor]:
        """Final embeddings.

        Returns:
            ``([num_users, d], [num_items, d])`` indexed by user_idx and item_idx.
        """
        x = self.embedding.weight
        total = x
        for _ in range(self.num_layers):
            x = propagate(x, adjacency)
            total = total + x
        out = total / (self.num_layers + 1)
        return out[: self.num_users], out[self.num_users :]

    def ego(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """Layer-0 embeddings of the given user_idx and item_idx (what the L2 penalty acts on)."""
        return self.embedding(users), self.embedding(items + self.num_users)


def bpr_loss(
    user_emb: Tensor,
    item_emb: Tensor,
    users: Tensor,
    pos_items: Tensor,
    neg_items: Tensor,
) -> Tensor:
    """Mean Bayesian Personalised Ranking loss ``-log σ(e_u·e_pos − e_u·e_neg)``.

    Args:
        user_emb: ``[num_users, d]``; item_emb: ``[num_items, d]``.
        users, pos_items: ``[B]`` positive pairs (user_idx, item_idx).
        neg_items: ``[B]`` or ``[B, n]`` sampled item_idx per pair (several negatives are averaged).

    Returns:
        A scalar.
    """
    u = user_emb[users]
    pos = (u * item_emb[pos_items]).sum(-1)
    if neg_items.dim() == 1:
        neg = (u * item_emb[neg_items]).sum(-1)
        return -F.logsigmoid(pos - neg).mean()
    neg = torch.einsum("bd,bnd->bn", u, item_emb[neg_items])
    return -F.logsigmoid(pos.unsqueeze(1) - neg).mean()


def l2_penalty(*tensors: Tensor, batch_size: int) -> Tensor:
    """``Σ ||t||² / (2 · batch_size)``: the paper's L2 term on the batch's layer-0 embeddings."""
    return sum(t.pow(2).sum() for t in tensors) / (2 * batch_size)  # type: ignore[return-value]


class KnowledgeSAGE(nn.Module):
    """GraphSAGE over users, items and their knowledge: genres, people, tags, follows, onboarding genres.

    A user or item starts from a learned vector of its type, a projection of its log-degree and — when
    ``id_dim_dropout`` < 1 — its own id embedding, and becomes what its neighbourhood says: an item its genres,
    people, tags and the users who liked it; a user the items they liked, the users they follow and the
    genres they chose. Id embeddings carry collaborative detail for nodes with interactions; during training
    each node's id embedding is dropped with probability ``id_dropout`` (and nodes without interactions never
    have one), so the weights also learn to embed a node from its neighbourhood alone — which is how items and
    users without interactions, and nodes added after training, get useful embeddings (inductively).
    Genres, people and tags (shared attributes) have learned embeddings.

    Args:
        edge_types: Edge types of the message-passing graph, reverse edges included.
        num_nodes: Nodes per type; every type other than ``user`` and ``item`` gets an embedding table.
        hidden: Size of every representation (and of the output embeddings).
        num_layers: HeteroConv(SAGEConv) layers.
        id_dropout: Probability of dropping a node's id embedding in training; 1.0 = no id embeddings at all.
    """

    def __init__(self, edge_types: list[tuple[str, str, str]], num_nodes: dict[str, int], hidden: int = 64,
                 num_layers: int = 2, id_dropout: float = 0.1) -> None:
        from torch_geometric.nn import HeteroConv, SAGEConv

        super().__init__()
        self.id_dropout = id_dropout
        self.attributes = nn.ModuleDict(
            {t: nn.Embedding(n, hidden) for t, n in num_nodes.items() if t not in ("user", "item") and n > 0}
        )
        for table in self.attributes.values():
            nn.init.normal_(table.weight, std=0.1)
        self.ids = nn.ModuleDict()
        if id_dropout < 1.0:
            self.ids = nn.ModuleDict({t: nn.Embedding(num_nodes[t], hidden) for t in ("user", "item")})
            for table in self.ids.values():
                nn.init.normal_(table.weight, std=0.1)
        self.base = nn.ParameterDict({t: nn.Parameter(torch.randn(hidden) * 0.1) for t in ("user", "item")})
        self.degree = nn.ModuleDict({t: nn.Linear(1, hidden) for t in ("user", "item")})
        self.convs = nn.ModuleList(
            HeteroConv({et: SAGEConv((hidden, hidden), hidden) for et in edge_types}, aggr="sum")
            for _ in range(num_layers)
        )

    def forward(self, edge_index_dict: dict[tuple[str, str, str], Tensor], num_nodes: dict[str, int],
                has_id: dict[str, Tensor] | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Representations of every node.

        Args:
            edge_index_dict: Message-passing edges per edge type (``[2, n]`` source → destination indices).
            num_nodes: Nodes per type (users and items without edges included).
            has_id: ``{"user": [U] bool, "item": [I] bool}``: nodes whose id embedding may be used (those
                with train interactions). ``None``: none.
            generator: In training, draws the id dropout (CPU generator); ``None`` = no dropout.

        Returns:
            ``{node type: [num_nodes, hidden]}``.
        """
        x: dict[str, Tensor] = {t: table.weight for t, table in self.attributes.items()}
        for node_type in ("user", "item"):
            n = num_nodes[node_type]
            rel = ("user", "interacted", "item")
            index = edge_index_dict[rel][0 if node_type == "user" else 1] if rel in edge_index_dict else None
            degree = torch.zeros(n, device=self.base[node_type].device)
            if index is not None and index.numel():
                degree = degree.index_add(0, index, torch.ones(index.numel(), device=degree.device))
            x[node_type] = self.base[node_type] + self.degree[node_type](torch.log1p(degree).unsqueeze(1))
            if node_type in self.ids and has_id is not None:
                keep = has_id[node_type].clone()
                if generator is not None and self.id_dropout > 0:
                    keep &= (torch.rand(n, generator=generator) >= self.id_dropout).to(keep.device)
                x[node_type] = x[node_type] + self.ids[node_type].weight * keep.unsqueeze(1)
        for k, conv in enumerate(self.convs):
            out = conv(x, edge_index_dict)
            last = k == len(self.convs) - 1
            x = {t: (out[t] if last else F.relu(out[t])) if t in out else x[t] for t in x}
        return x
