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

LRP adapter: :meth:`InteractionNetwork.lrp_trace_edges` records the forward pass with nodes and
edges as one element set (:mod:`particlegraph.explain.lrp.edge_elements`), so
:func:`~particlegraph.explain.lrp.edge_elements.explain_edges` propagates an edge logit back to
the node (N, F_n) and edge (E, F_e) inputs through every iteration, residuals included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from particlegraph.nn.mlp import MLP

if TYPE_CHECKING:  # the adapter only calls methods of the tracer it is given
    from particlegraph.explain.lrp.edge_elements import EdgeLayout
    from particlegraph.explain.lrp.program import Tracer


def _split_first_linear(mlp: nn.Sequential, h: Tensor) -> tuple[nn.Linear, Tensor, Tensor, Tensor]:
    """The first Linear of ``mlp`` split by input block ``[h_src, h_dst, e]``: the layer, its
    source and destination node terms ``a``, ``b`` (N, out) computed on the nodes, and the
    transposed edge block of its weight (H_e, out)."""
    first = mlp[0]
    assert isinstance(first, nn.Linear)
    hn = h.shape[1]
    w = first.weight
    return first, h @ w[:, :hn].T, h @ w[:, hn : 2 * hn].T, w[:, 2 * hn :].T


def edge_mlp(mlp: nn.Sequential, h: Tensor, edge_index: Tensor, e: Tensor) -> Tensor:
    """``mlp(cat([h[src], h[dst], e]))`` without forming the (E, 2 H_n + H_e) concatenation.

    The first Linear is split by input block: its node blocks act on the N nodes before the
    gather, so the per-edge work of that layer drops from (2 H_n + H_e) to H_e columns. The two
    gathered node terms are added in place, in the order of ``(e W_e + bias) + a[src] + b[dst]``
    (the same float sums, bit for bit, without the two (E, out) temporaries of the out-of-place
    form, which at pile-up 200 are 600 MB each).
    Shapes: h (N, H_n), edge_index (2, E), e (E, H_e) -> (E, out)
    """
    first, a, b, we = _split_first_linear(mlp, h)
    out = torch.addmm(first.bias, e, we) if first.bias is not None else e @ we
    out += torch.index_select(a, 0, edge_index[0])
    out += torch.index_select(b, 0, edge_index[1])
    for layer in list(mlp)[1:]:
        out = layer(out)
    return out


#: Edges per block of :meth:`InteractionNetwork.forward_chunked` and the tracking filter: a
#: (100,000, 64) float32 temporary is 25.6 MB, below glibc's largest mmap threshold (32 MB), so
#: freed blocks are reused from the heap instead of being page-faulted in again.
EDGE_CHUNK = 100_000


def edge_mlp_chunked(
    mlp: nn.Sequential, h: Tensor, edge_index: Tensor, e: Tensor, out: Tensor, chunk: int,
    accumulate: bool = False,
) -> Tensor:  # fmt: skip
    """:func:`edge_mlp` ``chunk`` edges at a time, written into ``out`` (E, out) (added to it when
    ``accumulate``: the residual update in place). The node terms of the first Linear are computed
    once for all chunks. Without gradients. Returns ``out``.
    Shapes: h (N, H_n), edge_index (2, E), e (E, H_e), out (E, O)
    """
    first, a, b, we = _split_first_linear(mlp, h)
    rest = list(mlp)[1:]
    for i in range(0, edge_index.shape[1], chunk):
        sl = slice(i, i + chunk)
        y = torch.addmm(first.bias, e[sl], we) if first.bias is not None else e[sl] @ we
        y += torch.index_select(a, 0, edge_index[0, sl])
        y += torch.index_select(b, 0, edge_index[1, sl])
        for layer in rest:  # y is this chunk's own tensor: a ReLU may overwrite it
            y = y.relu_() if isinstance(layer, nn.ReLU) else layer(y)
        if accumulate:
            out[sl] += y
        else:
            out[sl] = y
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

    @torch.no_grad()
    def forward_chunked(
        self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, chunk: int = EDGE_CHUNK
    ) -> Tensor:
        """:meth:`forward` for inference on big graphs: every edge MLP runs ``chunk`` edges at a
        time and the edge latents are updated in place (an edge's update reads only its own
        latent and the node latents, so this is the same computation), so the only (E, H)
        tensor is the edge latent itself; the temporaries stay below ``chunk`` rows. Same
        logits as :meth:`forward` to float round-off. Shapes as in :meth:`forward`.
        """
        h = self.node_encoder(x)
        n_edges = edge_index.shape[1]
        e: Tensor | None = None
        for i in range(0, n_edges, chunk):
            part = self.edge_encoder(edge_attr[i : i + chunk])
            if e is None:
                e = part.new_empty(n_edges, part.shape[1])
            e[i : i + chunk] = part
        if e is None:
            return x.new_zeros(0)
        for _ in range(self.iterations):
            edge_mlp_chunked(self.edge_block, h, edge_index, e, e, chunk, accumulate=True)
            h = self.update_nodes(h, edge_index, e)
        logits = e.new_empty(n_edges, 1)
        return edge_mlp_chunked(self.decoder, h, edge_index, e, logits, chunk).squeeze(1)

    def interact(self, h: Tensor, edge_index: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        """One round: residual edge update, then residual node update from both directions.

        Shapes: h (N, H), edge_index (2, E), e (E, H) -> (N, H), (E, H)
        """
        e = e + edge_mlp(self.edge_block, h, edge_index, e)
        return self.update_nodes(h, edge_index, e), e

    def update_nodes(self, h: Tensor, edge_index: Tensor, e: Tensor) -> Tensor:
        """Residual node update from the summed latents of the edges each node receives and
        sends. Shapes: h (N, H), edge_index (2, E), e (E, H) -> (N, H)
        """
        src, dst = edge_index
        incoming = h.new_zeros(h.shape[0], e.shape[1]).index_add_(0, dst, e)
        outgoing = h.new_zeros(h.shape[0], e.shape[1]).index_add_(0, src, e)
        update: Tensor = self.node_block(torch.cat([h, incoming, outgoing], dim=1))
        return h + update

    # --- LRP adapter (see particlegraph.explain.lrp.edge_elements) ---------------------------

    def lrp_trace_edges(self, tr: Tracer, layout: EdgeLayout) -> int:
        """Record :meth:`forward` on the joint node + edge elements; returns the logit tensor id.

        Op names: ``node_encoder.*``, ``edge_encoder.*``, per iteration k ``iter{k}.edge_block.*``,
        ``iter{k}.edge_residual``, ``iter{k}.incoming`` / ``iter{k}.outgoing`` (sum
        aggregations), ``iter{k}.node_block.*``, ``iter{k}.node_residual``; ``decoder.*``; the
        gathers onto edges and the output selection end in ``.copy``.
        """
        from particlegraph.explain.lrp import edge_elements as ee

        xn, xe = ee.trace_inputs(tr, layout)
        h = tr.sequential("node_encoder", xn, self.node_encoder)
        e = tr.sequential("edge_encoder", xe, self.edge_encoder)
        for k in range(self.iterations):
            m = ee.trace_edge_mlp(tr, f"iter{k}.edge_block", self.edge_block, h, e, layout)
            e = ee.trace_sum(tr, f"iter{k}.edge_residual", e, m)
            inc = ee.trace_scatter(tr, f"iter{k}.incoming", e, layout, end=1)
            out = ee.trace_scatter(tr, f"iter{k}.outgoing", e, layout, end=0)
            cat = tr.concat(f"iter{k}.node_input", [h, inc, out])
            upd = tr.sequential(f"iter{k}.node_block", cat, self.node_block)
            h = ee.trace_sum(tr, f"iter{k}.node_residual", h, upd)
        logit = ee.trace_edge_mlp(tr, "decoder", self.decoder, h, e, layout)
        return ee.trace_select_edges(tr, f"output{ee.COPY}", logit, layout)
