"""Interaction network for edge classification (Battaglia et al. 2016, arXiv:1612.00222).

The recurrent form used for GNN tracking (Exa.TrkX, Ju et al., arXiv:2103.06995; DeZoort et al.,
arXiv:2103.16701): node and edge encoders, then ``iterations`` rounds of one shared interaction
block, each with a residual connection,

.. math::
    e_{ij} \\leftarrow e_{ij} + \\phi_e([h_i \\Vert h_j \\Vert e_{ij}]),\\qquad
    h_i \\leftarrow h_i + \\phi_n([h_i \\Vert \textstyle\\sum_{j \to i} e_{ji} \\Vert
    \textstyle\\sum_{i \to k} e_{ik}]),

and an edge decoder :math:`\\phi_o([h_i \\Vert h_j \\Vert e_{ij}])` giving one logit per edge. The
two sums aggregate the messages a node receives and sends, so a directed graph (inner -> outer
hit) informs both ends. Edge ``(j, i)`` of ``edge_index`` points from ``edge_index[0]`` to
``edge_index[1]`` (PyG's ``source_to_target``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from particlegraph.nn.mlp import MLP


def edge_mlp(mlp: nn.Sequential, h: Tensor, edge_index: Tensor, e: Tensor) -> Tensor:
    """``mlp(cat([h[src], h[dst], e]))`` without forming the (E, 2 H_n + H_e) concatenation.

    The first Linear is split by input block: its node blocks act on the N nodes before the
    gather, so the per-edge work of that layer drops from (2 H_n + H_e) to H_e columns. The two
    gathered node terms are added in place, in the order of ``(e W_e + bias) + a[src] + b[dst]``
    (the same float sums, bit for bit, without the two (E, out) temporaries of the out-of-place
    form, which at pile-up 200 are 600 MB each).
    Shapes: h (N, H_n), edge_index (2, E), e (E, H_e) -> (E, out)
    """
    first = mlp[0]
    assert isinstance(first, nn.Linear)
    hn = h.shape[1]
    w = first.weight
    a = h @ w[:, :hn].T
    b = h @ w[:, hn : 2 * hn].T
    out = (
        torch.addmm(first.bias, e, w[:, 2 * hn :].T)
        if first.bias is not None
        else e @ w[:, 2 * hn :].T
    )
    out += torch.index_select(a, 0, edge_index[0])
    out += torch.index_select(b, 0, edge_index[1])
    for layer in list(mlp)[1:]:
        out = layer(out)
    return out


class InteractionNetwork(MessagePassing):  # type: ignore[misc]  # PyG ships no type stubs
    """Recurrent interaction network returning one logit per edge.

    Args:
        node_in: node input features F_n.
        edge_in: edge input features F_e.
        hidden: width of every latent (default 32).
        iterations: message-passing rounds with the shared block (default 6).
        mlp_layers: Linear layers of each MLP (default 2).

    Shapes:
        x (N, F_n), edge_index (2, E), edge_attr (E, F_e) -> logits (E,)
    """

    def __init__(
        self,
        node_in: int,
        edge_in: int,
        hidden: int = 32,
        iterations: int = 6,
        mlp_layers: int = 2,
    ) -> None:
        super().__init__(aggr="sum", flow="source_to_target")
        if iterations < 1 or hidden < 1:
            raise ValueError(f"iterations and hidden must be >= 1, got {iterations}, {hidden}")
        self.iterations = iterations

        def mlp(i: int, o: int, final: bool = True) -> MLP:
            return MLP(i, hidden, o, mlp_layers, activation="relu", norm="none",
                       final_activation=final)  # fmt: skip

        self.node_encoder = mlp(node_in, hidden)
        self.edge_encoder = mlp(edge_in, hidden)
        self.edge_block = mlp(3 * hidden, hidden)
        self.node_block = mlp(3 * hidden, hidden)
        self.decoder = mlp(3 * hidden, 1, final=False)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        h, e = self.node_encoder(x), self.edge_encoder(edge_attr)
        for _ in range(self.iterations):
            h, e = self.interact(h, edge_index, e)
        return edge_mlp(self.decoder, h, edge_index, e).squeeze(1)

    def interact(self, h: Tensor, edge_index: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        """One round: residual edge update, then residual node update from both directions.

        Shapes: h (N, H), edge_index (2, E), e (E, H) -> (N, H), (E, H)
        """
        src, dst = edge_index
        e = e + edge_mlp(self.edge_block, h, edge_index, e)
        n = h.shape[0]
        incoming = h.new_zeros(n, e.shape[1]).index_add_(0, dst, e)
        outgoing = h.new_zeros(n, e.shape[1]).index_add_(0, src, e)
        h = h + self.node_block(torch.cat([h, incoming, outgoing], dim=1))
        return h, e
