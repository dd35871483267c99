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

Targets are processed in chunks so peak memory stays bounded whatever N is; pairs that reach
the local prefix are buffered across chunks and contracted in batches, so each batch reads
every ``M_n`` once (one contraction per chunk would read them once per chunk: quadratic).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.program import Aggregate, Concat, Linear, Op, PassThrough, Program
from particlegraph.explain.lrp.rules import Composite, stabilize
from particlegraph.explain.lrp.sparse import SparseRelevance

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


@dataclass
class Pairs:
    """Relevance at one tensor: pair p = (target position ``t[p]`` in the targets array, element
    ``n[p]``) with values ``v`` (P, D)."""

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
    weight_neg: Tensor | None = None  # like ``weight``, for negative inputs (sign-aware rules)
    flip: Tensor | None = None  # (N, out) bool: z < 0 where a mirrored rule swaps the weights


def _terms(
    w: Tensor, wn: Tensor | None, a: Tensor, s: Tensor, flip: Tensor | None
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """``(input part, output factor, weight)`` triples whose sum is the rule's contribution map.

    ``w``/``wn`` the rule's weights for non-negative / negative inputs (``wn`` None: linear
    rule), ``a`` the inputs, ``s`` a factor on the outputs, ``flip`` the outputs where a mirrored
    rule swaps the two weights (or None). Epsilon: ``[(a, s, W)]``; sign-aware:
    ``[(a+, s, W'), (a-, s, W'-)]``; mirrored: ``a+`` and ``a-`` swap weights where ``flip``.
    """
    if wn is None:
        return [(a, s, w)]
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    if flip is None:
        return [(pos, s, w), (neg, s, wn)]
    s_neg = torch.where(flip, s, torch.zeros_like(s))
    s_pos = s - s_neg
    return [(pos, s_pos, w), (neg, s_pos, wn), (pos, s_neg, wn), (neg, s_neg, w)]


def _prepare(op: Op, program: Program, composite: Composite) -> _Prepared | None:
    values = program.values
    if isinstance(op, Linear):
        rule = composite.rule_for(op.name, op.kind)
        weight, bias = rule.modify(op.weight, op.bias)
        weight_neg = rule.modify_negative(op.weight)
        a = values[op.input]
        flip = None
        if rule.mirror and weight_neg is not None:
            z0 = a @ op.weight.T if op.bias is None else a @ op.weight.T + op.bias
            flip = z0 < 0
            if bias is not None:
                bias_neg = None if op.bias is None else rule.modify_negative(op.bias)
                assert bias_neg is not None
                bias = torch.where(flip, bias_neg, bias)
        ones = torch.ones(a.shape[0], weight.shape[0], dtype=a.dtype, device=a.device)
        zw = sum(ap @ w.T * sf for ap, sf, w in _terms(weight, weight_neg, a, ones, flip))
        assert isinstance(zw, Tensor)  # (N, out)
        z = zw if bias is None else zw + bias
        den = stabilize(z, rule.eps)
        inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
        return _Prepared(weight, inv, 1.0 - zw * inv, weight_neg=weight_neg, flip=flip)
    if isinstance(op, Aggregate):
        rule = composite.rule_for(op.name, op.kind)
        weight, _ = rule.modify(op.weight, None)
        weight_neg = rule.modify_negative(op.weight)
        u = values[op.input]
        n = u.shape[0]
        us = u[op.src]
        flip = None
        if rule.mirror and weight_neg is not None:
            flip = torch.zeros_like(u).index_add_(0, op.dst, op.weight * us) < 0  # (N, C)
        edge_flip = None if flip is None else flip[op.dst]
        ones = torch.ones_like(us)
        msg = sum(w * ap * sf for ap, sf, w in _terms(weight, weight_neg, us, ones, edge_flip))
        assert isinstance(msg, Tensor)  # (E, C)
        zw = torch.zeros_like(u).index_add_(0, op.dst, msg)  # (N, C)
        den = stabilize(zw, rule.eps)
        inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
        order = torch.argsort(op.dst, stable=True)
        counts = torch.bincount(op.dst, minlength=n)
        rowptr = torch.zeros(n + 1, dtype=torch.long, device=u.device)
        rowptr[1:] = torch.cumsum(counts, 0)
        degree = int(counts[0]) if n and bool((counts == counts[0]).all()) else None
        neg = None if weight_neg is None else weight_neg[order]
        return _Prepared(
            weight[order], inv, 1.0 - zw * inv, op.src[order], rowptr, degree, neg, flip
        )
    return None


def _coalesce(parts: Iterable[Pairs], num_nodes: int) -> Pairs:
    """Merge pair sets, summing duplicates; the result is sorted by (t, n)."""
    parts = list(parts)
    t = torch.cat([p.t for p in parts])
    n = torch.cat([p.n for p in parts])
    v = torch.cat([p.v for p in parts])
    key = t * num_nodes + n
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    out = torch.zeros(len(uniq), v.shape[1], dtype=v.dtype, device=v.device)
    out.index_add_(0, inverse, v)
    return Pairs(uniq // num_nodes, uniq % num_nodes, out)


def _edge_values(
    prep: _Prepared, eid: Tensor, s: Tensor, uj: Tensor, flip: Tensor | None
) -> Tensor:
    """Relevance carried by edges ``eid`` j -> i: ``w'_e s_i u_j`` (sign-aware: split ``u_j``)."""
    wn = None if prep.weight_neg is None else prep.weight_neg[eid]
    out = torch.zeros_like(s * uj)
    for ap, sf, w in _terms(prep.weight[eid], wn, uj, s, flip):
        out += w * sf * ap
    return out


def _expand(prep: _Prepared, pairs: Pairs, s: Tensor, u: Tensor) -> Pairs:
    """Relevance through an aggregation: (t, i) -> (t, j) for every edge j -> i."""
    assert prep.rowptr is not None and prep.src is not None
    start = prep.rowptr[pairs.n]
    if prep.degree is not None:  # every element has the same in-degree (kNN): no ragged indexing
        eid = start[:, None] + torch.arange(prep.degree, device=start.device)  # (P, k)
        j = prep.src[eid]
        flip = None if prep.flip is None else prep.flip[pairs.n][:, None, :]
        v = _edge_values(prep, eid, s[:, None, :], u[j], flip)  # (P, k, C)
        t = pairs.t[:, None].expand(-1, prep.degree)
        return Pairs(t.reshape(-1), j.reshape(-1), v.reshape(-1, v.shape[-1]))
    deg = prep.rowptr[pairs.n + 1] - start  # (P,)
    rep = torch.repeat_interleave(torch.arange(len(deg), device=deg.device), deg)  # (Q,)
    first = torch.cumsum(deg, 0) - deg
    eid = start[rep] + torch.arange(len(rep), device=deg.device) - first[rep]
    j = prep.src[eid]
    flip = None if prep.flip is None else prep.flip[pairs.n[rep]]
    v = _edge_values(prep, eid, s[rep], u[j], flip)  # (Q, C)
    return Pairs(pairs.t[rep], j, v)


def _backward(
    op: Op, prep: _Prepared | None, r: Pairs, program: Program
) -> tuple[list[tuple[int, Pairs]], Tensor]:
    """Relevance at the op's inputs and the per-pair absorbed amount (P,)."""
    zero = torch.zeros(len(r.t), dtype=r.v.dtype, device=r.v.device)
    if isinstance(op, Linear):
        assert prep is not None
        a = program.values[op.input][r.n]  # (P, in)
        s = r.v * prep.inv[r.n]
        flip = None if prep.flip is None else prep.flip[r.n]
        v_in = sum(ap * (sf @ w) for ap, sf, w in _terms(prep.weight, prep.weight_neg, a, s, flip))
        assert isinstance(v_in, Tensor)
        return [(op.input, Pairs(r.t, r.n, v_in))], (r.v * prep.leak[r.n]).sum(1)
    if isinstance(op, PassThrough):
        if op.column_map is None:
            return [(op.input, r)], zero
        width = program.values[op.input].shape[1]
        v_in = torch.zeros(len(r.t), width, dtype=r.v.dtype, device=r.v.device)
        v_in.index_add_(1, op.column_map, r.v)
        return [(op.input, Pairs(r.t, r.n, v_in))], zero
    if isinstance(op, Concat):
        out, lo = [], 0
        for i in op.inputs:
            hi = lo + program.values[i].shape[1]
            out.append((i, Pairs(r.t, r.n, r.v[:, lo:hi])))
            lo = hi
        return out, zero
    if isinstance(op, Aggregate):
        assert prep is not None
        s = r.v * prep.inv[r.n]
        expanded = _expand(prep, r, s, program.values[op.input])
        return [(op.input, _coalesce([expanded], program.num_nodes))], (r.v * prep.leak[r.n]).sum(1)
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
            # one term for epsilon; sign-aware rules: a+ and a- see different weights (and
            # mirrored ones swap them per output sign)
            m_out, l_out = None, prep.leak
            for a_part, mask, w_part in _terms(
                prep.weight, prep.weight_neg, a, prep.inv, prep.flip
            ):
                scaled = (a_part[:, :, None] * m_in).permute(1, 0, 2).reshape(d_in, n * f)
                term = mask[:, :, None] * (w_part @ scaled).reshape(d_out, n, f).permute(1, 0, 2)
                m_out = term if m_out is None else m_out + term
                l_out = l_out + mask * ((a_part * l_in) @ w_part.T)
            assert m_out is not None
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


def _contract(r: Pairs, mat: tuple[Tensor | None, Tensor]) -> tuple[Pairs, Tensor]:
    """Map pair relevance at a local tensor onto the raw inputs; also the absorbed share (P,).

    ``[out[p], absorbed[p]] = v[p] @ M[n[p]]`` (M's last column is the absorbed share). Gathering a (D, F) matrix per pair is memory-bound, so pairs are
    grouped by element instead: elements with a similar number of pairs (power-of-two buckets)
    get their pair vectors packed into a zero-padded (elements, width, D) block and one batched
    matmul with their own ``M`` (each ``M`` read once per bucket). Padding wastes at most 2x.
    """
    m, leak = mat
    if m is None:
        return r, (r.v * leak[r.n]).sum(1)
    num_pairs, f = len(r.n), m.shape[2]
    out = torch.empty(num_pairs, f, dtype=r.v.dtype, device=r.v.device)
    if num_pairs == 0:
        return Pairs(r.t, r.n, out[:, :-1]), out[:, -1]
    order = torch.argsort(r.n)
    ns = r.n[order]
    count = torch.bincount(ns, minlength=m.shape[0])
    first = torch.cumsum(count, 0) - count
    pos = (
        torch.arange(num_pairs, device=ns.device) - first[ns]
    )  # rank of the pair within its element
    bucket = torch.ceil(torch.log2(count.clamp(min=1).to(torch.float64))).long()  # width 2^bucket
    pair_bucket = bucket[ns]
    for b in torch.unique(pair_bucket).tolist():
        sel = (pair_bucket == b).nonzero()[:, 0]
        nodes, slot = torch.unique(ns[sel], return_inverse=True)
        width = 1 << b
        pad = torch.zeros(len(nodes), width, r.v.shape[1], dtype=r.v.dtype, device=r.v.device)
        pad[slot, pos[sel]] = r.v[order[sel]]
        res = torch.bmm(pad, m[nodes])  # (elements, width, F)
        out[order[sel]] = res[slot, pos[sel]]
    return Pairs(r.t, r.n, out[:, :-1]), out[:, -1]


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


def _auto_chunk(ops: list[Op], output: int, program: Program, num_targets: int) -> int:
    """Targets per chunk so that the widest relevance tensor stays near :data:`CHUNK_BUDGET`.

    The fan-out of a tensor bounds its pairs per target: the product of the largest in-degrees
    of the aggregations between it and the output.
    """
    fan = {output: 1}
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
    per_target = max(fan[t] * program.values[t].shape[1] for t in fan)
    budget = CHUNK_BUDGET_CUDA if program.values[0].is_cuda else CHUNK_BUDGET
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

    Args:
        program: the recorded forward pass (see :mod:`.models` for adapters).
        output: tensor id of the explained output (e.g. ``program.outputs["class"]``).
        index: output column (neuron) to explain.
        targets: (T,) unique element ids.
        composite: rule per layer.
        chunk_size: targets per chunk; None picks one from the receptive-field size.
        compose: compose the per-element prefix into matrices (fast); False walks every op
            pair by pair (slower, but fills ``layers`` for every op).
        record_layers: fill :attr:`SparseRelevance.layers` with a per-op balance.
        locality: process targets in breadth-first graph order (same result, better cache use).

    Returns:
        :class:`SparseRelevance` with F = ``program.values[0].shape[1]`` feature columns.
    """
    values = program.values
    num_nodes, num_features = values[0].shape
    dtype, device = values[0].dtype, values[0].device
    needed = program.ancestors(output)
    ops = [op for op in program.ops if op.output in needed]
    prepared = {i: _prepare(op, program, composite) for i, op in enumerate(ops)}
    local = {0}
    if compose:
        for op in ops:
            if not isinstance(op, Aggregate) and all(i in local for i in op.inputs):
                local.add(op.output)
    frontier = {i for op in ops if op.output not in local for i in op.inputs if i in local}
    if output in local:
        frontier.add(output)
    mats = _compose_local(ops, prepared, local, frontier, program)
    walk = [(i, op) for i, op in enumerate(ops) if op.output not in local][::-1]
    layer_names: dict[int, str] = {}
    for i, op in enumerate(ops):  # op names are unique in adapters; disambiguate if not
        layer_names[i] = op.name if op.name not in layer_names.values() else f"{op.name}#{i}"

    targets = targets.to(device=device, dtype=torch.long)
    num_targets = len(targets)
    chunk = chunk_size or _auto_chunk(ops, output, program, num_targets)
    if chunk < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    explained = values[output][targets, index]

    absorbed = torch.zeros(num_targets, dtype=dtype, device=device)
    layers = {
        layer_names[i]: torch.zeros(num_targets, 3, dtype=dtype, device=device) for i, _ in walk
    }
    # Pairs reaching the local prefix wait in per-tensor buffers and are contracted in batches
    # that span chunks: each batch reads every element's matrix M_n once, so the matrix traffic
    # does not grow with the number of chunks (it would with one contraction per chunk).
    buffers: dict[int, list[Pairs]] = {tid: [] for tid in frontier}
    buffered = dict.fromkeys(frontier, 0)
    flush_at: dict[int, int] = {}
    for tid in frontier:
        m_tid = mats[tid][0]
        size = 0 if m_tid is None else m_tid.numel()
        cpu_at = min(FLUSH_MAX, max(FLUSH_MIN, size))
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
        done, leak = _contract(r, mats[tid])
        absorbed.index_add_(0, r.t, leak)
        results.append(done)

    def deliver(tid: int, pairs: Pairs, pending: dict[int, list[Pairs]]) -> None:
        if tid in local:
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
        start_v = torch.zeros(len(tc), values[output].shape[1], dtype=dtype, device=device)
        start_v[:, index] = values[output][tc, index]
        pending: dict[int, list[Pairs]] = {}
        deliver(output, Pairs(pos, tc, start_v), pending)
        for idx, op in walk:
            if op.output not in pending:
                continue
            parts = pending.pop(op.output)
            r = parts[0] if len(parts) == 1 else _coalesce(parts, num_nodes)
            ins, leak = _backward(op, prepared[idx], r, program)
            absorbed.index_add_(0, r.t, leak)
            if record_layers:
                bal = layers[layer_names[idx]]
                bal[:, 0].index_add_(0, r.t, r.v.sum(1))
                for _, p in ins:
                    bal[:, 1].index_add_(0, p.t, p.v.sum(1))
                bal[:, 2].index_add_(0, r.t, leak)
            for tid, p in ins:
                deliver(tid, p, pending)
        if pending:  # pragma: no cover - every non-local tensor is produced by a walked op
            raise RuntimeError(f"LRP left relevance at tensors {sorted(pending)}")
    for tid in frontier:
        flush(tid)

    if results:
        final = _coalesce(results, num_nodes)  # sorted by (target position, source)
    else:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        final = Pairs(empty, empty, torch.zeros(0, num_features, dtype=dtype, device=device))
    return SparseRelevance(
        target=targets[final.t],
        source=final.n,
        values=final.v,
        targets=targets,
        explained=explained,
        absorbed=absorbed,
        num_elements=int(num_nodes),
        layers=layers if record_layers else None,
    )
