"""Detector description, tower grid, tracker tables and calorimeter deposits/thresholds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.sim.calorimeter import (
    deposit,
    ecal_sigma,
    hcal_sigma,
    measure_towers,
    tower_sums,
)
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.particles import make_particles
from particlegraph.sim.tracker import efficiency, lognormal_smear, reconstruct_tracks, resolution


def test_tower_grid_follows_the_cms_card():
    grid = DetectorConfig().grid
    # 38 rings x 72 (|eta| < 1.653) + 2 x 19 rings x 36 + 2 x 2 rings x 18
    assert grid.num_towers == 38 * 72 + 38 * 36 + 4 * 18
    eta = np.array([0.01, 0.01, -0.01, 1.70, 4.8, 5.2, -5.2])
    phi = np.array([0.01, -0.01, np.pi, 0.0, -np.pi, 0.0, 0.0])
    idx = grid.index(eta, phi)
    # (0.01, 0.01): ring [0, 0.087) is ring 19+2+19=40 counting from -5; phi bin 36 of 72
    assert idx[0] == grid.offsets[40] + 36
    assert idx[1] == grid.offsets[40] + 35
    assert idx[2] == grid.offsets[39] + 0  # phi = pi wraps to the first bin
    assert grid.phi_bins[grid.ring[idx[3]]] == 36
    assert grid.phi_bins[grid.ring[idx[4]]] == 18
    assert idx[5] == -1 and idx[6] == -1
    inside = idx[:5]
    assert np.all((grid.eta_lo[inside] <= eta[:5]) & (eta[:5] < grid.eta_hi[inside]))


def test_config_rejects_inconsistent_tables():
    with pytest.raises(ConfigError, match="tower_phi_bins"):
        DetectorConfig(tower_phi_bins=(72, 72))
    with pytest.raises(ConfigError, match="hadron_eff_barrel"):
        DetectorConfig(hadron_eff_barrel=(0.5,))
    with pytest.raises(ConfigError, match="increasing"):
        DetectorConfig(tower_eta_edges=(1.0, 0.0), tower_phi_bins=(1,))


def test_tracking_efficiency_and_resolution_tables():
    cfg = DetectorConfig()
    pid = np.array([211, -211, 11, 13, 211, 211])
    pt = np.array([0.5, 5.0, 200.0, 0.5, 0.05, 5.0])
    eta = np.array([0.3, 2.0, 0.0, -1.7, 0.0, 2.6])
    assert efficiency(pid, pt, eta, cfg) == pytest.approx([0.70, 0.85, 0.99, 0.70, 0.0, 0.0])
    # charged hadron, |eta| <= 0.5: sqrt(0.01^2 + (1.5e-4 pT)^2)
    assert resolution(pid[:1], np.array([10.0]), np.array([0.2]), cfg)[0] == pytest.approx(
        np.hypot(0.01, 1.5e-3)
    )


def test_lognormal_smearing_keeps_mean_and_width():
    rng = np.random.default_rng(0)
    x = lognormal_smear(np.full(200_000, 10.0), np.full(200_000, 0.2), rng)
    assert x.mean() == pytest.approx(10.0, rel=5e-3)
    assert x.std() == pytest.approx(2.0, rel=1e-2)
    assert np.all(x > 0)


def _mixed_particles(n=400, seed=1):
    rng = np.random.default_rng(seed)
    pid = rng.choice([211, -211, 22, 11, -13, 130, 2112, 310, 12], size=n)
    charge = np.select(
        [pid == 211, pid == -211, pid == 11, pid == -13], [1.0, -1.0, -1.0, 1.0], 0.0
    )
    p3 = rng.normal(0, 5, size=(n, 3))
    p3[:, 2] *= 4  # some forward particles, a few beyond |eta| = 5
    e = np.linalg.norm(p3, axis=1) + 0.1
    return make_particles(pid, charge, np.column_stack([p3, e]))


def test_deposits_conserve_visible_energy():
    cfg = DetectorConfig()
    parts = _mixed_particles()
    eta, phi = parts.eta, parts.phi  # straight lines from the origin: surface direction = momentum
    dep = deposit(parts, eta, phi, cfg)
    apid = np.abs(parts.pid)
    visible = ~np.isin(apid, (12, 13)) & (np.abs(eta) < 5.0)
    assert dep.e_em.sum() + dep.e_had.sum() == pytest.approx(parts.e[visible].sum(), rel=1e-12)
    e_em, e_had = tower_sums(dep, cfg.grid.num_towers)
    assert e_em.sum() + e_had.sum() == pytest.approx(parts.e[visible].sum(), rel=1e-12)
    assert np.all(dep.tower[~visible] == -1)
    # photons and electrons all ECAL, K0_S 30 % ECAL, neutral hadrons all HCAL
    is_em = np.isin(apid, (11, 22)) & visible
    assert dep.e_em[is_em] == pytest.approx(parts.e[is_em])
    ks = (apid == 310) & visible
    assert dep.e_em[ks] == pytest.approx(0.3 * parts.e[ks])
    nh = np.isin(apid, (130, 2112)) & visible
    assert np.all(dep.e_em[nh] == 0) and dep.e_had[nh] == pytest.approx(parts.e[nh])


def test_perfect_calorimeter_measures_the_true_sums():
    ideal = dataclasses.replace(
        DetectorConfig(), ecal_c=0.0, ecal_s=0.0, ecal_n=0.0, ecal_fwd_c=0.0, ecal_fwd_s=0.0,
        hcal_c=0.0, hcal_s=0.0, hcal_fwd_c=0.0, hcal_fwd_s=0.0, ecal_energy_min=0.0,
        hcal_energy_min=0.0, significance_min=0.0, smear_tower_center=False,
    )  # fmt: skip
    parts = _mixed_particles()
    dep = deposit(parts, parts.eta, parts.phi, ideal)
    towers = measure_towers(dep, ideal, np.random.default_rng(0))
    e_em, e_had = tower_sums(dep, ideal.grid.num_towers)
    assert towers.e_em == pytest.approx(e_em[towers.cell])
    assert towers.e_had == pytest.approx(e_had[towers.cell])
    assert towers.energy.sum() == pytest.approx(e_em.sum() + e_had.sum())
    assert towers.eta == pytest.approx(ideal.grid.eta_center[towers.cell])


def test_thresholds_remove_small_deposits():
    cfg = DetectorConfig()
    # a 0.3 GeV photon (below ECAL EnergyMin 0.5) and a 50 GeV photon in the barrel
    p4 = np.array([[0.3, 0.0, 0.0, 0.3], [0.0, 50.0, 0.0, 50.0]])
    parts = make_particles([22, 22], [0.0, 0.0], p4)
    dep = deposit(parts, parts.eta, parts.phi, cfg)
    towers = measure_towers(dep, cfg, np.random.default_rng(0))
    assert towers.cell.tolist() == [dep.tower[1]]
    sigma = ecal_sigma(np.array([50.0]), np.array([0.0]), cfg)[0]
    assert sigma == pytest.approx(np.sqrt((0.008 * 50) ** 2 + 0.11**2 * 50 + 0.4**2))
    assert abs(towers.e_em[0] - 50.0) < 5 * sigma
    assert towers.e_had[0] == 0.0
    assert hcal_sigma(np.array([100.0]), np.array([3.5]), cfg)[0] == pytest.approx(
        np.sqrt((0.13 * 100) ** 2 + 2.7**2 * 100)
    )


def test_only_charged_particles_in_acceptance_make_tracks():
    cfg = DetectorConfig()
    parts = _mixed_particles(2000)
    tracks = reconstruct_tracks(parts, cfg, np.random.default_rng(0))
    assert np.all(parts.charge[tracks.particle] != 0)
    assert np.all(np.abs(parts.eta[tracks.particle]) <= 2.5)
    assert np.all(parts.pt[tracks.particle] > 0.1)
    assert np.all(tracks.charge == parts.charge[tracks.particle])
    # efficiency < 1 but most high-pT central hadrons are found
    central = (parts.charge != 0) & (np.abs(parts.eta) < 1.5) & (parts.pt > 1.0)
    found = np.isin(np.flatnonzero(central), tracks.particle).mean()
    assert 0.85 < found <= 1.0
