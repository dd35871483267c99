"""Relevance as (target, element) pairs and the pair-by-pair backward step of each op.

Used by :mod:`.engine`: ``Pairs`` hold relevance at one tensor of the program, ``_prepare``
computes an op's rule-modified weights and stabilised denominators once per event, and
``_backward`` moves a pair set one op down (an aggregation expands ``(t, i)`` to ``(t, j)``
for every edge ``j -> i`` and merges duplicates with ``_coalesce``).
"""

from __future__ import annotations

from collections.abc import Iterable
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
