"""Graph models: LightGCN (collaborative embeddings of users and items) and KnowledgeSAGE (inductive).

LightGCN (He et al., SIGIR 2020) propagates free embeddings over the symmetrically normalised user–item
graph without weights or non-linearities and averages the layers. We write the propagation as a sparse
matrix product with a hand-written backward: the normalised adjacency is symmetric, so the gradient of
``A @ x`` is ``A @ grad``. On CPU the product runs in scipy's CSR kernel (several times faster than
``torch.sparse.mm`` or message passing with scatter on this workload); on CUDA in ``torch.sparse.mm``.
"""

from __future__ import annotations

import copy
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

    def rmatmul(self, grad: Tensor) -> Tensor:
        """``Aᵀ @ grad`` (the backward of :meth:`matmul`): A is symmetric, so ``A @ grad``."""
        return self.matmul(grad)


def propagate(x: Tensor, adjacency: NormalizedAdjacency) -> Tensor:
    """Differentiable ``adjacency @ x``."""
    return _Aggregate.apply(x, adjacency)


class LightGCN(nn.Module):
    """LightGCN: ``e = mean_{l=0..L} A^l e0`` over users and items; score(u, i) = ``e_u · e_i``.

    Args:
        num_users, num_items: Index spaces (user_idx, item_idx).
        embedding_dim: Size of every embedding.
        num_layers: Propagation steps L.
        init_std: Standard deviation of the normal initialisation of ``e0`` (0.1 as in the paper's code).
    """

    def __init__(
        self, num_users: int, num_items: int, embedding_dim: int = 64, num_layers: int = 3, init_std: float = 0.1
    ) -> None:
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


class RelationAdjacency:
    """Mean aggregation along one relation: the row-normalised ``[num_dst, num_src]`` matrix ``D_dst^-1 A``.

    ``matmul(x)`` gives every destination node the mean of its sources' rows of ``x`` (zeros without
    sources), as ``SAGEConv``'s mean aggregation does, duplicate edges counting twice. On CPU the product
    runs in scipy's CSR kernel, on CUDA in ``torch.sparse.mm``; ``rmatmul`` is the transposed product (the
    backward pass).

    Args:
        edge_index: ``[2, E]`` (source index, destination index).
        num_src, num_dst: Index spaces of the two node types.
        device: Where products run.
    """

    def __init__(self, edge_index: Tensor, num_src: int, num_dst: int, device: torch.device | str = "cpu") -> None:
        self.num_src, self.num_dst = num_src, num_dst
        self.device = torch.device(device)
        src, dst = edge_index[0].cpu().numpy(), edge_index[1].cpu().numpy()
        degree = np.bincount(dst, minlength=num_dst).astype(np.float64)
        values = (1.0 / degree[dst]).astype(np.float32) if dst.size else np.zeros(0, dtype=np.float32)
        self._csr = sp.csr_matrix((values, (dst, src)), shape=(num_dst, num_src))
        self._csr.sum_duplicates()
        self._csr_t = self._csr.T.tocsr()
        self._torch: tuple[Tensor, Tensor] | None = None
        if self.device.type != "cpu":
            self._torch = (_torch_csr(self._csr, self.device), _torch_csr(self._csr_t, self.device))

    @property
    def nnz(self) -> int:
        return int(self._csr.nnz)

    def matmul(self, x: Tensor) -> Tensor:
        """``A @ x`` for ``x`` of shape ``[num_src, d]`` (no autograd; see :func:`aggregate`)."""
        if self._torch is not None:
            return torch.sparse.mm(self._torch[0], x)
        return torch.from_numpy(np.asarray(self._csr @ x.detach().numpy()))

    def rmatmul(self, grad: Tensor) -> Tensor:
        """``A^T @ grad`` for ``grad`` of shape ``[num_dst, d]``."""
        if self._torch is not None:
            return torch.sparse.mm(self._torch[1], grad)
        return torch.from_numpy(np.asarray(self._csr_t @ grad.detach().numpy()))


def _torch_csr(matrix: sp.csr_matrix, device: torch.device) -> Tensor:
    return torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(matrix.data),
        matrix.shape,
    ).to(device)


class _Aggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, adjacency: NormalizedAdjacency | RelationAdjacency) -> Tensor:
        ctx.adjacency = adjacency
        return adjacency.matmul(x.contiguous())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return ctx.adjacency.rmatmul(grad.contiguous()), None


def aggregate(x: Tensor, adjacency: RelationAdjacency) -> Tensor:
    """Differentiable mean of each destination's sources: ``adjacency @ x``."""
    return _Aggregate.apply(x, adjacency)


EdgeType = tuple[str, str, str]
INTERACTION: EdgeType = ("user", "interacted", "item")


class RelationGraph:
    """The message-passing graph of :class:`KnowledgeSAGE`: one :class:`RelationAdjacency` per edge type.

    Building the matrices is the only per-graph work, so a graph is built once and reused for every forward
    pass on it; :meth:`with_edges` swaps some relations (e.g. the interactions of one training part) and keeps
    the others' matrices.

    Args:
        edge_index_dict: Message-passing edges per edge type (``[2, n]`` source → destination indices).
        num_nodes: Nodes per type (users and items without edges included).
        device: Where products run.
    """

    def __init__(
        self, edge_index_dict: dict[EdgeType, Tensor], num_nodes: dict[str, int], device: torch.device | str = "cpu"
    ) -> None:
        self.num_nodes = dict(num_nodes)
        self.device = torch.device(device)
        self.relations = {et: self._adjacency(et, index) for et, index in edge_index_dict.items()}
        self._interactions = edge_index_dict.get(INTERACTION)
        self.degree = self._degree()

    def _adjacency(self, edge_type: EdgeType, index: Tensor) -> RelationAdjacency:
        return RelationAdjacency(index, self.num_nodes[edge_type[0]], self.num_nodes[edge_type[2]], self.device)

    def _degree(self) -> dict[str, Tensor]:
        """Train interactions per user and per item (what the degree feature sees)."""
        out = {}
        for position, node_type in enumerate(("user", "item")):
            count = torch.zeros(self.num_nodes[node_type])
            if self._interactions is not None and self._interactions.numel():
                count = torch.bincount(self._interactions[position].cpu(), minlength=self.num_nodes[node_type]).float()
            out[node_type] = count.to(self.device)
        return out

    def with_edges(self, edge_index_dict: dict[EdgeType, Tensor]) -> RelationGraph:
        """A graph with these relations replaced (or added) and every other relation shared with this one."""
        graph = copy.copy(self)
        graph.relations = {**self.relations, **{et: self._adjacency(et, i) for et, i in edge_index_dict.items()}}
        if INTERACTION in edge_index_dict:
            graph._interactions = edge_index_dict[INTERACTION]
            graph.degree = graph._degree()
        return graph


def _key(edge_type: EdgeType) -> str:
    return "__".join(edge_type)


class KnowledgeSAGE(nn.Module):
    """GraphSAGE over users, items and their knowledge: genres, people, tags, follows, onboarding genres, user
    attributes.

    A user or item starts from a learned vector of its type, a projection of its log-degree and — when
    ``id_dropout`` < 1 — its own id embedding (items only, unless ``user_ids``), and becomes what its neighbourhood says: an item its genres,
    people, tags and the users who liked it; a user the items they liked, the users they follow, the
    genres they chose and their attributes (age band, country, occupation: a ``user_attribute`` node type whose
    learned embeddings a user averages, i.e. its multi-hot attribute vector times a learned matrix). Id embeddings carry collaborative detail for nodes with interactions; during training
    each node's id embedding is dropped with probability ``id_dropout`` (and nodes without interactions never
    have one), so the weights also learn to embed a node from its neighbourhood alone — which is how items and
    users without interactions, and nodes added after training, get useful embeddings (inductively).
    Genres, people, tags and user attributes (shared attributes) have learned embeddings.

    A layer is heterogeneous GraphSAGE with mean aggregation, summed over relations:
    ``h'_v = W_root[t] h_v + b[t] + Σ_r W_r · mean_{u ∈ N_r(v)} h_u`` (ReLU between layers), the function of
    ``HeteroConv({r: SAGEConv}, aggr="sum")`` with the root weights of a node type's relations merged into
    one (and, in the first layer, none for genres, people and tags: their own embedding is the term). The means are sparse products with precomputed row-normalised matrices (:class:`RelationGraph`);
    ``W_r`` is applied on the side of the relation with fewer nodes (``mean(h W) = mean(h) W``). The last
    layer computes only users and items (the other types' outputs would go unused).

    Args:
        edge_types: Edge types of the message-passing graph, reverse edges included.
        num_nodes: Nodes per type; every type other than ``user`` and ``item`` gets an embedding table.
        hidden: Size of every representation (and of the output embeddings).
        num_layers: GraphSAGE layers.
        id_dropout: Probability of dropping a node's id embedding in training; 1.0 = no id embeddings at all.
        user_ids: Users get id embeddings too; by default only items do, and a user is what its items,
            follows and genres say (on ml-latest-small user ids overfit: validation NDCG@20 0.077 with them,
            0.083 without).
    """

    def __init__(
        self,
        edge_types: list[EdgeType],
        num_nodes: dict[str, int],
        hidden: int = 64,
        num_layers: int = 2,
        id_dropout: float = 0.1,
        user_ids: bool = False,
    ) -> None:
        super().__init__()
        self.id_dropout = id_dropout
        self.attributes = nn.ModuleDict(
            {t: nn.Embedding(n, hidden) for t, n in num_nodes.items() if t not in ("user", "item") and n > 0}
        )
        for table in self.attributes.values():
            nn.init.normal_(table.weight, std=0.1)
        self.ids = nn.ModuleDict()
        if id_dropout < 1.0:
            self.ids = nn.ModuleDict({t: nn.Embedding(num_nodes[t], hidden) for t in ("user", "item")[not user_ids :]})
            for table in self.ids.values():
                nn.init.normal_(table.weight, std=0.1)
        self.base = nn.ParameterDict({t: nn.Parameter(torch.randn(hidden) * 0.1) for t in ("user", "item")})
        self.degree = nn.ModuleDict({t: nn.Linear(1, hidden) for t in ("user", "item")})
        for linear in self.degree.values():  # log-degrees reach ~10: start at the scale of the embeddings
            nn.init.normal_(linear.weight, std=0.01)
            nn.init.zeros_(linear.bias)
        self.layer_relations: list[list[EdgeType]] = []
        self.neighbour = nn.ModuleList()
        self.root = nn.ModuleList()
        for k in range(num_layers):
            last = k == num_layers - 1
            relations = [et for et in edge_types if not last or et[2] in ("user", "item")]
            self.layer_relations.append(relations)
            self.neighbour.append(nn.ModuleDict({_key(et): nn.Linear(hidden, hidden, bias=False) for et in relations}))
            # In the first layer an attribute's own term W_root e_v is just another free embedding: e_v itself.
            own = sorted({et[2] for et in relations} - (set(self.attributes) if k == 0 else set()))
            self.root.append(nn.ModuleDict({t: nn.Linear(hidden, hidden) for t in own}))

    def forward(
        self, graph: RelationGraph, has_id: dict[str, Tensor] | None = None, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Representations of every node.

        Args:
            graph: The message-passing graph (its relations must be among the model's edge types).
            has_id: ``{"user": [U] bool, "item": [I] bool}``: nodes whose id embedding may be used (those
                with train interactions). ``None``: none.
            generator: In training, draws the id dropout (CPU generator); ``None`` = no dropout.

        Returns:
            ``{node type: [num_nodes, hidden]}``: users and items after the last layer; genres, people and
            tags after the one before (the last computes only users and items).
        """
        x: dict[str, Tensor] = {t: table.weight for t, table in self.attributes.items()}
        for node_type in ("user", "item"):
            n = graph.num_nodes[node_type]
            x[node_type] = self.base[node_type] + self.degree[node_type](
                torch.log1p(graph.degree[node_type]).unsqueeze(1)
            )
            if node_type in self.ids and has_id is not None:
                keep = has_id[node_type].clone()
                if generator is not None and self.id_dropout > 0:
                    keep &= (torch.rand(n, generator=generator) >= self.id_dropout).to(keep.device)
                x[node_type] = x[node_type] + self.ids[node_type].weight * keep.unsqueeze(1)
        for k, (relations, neighbour, root) in enumerate(
            zip(self.layer_relations, self.neighbour, self.root, strict=True)
        ):
            out = {t: lin(x[t]) for t, lin in root.items() if t in x}
            if k == 0:
                out.update({t: x[t] for t in self.attributes if any(et[2] == t for et in relations)})
            for et in relations:
                adjacency = graph.relations.get(et)
                src, _, dst = et
                if adjacency is None or adjacency.nnz == 0 or src not in x or dst not in out:
                    continue
                lin = neighbour[_key(et)]
                if adjacency.num_src < adjacency.num_dst:
                    message = aggregate(lin(x[src]), adjacency)
                else:
                    message = lin(aggregate(x[src], adjacency))
                out[dst] = out[dst] + message
            last = k == len(self.layer_relations) - 1
            x = {t: (out[t] if last else F.relu(out[t])) if t in out else x[t] for t in x}
        return x
