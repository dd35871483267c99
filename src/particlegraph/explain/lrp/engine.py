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
  which costs P x D x F instead of pushing every pair through D x D layers (:mod:`.compose`;
  the pair arithmetic of each op is in :mod:`.pairs`).

Several output neurons are explained together (:func:`propagate_many`): every rule is linear in
the upper relevance and the pair sets depend only on the graph, so the values carry an output
axis (P, O, D) and the forward trace, the rule preparation, the local-prefix matrices and all the
index work (expansion, merging, grouping by element) are shared by the O outputs.

Targets are processed in chunks so peak memory stays bounded whatever N is; pairs that reach
the local prefix are buffered across chunks and contracted in batches, so each batch reads
every ``M_n`` once (one contraction per chunk would read them once per chunk: quadratic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.compose import (
    _backward_shortcut,
    _compose_local,
    _contract,
    _contract_groups,
    _rows,
    _shortcuts,
    _Sink,
)
from particlegraph.explain.lrp.pairs import Pairs, _backward, _coalesce, _prepare, _Prepared
from particlegraph.explain.lrp.program import Aggregate, Op, Program
from particlegraph.explain.lrp.rules import Composite
from particlegraph.explain.lrp.sparse import MultiRelevance, SparseRelevance

#: Values one chunk may hold in its largest relevance tensor that holds pairs (2 MiB of float32
#: per output on CPU; the int64 pair indices and temporaries of the expansion add several times
#: that). Measured on CPU: peak memory grows with the chunk while time does not improve
#: (docs/explain.md); 64-256 targets per chunk of the paper-size MLPF took the same time.
CHUNK_BUDGET = 1 << 19
#: On a GPU bigger chunks keep kernels large; memory is plentiful.
CHUNK_BUDGET_CUDA = 1 << 21
#: A local-prefix buffer is contracted once it holds as many values as the per-element matrices
#: it reads (so matrix traffic never exceeds pair traffic), but at least FLUSH_MIN and at most
#: FLUSH_MAX values (64 MiB of float32).
FLUSH_MIN, FLUSH_MAX = 1 << 20, 1 << 24
#: A fan-out contraction's k pairs per pair are merged at once above this many values (memory);
#: smaller ones wait for the final merge, which then reads them once instead of twice. 12
#: outputs at 3,200 elements (flushes of up to 50 M values): 7 % faster without the early
#: merge (it was at 4 M), peak memory 10 % higher (1.8 GB against 1.6 GB).
FANOUT_MERGE_AT = 1 << 26
#: With O outputs explained together the chunk budget is multiplied by min(O, this), so the
#: chunks do not shrink with O: 12 outputs at 3,200 elements took 10-12 % longer in chunks of
#: 10 targets than of 40-160 (the per-chunk overhead of the walk).
MULTI_BUDGET_MAX = 16


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


def _auto_chunk(plan: _Plan, program: Program, num_targets: int, num_out: int) -> int:
    """Targets per chunk so that the widest tensor holding pairs stays near :data:`CHUNK_BUDGET`.

    The fan-out of a tensor bounds its pairs per target: the product of the largest in-degrees
    of the aggregations between it and the output. Only tensors that hold pairs count (the
    outputs and inputs of the ops walked pair by pair; a composed local tensor never does). With
    O outputs a pair holds O vectors; the budget grows with O up to :data:`MULTI_BUDGET_MAX`
    times, so chunks stay large enough that the per-chunk overhead does not grow with O (peak
    memory grows instead, measured in docs/benchmarks.md).
    """
    fan = dict.fromkeys(plan.out_tensors, 1)
    for op in reversed(plan.ops):
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
    held = set(plan.out_tensors)  # tensors that pairs reach, walking down
    for idx, op in plan.walk:
        if op.output in held:  # a shortcut sends its local side at its output's width
            shortcut = plan.shortcuts.get(idx)
            held.update(op.inputs if shortcut is None else (i for i, _, _ in shortcut[1]))
    per_target = max(fan[t] * program.values[t].shape[1] for t in held if t in fan) * num_out
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


@dataclass
class _Plan:
    """What one event's explanation walks: the needed ops, their prepared rules, the ops walked
    pair by pair (reverse order), the sinks where pairs leave the walk and the shortcut ops."""

    ops: list[Op]
    prepared: dict[int, _Prepared | None]
    walk: list[tuple[int, Op]]
    sinks: dict[int, _Sink]
    shortcuts: dict[int, tuple[int, list[tuple[int, int, int]]]]
    layer_names: dict[int, str]
    out_tensors: list[int]


def _plan(
    program: Program,
    heads: list[tuple[int, int]],
    composite: Composite,
    compose: bool,
    record_layers: bool,
) -> _Plan:
    """Prepare the rules, compose the local prefix into per-element matrices, build the sinks."""
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
    spares: list[Tensor] = []  # dead prefix matrices, reused by later ones and the sinks
    mats = _compose_local(ops, prepared, local, frontier, program, spares)
    walk = [(i, op) for i, op in enumerate(ops) if op.output not in local][::-1]
    sinks: dict[int, _Sink] = {}
    for tid in frontier:
        m_tid, leak_tid = mats[tid]
        sinks[tid] = (
            _Sink(None, 0, leak=leak_tid) if m_tid is None else _Sink(_rows(m_tid), m_tid.numel())
        )
    # the per-op balance (record_layers) needs every op walked pair by pair
    shortcuts = (
        {}
        if record_layers
        else _shortcuts(
            ops, walk, prepared, local, out_tensors, mats, sinks, program, len(heads), spares
        )
    )
    layer_names: dict[int, str] = {}
    for i, op in enumerate(ops):  # op names are unique in adapters; disambiguate if not
        layer_names[i] = op.name if op.name not in layer_names.values() else f"{op.name}#{i}"
    return _Plan(ops, prepared, walk, sinks, shortcuts, layer_names, out_tensors)


class _Collector:
    """Where relevance leaves the pair walk: per-sink buffers, contracted in batches that span
    chunks (each batch reads every element's matrix ``M_n`` once, so the matrix traffic does not
    grow with the number of chunks), and the contracted parts of the result.

    Every part holds (P, O, F + 1) values: F raw input columns and the share absorbed below the
    sink as the last column, so the final merge adds whole contiguous rows and the absorbed
    share rides along (summed per target at the end).
    """

    def __init__(self, sinks: dict[int, _Sink], program: Program, absorbed: Tensor) -> None:
        self.sinks, self.program, self.absorbed = sinks, program, absorbed
        self.num_nodes, self.num_features = program.values[0].shape
        self.buffers: dict[int, list[Pairs]] = {tid: [] for tid in sinks}
        self.buffered = dict.fromkeys(sinks, 0)
        cuda = program.values[0].device.type == "cuda"
        self.flush_at = {
            tid: CHUNK_BUDGET_CUDA if cuda else min(FLUSH_MAX, max(FLUSH_MIN, sink.size))
            for tid, sink in sinks.items()
        }
        self.parts: list[Pairs] = []
        #: Per sink, the memory its buffers are concatenated into, reused by its next flushes
        #: (a 64 MiB concatenation per flush was fresh pages from the system every time).
        self.scratch: dict[int, Tensor] = {}

    def deliver(
        self,
        tid: int,
        pairs: Pairs,
        pending: dict[int, list[tuple[Pairs, Tensor | None]]],
        cols: Tensor | None = None,
    ) -> None:
        """Pairs at tensor ``tid`` whose output axis holds the outputs ``cols`` (None: all):
        into its sink's buffer (every output), else to the walk's ``pending``."""
        if tid not in self.sinks:
            pending.setdefault(tid, []).append((pairs, cols))
            return
        if cols is not None:
            pairs = _widen(pairs, cols, None, int(self.absorbed.shape[1]))
        self.buffers[tid].append(pairs)
        self.buffered[tid] += pairs.v.numel()
        if self.buffered[tid] >= self.flush_at[tid]:
            self.flush(tid)

    def flush(self, tid: int) -> None:
        """Contract the buffer of sink ``tid`` onto the raw inputs (a chain passes some on)."""
        if not self.buffers[tid]:
            return
        bufs = self.buffers[tid]
        r = bufs[0] if len(bufs) == 1 else self._concat(tid, bufs)
        self.buffers[tid], self.buffered[tid] = [], 0
        sink, f = self.sinks[tid], self.num_features
        if sink.chain is not None:  # [features, absorbed] here, the rest on to the next sink
            for idx, out in _contract_groups(r, sink, self.num_nodes):
                t, n = r.t[idx], r.n[idx]
                self.parts.append(Pairs(t, n, out[:, :, : f + 1].contiguous()))
                self.deliver(sink.chain, Pairs(t, n, out[:, :, f + 1 :].contiguous()), {})
            return
        done = _contract(r, sink, self.num_nodes)
        if sink.fanout is not None and sum(p.v.numel() for p in done) > FANOUT_MERGE_AT:
            done = [_coalesce(done, self.num_nodes)]  # k pairs per pair: merge duplicates now
        self.parts.extend(done)

    def _concat(self, tid: int, bufs: list[Pairs]) -> Pairs:
        """The buffered pairs of sink ``tid`` as one set; the values in its scratch memory (no
        contraction keeps a view of them: every part is a new tensor)."""
        shape = (sum(len(p.t) for p in bufs), *bufs[0].v.shape[1:])
        need = shape[0] * shape[1] * shape[2]
        flat = self.scratch.get(tid)
        if flat is None or flat.numel() < need:
            flat = self.scratch[tid] = bufs[0].v.new_empty(need)
        v = torch.cat([p.v for p in bufs], out=flat[:need].view(shape))
        return Pairs(torch.cat([p.t for p in bufs]), torch.cat([p.n for p in bufs]), v)

    def finish(self, num_out: int) -> Pairs:
        """Flush every sink (chains first: they feed others) and merge all parts into pairs
        sorted by (target position, source); adds the absorbed shares to ``absorbed``."""
        for tid in sorted(self.sinks, key=lambda k: self.sinks[k].chain is None):
            self.flush(tid)
        f = self.num_features
        if not self.parts:
            x = self.program.values[0]
            empty = torch.zeros(0, dtype=torch.long, device=x.device)
            return Pairs(empty, empty, torch.zeros(0, num_out, f, dtype=x.dtype, device=x.device))
        final = _coalesce(self.parts, self.num_nodes)
        self.parts = []
        self.absorbed.index_add_(0, final.t, final.v[:, :, f].contiguous())  # (strided: slow)
        return Pairs(final.t, final.n, final.v[:, :, :f])


def _widen(p: Pairs, cols: Tensor, union: Tensor | None, num_out: int) -> Pairs:
    """``p`` with outputs ``cols`` on its output axis, spread onto the outputs ``union`` (None:
    all ``num_out``); the others are zero."""
    width = num_out if union is None else len(union)
    where = cols if union is None else torch.searchsorted(union, cols)
    v = p.v.new_zeros(p.v.shape[0], width, p.v.shape[2])
    return Pairs(p.t, p.n, v.index_copy_(1, where, p.v))


def _merge(
    parts: list[tuple[Pairs, Tensor | None]], num_nodes: int, num_out: int
) -> tuple[Pairs, Tensor | None]:
    """One pair set (and its outputs) from the parts that reached one tensor."""
    if len(parts) == 1:
        return parts[0]
    given = [c for _, c in parts if c is not None]  # sorted output ids
    union: Tensor | None = None
    if len(given) == len(parts):
        union = torch.unique(torch.cat(given))
        if len(union) == num_out:
            union = None
    widened = [
        p
        if c is None or (union is not None and torch.equal(c, union))
        else _widen(p, c, union, num_out)
        for p, c in parts
    ]
    return _coalesce(widened, num_nodes), union


def _accumulate(acc: Tensor, t: Tensor, cols: Tensor | None, values: Tensor) -> None:
    """``acc[t[p], cols[o]] += values[p, o]``; acc (T, O), cols None: every output."""
    if cols is None:
        acc.index_add_(0, t, values)
    else:
        acc.index_put_((t[:, None], cols[None, :]), values, accumulate=True)


def _walk_chunk(
    plan: _Plan,
    program: Program,
    heads: list[tuple[int, int]],
    coll: _Collector,
    pos: Tensor,
    targets: Tensor,
    layers: dict[str, Tensor] | None,
) -> None:
    """Walk the targets ``targets`` (at positions ``pos``) from their outputs to the sinks.

    Each output tensor starts with only its own outputs on the output axis (a head does not
    carry the zero relevance of another head's outputs); parts are spread onto the union of
    their outputs where they meet, and onto every output at a sink.
    """
    values = program.values
    num_out = len(heads)
    pending: dict[int, list[tuple[Pairs, Tensor | None]]] = {}
    for tid in plan.out_tensors:  # one start vector per output of this tensor
        mine = [o for o, (t_o, _) in enumerate(heads) if t_o == tid]
        start_v = values[tid].new_zeros(len(targets), len(mine), values[tid].shape[1])
        for j, o in enumerate(mine):
            start_v[:, j, heads[o][1]] = values[tid][targets, heads[o][1]]
        cols = None if len(mine) == num_out else torch.tensor(mine, device=targets.device)
        coll.deliver(tid, Pairs(pos, targets, start_v), pending, cols)
    for idx, op in plan.walk:
        if op.output not in pending:
            continue
        r, cols = _merge(pending.pop(op.output), program.num_nodes, num_out)
        prep = plan.prepared[idx]
        if idx in plan.shortcuts:
            ins, leak = _backward_shortcut(op, prep, r, program, *plan.shortcuts[idx])
        else:
            ins, leak = _backward(op, prep, r, program)
        _accumulate(coll.absorbed, r.t, cols, leak)
        if layers is not None:
            bal = layers[plan.layer_names[idx]]
            _accumulate(bal[:, :, 0], r.t, cols, r.v.sum(2))
            for _, p in ins:
                _accumulate(bal[:, :, 1], p.t, cols, p.v.sum(2))
            _accumulate(bal[:, :, 2], r.t, cols, leak)
        for tid, p in ins:
            coll.deliver(tid, p, pending, cols)
    if pending:  # pragma: no cover - every non-local tensor is produced by a walked op
        raise RuntimeError(f"LRP left relevance at tensors {sorted(pending)}")


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
    num_nodes = program.num_nodes
    num_out = len(heads)
    plan = _plan(program, heads, composite, compose, record_layers)
    targets = targets.to(device=values[0].device, dtype=torch.long)
    num_targets = len(targets)
    chunk = chunk_size or _auto_chunk(plan, program, num_targets, num_out)
    if chunk < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    explained = torch.stack([values[t][targets, c] for t, c in heads], dim=1)  # (T, O)
    absorbed = values[0].new_zeros(num_targets, num_out)
    layers = (
        {plan.layer_names[i]: values[0].new_zeros(num_targets, num_out, 3) for i, _ in plan.walk}
        if record_layers
        else None
    )
    coll = _Collector(plan.sinks, program, absorbed)
    perm = _locality_order(plan.ops, targets, num_nodes) if locality else None
    for lo in range(0, num_targets, chunk):
        if perm is None:
            pos = torch.arange(lo, min(lo + chunk, num_targets), device=targets.device)
        else:
            pos = perm[lo : lo + chunk]  # positions of the targets in this chunk
        _walk_chunk(plan, program, heads, coll, pos, targets[pos], layers)
    final = coll.finish(num_out)
    return MultiRelevance(
        target=targets[final.t],
        source=final.n,
        values=final.v,
        targets=targets,
        explained=explained,
        absorbed=absorbed,
        num_elements=int(num_nodes),
        layers=layers,
    )
