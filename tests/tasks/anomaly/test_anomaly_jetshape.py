"""Jet-shape features: hand values on toy events, tau21 against a hand reclustering, invariance
under a common pT scale, jets conserve the event's momentum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from particlegraph.physics.kinematics import massless_p4
from particlegraph.tasks.anomaly.jetshape import (
    JET_FEATURES,
    cluster,
    jet_features,
    tau21,
    transverse_sphericity,
)
from particlegraph.tasks.anomaly.samples import Candidates


def _events(
    rows: list[list[tuple[float, float, float, int, int]]], scale: float = 1.0
) -> Candidates:
    """Candidates from per-event rows (pT, eta, phi, cls, charge), pT sorted as stored."""
    flat = [r for ev in rows for r in sorted(ev, key=lambda r: -r[0])]
    a = np.array(flat, dtype=np.float64).reshape(-1, 5)
    counts = [len(ev) for ev in rows]
    n = len(rows)
    pt = (a[:, 0] * scale).astype(np.float32)
    return Candidates(
        pt=pt, eta=a[:, 1].astype(np.float32), phi=a[:, 2].astype(np.float32),
        cls=a[:, 3].astype(np.int64), charge=a[:, 4].astype(np.int64), energy=pt.copy(),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        n_cand=np.array(counts), ht=np.full(n, 100.0 * scale), lead_jet_pt=np.full(n, 50.0 * scale),
        lead_jet_mass=np.full(n, 5.0 * scale), n_jets=np.ones(n, np.int64),
    )  # fmt: skip


# event 0: a charged hadron and a photon 0.06 apart in eta (one narrow jet) and a charged hadron
# far away; event 1: a lone muon
TOY = [[(10.0, 0.0, 0.0, 1, 1), (10.0, 0.06, 0.0, 3, 0), (5.0, 1.0, 3.0, 1, -1)],
       [(8.0, 0.3, 1.0, 5, 1)]]  # fmt: skip


def _eta_of_sum(pts: list[float], etas: list[float], phis: list[float]) -> float:
    p = massless_p4(np.array(pts), np.array(etas), np.array(phis)).sum(0)
    return float(np.arcsinh(p[2] / math.hypot(p[0], p[1])))


def test_jet_features_by_hand() -> None:
    f = dict(zip(JET_FEATURES, jet_features(_events(TOY)).T, strict=True))
    eta1 = _eta_of_sum([10, 10], [0.0, 0.06], [0, 0])
    girth1 = (10 * abs(eta1) + 10 * abs(0.06 - eta1)) / 20
    m1 = math.sqrt(2 * 10 * 10 * (math.cosh(0.06) - 1))  # two massless, same phi
    assert f["j1_girth"] == pytest.approx([girth1, 0.0], rel=1e-5)
    assert f["j1_nch"].tolist() == [1.0, 1.0] and f["j2_nch"].tolist() == [1.0, 0.0]
    assert f["j2_girth"].tolist() == [0.0, 0.0] and f["j3_nch"].tolist() == [0.0, 0.0]
    assert f["fj1_m_pt"] == pytest.approx([m1 / 20, 0.0], rel=1e-4, abs=1e-6)
    assert f["fj2_m_pt"].tolist() == [0.0, 0.0]
    assert f["fj1_tau21"].tolist() == [0.0, 0.0]  # two constituents: tau_2 = 0; one: defined 0
    assert f["fj_deta"] == pytest.approx([1.0 - eta1, 0.0], rel=1e-5)
    assert f["fj_pt_ratio"] == pytest.approx([0.25, 0.0], rel=1e-6)
    met = math.hypot(20 + 5 * math.cos(3.0), 5 * math.sin(3.0)) / 25
    assert f["met_frac"] == pytest.approx([met, 1.0], rel=1e-6)
    t = np.array([[0.8, 0.0], [0.0, 0.0]]) + 0.2 * np.outer([math.cos(3), math.sin(3)],
                                                           [math.cos(3), math.sin(3)])  # fmt: skip
    lo, hi = np.linalg.eigvalsh(t)
    assert f["sph_t"] == pytest.approx([2 * lo / (lo + hi), 0.0], rel=1e-5, abs=1e-9)
    assert f["n_tau_like"].tolist() == [2.0, 1.0]  # narrow 1-prong jets with >= 10 % of the pT


def test_tau21_against_a_hand_reclustering() -> None:
    # A and B hard, C soft next to B: exclusive kT merges B + C first, the axes are A and B + C
    rows = [(10.0, 0.0, 0.0, 1, 1), (10.0, 0.4, 0.0, 1, 1), (1.0, 0.42, 0.05, 3, 0)]
    c = _events([rows])
    jets = cluster(c, 0.8)
    assert jets.pt.size == 1 and jets.n_const.tolist() == [3]
    pts, etas, phis = (np.array(x) for x in zip(*[r[:3] for r in rows], strict=True))
    p = massless_p4(pts, etas, phis)
    jet, bc = p.sum(0), p[1:].sum(0)

    def dr(q: np.ndarray, i: int) -> float:
        qe, qp = np.arcsinh(q[2] / math.hypot(q[0], q[1])), math.atan2(q[1], q[0])
        return math.hypot(etas[i] - qe, phis[i] - qp)

    tau1 = sum(pts[i] * dr(jet, i) for i in range(3)) / 21
    tau2 = (10 * 0.0 + 10 * dr(bc, 1) + 1 * dr(bc, 2)) / 21
    assert jets.girth[0] == pytest.approx(tau1, rel=1e-5)
    assert tau21(c, jets, np.array([0]))[0] == pytest.approx(tau2 / tau1, rel=1e-4)


def _random_events(seed: int, n: int = 4) -> list[list[tuple[float, float, float, int, int]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        m = int(rng.integers(20, 60))
        cls = rng.integers(1, 6, m)
        out.append([(float(rng.exponential(8.0) + 0.5), float(rng.uniform(-2.5, 2.5)),
                     float(rng.uniform(-3.1, 3.1)), int(k), int(k != 2 and k != 3))
                    for k in cls])  # fmt: skip
    return out


def test_jet_features_do_not_see_the_event_scale() -> None:
    rows = _random_events(3)
    base = jet_features(_events(rows))
    assert np.ptp(base, axis=0).max() > 0  # not trivially constant
    np.testing.assert_array_equal(jet_features(_events(rows, 4.0)), base)  # exact in binary
    np.testing.assert_allclose(jet_features(_events(rows, 7.3)), base, rtol=1e-5, atol=1e-7)


def test_jets_conserve_momentum_and_rank_by_pt() -> None:
    c = _events(_random_events(5, 6))
    jets = cluster(c, 0.4)
    event = np.repeat(np.arange(c.num_events), np.diff(c.offsets))
    p = massless_p4(c.pt, c.eta, c.phi)
    for i in range(2):  # px, py of the jets of each event = of its candidates
        jet_sum = np.bincount(jets.event, jets.pt * np.cos(jets.phi) if i == 0 else
                              jets.pt * np.sin(jets.phi), minlength=c.num_events)  # fmt: skip
        np.testing.assert_allclose(jet_sum, np.bincount(event, p[:, i]), atol=1e-6)
    assert np.bincount(jets.label).sum() == c.pt.size == jets.n_const.sum()
    for e in range(c.num_events):
        pts = jets.pt[jets.event == e][np.argsort(jets.rank[jets.event == e])]
        assert np.all(np.diff(pts) <= 0)


def test_transverse_sphericity_limits() -> None:
    event = np.array([0, 0, 1, 1, 1, 1, 2])
    pt = np.array([5.0, 5.0, 3.0, 3.0, 3.0, 3.0, 7.0])
    phi = np.array([0.0, math.pi, 0.0, math.pi / 2, math.pi, -math.pi / 2, 1.0])
    s = transverse_sphericity(event, pt, phi, 4)  # back to back, isotropic, one object, empty
    np.testing.assert_allclose(s, [0.0, 1.0, 0.0, 0.0], atol=1e-12)


def test_an_empty_event_gives_zeros_and_leaves_its_neighbours_alone() -> None:
    with_gap = jet_features(_events([TOY[0], [], TOY[1]]))
    np.testing.assert_array_equal(with_gap[1], 0.0)
    np.testing.assert_array_equal(with_gap[[0, 2]], jet_features(_events(TOY)))
