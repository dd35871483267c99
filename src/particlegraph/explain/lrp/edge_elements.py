"""LRP for graph networks with edge states (interaction networks): nodes and edges as one element set.

The engine's :class:`~.program.Program` holds tensors over one set of elements. A network that
updates edge states (Battaglia et al. 2016, arXiv:1612.00222) has two, nodes (N) and edges (E).
They become one set of N + E elements, rows ``[0, N)`` the nodes and ``N + e`` the edge ``e``
(:class:`EdgeLayout`); the raw input is the block matrix (N + E, F_n + F_e) with the node
features in the node rows' first F_n columns and the edge features in the edge rows' last F_e
columns (zeros elsewhere). Then every step of such a network is an op the engine knows:

- ``h[src_e]`` / ``h[dst_e]`` onto edge row ``e``: an aggregation with one unit-weight message
  per edge row (:func:`trace_gather`), a *copy*;
- ``sum_{e: dst_e = i} e_e`` (messages received) and ``sum_{e: src_e = i}`` (sent): an
  aggregation from edge rows onto node rows (:func:`trace_scatter`), a real sum;
- a residual ``a + b``: a Linear ``[I | I]`` on ``cat[a, b]`` (:func:`trace_sum`), so LRP splits
  the relevance in proportion to the two terms (``R_a = a R / (a + b + eps sign)``);
- the MLPs act per element: node MLPs on node rows, edge MLPs on edge rows. Every op also
  computes values on the other kind of row (an edge MLP on a node row); relevance never reaches
  them, because it only moves between rows through the aggregations above, which connect node
  and edge rows exactly as the network does.

Copies are identities: relevance passes them unchanged (LRP-0, whatever the composite says; a
copied value that is 0 carries no relevance, so nothing divides by 0). The last op selects the
edge rows (:func:`trace_select_edges`, a copy) so the output tensor is 0 on node rows.

The pair walk of :mod:`.engine` stays sparse: one edge's relevance reaches only the elements in
its receptive field; the per-element work is linear in N + E and nothing is N x N or E x E.
The recorded program itself holds every op's values on all N + E rows (thousands of values per
element for a tracking-size network), so :class:`Subgraph` can cut the graph to the explained
edges' receptive field first (exact), and :mod:`particlegraph.nn.interaction_lrp` walks the
interaction network without a program.
Entry point: :func:`explain_edges` for a model with ``lrp_trace_edges(tracer, layout) -> int``
and ``model(x, edge_index, edge_attr) -> (E,)`` logits, e.g.
:class:`~particlegraph.nn.interaction.InteractionNetwork`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.engine import propagate_many
from particlegraph.explain.lrp.models import trace_model
from particlegraph.explain.lrp.program import Tracer
from particlegraph.explain.lrp.rules import Composite, Epsilon, Rule, as_composite
from particlegraph.explain.lrp.sparse import SparseRelevance

#: Name suffix of the copy ops (gathers onto edge rows, the output selection): LRP-0 there.
COPY = ".copy"


@dataclass(frozen=True)
class EdgeLayout:
    """Nodes and edges of one graph as one element set: rows [0, N) nodes, N + e edge e.

    ``edge_index`` (2, E) long [source, target]; ``node_features`` F_n, ``edge_features`` F_e.
    """

    num_nodes: int
    edge_index: Tensor
    node_features: int
    edge_features: int

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_elements(self) -> int:
        return self.num_nodes + self.num_edges

    def edge_rows(self) -> Tensor:
        """(E,) element ids of the edges."""
        return torch.arange(self.num_edges, device=self.edge_index.device) + self.num_nodes

    def joint_input(self, x: Tensor, edge_attr: Tensor) -> Tensor:
        """Block input (N + E, F_n + F_e) from node features (N, F_n) and edge features (E, F_e)."""
        n, e, fn, fe = self.num_nodes, self.num_edges, self.node_features, self.edge_features
        if x.shape != (n, fn) or edge_attr.shape != (e, fe):
            raise ConfigError(
                f"expected node features ({n}, {fn}) and edge features ({e}, {fe}), got "
                f"{tuple(x.shape)} and {tuple(edge_attr.shape)}"
            )
        out = x.new_zeros(n + e, fn + fe)
        out[:n, :fn] = x
        out[n:, fn:] = edge_attr.to(x.dtype)
        return out

    def split_input(self, joint: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse of :meth:`joint_input`: node (N, F_n) and edge (E, F_e) features."""
        n, fn = self.num_nodes, self.node_features
        return joint[:n, :fn], joint[n:, fn:]


def trace_inputs(tr: Tracer, layout: EdgeLayout) -> tuple[int, int]:
    """Tensor ids of the node-feature columns (N + E, F_n) and edge-feature columns (N + E, F_e)
    of the joint input (pass-throughs with a column map: relevance goes back to those columns)."""
    x, fn, fe = tr.value(0), layout.node_features, layout.edge_features
    node_cols = torch.arange(fn, device=x.device)
    edge_cols = torch.arange(fn, fn + fe, device=x.device)
    a = tr.passthrough("node_input", 0, x[:, :fn], node_cols)
    b = tr.passthrough("edge_input", 0, x[:, fn:], edge_cols)
    return a, b


def trace_gather(tr: Tracer, name: str, u: int, layout: EdgeLayout, end: int) -> int:
    """Copy node rows onto edge rows: ``out[N + e] = u[edge_index[end, e]]`` (0 on node rows).

    ``end`` 0 gathers the source node, 1 the target. ``name`` should end in :data:`COPY`.
    """
    src = layout.edge_index[end]
    ones = tr.value(u).new_ones(layout.num_edges, 1)
    return tr.aggregate(name, u, src, layout.edge_rows(), ones)


def trace_scatter(tr: Tracer, name: str, u: int, layout: EdgeLayout, end: int) -> int:
    """Sum edge rows onto node rows: ``out[i] = sum_{e: edge_index[end, e] = i} u[N + e]``.

    ``end`` 1 sums the messages a node receives, 0 those it sends (0 on edge rows).
    """
    dst = layout.edge_index[end]
    ones = tr.value(u).new_ones(layout.num_edges, 1)
    return tr.aggregate(name, u, layout.edge_rows(), dst, ones)


def trace_sum(tr: Tracer, name: str, a: int, b: int) -> int:
    """``a + b`` (same width) as the Linear ``[I | I]`` on ``cat[a, b]`` (a residual connection)."""
    va, vb = tr.value(a), tr.value(b)
    if va.shape != vb.shape:
        raise ConfigError(f"{name}: cannot add {tuple(va.shape)} and {tuple(vb.shape)}")
    eye = torch.eye(va.shape[1], dtype=va.dtype, device=va.device)
    cat = tr.concat(f"{name}.input", [a, b])
    return tr.linear(name, cat, torch.cat([eye, eye], dim=1), None, va + vb)


def trace_edge_mlp(
    tr: Tracer, name: str, mlp: nn.Module, h: int, e: int, layout: EdgeLayout
) -> int:
    """``mlp(cat[h[src], h[dst], e])`` on the edge rows (the gathers are copies)."""
    src = trace_gather(tr, f"{name}.src{COPY}", h, layout, 0)
    dst = trace_gather(tr, f"{name}.dst{COPY}", h, layout, 1)
    return tr.sequential(name, tr.concat(f"{name}.input", [src, dst, e]), mlp)


def trace_select_edges(tr: Tracer, name: str, u: int, layout: EdgeLayout) -> int:
    """``u`` on the edge rows, 0 on the node rows (a copy; the output of an edge model)."""
    rows = layout.edge_rows()
    return tr.aggregate(name, u, rows, rows, tr.value(u).new_ones(layout.num_edges, 1))


def with_copies(composite: Composite) -> Composite:
    """``composite`` with LRP-0 on the copy ops (names ending in :data:`COPY`) in front."""
    return Composite([(f"*{COPY}", Epsilon(eps=0.0)), *composite.rules], composite.default)


def receptive_field(
    edge_index: Tensor, num_nodes: int, edges: Tensor, steps: int
) -> tuple[Tensor, Tensor]:
    """Node and edge masks (N,), (E,) of what the logits of ``edges`` depend on, for a network
    whose iteration updates each edge from its end nodes and each node from its incident edges
    (an interaction network; ``steps`` = its iterations).

    Start: the edges and their end nodes; each step adds every edge incident to a node in the
    set, then those edges' end nodes (one message-passing iteration). O(steps x E).
    """
    src, dst = edge_index
    nodes = torch.zeros(num_nodes, dtype=torch.bool, device=edge_index.device)
    keep = torch.zeros(edge_index.shape[1], dtype=torch.bool, device=edge_index.device)
    keep[edges] = True
    nodes[src[edges]] = True
    nodes[dst[edges]] = True
    for _ in range(steps):
        keep |= nodes[src] | nodes[dst]
        nodes[src[keep]] = True
        nodes[dst[keep]] = True
    return nodes, keep


@dataclass(frozen=True)
class Subgraph:
    """The part of a graph that some edges' logits depend on, renumbered from 0.

    ``nodes`` (N',) and ``edges`` (E',) the kept ids of the full graph, ``edge_index`` (2, E')
    the kept edges in the new node numbering, ``targets`` (T,) the explained edges' new ids.
    """

    nodes: Tensor
    edges: Tensor
    edge_index: Tensor
    targets: Tensor

    @classmethod
    def cut(
        cls, edge_index: Tensor, num_nodes: int, targets: Tensor, steps: int | None
    ) -> Subgraph:
        """The receptive field of ``targets`` after ``steps`` iterations; None keeps everything."""
        ei = edge_index.long()
        dev = ei.device
        if steps is None:
            return cls(torch.arange(num_nodes, device=dev), torch.arange(ei.shape[1], device=dev),
                       ei, targets)  # fmt: skip
        nodes, keep = receptive_field(ei, num_nodes, targets, steps)
        node_ids, edge_ids = nodes.nonzero()[:, 0], keep.nonzero()[:, 0]
        remap = torch.full((num_nodes,), -1, dtype=torch.long, device=dev)
        remap[node_ids] = torch.arange(len(node_ids), device=dev)
        local = torch.full((ei.shape[1],), -1, dtype=torch.long, device=dev)
        local[edge_ids] = torch.arange(len(edge_ids), device=dev)
        return cls(node_ids, edge_ids, remap[ei[:, edge_ids]], local[targets])


class EdgeModel(Protocol):
    """What :func:`explain_edges` needs of a model (an ``nn.Module``)."""

    def __call__(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor: ...

    def lrp_trace_edges(self, tr: Tracer, layout: EdgeLayout) -> int: ...


class _EdgeView(nn.Module):
    """LRP adapter of an edge model on one graph: joint input, output ``logit`` (N + E, 1)."""

    def __init__(self, model: nn.Module, layout: EdgeLayout) -> None:
        super().__init__()
        self.model = model
        self.layout = layout

    def lrp_trace(self, tr: Tracer, x: Tensor, batch: Tensor | None) -> dict[str, int]:
        trace = getattr(self.model, "lrp_trace_edges", None)
        if trace is None:
            raise ConfigError(
                f"{type(self.model).__name__} has no lrp_trace_edges(tracer, layout) method"
            )
        out: int = trace(tr, self.layout)
        return {"logit": out}

    def lrp_outputs(self, x: Tensor, batch: Tensor | None) -> dict[str, Tensor]:
        """The model's own logits on the edge rows, 0 on the node rows."""
        node_x, edge_attr = self.layout.split_input(x)
        logits: Tensor = self.model(node_x, self.layout.edge_index, edge_attr)
        return {"logit": torch.cat([logits.new_zeros(self.layout.num_nodes), logits])[:, None]}


@dataclass
class EdgeRelevance:
    """LRP relevance of T edge logits on the node (N, F_n) and edge (E, F_e) input features.

    Attributes:
        edges: (T,) explained edge ids.
        node_target, node_source: (P_n,) explained edge id and node id of each node pair.
        node_values: (P_n, F_n) relevance per node feature.
        edge_target, edge_source: (P_e,) explained edge id and source edge id of each edge pair.
        edge_values: (P_e, F_e) relevance per edge feature.
        explained: (T,) the explained logits; absorbed: (T,) the bias + epsilon share.
        num_nodes, num_edges: N, E.

    Conservation: ``per_target_total() + absorbed == explained`` up to round-off.
    """

    edges: Tensor
    node_target: Tensor
    node_source: Tensor
    node_values: Tensor
    edge_target: Tensor
    edge_source: Tensor
    edge_values: Tensor
    explained: Tensor
    absorbed: Tensor
    num_nodes: int
    num_edges: int

    @classmethod
    def from_elements(cls, rel: SparseRelevance, layout: EdgeLayout) -> EdgeRelevance:
        """Split the engine's result over N + E elements into its node and edge blocks."""
        n, fn = layout.num_nodes, layout.node_features
        on_node = rel.source < n
        tgt = rel.target - n
        return cls(
            rel.targets - n, tgt[on_node], rel.source[on_node], rel.values[on_node, :fn],
            tgt[~on_node], rel.source[~on_node] - n, rel.values[~on_node, fn:],
            rel.explained, rel.absorbed, n, layout.num_edges,
        )  # fmt: skip

    def lifted(self, sub: Subgraph, full: EdgeLayout) -> EdgeRelevance:
        """This result on ``sub`` with node and edge ids of the full graph ``full``."""
        return EdgeRelevance(
            sub.edges[self.edges], sub.edges[self.node_target], sub.nodes[self.node_source],
            self.node_values, sub.edges[self.edge_target], sub.edges[self.edge_source],
            self.edge_values, self.explained, self.absorbed, full.num_nodes, full.num_edges,
        )  # fmt: skip

    def _position(self, target: Tensor) -> Tensor:
        lookup = torch.full((self.num_edges,), -1, dtype=torch.long, device=target.device)
        lookup[self.edges] = torch.arange(len(self.edges), device=target.device)
        return lookup[target]

    def node_dense(self) -> Tensor:
        """(T, N, F_n) node relevance; row t belongs to ``edges[t]``."""
        out = self.node_values.new_zeros(len(self.edges), self.num_nodes, self.node_values.shape[1])
        out[self._position(self.node_target), self.node_source] = self.node_values
        return out

    def edge_dense(self) -> Tensor:
        """(T, E, F_e) edge relevance; row t belongs to ``edges[t]``."""
        out = self.edge_values.new_zeros(len(self.edges), self.num_edges, self.edge_values.shape[1])
        out[self._position(self.edge_target), self.edge_source] = self.edge_values
        return out

    def per_target_total(self) -> Tensor:
        """(T,) sum of all node and edge input relevance of each explained edge."""
        out = self.explained.new_zeros(len(self.edges))
        out.index_add_(0, self._position(self.node_target), self.node_values.sum(1))
        return out.index_add_(0, self._position(self.edge_target), self.edge_values.sum(1))

    def conservation_residual(self) -> Tensor:
        """(T,) ``sum R + absorbed - explained`` (0 up to round-off)."""
        return self.per_target_total() + self.absorbed - self.explained


def explain_edges(
    model: nn.Module,
    x: Tensor,
    edge_index: Tensor,
    edge_attr: Tensor,
    edges: Tensor | list[int],
    composite: Composite | Rule | str | None = None,
    *,
    chunk_size: int | None = None,
    check: bool = True,
    steps: int | None = None,
) -> EdgeRelevance:
    """LRP of the logits of ``edges`` (T,) of an edge model on one graph.

    Args:
        model: has ``lrp_trace_edges`` and returns (E,) logits from ``(x, edge_index,
            edge_attr)`` (see :class:`EdgeModel`); run in eval mode, its state restored.
        x: (N, F_n) node features; edge_index (2, E) [source, target]; edge_attr (E, F_e).
        edges: (T,) unique edge ids to explain, each separately.
        composite: rules per layer (LRP-epsilon, eps 1e-6, by default); copies get LRP-0.
        chunk_size: explained edges per chunk (None: automatic).
        check: compare the traced logits with the model's own (a drifting adapter fails).
        steps: cut the graph to the edges' receptive field after ``steps`` iterations first
            (:class:`Subgraph`; e.g. ``InteractionNetwork.iterations``; same result, less
            memory); None traces the whole graph.

    Returns:
        :class:`EdgeRelevance`; memory and time linear in N + E (sparse pairs per edge).
    """
    if x.dim() != 2 or edge_attr.dim() != 2 or edge_index.shape[0] != 2:
        raise ConfigError("explain_edges needs x (N, F_n), edge_index (2, E), edge_attr (E, F_e)")
    full = EdgeLayout(x.shape[0], edge_index.long(), x.shape[1], edge_attr.shape[1])
    targets = torch.as_tensor(edges, device=x.device).long().reshape(-1)
    if not len(targets):
        raise ConfigError("explain_edges needs at least one edge to explain")
    if int(targets.min()) < 0 or int(targets.max()) >= full.num_edges:
        raise ConfigError(f"edges to explain must be in [0, {full.num_edges})")
    if len(torch.unique(targets)) != len(targets):
        raise ConfigError("edges to explain must not repeat")
    if edge_attr.shape[0] != full.num_edges:
        raise ConfigError(
            f"expected edge features ({full.num_edges}, F_e), got {tuple(edge_attr.shape)}"
        )
    sub = Subgraph.cut(full.edge_index, full.num_nodes, targets, steps)
    layout = EdgeLayout(len(sub.nodes), sub.edge_index, full.node_features, full.edge_features)
    view = _EdgeView(model, layout)
    joint = layout.joint_input(x[sub.nodes], edge_attr[sub.edges])
    program = trace_model(view, joint, None, check=check)
    rel = propagate_many(
        program, [(program.outputs["logit"], 0)], sub.targets + layout.num_nodes,
        with_copies(as_composite(composite)), chunk_size, locality=False,
    )  # fmt: skip
    return EdgeRelevance.from_elements(rel.output(0), layout).lifted(sub, full)
