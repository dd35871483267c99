"""Memory-lean LRP of edge logits of an :class:`~particlegraph.nn.interaction.InteractionNetwork`.

The engine's path (:func:`particlegraph.explain.lrp.explain_edges` on
:meth:`InteractionNetwork.lrp_trace_edges`) records every intermediate tensor over all N + E
elements, with the rules' denominators: 18,300 values per element at width 48 and 8 iterations,
12.6 GB in float64 for a pile-up-free tracking event (4,511 hits, 81,403 edges).
This walker computes the same relevance (same rules, same op names for the composite, same
conventions: gathers are copies, residuals ``[I | I]`` sums, the two message sums aggregations)
layer by layer with the forward pass checkpointed per iteration:

- the graph is first cut to the explained edges' receptive field (``receptive_field``:
  ``iterations`` steps of "incident edges, then their end nodes"), which is exact: every value
  that the logits depend on depends only on inputs inside it;
- only the node and edge states of each iteration are kept (N + E) x H; an iteration's MLP
  internals are recomputed when the walk reaches it, and only on the rows that carry relevance;
- relevance is held as (T, N, H) and (T, E, H) for T explained edges: linear in the event size,
  never N x N or E x E.

Each rule acts on ``(input, weight, bias)`` exactly as :mod:`particlegraph.explain.lrp.pairs`
does (sign-aware gamma and z+ included); the absorbed share is computed from the rules'
denominators, independently of the relevance passed down, so conservation is a real check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.edge_elements import (
    EdgeRelevance,
    Subgraph,
    with_copies,
)
from particlegraph.explain.lrp.pairs import _terms
from particlegraph.explain.lrp.rules import Composite, Epsilon, Rule, as_composite, stabilize
from particlegraph.nn.interaction import InteractionNetwork, edge_mlp


def linear_lrp(
    a: Tensor, weight: Tensor, bias: Tensor | None, r: Tensor, rule: Rule
) -> tuple[Tensor, Tensor]:
    """One rule through ``out = a W^T + b``: relevance (T, M, in) at ``a`` (M, in) from ``r``
    (T, M, out), and the absorbed share (T,) from the denominators (bias + stabiliser)."""
    w, b = rule.modify(weight, bias)
    wn = rule.modify_negative(weight)
    flip = None
    if rule.mirror and wn is not None:
        z0 = a @ weight.T if bias is None else a @ weight.T + bias
        flip = z0 < 0
        if b is not None and bias is not None:
            b_neg = rule.modify_negative(bias)
            assert b_neg is not None
            b = torch.where(flip, b_neg, b)
    zw: Tensor | int
    if wn is None:  # a linear rule (epsilon): one product, no sign split
        zw = a @ w.T
    else:
        ones = torch.ones(a.shape[0], weight.shape[0], dtype=a.dtype, device=a.device)
        zw = sum(ap @ wt.T * sf for ap, sf, wt in _terms(w, wn, a, ones, flip))
    assert isinstance(zw, Tensor)
    den = stabilize(zw if b is None else zw + b, rule.eps)
    inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
    s = r * inv
    fl = None if flip is None else flip[None]
    r_in = sum(ap * (sf @ wt) for ap, sf, wt in _terms(w, wn, a[None], s, fl))
    assert isinstance(r_in, Tensor)
    return r_in, (r * (1.0 - zw * inv)).sum((1, 2))


def sum_lrp(u: Tensor, index: Tensor, r: Tensor, rule: Rule) -> tuple[Tensor, Tensor]:
    """``out[i] = sum_{e: index_e = i} u_e`` (unit weights, per channel): relevance (T, E, C) at
    ``u`` (E, C) from ``r`` (T, N, C), and the absorbed share (T,)."""
    one = u.new_ones(1, 1)
    w, _ = rule.modify(one, None)
    wn = rule.modify_negative(one)
    flip = None
    if rule.mirror and wn is not None:
        flip = torch.zeros(r.shape[1:], dtype=u.dtype, device=u.device).index_add_(0, index, u) < 0
    ones = torch.ones_like(u)
    e_flip = None if flip is None else flip[index]
    msg = sum(wt * ap * sf for ap, sf, wt in _terms(w, wn, u, ones, e_flip))
    assert isinstance(msg, Tensor)
    zw = torch.zeros(r.shape[1:], dtype=u.dtype, device=u.device).index_add_(0, index, msg)
    den = stabilize(zw, rule.eps)
    inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
    s = (r * inv)[:, index]  # (T, E, C)
    fl = None if e_flip is None else e_flip[None]
    r_in = sum(wt * ap * sf for ap, sf, wt in _terms(w, wn, u[None], s, fl))
    assert isinstance(r_in, Tensor)
    return r_in, (r * (1.0 - zw * inv)).sum((1, 2))


#: Rows per block of the per-row layers (bounds the temporaries: 32k rows x 144 columns).
ROW_CHUNK = 1 << 15


def _active(r: Tensor) -> Tensor:
    """Rows (M,) of ``r`` (T, M, D) that hold relevance for some target."""
    return (r != 0).any(dim=2).any(dim=0).nonzero()[:, 0]


@dataclass
class _Walk:
    """Relevance bookkeeping: the composite (LRP-0 on copies) and the absorbed share (T,)."""

    composite: Composite
    absorbed: Tensor

    def mlp(
        self, name: str, mlp: nn.Module, a: Tensor | Callable[[Tensor], Tensor], r: Tensor
    ) -> Tensor:
        """Relevance at the input (T, M, in) of ``mlp`` (Linear / ReLU layers, as traced under
        the names ``name.i``) on the rows of its input that hold relevance in r (T, M, out).

        ``a``: the input (M, in), or a function giving its rows ``rows`` (built only there).
        """
        out = r.new_zeros(r.shape[0], r.shape[1], 0)
        active = _active(r)
        for lo in range(0, len(active), ROW_CHUNK):  # bounded temporaries whatever E is
            rows = active[lo : lo + ROW_CHUNK]
            rr = self._mlp_rows(name, mlp, a(rows) if callable(a) else a[rows], r[:, rows])
            if out.shape[2] == 0:
                out = r.new_zeros(r.shape[0], r.shape[1], rr.shape[2])
            out[:, rows] = rr
        if out.shape[2] == 0:  # no relevance at all: the input width from the first Linear
            first = next(m for m in mlp.children() if isinstance(m, nn.Linear))
            out = r.new_zeros(r.shape[0], r.shape[1], first.in_features)
        return out

    def _mlp_rows(self, name: str, mlp: nn.Module, h: Tensor, r: Tensor) -> Tensor:
        """:meth:`mlp` on input rows h (M, in) with their relevance r (T, M, out)."""
        inputs: list[tuple[int, nn.Linear, Tensor]] = []
        for i, layer in enumerate(mlp.children()):
            if isinstance(layer, nn.Linear):
                inputs.append((i, layer, h))
            elif not isinstance(layer, nn.ReLU | nn.Identity | nn.Dropout):
                raise ConfigError(f"{name}: LRP walker supports Linear and ReLU, got {layer}")
            h = layer(h)
        for i, lin, x in reversed(inputs):
            rule = self.composite.rule_for(f"{name}.{i}", "linear")
            r, leak = linear_lrp(x, lin.weight, lin.bias, r, rule)
            self.absorbed += leak
        return r

    def add(self, name: str, a: Tensor, b: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """Residual ``a + b`` as the Linear ``[I | I]`` (as traced): shares of r (T, M, D)."""
        rule = self.composite.rule_for(name, "linear")
        ra, rb = torch.zeros_like(r), torch.zeros_like(r)
        active = _active(r)
        for lo in range(0, len(active), ROW_CHUNK):
            rows = active[lo : lo + ROW_CHUNK]
            ra[:, rows], rb[:, rows] = self._add_rows(a[rows], b[rows], r[:, rows], rule)
        return ra, rb

    def _add_rows(self, a: Tensor, b: Tensor, r: Tensor, rule: Rule) -> tuple[Tensor, Tensor]:
        if type(rule) is Epsilon:  # the same arithmetic without the (M, 2D) x (2D, D) products
            z = a + b
            den = stabilize(z, rule.eps)
            inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
            self.absorbed += (r * (1.0 - z * inv)).sum((1, 2))
            s = r * inv
            return a * s, b * s
        d = a.shape[1]
        eye = torch.eye(d, dtype=a.dtype, device=a.device)
        rr, leak = linear_lrp(torch.cat([a, b], dim=1), torch.cat([eye, eye], dim=1), None, r, rule)
        self.absorbed += leak
        return rr[..., :d], rr[..., d:]

    def scatter(self, name: str, u: Tensor, index: Tensor, r: Tensor) -> Tensor:
        rr, leak = sum_lrp(u, index, r, self.composite.rule_for(name, "aggregation"))
        self.absorbed += leak
        return rr


def _states(
    net: InteractionNetwork, x: Tensor, ei: Tensor, ea: Tensor
) -> list[tuple[Tensor, Tensor]]:
    """Node and edge states (h_k, e_k) for k = 0 .. iterations (the checkpoints of the walk)."""
    states = [(net.node_encoder(x), net.edge_encoder(ea))]
    for _ in range(net.iterations):
        states.append(net.interact(*states[-1][:1], ei, states[-1][1]))
    return states


def _edge_input(h: Tensor, ei: Tensor, e: Tensor) -> Callable[[Tensor], Tensor]:
    """Rows ``rows`` of ``cat[h[src], h[dst], e]`` (the edge MLPs' input), built on demand."""
    return lambda rows: torch.cat([h[ei[0, rows]], h[ei[1, rows]], e[rows]], dim=1)


def _gathered(r: Tensor, ei: Tensor, num_nodes: int, hidden: int) -> Tensor:
    """Relevance at ``cat[h[src], h[dst], e]`` (T, E, 3H) back onto h (T, N, H) (copies)."""
    out = r.new_zeros(r.shape[0], num_nodes, hidden)
    out.index_add_(1, ei[0], r[..., :hidden])
    return out.index_add_(1, ei[1], r[..., hidden : 2 * hidden])


def _walk_iteration(
    net: InteractionNetwork, walk: _Walk, k: int, state: tuple[Tensor, Tensor], ei: Tensor,
    r_h: Tensor, r_e: Tensor,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Relevance at (h_{k}, e_{k}) from that at the next iteration's states (recomputed)."""
    h0, e0 = state
    hid, n = h0.shape[1], h0.shape[0]
    m = edge_mlp(net.edge_block, h0, ei, e0)  # (E, H) without the (E, 3H) concatenation
    e1 = e0 + m
    inc = h0.new_zeros(n, hid).index_add_(0, ei[1], e1)
    out = h0.new_zeros(n, hid).index_add_(0, ei[0], e1)
    node_in = torch.cat([h0, inc, out], dim=1)
    u = net.node_block(node_in)
    r_h0, r_u = walk.add(f"iter{k}.node_residual", h0, u, r_h)
    r_node = walk.mlp(f"iter{k}.node_block", net.node_block, node_in, r_u)
    r_h0 = r_h0 + r_node[..., :hid]
    r_e1 = r_e + walk.scatter(f"iter{k}.incoming", e1, ei[1], r_node[..., hid : 2 * hid])
    r_e1 = r_e1 + walk.scatter(f"iter{k}.outgoing", e1, ei[0], r_node[..., 2 * hid :])
    r_e0, r_m = walk.add(f"iter{k}.edge_residual", e0, m, r_e1)
    r_cat = walk.mlp(f"iter{k}.edge_block", net.edge_block, _edge_input(h0, ei, e0), r_m)
    return r_h0 + _gathered(r_cat, ei, n, hid), r_e0 + r_cat[..., 2 * hid :]


def _walk(
    net: InteractionNetwork, x: Tensor, ei: Tensor, ea: Tensor, targets: Tensor, comp: Composite
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(node relevance (T, N, F_n), edge relevance (T, E, F_e), logits (T,), absorbed (T,))."""
    states = _states(net, x, ei, ea)
    h, e = states.pop()  # each state is dropped once the walk has passed it
    t = len(targets)
    walk = _Walk(comp, x.new_zeros(t))
    dec_in = _edge_input(h, ei, e)
    logits = net.decoder(dec_in(targets))[:, 0]
    r = x.new_zeros(t, ei.shape[1], 1)
    r[torch.arange(t), targets, 0] = logits
    r_cat = walk.mlp("decoder", net.decoder, dec_in, r)
    r_h, r_e = _gathered(r_cat, ei, x.shape[0], h.shape[1]), r_cat[..., 2 * h.shape[1] :]
    for k in reversed(range(net.iterations)):
        r_h, r_e = _walk_iteration(net, walk, k, states.pop(), ei, r_h, r_e)
    r_x = walk.mlp("node_encoder", net.node_encoder, x, r_h)
    r_ea = walk.mlp("edge_encoder", net.edge_encoder, ea, r_e)
    return r_x, r_ea, logits, walk.absorbed


def _to_pairs(dense: Tensor, edges: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(target edge ids, source ids, values) of the non-zero rows of dense (T, M, F)."""
    t, m = (dense != 0).any(dim=2).nonzero(as_tuple=True)
    return edges[t], m, dense[t, m]


@torch.no_grad()
def explain_interaction(
    net: InteractionNetwork,
    x: Tensor,
    edge_index: Tensor,
    edge_attr: Tensor,
    edges: Tensor | list[int],
    composite: Composite | Rule | str | None = None,
    *,
    cut: bool = True,
) -> EdgeRelevance:
    """LRP of the logits of ``edges`` (T,) of ``net`` on one graph, linear in N + E.

    Args and result as in :func:`particlegraph.explain.lrp.explain_edges` (which it equals up
    to round-off); ``cut`` restricts the work to the receptive field first (same result).
    The network runs in eval mode; its training flag is restored.
    """
    targets = torch.as_tensor(edges, device=x.device).long().reshape(-1)
    n, e_num = x.shape[0], edge_index.shape[1]
    if not len(targets) or int(targets.min()) < 0 or int(targets.max()) >= e_num:
        raise ConfigError(f"edges to explain must be given and lie in [0, {e_num})")
    if len(torch.unique(targets)) != len(targets):
        raise ConfigError("edges to explain must not repeat")
    if edge_attr.shape[0] != e_num or edge_index.shape[0] != 2:
        raise ConfigError(f"expected edge_index (2, E) and edge_attr (E, F_e), got "
                          f"{tuple(edge_index.shape)} and {tuple(edge_attr.shape)}")  # fmt: skip
    sub = Subgraph.cut(edge_index, n, targets, net.iterations if cut else None)
    was_training = net.training
    net.eval()
    try:
        comp = with_copies(as_composite(composite))
        r_x, r_ea, logits, absorbed = _walk(
            net, x[sub.nodes], sub.edge_index, edge_attr[sub.edges], sub.targets, comp
        )
    finally:
        net.train(was_training)
    nt, ns, nv = _to_pairs(r_x, targets)
    et, es, ev = _to_pairs(r_ea, targets)
    return EdgeRelevance(
        targets, nt, sub.nodes[ns], nv, et, sub.edges[es], ev, logits, absorbed, n, e_num
    )
