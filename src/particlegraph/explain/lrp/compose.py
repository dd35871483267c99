"""Where relevance leaves the pair walk: per-element matrices composed through the local prefix.

Every rule is linear in the upper relevance once the forward pass is fixed, so the part of the
network that depends on one element only (the *local prefix*) is composed once per event into a
matrix ``M_n`` (D, F + 1) per element (``_compose_local``; the last column is the share absorbed
on the way). Pairs reaching a local tensor wait in a buffer of its ``_Sink`` and are contracted
in batches (``_contract``). Two ops next to the prefix get sinks of their own
(``_shortcuts``): a Linear that reads ``cat[local, non-local]`` (GravNet ``lin_out``) sends its
local columns through ``K_n = diag(1/z_n) W diag(a_n) M_n``, and an aggregation of a local tensor
sends each pair to a fan-out sink whose element matrix holds ``w_e u_j M_j`` for its k in-edges,
so the D-wide relevance at the aggregation's input is never built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from particlegraph.explain.lrp.pairs import Pairs, _Prepared, _terms
from particlegraph.explain.lrp.program import Aggregate, Concat, Linear, Op, PassThrough, Program

#: Elements contracted together (bounds the padded blocks and per-element matrices on CPU).
NODE_BATCH = 1024
#: Values of the per-element matrices built or read for one batch: 16 MiB of float32, under
#: glibc's largest mmap threshold (32 MiB), so a batch reuses freed heap memory instead of
#: faulting in fresh pages (a 54 MB fan-out block per batch cost about 20 % of one output at
#: 12,800 elements).
BLOCK_VALUES = 1 << 22
#: Aggregations of a local tensor are composed (fan-out sinks) from this many outputs on. Once
#: thought to cost more than it saves for few outputs; re-profiled at 1,000 elements (hidden 64
#: and 256, one output, thread CPU time, min of 12 interleaved runs): 7-13 % faster with it, as
#: it replaces the expansion of every pair over the k in-edges at the aggregation's C-wide input
#: (P k C values, then a merge) by one (C, k (F + 1)) product per element.
FANOUT_MIN_OUTPUTS = 1
#: Compose chains ``lin_h -> act -> lin_out`` of consecutive blocks too (with the fan-out), from
#: this many outputs on: the (N, D, F + 1 + C + 1) chain tables pay off only when several outputs
#: share them (one output, 1,000 elements: 12 % slower at hidden 64, 25 % at hidden 256).
CHAINS = True
CHAIN_MIN_OUTPUTS = 4


def _compose_local(
    ops: list[Op],
    prepared: dict[int, _Prepared | None],
    local: set[int],
    keep: set[int],
    program: Program,
    spares: list[Tensor] | None = None,
) -> dict[int, tuple[Tensor | None, Tensor]]:
    """Per-element ``(M (N, D, F + 1), L (N, D))`` for the local tensors in ``keep``.

    ``M[..., :F]`` maps relevance at the tensor to the raw inputs, ``L`` (``M[..., F]``) is
    the share absorbed below it. ``M`` None stands for the identity (the input itself, L = 0).
    Matrices no longer needed are appended to ``spares`` (if given) and reused, here and by
    the sinks (:func:`_take`).
    """
    pool: list[Tensor] = [] if spares is None else spares
    x = program.values[0]
    n, f = x.shape
    # M carries the absorbed share as its last column all along: every rule maps it like the
    # feature columns, plus the op's own leak
    mats: dict[int, tuple[Tensor | None, Tensor]] = {0: (None, x.new_zeros(n, f))}
    local_ops = [op for op in ops if op.output in local]
    uses: dict[int, int] = {}
    for op in local_ops:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1

    def full(tid: int) -> Tensor:
        return _full(mats[tid], x)

    for idx, op in enumerate(ops):
        if op.output not in local:
            continue
        if isinstance(op, Linear):
            prep = prepared[idx]
            assert prep is not None
            out = _take(pool, n * prep.weight.shape[0] * (f + 1))
            m_out = _compose_linear(prep, program.values[op.input], full(op.input), out)
            mats[op.output] = (m_out, m_out[:, :, f])
        elif isinstance(op, PassThrough):
            if op.column_map is None:
                mats[op.output] = mats[op.input]
            else:
                m = full(op.input)[:, op.column_map, :]
                mats[op.output] = (m, m[:, :, f])
        elif isinstance(op, Concat):
            m = torch.cat([full(i) for i in op.inputs], dim=1)
            mats[op.output] = (m, m[:, :, f])
        for i in op.inputs:  # free what no later local op and no pair needs
            uses[i] -= 1
            if uses[i] == 0 and i not in keep and i != 0:
                _retire(mats, mats.pop(i, (None, x))[0], pool)
    kept = {k: mats.pop(k) for k in keep}
    for k in list(mats):
        _retire({**mats, **kept}, mats.pop(k)[0], pool)
    return kept


def _retire(
    mats: dict[int, tuple[Tensor | None, Tensor]], m: Tensor | None, pool: list[Tensor]
) -> None:
    """Put matrix ``m`` into ``pool`` unless a matrix in ``mats`` still uses its memory."""
    if m is None or any(o is not None and o.data_ptr() == m.data_ptr() for o, _ in mats.values()):
        return
    if all(p.data_ptr() != m.data_ptr() for p in pool):
        pool.append(m)


def _take(pool: list[Tensor], numel: int) -> Tensor | None:
    """Flat memory for ``numel`` values from the smallest spare matrix that holds them (and at
    most twice as many: a big spare is kept for a big table); None if there is none.

    Reusing a dead (N, D, F + 1) matrix within one explanation saves a fresh allocation of
    100-200 MB, which the system gives as new pages to fault in (~0.4 ms per MB on one core).
    """
    fits = [p for p in pool if numel <= p.numel() <= 2 * numel and p.is_contiguous()]
    if not fits:
        return None
    best = min(fits, key=lambda p: p.numel())
    del pool[next(i for i, p in enumerate(pool) if p is best)]
    return best.view(-1)[:numel]


def _compose_linear(prep: _Prepared, a: Tensor, m_in: Tensor, out: Tensor | None = None) -> Tensor:
    """``M_out = diag(inv) W' diag(a) M_in`` per element (N, D_out, F + 1), plus the op's leak
    in the last column; in batches of elements (small temporaries: heap memory reused).
    ``out``: flat memory for the result (not ``m_in``'s), or None."""
    n, d_in = a.shape
    d_out, cols = prep.weight.shape[0], m_in.shape[2]
    # one term for epsilon; sign-aware rules: a+ and a- see different weights (and mirrored
    # ones swap them per output sign)
    terms = _terms(prep.weight, prep.weight_neg, a, prep.inv, prep.flip)
    m_out = a.new_empty(n, d_out, cols) if out is None else out.view(n, d_out, cols)
    for lo in range(0, n, NODE_BATCH):
        hi = min(lo + NODE_BATCH, n)
        acc: Tensor | None = None
        for a_part, mask, w_part in terms:
            scaled = (a_part[lo:hi, :, None] * m_in[lo:hi]).permute(1, 0, 2)
            prod = (w_part @ scaled.reshape(d_in, -1)).view(d_out, hi - lo, cols)
            term = prod.permute(1, 0, 2) * mask[lo:hi, :, None]
            acc = term if acc is None else acc + term
        assert acc is not None
        m_out[lo:hi] = acc
    m_out[:, :, cols - 1] += prep.leak
    return m_out


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
    #: A chain sink (``_chain_sink``): its columns are [F features, absorbed, C values for the
    #: sink with this key]; the C values are passed on to that sink.
    chain: int | None = None


def _contract(r: Pairs, sink: _Sink, num_nodes: int) -> list[Pairs]:
    """Map pair relevance at a local tensor onto the raw inputs: parts with values (P, O, F + 1),
    the last column the share absorbed below the sink.

    ``[out[p], absorbed[p]] = v[p] @ M[n[p]]`` per output (M's last column is the absorbed
    share); a fan-out sink gives k pairs per pair, one per source of the composed aggregation.
    The parts follow the element order of :func:`_contract_groups`, not the order of ``r``.
    """
    if sink.matrix is None:
        assert sink.leak is not None
        leak = (r.v * sink.leak[r.n][:, None, :]).sum(2, keepdim=True)
        return [Pairs(r.t, r.n, torch.cat([r.v, leak], dim=2))]
    if sink.fanout is None:
        return [Pairs(r.t[idx], r.n[idx], out) for idx, out in _contract_groups(r, sink, num_nodes)]
    src, rowptr, k = sink.fanout
    parts = []
    for idx, out in _contract_groups(r, sink, num_nodes):  # out (b, k, O, F + 1)
        n = r.n[idx]
        sources = src[rowptr[n][:, None] + torch.arange(k, device=n.device)].reshape(-1)
        v = out.view(-1, *out.shape[2:])
        parts.append(Pairs(r.t[idx].repeat_interleave(k), sources, v))
    return parts


def _contract_groups(r: Pairs, sink: _Sink, num_nodes: int) -> Iterator[tuple[Tensor, Tensor]]:
    """``v[p] @ matrix(n[p])`` for every pair, grouped by element.

    Yields ``(idx (b,), out)``: the positions in ``r`` of a group of pairs and their products
    ``out`` (b, O, C); for a fan-out sink (b, k, O, C / k), its k column blocks as rows, so that
    a pair's k results are contiguous rows of the merge (gathered so in one pass). Gathering a (D, C) matrix per pair is
    memory-bound, so pairs are grouped by element instead: elements with a similar number of
    pairs (the count rounded up to a multiple of a quarter of its power of two) get their pair
    vectors packed into a padded (elements, width, O, D) block and one batched matmul with their
    own ``M`` (each element's ``M`` built or read once). Padding wastes at most 25 % (it wasted
    up to 2x with power-of-two widths).
    """
    assert sink.matrix is not None
    num_pairs, num_out, d = len(r.n), r.v.shape[1], r.v.shape[2]
    blocks = 1 if sink.fanout is None else sink.fanout[2]
    if not num_pairs:
        return
    # elements per batch: their matrices stay under BLOCK_VALUES (a larger block is fresh
    # memory from the system at every batch, page faults included)
    per_node = max(1, sink.size // max(1, num_nodes))
    batch = max(1, min(NODE_BATCH, BLOCK_VALUES // per_node))
    order = torch.argsort(r.n)
    ns = r.n[order]
    count = torch.bincount(ns)
    first = torch.cumsum(count, 0) - count
    pos = torch.arange(num_pairs, device=ns.device) - first[ns]  # rank within its element
    # block width: the count rounded up to a multiple of a quarter of its power of two
    quarter = (torch.floor(torch.log2(count.clamp(min=1).to(torch.float64))).long() - 2).clamp(
        min=0
    )
    step = torch.ones_like(count) << quarter
    pair_width = (((count + step - 1) // step) * step)[ns]
    for width in torch.unique(pair_width).tolist():
        in_bucket = (pair_width == width).nonzero()[:, 0]
        bucket_nodes = torch.unique(ns[in_bucket])
        # at most `batch` elements at a time: bounds the padded block and the matrices
        for lo in range(0, len(bucket_nodes), batch):
            nodes = bucket_nodes[lo : lo + batch]
            if len(nodes) == len(bucket_nodes):
                sel = in_bucket
            else:
                keep = (ns[in_bucket] >= nodes[0]) & (ns[in_bucket] <= nodes[-1])
                sel = in_bucket[keep]
            row = torch.searchsorted(nodes, ns[sel]) * width + pos[sel]  # (b,) in the block
            # padding rows are zeroed although never read back: uninitialised memory may hold
            # denormal floats (old integer indices), which make the matrix product crawl
            pad = r.v.new_zeros(len(nodes) * width, num_out, d)
            pad.index_copy_(0, row, r.v.index_select(0, order[sel]))
            mat = sink.matrix(nodes)  # (elements, D, C)
            res = torch.bmm(pad.view(len(nodes), width * num_out, d), mat)  # (elements, w O, C)
            if blocks == 1 or num_out == 1:  # (b, O, C); one output: (b, k, 1, C / k) as is
                out = res.view(len(nodes) * width, num_out, -1).index_select(0, row)
                if blocks > 1:
                    out = out.view(len(row), blocks, 1, -1)
            else:  # gather rows of C / k: (b, k, O, C / k), a pair's k blocks as rows
                cols = res.shape[2] // blocks
                grid = torch.arange(num_out, device=row.device) * blocks
                grid = grid[None, :] + torch.arange(blocks, device=row.device)[:, None]  # (k, O)
                rows = row[:, None, None] * (num_out * blocks) + grid
                out = res.view(-1, cols).index_select(0, rows.reshape(-1))
                out = out.view(len(row), blocks, num_out, cols)
            yield order[sel], out


def _linear_sink(
    op: Linear,
    prep: _Prepared,
    parts: list[tuple[int, int, int]],
    mats: dict[Any, Any],
    program: Program,
    spares: list[Tensor] | None = None,
) -> _Sink:
    """Sink of a Linear whose input concatenates local tensors (``parts``: tensor, lo, hi):
    ``K_n = diag(inv_n) W[:, lo:hi] diag(a_n) M_n`` summed over the parts, (N, D_out, F + 1).

    Built in batches of :data:`NODE_BATCH` elements: the (D_in, batch x (F + 1)) operands stay
    small (one pass over all N at once was 2.6 times slower at 12,800 than at 6,400 elements).
    """
    n = program.num_nodes
    full = {tid: _full(mats[tid], program.values[tid]) for tid, _, _ in parts}
    cols = next(iter(full.values())).shape[2]
    out = None if spares is None else _take(spares, n * prep.weight.shape[0] * cols)
    shape = (n, prep.weight.shape[0], cols)
    k_mat = prep.inv.new_empty(shape) if out is None else out.view(shape)
    for s in range(0, n, NODE_BATCH):
        e = min(s + NODE_BATCH, n)
        acc: Tensor | None = None
        for tid, lo, hi in parts:
            a = program.values[tid][s:e]  # (b, D_in)
            scaled = (a[:, :, None] * full[tid][s:e]).permute(1, 0, 2).reshape(a.shape[1], -1)
            part = (prep.weight[:, lo:hi] @ scaled).view(-1, e - s, cols)  # (D_out, b, F + 1)
            acc = part if acc is None else acc + part
        assert acc is not None
        k_mat[s:e] = acc.permute(1, 0, 2) * prep.inv[s:e, :, None]
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


def _aggregate_sink(
    op: Aggregate, prep: _Prepared, mats: dict[Any, Any], program: Program
) -> _Sink:
    """Sink of an aggregation of a local tensor u with a common in-degree k: element i's
    matrix (C, k (F + 1)) holds ``w_e u_j M_j`` for its in-edges e = j -> i (built per batch)."""
    assert prep.degree is not None and prep.src is not None and prep.rowptr is not None
    u = program.values[op.input]
    m_u = _full(mats[op.input], u)
    k, src, rowptr, weight = prep.degree, prep.src, prep.rowptr, prep.weight
    channels = torch.arange(u.shape[1], device=u.device)[None, :, None]  # (1, C, 1)

    def matrix(nodes: Tensor) -> Tensor:
        eid = rowptr[nodes][:, None] + torch.arange(k, device=nodes.device)  # (b, k)
        j = src[eid]  # (b, k)
        # one gather straight into the (b, C, k, F + 1) layout (no permuted copy), then u_j and
        # w_e: (u_j M_j) w_e as a table of u_j M_j (N, C, F + 1) gave it, without that table
        # (43 MB at 12,800 elements: fresh pages at every call, 21 MB at 6,400 were not)
        h = m_u[j[:, None, :], channels]  # (b, C, k, F + 1)
        h.mul_(u[j].transpose(1, 2)[..., None])
        w = weight[eid]  # (b, k, 1) or (b, k, C): per channel for max routing
        h.mul_(w.reshape(len(nodes), k, -1).transpose(1, 2)[..., None])
        return h.view(len(nodes), u.shape[1], -1)

    return _Sink(matrix, u.shape[0] * k * m_u.shape[1] * m_u.shape[2], fanout=(src, rowptr, k))


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
    spares: list[Tensor] | None = None,
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
        if prep is not None and (prep.weight_neg is not None or prep.flip is not None):
            continue  # sign-aware rules take the pair-by-pair path
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
                sinks[key] = _linear_sink(op, prep, mine, mats, program, spares)
                plans[idx] = (key, other)
    if num_out >= max(FANOUT_MIN_OUTPUTS, CHAIN_MIN_OUTPUTS) and CHAINS:
        _chains(ops, walk, prepared, out_tensors, sinks, plans, program)
    return plans


def _chain_sink(
    a_op: Linear,
    a_prep: _Prepared,
    b_prep: _Prepared,
    k_sink: _Sink,
    agg: tuple[int, int, int],
    g_prep: _Prepared,
    g_key: int,
    program: Program,
) -> _Sink:
    """Sink of a Linear A (``lin_h`` of a later block) whose input is ``act(B)``, B a Linear with
    a local-side sink ``k_sink`` and one non-local input ``agg = (tensor g, lo, hi)`` that an
    aggregation G with a fan-out sink produced: everything below A's output is per element, so
    element j's matrix (D_A, F + 1 + C) is composed once:
    ``A_j [K_j[:, :F] | K_j[:, F] + leak_B,j + Bagg_j leak_G,j | Bagg_j diag(1/z_G,j)]`` with
    ``A_j = diag(1/z_A,j) W_A diag(h_j)`` and ``Bagg_j = diag(1/z_B,j) W_B[:, lo:hi] diag(g_j)``.
    The C columns are the relevance at G's output divided by G's denominators, which is what
    G's fan-out sink takes; they are passed on to it (key ``g_key``).
    """
    assert k_sink.matrix is not None
    h = program.values[a_op.input]
    g_tid, lo, hi = agg
    g = program.values[g_tid]
    w_a, w_b = a_prep.weight, b_prep.weight[:, lo:hi]
    n = h.shape[0]
    parts = []
    for s in range(0, n, NODE_BATCH):
        nodes = torch.arange(s, min(s + NODE_BATCH, n), device=h.device)
        x = h[nodes]  # (b, D_B)
        b = len(nodes)
        k_mat = x[:, :, None] * k_sink.matrix(nodes)  # diag(h_j) K_j: (b, D_B, F + 1)
        cols = k_mat.shape[2]
        k_part = (w_a @ k_mat.permute(1, 0, 2).reshape(x.shape[1], b * cols)).reshape(
            -1, b, cols
        )  # W_A diag(h_j) K_j as one matrix product: (D_A, b, F + 1)
        # W_A diag(h_j / z_B,j) W_B[:, lo:hi]: (b, D_A, C)
        mid = torch.bmm(w_a[None] * (x * b_prep.inv[nodes])[:, None, :], w_b.expand(b, -1, -1))
        leak_b = (x * b_prep.leak[nodes]) @ w_a.T  # (b, D_A)
        leak_g = mid @ (g[nodes] * g_prep.leak[nodes])[:, :, None]  # (b, D_A, 1)
        k_part = k_part.permute(1, 0, 2)
        absorbed = k_part[:, :, cols - 1 :] + leak_b[:, :, None] + leak_g  # (b, D_A, 1)
        m = torch.cat(
            [k_part[:, :, : cols - 1], absorbed, mid * (g[nodes] * g_prep.inv[nodes])[:, None, :]],
            dim=2,
        )
        parts.append(a_prep.inv[nodes][:, :, None] * m)
    table = torch.cat(parts)  # (N, D_A, F + 1 + C)
    return _Sink(_rows(table), table.numel(), chain=g_key)


def _chains(
    ops: list[Op],
    walk: list[tuple[int, Op]],
    prepared: dict[int, _Prepared | None],
    out_tensors: list[int],
    sinks: dict[int, _Sink],
    plans: dict[int, tuple[int, list[tuple[int, int, int]]]],
    program: Program,
) -> None:
    """Add chain sinks (:func:`_chain_sink`) for the Linear ops whose input is the activation of
    a composed Linear whose other input comes from a fan-out aggregation."""
    producer = {op.output: (i, op) for i, op in enumerate(ops)}
    for idx, op in walk:
        if idx in plans or not isinstance(op, Linear) or op.input in out_tensors:
            continue
        _, act = producer.get(op.input, (None, None))
        if not isinstance(act, PassThrough) or act.column_map is not None:
            continue
        b_idx, b_op = producer.get(act.input, (None, None))
        if b_idx not in plans or not isinstance(b_op, Linear) or act.input in out_tensors:
            continue
        b_key, other = plans[b_idx]
        if len(other) != 1:
            continue
        g_idx, g_op = producer.get(other[0][0], (None, None))
        if g_idx not in plans or not isinstance(g_op, Aggregate):
            continue
        a_prep, b_prep, g_prep = prepared[idx], prepared[b_idx], prepared[g_idx]
        assert a_prep is not None and b_prep is not None and g_prep is not None
        if a_prep.weight_neg is not None or a_prep.flip is not None:
            continue  # sign-aware rules take the pair-by-pair path
        key = -(idx + 1)
        sinks[key] = _chain_sink(
            op, a_prep, b_prep, sinks[b_key], other[0], g_prep, plans[g_idx][0], program
        )
        plans[idx] = (key, [])


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
