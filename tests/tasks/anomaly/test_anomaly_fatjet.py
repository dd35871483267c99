"""Groomed large-R substructure: hand values on a toy event (trimming removes a soft subjet,
tau21 against a hand computation), invariance under a common pT scale, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.physics.kinematics import massless_p4
from particlegraph.tasks.anomaly.fatjet import SUBSTRUCTURE_FEATURES, substructure_features, trim
from particlegraph.tasks.anomaly.jetshape import cluster, constituent_index
from particlegraph.tasks.anomaly.samples import Candidates


def _events(rows: list[list[tuple[float, float, float]]], scale: float = 1.0) -> Candidates:
    """Candidates (charged hadrons) from per-event rows (pT, eta, phi), pT sorted as stored."""
    flat = [r for ev in rows for r in sorted(ev, key=lambda r: -r[0])]
    a = np.array(flat, dtype=np.float64).reshape(-1, 3)
    counts = [len(ev) for ev in rows]
    n = len(rows)
    pt = (a[:, 0] * scale).astype(np.float32)
    ones = np.ones(a.shape[0], np.int64)
    return Candidates(
        pt=pt, eta=a[:, 1].astype(np.float32), phi=a[:, 2].astype(np.float32), cls=ones,
        charge=ones, energy=pt.copy(), offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        n_cand=np.array(counts), ht=np.full(n, 100.0 * scale), lead_jet_pt=np.full(n, 50.0 * scale),
        lead_jet_mass=np.full(n, 5.0 * scale), n_jets=np.ones(n, np.int64),
    )  # fmt: skip


PI = math.pi
# jet A: a two-particle prong (62 + 40 GeV, 0.1 apart: one kT subjet of R = 0.2), a 100 GeV
# prong 0.5 away in phi, and a 2 GeV particle (its own subjet, < 5 % of A's pT: trimmed away);
# jet B, back to back: 90 + 60 GeV 0.15 apart in eta (one subjet). Event 2 is empty, event 3
# holds one particle.
A = [(62.0, 0.0, 0.0), (40.0, 0.1, 0.0), (100.0, 0.0, 0.5), (2.0, 0.5, 0.25)]
B = [(90.0, 0.0, PI - 1e-3), (60.0, 0.15, PI - 1e-3)]
TOY = [A + B, [], [(30.0, 1.0, 1.0)]]


def _p4(parts: list[tuple[float, float, float]]) -> np.ndarray:
    a = np.array(parts, dtype=np.float64)
    return massless_p4(a[:, 0], a[:, 1], a[:, 2])


def _pt_eta_phi_m(parts: list[tuple[float, float, float]]) -> tuple[float, float, float, float]:
    px, py, pz, e = _p4(parts).sum(0)
    pt = math.hypot(px, py)
    return (
        pt,
        math.asinh(pz / pt),
        math.atan2(py, px),
        math.sqrt(max(e * e - px * px - py * py - pz * pz, 0)),
    )


def _dr(p: tuple[float, float, float], eta: float, phi: float) -> float:
    dphi = (p[2] - phi + PI) % (2 * PI) - PI
    return math.hypot(p[1] - eta, dphi)


def _girth(parts: list[tuple[float, float, float]]) -> float:
    _, eta, phi, _ = _pt_eta_phi_m(parts)
    return sum(p[0] * _dr(p, eta, phi) for p in parts) / sum(p[0] for p in parts)


def test_substructure_by_hand() -> None:
    f = dict(zip(SUBSTRUCTURE_FEATURES, substructure_features(_events(TOY)).T, strict=True))
    pt_a, pt_b = _pt_eta_phi_m(A)[0], _pt_eta_phi_m(B)[0]
    trimmed = A[:3]  # the 2 GeV subjet is dropped
    m_a, m_b = _pt_eta_phi_m(trimmed)[3], _pt_eta_phi_m(B)[3]
    assert f["lj1_mfrac"] == pytest.approx([m_a / (pt_a + pt_b), 0.0, 0.0], rel=1e-5)
    assert f["lj2_mfrac"] == pytest.approx([m_b / (pt_a + pt_b), 0.0, 0.0], rel=1e-5)
    # tau21 of trimmed A: tau1 about its axis, tau2 about (62 + 40) and the 100 GeV particle
    _, eta_a, phi_a, _ = _pt_eta_phi_m(trimmed)
    _, eta_s, phi_s, _ = _pt_eta_phi_m(A[:2])
    tau1 = sum(p[0] * _dr(p, eta_a, phi_a) for p in trimmed)
    tau2 = sum(p[0] * _dr(p, eta_s, phi_s) for p in A[:2])  # the 100 GeV prong: its own axis
    assert f["lj1_tau21"] == pytest.approx([tau2 / tau1, 0.0, 0.0], rel=1e-4)
    assert f["lj2_tau21"].tolist() == [0.0, 0.0, 0.0]  # two constituents, two axes: tau2 = 0
    # narrow jets: B (150 GeV) leads, then the 62 + 40 prong of A
    assert f["j1_m_pt"] == pytest.approx([m_b / pt_b, 0.0, 0.0], rel=1e-5)
    pt_s, _, _, m_s = _pt_eta_phi_m(A[:2])
    assert f["j2_m_pt"] == pytest.approx([m_s / pt_s, 0.0, 0.0], rel=1e-5)
    assert f["j1_girth"] == pytest.approx([_girth(B), 0.0, 0.0], rel=1e-4)
    assert f["j2_girth"] == pytest.approx([_girth(A[:2]), 0.0, 0.0], rel=1e-4)


def test_trim_keeps_the_hard_subjets_only() -> None:
    c = _events([A + B])
    jets = cluster(c, 1.0)
    lead = np.flatnonzero(jets.rank < 2)
    lead = lead[np.argsort(jets.rank[lead])]  # A (the harder jet) first
    kept, group = trim(c, jets, lead)
    assert sorted(c.pt[kept[group == 0]].tolist()) == [40.0, 62.0, 100.0]
    assert sorted(c.pt[kept[group == 1]].tolist()) == [60.0, 90.0]
    everything, _ = trim(c, jets, lead, fcut=0.0)  # no cut: every constituent stays
    assert everything.size == len(A) + len(B)


def test_substructure_does_not_see_the_event_scale() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(20):
        k = int(rng.integers(5, 60))
        pt = rng.exponential(10.0, k) + 0.5
        rows.append(list(zip(pt, rng.uniform(-2.5, 2.5, k), rng.uniform(-PI, PI, k), strict=True)))
    base = substructure_features(_events(rows))
    assert np.isfinite(base).all() and (base[:, 0] > 1e-3).sum() >= 15  # massive jets
    np.testing.assert_allclose(
        substructure_features(_events(rows, scale=4.0)), base, rtol=1e-9, atol=1e-12
    )


def test_refusals() -> None:
    c = _events([A + B])
    jets = cluster(c, 1.0)
    with pytest.raises(ConfigError, match="fcut"):
        trim(c, jets, np.array([0]), fcut=1.5)
    with pytest.raises(ConfigError, match="subjet_r"):
        trim(c, jets, np.array([0]), subjet_r=0.0)
    with pytest.raises(ConfigError, match="jet algorithm"):
        constituent_index(_p4(A), np.array([len(A)]), 1.0, "cambridge")
