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

#: Largest distance block, in entries (64 MB of float32): big events are split into row chunks.
BLOCK_ENTRIES = 1 << 24
#: Consecutive small events are grouped up to this many points and handled as one masked block.
GROUP_POINTS = 2048


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

    Returns:
        ``edge_index`` (2, E) long, row 0 = source (neighbour j), row 1 = target (query i), grouped by
        target in ascending order, neighbours of a target ordered by distance. ``E = N * k`` when every
        event has at least ``k`` (``k + 1`` without loops) points.

    Shapes:
        x (N, D), batch (N,) -> (2, E)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, D), got {tuple(x.shape)}")
    n = x.size(0)
    device = x.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    if batch is None:
        ptr = [0, n]
    else:
        if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise ValueError("batch must be sorted in ascending order")
        ptr = [0, *itertools.accumulate(torch.bincount(batch).tolist())]  # one host sync
    ptr = [p for i, p in enumerate(ptr) if i == 0 or p != ptr[i - 1]]  # drop empty events
    need = k if loop else k + 1
    all_full = min(b - a for a, b in itertools.pairwise(ptr)) >= need

    sq = (x * x).sum(-1)  # (N,)
    sources, targets = [], []
    for lo, hi, several in _event_groups(ptr):
        m = hi - lo
        if chunk_size is None:
            step = m
        else:
            step = chunk_size if chunk_size > 0 else max(1, BLOCK_ENTRIES // m)
        c = x[lo:hi]  # (M, D) candidates
        kk = min(k, m)
        for start in range(lo, hi, step):
            stop = min(start + step, hi)
            # |q - c|^2 up to the per-row constant |q|^2, which does not change a row's ranking.
            d2 = torch.addmm(sq[None, lo:hi], x[start:stop], c.T, alpha=-2.0)  # (C, M)
            if several:
                assert batch is not None
                d2 = d2.masked_fill(batch[start:stop, None] != batch[None, lo:hi], math.inf)
            rows = torch.arange(stop - start, device=device)
            d2[rows, rows + (start - lo)] = -math.inf if loop else math.inf  # self first, or never
            dist, idx = torch.topk(d2, kk, dim=1, largest=False, sorted=True)  # (C, kk)
            tgt = torch.arange(start, stop, device=device)[:, None].expand(-1, kk)
            if all_full and kk == k and not several:
                sources.append((idx + lo).reshape(-1))
                targets.append(tgt.reshape(-1))
            else:
                valid = dist < math.inf
                sources.append((idx + lo)[valid])
                targets.append(tgt[valid])
    return torch.stack([torch.cat(sources), torch.cat(targets)])


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
