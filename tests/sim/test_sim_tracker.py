"""Track direction smearing and the measured calorimeter entry point (sim/tracker.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.helix import propagate
from particlegraph.sim.particles import make_particles
from particlegraph.sim.tracker import (
    direction_resolution,
    measured_entry_points,
    reconstruct_tracks,
    smear_direction,
)

NO_DIRECTION = {
    "track_phi_res_a": (0.0,) * 3, "track_phi_res_b": (0.0,) * 3,
    "track_cot_res_a": (0.0,) * 3, "track_cot_res_b": (0.0,) * 3,
}  # fmt: skip


def test_direction_resolution_hand_values() -> None:
    cfg = DetectorConfig()
    s_phi, s_cot = direction_resolution(
        np.array([1.0, 10.0, 100.0]), np.array([0.2, 1.0, 2.0]), cfg
    )
    # barrel, 1 GeV: sqrt(0.1^2 + 2.0^2) mrad; |eta| 1.0, 10 GeV: sqrt(0.15^2 + 0.25^2) mrad
    assert s_phi[0] == pytest.approx(np.hypot(1.0e-4, 2.0e-3))
    assert s_phi[1] == pytest.approx(np.hypot(1.5e-4, 2.5e-4))
    assert s_phi[2] == pytest.approx(np.hypot(2.5e-4, 4.0e-5))
    assert s_cot[0] == pytest.approx(np.hypot(2.0e-4, 2.0e-3))
    assert s_cot[2] == pytest.approx(np.hypot(6.0e-4, 6.0e-5))
    # multiple scattering dominates at low pT: sigma ~ 1/pT there
    lo, hi = direction_resolution(np.array([0.2, 0.4]), np.zeros(2), cfg)[0]
    assert lo / hi == pytest.approx(2.0, rel=0.01)


def test_smeared_directions_have_the_configured_spread() -> None:
    cfg = DetectorConfig()
    n = 20000
    pt, eta = np.full(n, 2.0), np.full(n, 1.2)
    phi = np.full(n, 3.1)  # near the wrap-around
    eta_m, phi_m = smear_direction(pt, eta, phi, cfg, np.random.default_rng(3))
    s_phi, s_cot = direction_resolution(pt[:1], eta[:1], cfg)
    dphi = np.angle(np.exp(1j * (phi_m - phi)))
    assert np.all(np.abs(phi_m) <= np.pi)
    assert dphi.std() == pytest.approx(s_phi[0], rel=0.03)  # 20k samples: 0.5 % statistical
    assert abs(dphi.mean()) < 4 * s_phi[0] / np.sqrt(n)
    dcot = np.sinh(eta_m) - np.sinh(eta)
    assert dcot.std() == pytest.approx(s_cot[0], rel=0.03)
    assert abs(dcot.mean()) < 4 * s_cot[0] / np.sqrt(n)


def test_zero_resolution_leaves_directions_and_the_random_stream_alone() -> None:
    cfg = dataclasses.replace(DetectorConfig(), **NO_DIRECTION)
    rng = np.random.default_rng(5)
    eta, phi = np.array([0.3, -1.7]), np.array([1.0, -2.0])
    eta_m, phi_m = smear_direction(np.array([1.0, 5.0]), eta, phi, cfg, rng)
    assert np.array_equal(eta_m, eta) and np.array_equal(phi_m, phi)
    assert rng.random() == np.random.default_rng(5).random()


def _pions(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pt = rng.uniform(1.0, 20.0, n)
    eta = rng.uniform(-2.0, 2.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    p3 = np.column_stack([pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)])
    e = np.linalg.norm(p3, axis=1)
    vtx = np.column_stack([np.zeros(n), np.zeros(n), rng.normal(0.0, 50.0, n)])
    return make_particles(np.full(n, 211), np.ones(n), np.column_stack([p3, e]), vtx)


def test_entry_point_of_a_perfect_tracker_is_the_true_crossing() -> None:
    zero_pt = {"hadron_res_a": (0.0,) * 3, "hadron_res_b": (0.0,) * 3}
    cfg = dataclasses.replace(DetectorConfig(), **NO_DIRECTION, **zero_pt)
    parts = _pions(300)
    tracks = reconstruct_tracks(parts, cfg, np.random.default_rng(1))
    eta_out, phi_out = measured_entry_points(parts, tracks, cfg)
    hit = propagate(
        parts.px, parts.py, parts.pz, parts.charge, parts.vx, parts.vy, parts.vz,
        bz=cfg.bz, radius=cfg.radius, half_length=cfg.half_length,
    )  # fmt: skip
    assert np.allclose(eta_out, hit.eta[tracks.particle], atol=1e-9)
    assert np.allclose(phi_out, hit.phi[tracks.particle], atol=1e-9)


def test_measured_tracks_scatter_around_the_truth() -> None:
    cfg = DetectorConfig()
    parts = _pions(4000, seed=2)
    tracks = reconstruct_tracks(parts, cfg, np.random.default_rng(2))
    i = tracks.particle
    dphi = np.angle(np.exp(1j * (tracks.phi - parts.phi[i])))
    s_phi, s_cot = direction_resolution(parts.pt[i], parts.eta[i], cfg)
    pull_phi = dphi / s_phi
    pull_cot = (np.sinh(tracks.eta) - np.sinh(parts.eta[i])) / s_cot
    assert pull_phi.std() == pytest.approx(1.0, rel=0.05)
    assert pull_cot.std() == pytest.approx(1.0, rel=0.05)
    # the entry point moves with the measured direction and curvature: never exactly the truth
    hit = propagate(
        parts.px, parts.py, parts.pz, parts.charge, parts.vx, parts.vy, parts.vz,
        bz=cfg.bz, radius=cfg.radius, half_length=cfg.half_length,
    )  # fmt: skip
    _, phi_out = measured_entry_points(parts, tracks, cfg)
    d_out = np.abs(np.angle(np.exp(1j * (phi_out - hit.phi[i]))))
    assert np.all(d_out > 0.0) and np.median(d_out) < 0.01


def test_bad_direction_tables_are_refused() -> None:
    with pytest.raises(ConfigError, match="track_phi_res_a needs one value"):
        DetectorConfig(track_phi_res_a=(1e-4, 1e-4))
    with pytest.raises(ConfigError, match="track_cot_res_b"):
        DetectorConfig(track_cot_res_b=(1e-3, -1e-3, 1e-3))
