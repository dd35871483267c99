"""Sparse LRP through a recorded :class:`~.program.Program`, linear in the number of elements.

Relevance for all explained targets at once is a set of pairs ``(target t, element n)`` with a
value vector (P, D) at some tensor of the program; a pair exists only inside the target's
receptive field. Walking the program backwards:

- per-element ops (Linear, PassThrough, Concat) act on each pair with the activations of its
  element ``n`` (a Linear costs P x D_out x D_in);
- an :class:`~.program.Aggregate` expands ``(t, i)`` to ``(t, j)`` for every edge ``j -> i`` and
  merges duplicates, so the number of pairs per target grows at most by the in-degree (k);
- every rule is linear in the upper relevance once the forward pass is fixed, so the part of the
  network that depends on one element only (the *local prefix*: input, encoding, encoder, the
  first block's ``lin_h`` ...) is composed ONCE into a per-element matrix ``M_n`` (D, F) mapping
  relevance at that tensor straight to the F raw input columns, plus a vector ``L_n`` (D,) giving
  the share absorbed on the way. Pairs reaching the local prefix are contracted with ``M_n``,
  which costs P x D x F instead of pushing every pair through D x D layers.

Several output neurons are explained together (:func:`propagate_many`): every rule is linear in
the upper relevance and the pair sets depend only on the graph, so the values carry an output
axis (P, O, D) and the forward trace, the rule preparation, the local-prefix matrices and all the
index work (expansion, merging, grouping by element) are shared by the O outputs.

Targets are processed in chunks so peak memory stays bounded whatever N is; pairs that reach
the local prefix are buffered across chunks and contracted in batches, so each batch reads
every ``M_n`` once (one contraction per chunk would read them once per chunk: quadratic).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.program import Aggregate, Concat, Linear, Op, PassThrough, Program
from particlegraph.explain.lrp.rules import Composite, stabilize
from particlegraph.explain.lrp.sparse import MultiRelevance, SparseRelevance

#: Values one chunk may hold in its largest relevance tensor (8 MiB of float32 on CPU; the
#: int64 pair indices and temporaries of the expansion add several times that). Measured on
#: CPU: peak memory grows with the chunk while time does not improve (docs/explain.md).
CHUNK_BUDGET = 1 << 21
#: On a GPU bigger chunks keep kernels large; memory is plentiful.
CHUNK_BUDGET_CUDA = 1 << 25
#: A local-prefix buffer is contracted once it holds as many values as the per-element matrices
#: it reads (so matrix traffic never exceeds pair traffic), but at least FLUSH_MIN and at most
#: FLUSH_MAX values (64 MiB of float32).
FLUSH_MIN, FLUSH_MAX = 1 << 20, 1 << 24
#: With O outputs explained together the chunk budget is multiplied by min(O, this).
MULTI_BUDGET_MAX = 4
#: Elements contracted together (bounds the padded blocks and per-element matrices on CPU).
NODE_BATCH = 1024
#: Aggregations of a local tensor are composed (fan-out sinks) from this many outputs on: with
#: few outputs building their (C, k (F + 1)) matrices costs more than it saves (measured).
FANOUT_MIN_OUTPUTS = 4


@dataclass
class Pairs:
    """Relevance at one tensor: pair p = (target position ``t[p]`` in the targets array, element
    ``n[p]``) with values ``v`` (P, O, D), one row per explained output."""

    t: Tensor
    n: Tensor
    v: Tensor


@dataclass
class _Prepared:
    """Rule-modified weights of one op plus per-element ``1 / (z' + eps sign z')`` and leak share."""

    weight: Tensor  # Linear: (out, in); Aggregate: (E, C) sorted by destination
    inv: Tensor  # (N, out) 0 where the stabilised denominator is 0
    leak: Tensor  # (N, out) absorbed fraction of the relevance arriving there
    src: Tensor | None = None  # Aggregate only: (E,) sources sorted by destination
    rowptr: Tensor | None = None  # Aggregate only: (N + 1,) CSR offsets by destination
    degree: int | None = None  # Aggregate only: the common in-degree, if all elements share one


def _prepare(op: Op, program: Program, composite: Composite) -> _Prepared | None:
    values = program.values
    if isinstance(op, Linear):
        rule = composite.rule_for(op.name, op.kind)
        weight, bias = rule.modify(op.weight, op.bias)
        zw = values[op.input] @ weight.T  # (N, out)
        z = zw if bias is None else zw + bias
        den = stabilize(z, rule.eps)
        inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
        return _Prepared(weight, inv, 1.0 - zw * inv)
    if isinstance(op, Aggregate):
        rule = composite.rule_for(op.name, op.kind)
        weight, _ = rule.modify(op.weight, None)
        u = values[op.input]
        n = u.shape[0]
        zw = torch.zeros_like(u).index_add_(0, op.dst, weight * u[op.src])  # (N, C)
        den = stabilize(zw, rule.eps)
        inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
        order = torch.argsort(op.dst, stable=True)
        counts = torch.bincount(op.dst, minlength=n)
        rowptr = torch.zeros(n + 1, dtype=torch.long, device=u.device)
        rowptr[1:] = torch.cumsum(counts, 0)
        degree = int(counts[0]) if n and bool((counts == counts[0]).all()) else None
        return _Prepared(weight[order], inv, 1.0 - zw * inv, op.src[order], rowptr, degree)
    return None


def _coalesce(parts: Iterable[Pairs], num_nodes: int) -> Pairs:
    """Merge pair sets, summing duplicates; the result is sorted by (t, n)."""
    parts = list(parts)
    t = torch.cat([p.t for p in parts])
    n = torch.cat([p.n for p in parts])
    v = torch.cat([p.v for p in parts])
    key = t * num_nodes + n
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    out = torch.zeros(len(uniq), *v.shape[1:], dtype=v.dtype, device=v.device)
    out.index_add_(0, inverse, v)
    return Pairs(uniq // num_nodes, uniq % num_nodes, out)


def _expand(prep: _Prepared, pairs: Pairs, s: Tensor, u: Tensor) -> Pairs:
    """Relevance through an aggregation: (t, i) -> (t, j) for every edge j -> i."""
    assert prep.rowptr is not None and prep.src is not None
    start = prep.rowptr[pairs.n]
    if prep.degree is not None:  # every element has the same in-degree (kNN): no ragged indexing
        eid = start[:, None] + torch.arange(prep.degree, device=start.device)  # (P, k)
        j = prep.src[eid]
        wu = prep.weight[eid] * u[j]  # (P, k, C), shared by the O outputs
        v = wu[:, :, None, :] * s[:, None, :, :]  # (P, k, O, C)
        t = pairs.t[:, None].expand(-1, prep.degree)
        return Pairs(t.reshape(-1), j.reshape(-1), v.reshape(-1, *v.shape[2:]))
    deg = prep.rowptr[pairs.n + 1] - start  # (P,)
    rep = torch.repeat_interleave(torch.arange(len(deg), device=deg.device), deg)  # (Q,)
    first = torch.cumsum(deg, 0) - deg
    eid = start[rep] + torch.arange(len(rep), device=deg.device) - first[rep]
    j = prep.src[eid]
    v = (prep.weight[eid] * u[j])[:, None, :] * s[rep]  # (Q, O, C)
    return Pairs(pairs.t[rep], j, v)


def _backward(
    op: Op, prep: _Prepared | None, r: Pairs, program: Program
) -> tuple[list[tuple[int, Pairs]], Tensor]:
    """Relevance at the op's inputs and the per-pair absorbed amount (P, O)."""
    zero = torch.zeros(r.v.shape[:2], dtype=r.v.dtype, device=r.v.device)
    if isinstance(op, Linear):
        assert prep is not None
        a = program.values[op.input][r.n]  # (P, in)
        v_in = a[:, None, :] * ((r.v * prep.inv[r.n][:, None, :]) @ prep.weight)  # (P, O, in)
        return [(op.input, Pairs(r.t, r.n, v_in))], (r.v * prep.leak[r.n][:, None, :]).sum(2)
    if isinstance(op, PassThrough):
        if op.column_map is None:
            return [(op.input, r)], zero
        width = program.values[op.input].shape[1]
        v_in = torch.zeros(*r.v.shape[:2], width, dtype=r.v.dtype, device=r.v.device)
        v_in.index_add_(2, op.column_map, r.v)
        return [(op.input, Pairs(r.t, r.n, v_in))], zero
    if isinstance(op, Concat):
        out, lo = [], 0
        for i in op.inputs:
            hi = lo + program.values[i].shape[1]
            out.append((i, Pairs(r.t, r.n, r.v[:, :, lo:hi])))
            lo = hi
        return out, zero
    if isinstance(op, Aggregate):
        assert prep is not None
        s = r.v * prep.inv[r.n][:, None, :]
        expanded = _expand(prep, r, s, program.values[op.input])
        leak = (r.v * prep.leak[r.n][:, None, :]).sum(2)
        return [(op.input, _coalesce([expanded], program.num_nodes))], leak
    raise TypeError(f"unknown op {op!r}")  # pragma: no cover


def _compose_local(
    ops: list[Op],
    prepared: dict[int, _Prepared | None],
    local: set[int],
    keep: set[int],
    program: Program,
) -> dict[int, tuple[Tensor | None, Tensor]]:
    """Per-element ``(M (N, D, F + 1), L (N, D))`` for the local tensors in ``keep``.

    ``M[..., :F]`` maps relevance at the tensor to the raw inputs, ``L`` (also ``M[..., F]``) is
    the share absorbed below it. ``M`` None stands for the identity (the input itself).
    """
    x = program.values[0]
    n, f = x.shape
    mats: dict[int, tuple[Tensor | None, Tensor]] = {
        0: (None, torch.zeros(n, f, dtype=x.dtype, device=x.device))
    }
    local_ops = [op for op in ops if op.output in local]
    uses: dict[int, int] = {}
    for op in local_ops:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1

    def full(tid: int) -> Tensor:
        m = mats[tid][0]
        if m is None:
            return torch.eye(f, dtype=x.dtype, device=x.device).expand(n, f, f)
        return m

    for idx, op in enumerate(ops):
        if op.output not in local:
            continue
        if isinstance(op, Linear):
            prep = prepared[idx]
            assert prep is not None
            a = program.values[op.input]
            m_in, l_in = full(op.input), mats[op.input][1]
            d_in, d_out = a.shape[1], prep.weight.shape[0]
            scaled = (a[:, :, None] * m_in).permute(1, 0, 2).reshape(d_in, n * f)
            m_out = (prep.weight @ scaled).reshape(d_out, n, f).permute(1, 0, 2)
            m_out = prep.inv[:, :, None] * m_out
            l_out = prep.leak + prep.inv * ((a * l_in) @ prep.weight.T)
            mats[op.output] = (m_out.contiguous(), l_out)
        elif isinstance(op, PassThrough):
            m_pass, l_in = mats[op.input]
            if op.column_map is None:
                mats[op.output] = (m_pass, l_in)
            else:
                mats[op.output] = (full(op.input)[:, op.column_map, :], l_in[:, op.column_map])
        elif isinstance(op, Concat):
            m = torch.cat([full(i) for i in op.inputs], dim=1)
            mats[op.output] = (m, torch.cat([mats[i][1] for i in op.inputs], dim=1))
        for i in op.inputs:  # free what no later local op and no pair needs
            uses[i] -= 1
            if uses[i] == 0 and i not in keep and i != 0:
                mats.pop(i, None)
    # the absorbed share rides along as an extra output column: one contraction gives both
    out: dict[int, tuple[Tensor | None, Tensor]] = {}
    for k in keep:
        m_k, leak = mats[k]
        out[k] = (None, leak) if m_k is None else (torch.cat([m_k, leak[:, :, None]], dim=2), leak)
    return out


@dataclass
class _Sink:
    """Where pairs that reach the local prefix are contracted onto the raw inputs.

    ``matrix(nodes)`` gives the per-element matrices (b, D, C) for element ids ``nodes`` (b,)
    whose last column is the absorbed share; None stands for the identity (the raw input
    itself, ``leak`` (N, F) its absorbed share). With ``fanout = (src, rowptr, k)`` the C
    columns are k blocks of F + 1, block m belonging to source ``src[rowptr[n] + m]`` (a
    composed aggregation): the contraction then expands each pair (t, n) into k pairs.
    """

    matrix: Callable[[Tensor], Tensor] | None
    size: int  # values held by all the matrices (sets the flush threshold)
    leak: Tensor | None = None
    fanout: tuple[Tensor, Tensor, int] | None = None


def _contract(r: Pairs, sink: _Sink, num_features: int) -> tuple[Pairs, Tensor]:
    """Map pair relevance at a local tensor onto the raw inputs; also the absorbed share (P, O).

    ``[out[p], absorbed[p]] = v[p] @ M[n[p]]`` per output (M's last column is the absorbed
    share). Gathering a (D, F) matrix per pair is memory-bound, so pairs are grouped by element
    instead: elements with a similar number of pairs (power-of-two buckets) get their pair
    vectors packed into a zero-padded (elements, width, O, D) block and one batched matmul with
    their own ``M`` (each ``M`` built or read once per bucket). Padding wastes at most 2x.
    """
    if sink.matrix is None:
        assert sink.leak is not None
        return r, (r.v * sink.leak[r.n][:, None, :]).sum(2)
    num_pairs, num_out, d = len(r.n), r.v.shape[1], r.v.shape[2]
    out: Tensor | None = None
    if num_pairs:
        order = torch.argsort(r.n)
        ns = r.n[order]
        count = torch.bincount(ns)
        first = torch.cumsum(count, 0) - count
        pos = torch.arange(num_pairs, device=ns.device) - first[ns]  # rank within its element
        bucket = torch.ceil(torch.log2(count.clamp(min=1).to(torch.float64))).long()
        pair_bucket = bucket[ns]  # width 2^bucket
        for b in torch.unique(pair_bucket).tolist():
            in_bucket = (pair_bucket == b).nonzero()[:, 0]
            bucket_nodes = torch.unique(ns[in_bucket])
            width = 1 << b
            # at most NODE_BATCH elements at a time: bounds the padded block and the matrices
            for lo in range(0, len(bucket_nodes), NODE_BATCH):
                nodes = bucket_nodes[lo : lo + NODE_BATCH]
                if len(nodes) == len(bucket_nodes):
                    sel = in_bucket
                else:
                    keep = (ns[in_bucket] >= nodes[0]) & (ns[in_bucket] <= nodes[-1])
                    sel = in_bucket[keep]
                slot = torch.searchsorted(nodes, ns[sel])
                pad = torch.zeros(len(nodes), width, num_out, d, dtype=r.v.dtype,
                                  device=r.v.device)  # fmt: skip
                pad[slot, pos[sel]] = r.v[order[sel]]
                mat = sink.matrix(nodes)  # (elements, D, C)
                if out is None:
                    out = torch.empty(num_pairs, num_out, mat.shape[2], dtype=r.v.dtype,
                                      device=r.v.device)  # fmt: skip
                res = torch.bmm(pad.view(len(nodes), width * num_out, d), mat)  # (elements, w O, C)
                out[order[sel]] = res.view(len(nodes), width, num_out, -1)[slot, pos[sel]]
    if out is None:  # no pairs
        empty = torch.zeros(0, num_out, num_features, dtype=r.v.dtype, device=r.v.device)
        return Pairs(r.t[:0], r.n[:0], empty), empty[:, :, 0]
    if sink.fanout is None:
        return Pairs(r.t, r.n, out[:, :, :-1]), out[:, :, -1]
    src, rowptr, k = sink.fanout
    out = out.view(num_pairs, num_out, k, -1).transpose(1, 2).reshape(num_pairs * k, num_out, -1)
    sources = src[rowptr[r.n][:, None] + torch.arange(k, device=r.n.device)].reshape(-1)
    return Pairs(r.t.repeat_interleave(k), sources, out[:, :, :-1]), out[:, :, -1]


def _linear_sink(
    op: Linear, prep: _Prepared, parts: list[tuple[int, int, int]], mats: dict, program: Program
) -> _Sink:
    """Sink of a Linear whose input concatenates local tensors (``parts``: tensor, lo, hi):
    ``K_n = diag(inv_n) W[:, lo:hi] diag(a_n) M_n`` summed over the parts, (N, D_out, F + 1)."""
    k_mat: Tensor | None = None
    for tid, lo, hi in parts:
        a = program.values[tid]
        n, d_in = a.shape
        m = _full(mats[tid], a)
        cols = m.shape[2]
        scaled = (a[:, :, None] * m).permute(1, 0, 2).reshape(d_in, n * cols)
        part = (prep.weight[:, lo:hi] @ scaled).reshape(-1, n, cols).permute(1, 0, 2)
        k_mat = part if k_mat is None else k_mat + part
    assert k_mat is not None
    k_mat = (prep.inv[:, :, None] * k_mat).contiguous()
    return _Sink(_rows(k_mat), k_mat.numel())


def _rows(m: Tensor) -> Callable[[Tensor], Tensor]:
    """``nodes -> m[nodes]``: the matrices of a local tensor, read per batch of elements."""
    return lambda nodes: m[nodes]


def _full(mat: tuple[Tensor | None, Tensor], a: Tensor) -> Tensor:
    """(N, D, F + 1) matrix of a local tensor (the identity plus a zero leak column for None)."""
    m, leak = mat
    if m is not None:
        return m
    n, f = leak.shape
    eye = torch.eye(f, f + 1, dtype=a.dtype, device=a.device)
    return eye.expand(n, f, f + 1)


def _aggregate_sink(op: Aggregate, prep: _Prepared, mats: dict, program: Program) -> _Sink:
    """Sink of an aggregation of a local tensor u with a common in-degree k: element i's
    matrix (C, k (F + 1)) holds ``w_e u_j M_j`` for its in-edges e = j -> i (built per batch)."""
    assert prep.degree is not None and prep.src is not None and prep.rowptr is not None
    u = program.values[op.input]
    m_u = _full(mats[op.input], u)
    k, src, rowptr, weight = prep.degree, prep.src, prep.rowptr, prep.weight

    def matrix(nodes: Tensor) -> Tensor:
        eid = rowptr[nodes][:, None] + torch.arange(k, device=nodes.device)  # (b, k)
        j = src[eid]
        h = (weight[eid] * u[j])[..., None] * m_u[j]  # (b, k, C, F + 1)
        return h.permute(0, 2, 1, 3).reshape(len(nodes), u.shape[1], -1)

    return _Sink(matrix, u.shape[0] * k * m_u.shape[1] * m_u.shape[2], fanout=(src, rowptr, k))


def _locality_order(ops: list[Op], targets: Tensor, num_nodes: int) -> Tensor:
    """A permutation of target positions that keeps graph neighbours in the same chunk.

    Breadth-first order over the (undirected) edges of the aggregation nearest the output:
    chunks of neighbouring targets share most of their receptive fields, so their pairs touch
    fewer distinct elements (better cache use). Gives up (index order) after many components.
    """
    agg = next((op for op in reversed(ops) if isinstance(op, Aggregate)), None)
    if agg is None or len(targets) < 2:
        return torch.arange(len(targets), device=targets.device)
    a = torch.cat([agg.src, agg.dst])
    b = torch.cat([agg.dst, agg.src])
    order = torch.argsort(a)
    nbr = b[order]
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=a.device)
    rowptr[1:] = torch.cumsum(torch.bincount(a, minlength=num_nodes), 0)
    rank = torch.full((num_nodes,), -1, dtype=torch.long, device=a.device)
    done = 0
    for _ in range(4096):
        if done == num_nodes:
            break
        frontier = (rank < 0).nonzero()[:1, 0]  # first element not reached yet
        while len(frontier):
            rank[frontier] = torch.arange(done, done + len(frontier), device=a.device)
            done += len(frontier)
            start = rowptr[frontier]
            deg = rowptr[frontier + 1] - start
            rep = torch.repeat_interleave(torch.arange(len(deg), device=a.device), deg)
            eid = (
                start[rep]
                + torch.arange(len(rep), device=a.device)
                - (torch.cumsum(deg, 0) - deg)[rep]
            )
            cand = nbr[eid]
            cand = cand[rank[cand] < 0]
            # keep the first occurrence, in the order parents were ranked
            uniq, inv = torch.unique(cand, return_inverse=True)
            first = torch.full((len(uniq),), len(cand), dtype=torch.long, device=a.device)
            first = first.scatter_reduce(0, inv, torch.arange(len(cand), device=a.device), "amin")
            frontier = uniq[torch.argsort(first)]
    unreached = rank < 0
    rank[unreached] = torch.arange(done, done + int(unreached.sum()), device=a.device)
    return torch.argsort(rank[targets])


def _shortcuts(
    ops: list[Op],
    walk: list[tuple[int, Op]],
    prepared: dict[int, _Prepared | None],
    local: set[int],
    out_tensors: list[int],
    mats: dict[int, tuple[Tensor | None, Tensor]],
    sinks: dict[int, _Sink],
    program: Program,
    num_out: int,
) -> dict[int, tuple[int, list[tuple[int, int, int]]]]:
    """Ops next to the local prefix whose local side is composed too (adds their sinks).

    * an aggregation of a local tensor with a common in-degree: pairs at its output go straight
      to a fan-out sink (no expansion to D-wide vectors, no merge of D-wide pairs);
    * a Linear whose input concatenates local and non-local tensors (a GravNet ``lin_out`` of
      ``cat[h, aggregate]``): the local columns go to a sink with ``K_n`` (D_out x (F + 1)),
      only the non-local columns are propagated pair by pair.

    Returns ``{walk index: (sink key, non-local concat parts (tensor, lo, hi))}``.
    """
    producer = {op.output: op for op in ops}
    uses: dict[int, int] = {}
    for op in ops:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1
    plans: dict[int, tuple[int, list[tuple[int, int, int]]]] = {}
    for idx, op in walk:
        prep = prepared[idx]
        key = -(idx + 1)
        if isinstance(op, Aggregate) and op.input in local and prep is not None:
            if prep.degree is None or op.input in out_tensors or num_out < FANOUT_MIN_OUTPUTS:
                continue
            sinks[key] = _aggregate_sink(op, prep, mats, program)
            plans[idx] = (key, [])
        elif isinstance(op, Linear) and prep is not None:
            cat = producer.get(op.input)
            if not isinstance(cat, Concat) or uses.get(op.input) != 1 or op.input in out_tensors:
                continue
            mine: list[tuple[int, int, int]] = []
            other: list[tuple[int, int, int]] = []
            lo = 0
            for i in cat.inputs:
                hi = lo + program.values[i].shape[1]
                (mine if i in local and i in mats else other).append((i, lo, hi))
                lo = hi
            if mine and len({i for i, _, _ in mine}) == len(mine):
                sinks[key] = _linear_sink(op, prep, mine, mats, program)
                plans[idx] = (key, other)
    return plans


def _backward_shortcut(
    op: Op,
    prep: _Prepared | None,
    r: Pairs,
    program: Program,
    key: int,
    other: list[tuple[int, int, int]],
) -> tuple[list[tuple[int, Pairs]], Tensor]:
    """:func:`_backward` for an op of :func:`_shortcuts`: the local side goes to sink ``key``."""
    assert prep is not None
    inv = prep.inv[r.n][:, None, :]
    leak = (r.v * prep.leak[r.n][:, None, :]).sum(2)
    if isinstance(op, Aggregate):
        return [(key, Pairs(r.t, r.n, r.v * inv))], leak
    scaled = r.v * inv
    ins = [(key, r)]  # K_n already holds 1 / z
    for i, lo, hi in other:
        a = program.values[i][r.n]  # (P, d_i)
        ins.append((i, Pairs(r.t, r.n, a[:, None, :] * (scaled @ prep.weight[:, lo:hi]))))
    return ins, leak


def _auto_chunk(
    ops: list[Op], outputs: Sequence[int], program: Program, num_targets: int, num_out: int
) -> int:
    """Targets per chunk so that the widest relevance tensor stays near :data:`CHUNK_BUDGET`.

    The fan-out of a tensor bounds its pairs per target: the product of the largest in-degrees
    of the aggregations between it and the output. With O outputs a pair holds O vectors; the
    budget grows with O up to :data:`MULTI_BUDGET_MAX` times, so chunks stay large enough that
    the per-chunk overhead does not grow with O (peak memory grows instead, measured in
    docs/benchmarks.md).
    """
    fan = dict.fromkeys(outputs, 1)
    for op in reversed(ops):
        if op.output not in fan:
            continue
        grow = 1
        if isinstance(op, Aggregate):
            grow = (
                int(torch.bincount(op.dst, minlength=program.num_nodes).max().item())
                if len(op.dst)
                else 1
            )
        for i in op.inputs:
            fan[i] = max(fan.get(i, 0), fan[op.output] * grow)
    per_target = max(fan[t] * program.values[t].shape[1] for t in fan) * num_out
    budget = CHUNK_BUDGET_CUDA if program.values[0].is_cuda else CHUNK_BUDGET
    budget *= min(num_out, MULTI_BUDGET_MAX)
    return int(max(1, min(num_targets, budget // max(per_target, 1))))


def propagate(
    program: Program,
    output: int,
    index: int,
    targets: Tensor,
    composite: Composite,
    chunk_size: int | None = None,
    compose: bool = True,
    record_layers: bool = False,
    locality: bool = True,
) -> SparseRelevance:
    """Explain column ``index`` of tensor ``output`` at every element in ``targets`` (T,).

    The one-output case of :func:`propagate_many` (same arguments, one ``(output, index)``).

    Returns:
        :class:`SparseRelevance` with F = ``program.values[0].shape[1]`` feature columns.
    """
    multi = propagate_many(
        program, [(output, index)], targets, composite, chunk_size,
        compose=compose, record_layers=record_layers, locality=locality,
    )  # fmt: skip
    return multi.output(0)


def propagate_many(
    program: Program,
    heads: Sequence[tuple[int, int]],
    targets: Tensor,
    composite: Composite,
    chunk_size: int | None = None,
    *,
    compose: bool = True,
    record_layers: bool = False,
    locality: bool = True,
) -> MultiRelevance:
    """Explain O output neurons at every element in ``targets`` (T,) in one pass.

    Args:
        program: the recorded forward pass (see :mod:`.models` for adapters).
        heads: O pairs ``(tensor id, column)``, e.g. ``(program.outputs["class"], 2)``; they may
            sit on different output tensors.
        targets: (T,) unique element ids.
        composite: rule per layer.
        chunk_size: targets per chunk; None picks one from the receptive-field size and O.
        compose: compose the per-element prefix into matrices (fast); False walks every op
            pair by pair (slower, but fills ``layers`` for every op).
        record_layers: fill :attr:`MultiRelevance.layers` with a per-op balance (T, O, 3).
        locality: process targets in breadth-first graph order (same result, better cache use).

    Returns:
        :class:`MultiRelevance` with values (P, O, F); ``output(o)`` equals the one-output result
        of ``heads[o]`` up to float round-off (the pair set is the union over the outputs).
    """
    heads = [(int(t), int(c)) for t, c in heads]
    if not heads:
        raise ConfigError("propagate_many needs at least one (output tensor, column)")
    values = program.values
    num_nodes, num_features = values[0].shape
    dtype, device = values[0].dtype, values[0].device
    num_out = len(heads)
    out_tensors = list(dict.fromkeys(t for t, _ in heads))
    needed: set[int] = set().union(*(program.ancestors(t) for t in out_tensors))
    ops = [op for op in program.ops if op.output in needed]
    prepared = {i: _prepare(op, program, composite) for i, op in enumerate(ops)}
    local = {0}
    if compose:
        for op in ops:
            if not isinstance(op, Aggregate) and all(i in local for i in op.inputs):
                local.add(op.output)
    frontier = {i for op in ops if op.output not in local for i in op.inputs if i in local}
    frontier |= {t for t in out_tensors if t in local}
    mats = _compose_local(ops, prepared, local, frontier, program)
    walk = [(i, op) for i, op in enumerate(ops) if op.output not in local][::-1]
    sinks: dict[int, _Sink] = {}
    for tid in frontier:
        m_tid, leak_tid = mats[tid]
        sinks[tid] = (
            _Sink(None, 0, leak=leak_tid) if m_tid is None else _Sink(_rows(m_tid), m_tid.numel())
        )
    shortcuts = _shortcuts(ops, walk, prepared, local, out_tensors, mats, sinks, program, num_out)
    if record_layers:  # the per-op balance needs every op walked pair by pair
        shortcuts = {}
    layer_names: dict[int, str] = {}
    for i, op in enumerate(ops):  # op names are unique in adapters; disambiguate if not
        layer_names[i] = op.name if op.name not in layer_names.values() else f"{op.name}#{i}"

    targets = targets.to(device=device, dtype=torch.long)
    num_targets = len(targets)
    chunk = chunk_size or _auto_chunk(ops, out_tensors, program, num_targets, num_out)
    if chunk < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    explained = torch.stack([values[t][targets, c] for t, c in heads], dim=1)  # (T, O)

    absorbed = torch.zeros(num_targets, num_out, dtype=dtype, device=device)
    layers = {
        layer_names[i]: torch.zeros(num_targets, num_out, 3, dtype=dtype, device=device)
        for i, _ in walk
    }
    # Pairs reaching the local prefix wait in per-tensor buffers and are contracted in batches
    # that span chunks: each batch reads every element's matrix M_n once, so the matrix traffic
    # does not grow with the number of chunks (it would with one contraction per chunk).
    buffers: dict[int, list[Pairs]] = {tid: [] for tid in sinks}
    buffered = dict.fromkeys(sinks, 0)
    flush_at: dict[int, int] = {}
    for tid, sink in sinks.items():
        cpu_at = min(FLUSH_MAX, max(FLUSH_MIN, sink.size))
        flush_at[tid] = CHUNK_BUDGET_CUDA if device.type == "cuda" else cpu_at
    results: list[Pairs] = []

    def flush(tid: int) -> None:
        if not buffers[tid]:
            return
        parts = buffers[tid]
        r = (
            parts[0]
            if len(parts) == 1
            else Pairs(*(torch.cat(x) for x in zip(*((p.t, p.n, p.v) for p in parts), strict=True)))
        )
        buffers[tid], buffered[tid] = [], 0
        done, leak = _contract(r, sinks[tid], num_features)
        absorbed.index_add_(0, done.t, leak)
        if sinks[tid].fanout is not None:  # k pairs per pair: merge duplicates now
            done = _coalesce([done], num_nodes)
        results.append(done)

    def deliver(tid: int, pairs: Pairs, pending: dict[int, list[Pairs]]) -> None:
        if tid in sinks:
            buffers[tid].append(pairs)
            buffered[tid] += pairs.v.numel()
            if buffered[tid] >= flush_at[tid]:
                flush(tid)
        else:
            pending.setdefault(tid, []).append(pairs)

    perm = _locality_order(ops, targets, num_nodes) if locality else None
    for lo in range(0, num_targets, chunk):
        if perm is None:
            pos = torch.arange(lo, min(lo + chunk, num_targets), device=device)
        else:
            pos = perm[lo : lo + chunk]  # positions of the targets in this chunk
        tc = targets[pos]
        pending: dict[int, list[Pairs]] = {}
        for tid in out_tensors:  # one start vector per output, zero rows for the others
            start_v = torch.zeros(
                len(tc), num_out, values[tid].shape[1], dtype=dtype, device=device
            )
            for o, (t_o, c_o) in enumerate(heads):
                if t_o == tid:
                    start_v[:, o, c_o] = values[tid][tc, c_o]
            deliver(tid, Pairs(pos, tc, start_v), pending)
        for idx, op in walk:
            if op.output not in pending:
                continue
            parts = pending.pop(op.output)
            r = parts[0] if len(parts) == 1 else _coalesce(parts, num_nodes)
            if idx in shortcuts:
                ins, leak = _backward_shortcut(op, prepared[idx], r, program, *shortcuts[idx])
            else:
                ins, leak = _backward(op, prepared[idx], r, program)
            absorbed.index_add_(0, r.t, leak)
            if record_layers:
                bal = layers[layer_names[idx]]
                bal[:, :, 0].index_add_(0, r.t, r.v.sum(2))
                for _, p in ins:
                    bal[:, :, 1].index_add_(0, p.t, p.v.sum(2))
                bal[:, :, 2].index_add_(0, r.t, leak)
            for tid, p in ins:
                deliver(tid, p, pending)
        if pending:  # pragma: no cover - every non-local tensor is produced by a walked op
            raise RuntimeError(f"LRP left relevance at tensors {sorted(pending)}")
    for tid in sinks:
        flush(tid)

    if results:
        final = _coalesce(results, num_nodes)  # sorted by (target position, source)
    else:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        final = Pairs(
            empty, empty, torch.zeros(0, num_out, num_features, dtype=dtype, device=device)
        )
    return MultiRelevance(
        target=targets[final.t],
        source=final.n,
        values=final.v,
        targets=targets,
        explained=explained,
        absorbed=absorbed,
        num_elements=int(num_nodes),
        layers=layers if record_layers else None,
    )
