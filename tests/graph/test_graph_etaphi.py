"""Tests of the eta-phi kNN graph (phi wrap-around, per-event neighbours, symmetrisation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from particlegraph.graph.etaphi import delta_phi, knn_etaphi, nearest_etaphi, symmetrise


def _slow_knn(
    eta: torch.Tensor, phi: torch.Tensor, k: int, batch: torch.Tensor
) -> set[tuple[int, int]]:
    """Reference: loop over particles, wrapped distance written out by hand."""
    edges = set()
    for i in range(len(eta)):
        cands = []
        for j in range(len(eta)):
            if j == i or batch[j] != batch[i]:
                continue
            dp = abs(float(phi[i] - phi[j])) % (2 * math.pi)
            dp = min(dp, 2 * math.pi - dp)
            cands.append(((float(eta[i] - eta[j]) ** 2 + dp**2), j))
        for _, j in sorted(cands)[:k]:
            edges.add((j, i))
    return edges


def test_phi_wrap_makes_neighbours() -> None:
    # particle 0 at phi=+3.1 and particle 1 at phi=-3.1 are 0.083 apart; particle 2 at phi=2.5
    eta = torch.tensor([0.0, 0.0, 0.0])
    phi = torch.tensor([3.1, -3.1, 2.5])
    ei = knn_etaphi(eta, phi, k=1)
    assert ei[:, ei[1] == 0].tolist() == [[1], [0]]
    assert ei[:, ei[1] == 1].tolist() == [[0], [1]]
    assert float(delta_phi(torch.tensor(3.1), torch.tensor(-3.1))) == pytest.approx(
        6.2 - 2 * math.pi, abs=1e-6
    )


def test_matches_slow_reference_per_event() -> None:
    g = torch.Generator().manual_seed(3)
    sizes = [5, 1, 40, 2, 17]
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    n = int(batch.numel())
    eta = torch.randn(n, generator=g)
    phi = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    ei = knn_etaphi(eta, phi, k=3, batch=batch)
    got = {(int(a), int(b)) for a, b in ei.T}
    assert got == _slow_knn(eta, phi, 3, batch)
    assert ei.shape[1] == sum(s * min(3, s - 1) for s in sizes)
    assert bool((batch[ei[0]] == batch[ei[1]]).all())  # never across events
    assert bool((ei[0] != ei[1]).all())  # no self loops


def test_small_blocks_give_the_same_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    import particlegraph.graph.etaphi as mod

    g = torch.Generator().manual_seed(0)
    batch = torch.repeat_interleave(torch.arange(6), torch.tensor([7, 3, 9, 4, 8, 2]))
    eta, phi = torch.randn(33, generator=g), torch.randn(33, generator=g)
    ref = knn_etaphi(eta, phi, 3, batch)
    monkeypatch.setattr(mod, "BLOCK_ENTRIES", 90)  # one event per block
    assert torch.equal(knn_etaphi(eta, phi, 3, batch), ref)


def test_symmetric_graph_is_undirected_and_contains_knn() -> None:
    g = torch.Generator().manual_seed(1)
    eta, phi = torch.randn(12, generator=g), torch.randn(12, generator=g)
    directed = knn_etaphi(eta, phi, k=2)
    sym = knn_etaphi(eta, phi, k=2, symmetric=True)
    pairs = {(int(a), int(b)) for a, b in sym.T}
    assert {(b, a) for a, b in pairs} == pairs
    assert {(int(a), int(b)) for a, b in directed.T} <= pairs
    assert len(pairs) == sym.shape[1]  # no duplicates
    assert torch.equal(symmetrise(sym, 12), sym)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="k must be"):
        knn_etaphi(torch.zeros(3), torch.zeros(3), k=0)
    with pytest.raises(ValueError, match="sorted"):
        knn_etaphi(torch.zeros(3), torch.zeros(3), batch=torch.tensor([1, 0, 1]))
    assert knn_etaphi(torch.zeros(0), torch.zeros(0)).shape == (2, 0)


def test_nearest_wraps_phi_and_respects_radius() -> None:
    idx = nearest_etaphi(
        np.array([0.0, 0.0, 1.0]), np.array([3.1, -3.1, 0.0]),
        np.array([0.0, 0.0]), np.array([-3.13, 0.5]), max_dr=0.1,
    )  # fmt: skip
    assert idx.tolist() == [0, 0, -1]
