"""k-nearest-neighbour graphs in plain PyTorch, chunked so memory stays linear in N.

PyG's ``knn_graph`` needs ``torch-cluster``/``pyg-lib``, which are not available on every platform; this
module computes the same graph with dense distance blocks of ``chunk_size`` query points against the points
of their own event only. Peak memory is ``O(chunk_size * max_event_size)`` and the output ``O(N * k)``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from particlegraph.graph.knn_pruned import pruned_exact_event

#: Largest distance block, in entries (64 MB of float32): big events are split into row chunks.
BLOCK_ENTRIES = 1 << 24
#: Consecutive small events are grouped up to this many points and handled as one masked block.
GROUP_POINTS = 2048
#: Single events from this many points on take the pruned exact search on CPU
#: (:mod:`~particlegraph.graph.knn_pruned`: the same edges as the dense search, in about linear
#: time instead of O(n^2)). Measured crossing: see docs/benchmarks.md (kNN).
PRUNED_MIN_POINTS = 4096


def event_ptr(batch: Tensor | None, n: int) -> list[int]:
    """Event boundaries ``[0, n_0, n_0 + n_1, ..., n]`` of ``n`` elements (one host sync).

    Args:
        batch: (n,) event index of each element, sorted ascending (PyG batches are); None = one
            event. Events with no element give repeated offsets.

    Raises:
        ValueError: ``batch`` is not sorted.
    """
    if batch is None:
        return [0, n]
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted in ascending order")
    return [0, *itertools.accumulate(torch.bincount(batch).tolist())]


def _event_groups(ptr: list[int]) -> list[tuple[int, int, bool]]:
    """Split events into ``(lo, hi, several_events)`` groups of consecutive events.

    A group is one event, or several small ones totalling at most :data:`GROUP_POINTS` points, so that
    a block never compares points of different events except inside a small masked group.
    """
    groups = []
    i, num_events = 0, len(ptr) - 1
    while i < num_events:
        j = i + 1
        while j < num_events and ptr[j + 1] - ptr[i] <= GROUP_POINTS:
            j += 1
        groups.append((ptr[i], ptr[j], j - i > 1))
        i = j
    return groups


def knn_graph(
    x: Tensor,
    k: int,
    batch: Tensor | None = None,
    *,
    loop: bool = True,
    chunk_size: int | None = 0,
    bin_size: int | None = None,
) -> Tensor:
    """Edges from each point's ``k`` nearest neighbours (Euclidean) to the point itself.

    Points are compared only with points of their own event. Events are processed one by one (small
    ones in groups), a large event in chunks of query rows, so a distance block never has more than
    :data:`BLOCK_ENTRIES` entries: memory is linear in N.

    Args:
        x: point coordinates, shape (N, D).
        k: number of neighbours per point (fewer when an event has fewer candidates).
        batch: event index per point, shape (N,), sorted ascending (PyG convention); ``None`` = one event.
        loop: count the point itself as one of its neighbours (always the first one).
        chunk_size: query rows per block; ``0`` (default) picks the largest chunk within
            :data:`BLOCK_ENTRIES`; ``None`` one block per event (simplest to export).
        bin_size: ``None`` (default) = exact kNN, O(n^2) distances per event of n points (on
            CPU a single event of :data:`PRUNED_MIN_POINTS` or more takes the pruned search of
            :mod:`~particlegraph.graph.knn_pruned`: the same edges in about linear time). An integer
            B switches events larger than 3 B to the binned approximate search of
            :func:`binned_knn_event`, O(n B): time and memory linear in n.

    Returns:
        ``edge_index`` (2, E) long, row 0 = source (neighbour j), row 1 = target (query i), grouped by
        target (in ascending order, except inside binned events, which follow their curve order),
        neighbours of a target ordered by distance. ``E = N * k`` when every event has at least
        ``k`` (``k + 1`` without loops) points.

    Shapes:
        x (N, D), batch (N,) -> (2, E)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, D), got {tuple(x.shape)}")
    n = x.size(0)
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    ptr = event_ptr(batch, n)
    ptr = [p for i, p in enumerate(ptr) if i == 0 or p != ptr[i - 1]]  # drop empty events

    sq = (x * x).sum(-1)  # (N,)
    sources: list[Tensor] = []
    targets: list[Tensor] = []
    for lo, hi, several in _event_groups(ptr):
        if bin_size is not None and not several and hi - lo > 3 * bin_size:
            src, tgt_ = binned_knn_event(x[lo:hi], k, bin_size, loop=loop)
            sources.append(src + lo)
            targets.append(tgt_ + lo)
            continue
        if _prunable(x, several, hi - lo, chunk_size):
            found = pruned_exact_event(x, sq, lo, hi, k, loop=loop)
            if found is not None:
                sources.append(found[0])
                targets.append(found[1])
                continue
        group = batch if several else None
        for src, tgt_ in _exact_blocks(x, sq, group, lo, hi, k, loop=loop, chunk_size=chunk_size):
            sources.append(src)
            targets.append(tgt_)
    return torch.stack([torch.cat(sources), torch.cat(targets)])


def _prunable(x: Tensor, several: bool, m: int, chunk_size: int | None) -> bool:
    """Whether one event of ``m`` points takes the pruned exact search: a single large event
    on CPU, not while exporting or tracing (``chunk_size=None`` asks for one dense block)."""
    return (
        not several
        and m >= PRUNED_MIN_POINTS
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and chunk_size is not None
        and not torch.jit.is_tracing()  # type: ignore[no-untyped-call]
        and not torch.onnx.is_in_onnx_export()
        and not torch.compiler.is_compiling()
    )


def _exact_blocks(
    x: Tensor, sq: Tensor, batch: Tensor | None, lo: int, hi: int, k: int, *, loop: bool,
    chunk_size: int | None,
) -> list[tuple[Tensor, Tensor]]:  # fmt: skip
    """Exact kNN of rows ``lo:hi`` of ``x`` among themselves, one block of query rows at a time.

    ``sq`` (N,) holds ``|x|^2``; ``batch`` is given when the rows hold several events (neighbours
    are then taken from a point's own event only), ``None`` for one event. Returns one
    ``(sources, targets)`` pair of (E_block,) long tensors (global row numbers) per block.
    """
    device = x.device
    m = hi - lo
    need = k if loop else k + 1  # candidates a point needs for k finite neighbours
    step = m  # chunk_size None: the whole event in one block
    if chunk_size is not None:
        step = chunk_size if chunk_size > 0 else max(1, BLOCK_ENTRIES // m)
    c = x[lo:hi]  # (M, D) candidates
    kk = min(k, m)
    out = []
    for start in range(lo, hi, step):
        stop = min(start + step, hi)
        # |q - c|^2 up to the per-row constant |q|^2, which does not change a row's ranking.
        d2 = torch.addmm(sq[None, lo:hi], x[start:stop], c.T, alpha=-2.0)  # (C, M)
        if batch is not None:
            d2 = d2.masked_fill(batch[start:stop, None] != batch[None, lo:hi], math.inf)
        rows = torch.arange(stop - start, device=device)
        d2[rows, rows + (start - lo)] = -math.inf if loop else math.inf  # self first, or never
        dist, idx = torch.topk(d2, kk, dim=1, largest=False, sorted=True)  # (C, kk)
        tgt = torch.arange(start, stop, device=device)[:, None].expand(-1, kk)
        if batch is None and m >= need:  # every selected neighbour is real
            out.append(((idx + lo).reshape(-1), tgt.reshape(-1)))
        else:
            valid = dist < math.inf
            out.append(((idx + lo)[valid], tgt[valid]))
    return out


def morton_order(x: Tensor, bits: int = 10) -> Tensor:
    """Permutation (N,) that sorts points along a Z-order (Morton) curve of their bounding box.

    Each coordinate is quantised to ``bits`` bits and the bits are interleaved, so points close in
    the curve order are close in space (the converse holds for most, not all, pairs).
    """
    n, d = x.shape
    bits = max(1, min(bits, 62 // max(d, 1)))
    lo, hi = x.min(0).values, x.max(0).values
    q = ((x - lo) / (hi - lo).clamp_min(1e-12) * (2**bits - 1)).round().long()  # (N, D)
    code = torch.zeros(n, dtype=torch.long, device=x.device)
    for b in range(bits):
        for j in range(d):
            code |= ((q[:, j] >> b) & 1) << (b * d + j)
    return torch.argsort(code)


def binned_knn_event(
    x: Tensor, k: int, bin_size: int, *, loop: bool = True
) -> tuple[Tensor, Tensor]:
    """Approximate kNN of one event in O(n * bin_size): Z-order bins searched with their neighbours.

    Points are sorted by :func:`morton_order` and cut into bins of ``bin_size``; the points of a bin
    take their ``k`` nearest among the bin and the two adjacent bins (3 x ``bin_size`` candidates).
    Like the locality-sensitive-hashing bins of the published MLPF (Pata et al. 2021), this trades
    exactness for linear cost; a network trained with it learns coordinates that suit it.

    Returns:
        ``(source, target)`` (E,) each, grouped by target in curve order, ``E = n * min(k, n)``.
    """
    n, dim = x.shape
    perm = morton_order(x)  # (n,)
    xs = x[perm]
    nb = -(-n // bin_size)
    padded = nb * bin_size
    # Pad one bin on each side and up to a whole number of bins; padding is never a neighbour.
    pad_x = xs.new_zeros(padded + 2 * bin_size, dim)
    pad_x[bin_size : bin_size + n] = xs
    real = torch.zeros(padded + 2 * bin_size, dtype=torch.bool, device=x.device)
    real[bin_size : bin_size + n] = True
    queries = pad_x[bin_size : bin_size + padded].view(nb, bin_size, dim)  # (nb, B, D)
    cand = pad_x.unfold(0, 3 * bin_size, bin_size).transpose(1, 2)  # (nb, 3B, D)
    cand_ok = real.unfold(0, 3 * bin_size, bin_size)  # (nb, 3B)
    sq = (cand * cand).sum(-1)  # (nb, 3B)
    kk = min(k, n)
    sources, targets = [], []
    step = max(1, BLOCK_ENTRIES // (3 * bin_size * bin_size))  # bins per block
    for b0 in range(0, nb, step):
        b1 = min(b0 + step, nb)
        d2 = torch.baddbmm(
            sq[b0:b1, None, :], queries[b0:b1], cand[b0:b1].transpose(1, 2), alpha=-2.0
        )
        d2 = d2.masked_fill(~cand_ok[b0:b1, None, :], math.inf)  # (bins, B, 3B)
        rows = torch.arange(bin_size, device=x.device)
        d2[:, rows, rows + bin_size] = -math.inf if loop else math.inf  # self first, or never
        dist, idx = torch.topk(d2, kk, dim=-1, largest=False, sorted=True)  # (bins, B, kk)
        # candidate slot -> position in the sorted order (slot 0 of bin b is sorted index (b-1) B)
        base = (torch.arange(b0, b1, device=x.device) - 1) * bin_size
        pos = idx + base[:, None, None]
        qpos = torch.arange(b0 * bin_size, b1 * bin_size, device=x.device).view(-1, bin_size)
        qpos = qpos[:, :, None].expand_as(pos)
        valid = (dist < math.inf) & (qpos < n)
        sources.append(perm[pos[valid]])
        targets.append(perm[qpos[valid]])
    return torch.cat(sources), torch.cat(targets)


def knn_graph_bruteforce(
    x: Tensor, k: int, batch: Tensor | None = None, *, loop: bool = True
) -> Tensor:
    """Reference: one full (N, N) distance matrix with ``torch.cdist``. O(N^2) memory; for tests."""
    n = x.size(0)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=x.device)
    d = torch.cdist(x.double(), x.double())
    d = d.masked_fill(batch[:, None] != batch[None, :], math.inf)
    if not loop:
        d.fill_diagonal_(math.inf)
    kk = min(k, n)
    dist, idx = torch.topk(d, kk, dim=1, largest=False)
    tgt = torch.arange(n, device=x.device)[:, None].expand(-1, kk)
    valid = torch.isfinite(dist)
    return torch.stack([idx[valid], tgt[valid]])
