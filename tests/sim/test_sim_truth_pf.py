"""Truth targets (ygen) and the rule-based PF baseline (ycand) on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.sim.calorimeter import Deposits, Towers
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import ParticleClass as C
from particlegraph.sim.particle_flow import PION_MASS, tower_candidates, track_candidates
from particlegraph.sim.particles import make_particles
from particlegraph.sim.tracker import Tracks
from particlegraph.sim.truth import tower_targets, track_targets

NUM_TOWERS = 10


def _p4(e, phi, eta=0.0):
    pt = e / np.cosh(eta)
    return [pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), e]


def _event():
    # particle: pid, charge, energy, tower (grid index), ECAL share
    table = [
        (211, 1.0, 10.0, 3, 0.0),  # 0 tracked pi+ -> track target; its tower 3 has nothing else
        (22, 0.0, 5.0, 1, 1.0),  # 1 photon in tower 1
        (130, 0.0, 8.0, 1, 0.0),  # 2 K_L in tower 1 (leads: neutral hadron)
        (-211, -1.0, 3.0, 2, 0.0),  # 3 untracked pi- in tower 2 (leads: hadronic)
        (22, 0.0, 2.0, 2, 1.0),  # 4 photon in tower 2
        (11, -1.0, 4.0, 5, 1.0),  # 5 untracked electron in tower 5 -> photon class
        (22, 0.0, 0.2, 7, 1.0),  # 6 photon in tower 7, which did not pass the thresholds
        (-13, 1.0, 20.0, -1, 0.0),  # 7 tracked muon, no deposit
    ]
    pid, q, e, tower, fem = (np.array(c) for c in zip(*table, strict=True))
    phis = np.linspace(-1, 1, len(table))
    parts = make_particles(pid, q, np.array([_p4(ei, ph) for ei, ph in zip(e, phis, strict=True)]))
    dep = Deposits(
        np.arange(len(table)),
        tower.astype(np.int64),
        e * fem * (tower >= 0),
        e * (1 - fem) * (tower >= 0),
    )
    tracks = Tracks(
        particle=np.array([0, 7]), pt=np.array([10.0, 20.0]), eta=np.zeros(2),
        phi=phis[[0, 7]], charge=np.array([1.0, 1.0]), sigma_rel=np.array([0.01, 0.01]),
    )  # fmt: skip
    cells = np.array([1, 2, 3, 5])
    towers = Towers(cells, np.zeros(4), np.zeros(4), np.ones(4), np.ones(4), np.ones(4), np.ones(4))
    return parts, dep, tracks, towers


def test_track_targets_are_the_generator_particles():
    parts, _, tracks, _ = _event()
    y = track_targets(parts, tracks)
    assert y.dtype == np.float32 and y.shape == (2, 7)
    assert y[:, 0].tolist() == [C.CHARGED_HADRON, C.MUON]
    assert y[:, 1].tolist() == [1.0, 1.0]  # physical charges (mu+ is +1)
    assert y[0, 6] == pytest.approx(10.0) and y[1, 6] == pytest.approx(20.0)
    assert y[0, 2] == pytest.approx(10.0, rel=1e-6)  # eta = 0: pT = E


def test_tower_targets_sum_untracked_particles():
    parts, dep, tracks, towers = _event()
    y = tower_targets(parts, tracks, dep, towers)
    assert y.shape == (4, 7)
    # tower 1: photon 5 + K_L 8 -> neutral hadron, E = 13, pT of the vector sum
    assert y[0, 0] == C.NEUTRAL_HADRON and y[0, 6] == pytest.approx(13.0)
    px = parts.px[[1, 2]].sum()
    py = parts.py[[1, 2]].sum()
    assert y[0, 2] == pytest.approx(np.hypot(px, py), rel=1e-6)
    assert y[0, 4] == pytest.approx(py / np.hypot(px, py), rel=1e-6)
    # tower 2: untracked pi- (3 GeV) leads a photon (2 GeV): hadronic, neutral target
    assert y[1, 0] == C.NEUTRAL_HADRON and y[1, 1] == 0.0 and y[1, 6] == pytest.approx(5.0)
    # tower 3: only the tracked pi+ -> nothing to reconstruct, all zeros
    assert np.all(y[2] == 0.0)
    # tower 5: untracked electron -> photon class
    assert y[3, 0] == C.PHOTON and y[3, 6] == pytest.approx(4.0)
    assert np.all(y[:, 1] == 0.0)


def test_pf_candidates_from_hand_made_towers():
    cfg = DetectorConfig(
        tower_eta_edges=(-1.0, 1.0), tower_phi_bins=(NUM_TOWERS,), smear_tower_center=False
    )
    eta = np.array([0.0, 0.5, 0.0, 0.0])
    towers = Towers(
        cell=np.array([0, 1, 2, 3]),
        eta=eta,
        phi=np.array([0.1, 0.2, 0.3, 0.4]),
        e_em=np.array([0.0, 3.0, 5.0, 2.0]),
        e_had=np.array([20.0, 11.0, 0.0, 6.0]),
        sigma_em=np.array([0.5, 0.5, 0.5, 0.5]),
        sigma_had=np.array([2.0, 2.0, 2.0, 2.0]),
    )
    tracks = Tracks(
        particle=np.arange(4), pt=np.array([10.0, 10.0, 5.0, 30.0]), eta=np.zeros(4),
        phi=np.zeros(4), charge=np.array([1.0, -1.0, -1.0, 1.0]), sigma_rel=np.full(4, 0.01),
    )  # fmt: skip
    track_tower = np.array([0, 1, 2, 0])  # the muon (track 3) points to tower 0 as well
    is_muon = np.array([False, False, False, True])
    is_electron = np.array([False, False, True, False])
    y = tower_candidates(tracks, track_tower, is_muon, is_electron, towers, cfg)
    # tower 0: 20 - 10 = 10 GeV > 2 sqrt(2^2 + 0.1^2): neutral hadron (the muon subtracts nothing)
    assert y[0, 0] == C.NEUTRAL_HADRON and y[0, 6] == pytest.approx(10.0)
    # tower 1: 11 - 10 = 1 GeV < 2 sigma: no hadron; ECAL 3 GeV without electron track: photon
    assert y[1, 0] == C.PHOTON and y[1, 6] == pytest.approx(3.0)
    assert y[1, 2] == pytest.approx(3.0 / np.cosh(0.5), rel=1e-6)
    # tower 2: the electron track explains the ECAL energy: nothing left
    assert np.all(y[2] == 0.0)
    # tower 3: no tracks, photon 2 + hadron 6 in one row: class of the larger, summed energy
    assert y[3, 0] == C.NEUTRAL_HADRON and y[3, 6] == pytest.approx(8.0)
    assert np.all(y[:, 1] == 0.0)

    yt = track_candidates(tracks, is_muon, is_electron)
    assert yt[:, 0].tolist() == [C.CHARGED_HADRON, C.CHARGED_HADRON, C.ELECTRON, C.MUON]
    assert yt[:, 1].tolist() == [1.0, -1.0, -1.0, 1.0]
    assert yt[0, 6] == pytest.approx(np.sqrt(100.0 + PION_MASS**2), rel=1e-6)
