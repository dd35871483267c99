"""Relevance as (target, element) pairs and the pair-by-pair backward step of each op.

Used by :mod:`.engine`: ``Pairs`` hold relevance at one tensor of the program, ``_prepare``
computes an op's rule-modified weights and stabilised denominators once per event, and
``_backward`` moves a pair set one op down (an aggregation expands ``(t, i)`` to ``(t, j)``
for every edge ``j -> i`` and merges duplicates with ``_coalesce``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from particlegraph.explain.lrp.program import Aggregate, Concat, Linear, Op, PassThrough, Program
from particlegraph.explain.lrp.rules import Composite, stabilize


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
        zw: Tensor | int
        if weight_neg is None:  # a linear rule (epsilon): one product
            zw = a @ weight.T
        else:
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
        flip = None
        if rule.mirror and weight_neg is not None:
            flip = _edge_sum(op, u, lambda us, e: op.weight[e] * us) < 0  # (N, C)

        def message(us: Tensor, e: slice) -> Tensor:
            """w'_e u_j of the edges ``e`` (sign-aware: split u_j), from ``us = u[src[e]]``."""
            if weight_neg is None:  # a linear rule (epsilon): in place
                return us.mul_(weight[e])
            edge_flip = None if flip is None else flip[op.dst[e]]
            ones = torch.ones_like(us)
            terms = _terms(weight[e], weight_neg[e], us, ones, edge_flip)
            msg = sum(w * ap * sf for ap, sf, w in terms)
            assert isinstance(msg, Tensor)
            return msg

        zw = _edge_sum(op, u, message)  # (N, C)
        den = stabilize(zw, rule.eps)
        inv = torch.where(den == 0, torch.zeros_like(den), 1.0 / den)
        if len(op.dst) < 2 or bool((op.dst[1:] >= op.dst[:-1]).all()):  # kNN: already sorted
            order = torch.arange(len(op.dst), device=op.dst.device)
        else:
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


#: Values per chunk of an aggregation's per-edge messages in :func:`_prepare` (8 MiB of
#: float32): the (E, C) messages of a whole event (52 MB at 12,800 elements, k 16, C 64) were
#: fresh pages from the system at every call, above glibc's largest mmap threshold (32 MiB),
#: while 6,400 elements' 26 MB reused the heap, a cost that grew faster than N.
EDGE_CHUNK_VALUES = 1 << 21


def _edge_sum(op: Aggregate, u: Tensor, message: Callable[[Tensor, slice], Tensor]) -> Tensor:
    """``out[i] = sum_{e: dst_e = i} message(u[src_e], e)`` (N, C), over chunks of edges.

    The chunks are added in edge order, so the sums are those of one index_add over all edges
    (bit for bit); ``message(us, e)`` gets ``us = u[src[e]]`` (may be modified) and the slice.
    """
    out = torch.zeros_like(u)
    step = max(1, EDGE_CHUNK_VALUES // max(1, u.shape[1]))
    for lo in range(0, len(op.src), step):
        e = slice(lo, lo + step)
        out.index_add_(0, op.dst[e], message(u[op.src[e]], e))
    return out


def _coalesce(parts: Iterable[Pairs], num_nodes: int) -> Pairs:
    """Merge pair sets, summing duplicates; the result is sorted by (t, n).

    Only the integer keys are concatenated and sorted; each part's values are added straight
    into the result (in part order, so the sums equal those of one concatenated index_add).
    """
    parts = list(parts)
    key = torch.cat([p.t * num_nodes + p.n for p in parts])
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    v0 = parts[0].v
    out = v0.new_zeros(len(uniq), *v0.shape[1:])
    lo = 0
    for p in parts:  # index_add_ is several times faster on contiguous rows
        hi = lo + len(p.t)
        out.index_add_(0, inverse[lo:hi], p.v if p.v.is_contiguous() else p.v.contiguous())
        lo = hi
    return Pairs(uniq // num_nodes, uniq % num_nodes, out)


def _edge_values(
    prep: _Prepared, eid: Tensor, s: Tensor, uj: Tensor, flip: Tensor | None
) -> Tensor:
    """Relevance carried by edges ``eid`` j -> i: ``w'_e s_i u_j`` (sign-aware: split ``u_j``).

    ``eid`` and ``uj`` carry an output axis of size 1 where ``s`` has O (broadcasting)."""
    wn = None if prep.weight_neg is None else prep.weight_neg[eid]
    w = prep.weight[eid]
    if wn is None:
        return (w * uj) * s  # the (w u) product is shared by the O outputs
    shape = torch.broadcast_shapes(s.shape, uj.shape)  # type: ignore[no-untyped-call]
    out = torch.zeros(shape, dtype=s.dtype, device=s.device)
    for ap, sf, wt in _terms(w, wn, uj, s, flip):
        out += wt * sf * ap
    return out


def _expand(prep: _Prepared, pairs: Pairs, s: Tensor, u: Tensor) -> Pairs:
    """Relevance through an aggregation: (t, i) -> (t, j) for every edge j -> i; s (P, O, C)."""
    assert prep.rowptr is not None and prep.src is not None
    start = prep.rowptr[pairs.n]
    if prep.degree is not None:  # every element has the same in-degree (kNN): no ragged indexing
        eid = start[:, None] + torch.arange(prep.degree, device=start.device)  # (P, k)
        j = prep.src[eid]
        flip = None if prep.flip is None else prep.flip[pairs.n][:, None, None, :]
        v = _edge_values(
            prep, eid[:, :, None], s[:, None, :, :], u[j][:, :, None, :], flip
        )  # (P, k, O, C)
        t = pairs.t[:, None].expand(-1, prep.degree)
        return Pairs(t.reshape(-1), j.reshape(-1), v.reshape(-1, *v.shape[2:]))
    deg = prep.rowptr[pairs.n + 1] - start  # (P,)
    rep = torch.repeat_interleave(torch.arange(len(deg), device=deg.device), deg)  # (Q,)
    first = torch.cumsum(deg, 0) - deg
    eid = start[rep] + torch.arange(len(rep), device=deg.device) - first[rep]
    j = prep.src[eid]
    flip = None if prep.flip is None else prep.flip[pairs.n[rep]][:, None, :]
    v = _edge_values(prep, eid[:, None], s[rep], u[j][:, None, :], flip)  # (Q, O, C)
    return Pairs(pairs.t[rep], j, v)


def _backward(
    op: Op, prep: _Prepared | None, r: Pairs, program: Program
) -> tuple[list[tuple[int, Pairs]], Tensor]:
    """Relevance at the op's inputs and the per-pair absorbed amount (P, O)."""
    zero = torch.zeros(r.v.shape[:2], dtype=r.v.dtype, device=r.v.device)
    if isinstance(op, Linear):
        assert prep is not None
        a = program.values[op.input][r.n][:, None, :]  # (P, 1, in)
        s = r.v * prep.inv[r.n][:, None, :]  # (P, O, out)
        flip = None if prep.flip is None else prep.flip[r.n][:, None, :]
        v_in = sum(ap * (sf @ w) for ap, sf, w in _terms(prep.weight, prep.weight_neg, a, s, flip))
        assert isinstance(v_in, Tensor)  # (P, O, in)
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
