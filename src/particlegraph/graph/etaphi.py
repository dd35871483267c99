"""k nearest neighbours in (eta, phi) with phi wrapped around, per event of a batch.

The distance is ``dR^2 = (eta_i - eta_j)^2 + dphi(phi_i, phi_j)^2`` with ``dphi`` wrapped into
[-pi, pi), so particles at phi = +3.1 and -3.1 are 0.083 apart, not 6.2. Events are padded into
dense blocks of at most :data:`BLOCK_ENTRIES` distance entries, several events per block when
they are small (the 40-particle graphs of the anomaly task: thousands of events per block), so
memory is ``O(block)`` and the output ``O(N k)``. Pure PyTorch, no ``torch-cluster``.

:func:`nearest_etaphi` matches two collections (each source to its nearest destination within a
distance) with the same wrapped metric, in numpy.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from particlegraph.graph.knn import event_ptr
from particlegraph.physics.kinematics import delta_phi

#: Largest padded distance block (events x n_max x n_max entries; 64 MB of float32).
BLOCK_ENTRIES = 1 << 24


def knn_etaphi(
    eta: Tensor,
    phi: Tensor,
    k: int = 3,
    batch: Tensor | None = None,
    *,
    symmetric: bool = False,
) -> Tensor:
    """Edges from each particle's ``k`` nearest neighbours in (eta, phi) to the particle.

    Args:
        eta: pseudorapidity per particle, shape (N,).
        phi: azimuth [rad] per particle, shape (N,); any range (differences are wrapped).
        k: neighbours per particle (fewer when its event has fewer than k + 1 particles).
        batch: event index per particle, shape (N,), sorted ascending; None = one event.
        symmetric: also add the reverse of every edge (duplicates removed), so the graph is
            undirected; without it the graph is directed as in PyG's ``knn_graph(loop=False)``.

    Returns:
        ``edge_index`` (2, E) long, row 0 = source (neighbour j), row 1 = target (particle i).
        Directed: grouped by target in ascending order, neighbours nearest first, ties broken by
        the lower index; ``E = sum_events n_e * min(k, n_e - 1)``. Symmetric: sorted by
        (target, source).

    Shapes:
        eta (N,), phi (N,), batch (N,) -> (2, E)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if eta.shape != phi.shape or eta.dim() != 1:
        raise ValueError(
            f"eta and phi must both have shape (N,), got {tuple(eta.shape)}, {tuple(phi.shape)}"
        )
    n = eta.numel()
    device = eta.device
    if n == 0:
        return torch.empty(2, 0, dtype=torch.long, device=device)
    ptr = event_ptr(batch, n)
    sizes = [b - a for a, b in itertools.pairwise(ptr)]
    starts = ptr[:-1]
    srcs, dsts = [], []
    e = 0
    num_events = len(sizes)
    while e < num_events:
        # group consecutive events while the padded block stays within BLOCK_ENTRIES
        m = max(sizes[e], 1)
        f = e + 1
        while f < num_events:
            m2 = max(m, sizes[f])
            if (f - e + 1) * m2 * m2 > BLOCK_ENTRIES:
                break
            m, f = m2, f + 1
        src, dst = _block(eta, phi, starts[e:f], sizes[e:f], m, k)
        srcs.append(src)
        dsts.append(dst)
        e = f
    edge_index = torch.stack([torch.cat(srcs), torch.cat(dsts)])
    if symmetric:
        edge_index = symmetrise(edge_index, n)
    return edge_index


def _block(
    eta: Tensor, phi: Tensor, starts: list[int], sizes: list[int], m: int, k: int
) -> tuple[Tensor, Tensor]:
    """kNN of several events padded to (B, m): returns flat (source, target) global indices."""
    device = eta.device
    b = len(starts)
    start_t = torch.tensor(starts, dtype=torch.long, device=device)
    size_t = torch.tensor(sizes, dtype=torch.long, device=device)
    pos = torch.arange(m, device=device)
    valid = pos[None, :] < size_t[:, None]  # (B, m)
    gidx = (start_t[:, None] + pos[None, :]).clamp(max=max(eta.numel() - 1, 0))  # (B, m)
    et, ph = eta[gidx], phi[gidx]  # (B, m)
    d2 = (et[:, :, None] - et[:, None, :]) ** 2 + delta_phi(ph[:, :, None], ph[:, None, :]) ** 2
    pair_ok = valid[:, :, None] & valid[:, None, :] & ~torch.eye(m, dtype=torch.bool, device=device)
    d2 = d2.masked_fill(~pair_ok, math.inf)  # (B, m, m): row = target i, column = candidate j
    kk = min(k, max(m - 1, 1))
    # stable sort so equal distances keep the lower index first (deterministic ties)
    dist, idx = torch.sort(d2, dim=2, stable=True)
    dist, idx = dist[:, :, :kk], idx[:, :, :kk]  # (B, m, kk)
    keep = torch.isfinite(dist)  # (B, m, kk): padding, self and missing neighbours drop out
    src = (start_t[:, None, None] + idx)[keep]
    dst = (start_t[:, None, None] + pos[None, :, None]).expand(b, m, kk)[keep]
    return src, dst


def symmetrise(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Union of ``edge_index`` (2, E) and its reverse without duplicates, sorted by (target, source)."""
    both = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    key = torch.unique(both[1] * num_nodes + both[0])  # sorted by target, then source
    return torch.stack([key % num_nodes, key // num_nodes])


def nearest_etaphi(
    eta_src: np.ndarray,
    phi_src: np.ndarray,
    eta_dst: np.ndarray,
    phi_dst: np.ndarray,
    max_dr: float,
) -> np.ndarray:
    """Index of the nearest destination in (eta, phi) with phi wrapped, or -1 beyond ``max_dr``
    (numpy, a periodic k-d tree; used to match objects of two collections, e.g. particles to
    calorimeter towers).

    Shapes: sources (M,), destinations (K,) -> (M,) int64.
    """
    out = np.full(len(eta_src), -1, dtype=np.int64)
    if len(eta_src) == 0 or len(eta_dst) == 0:
        return out
    from scipy.spatial import cKDTree

    two_pi = 2.0 * np.pi
    # eta is shifted into [0, 100) of a box much wider than any eta range, so only phi wraps
    box = np.array([200.0, two_pi])

    def pts(eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        return np.stack([np.clip(eta, -99, 99) + 100.0, np.mod(phi, two_pi) % two_pi], axis=1)

    tree = cKDTree(pts(eta_dst, phi_dst), boxsize=box)
    dist, idx = tree.query(pts(eta_src, phi_src), k=1, distance_upper_bound=max_dr)
    ok = np.isfinite(dist)
    out[ok] = idx[ok]
    return out
