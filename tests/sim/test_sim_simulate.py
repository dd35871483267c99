"""Whole-event simulation with an ideal calorimeter: energy bookkeeping in both tower layouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK, ParticleClass
from particlegraph.sim.helix import propagate
from particlegraph.sim.particles import make_particles
from particlegraph.sim.simulate import simulate_event


def _ideal(separate: bool) -> DetectorConfig:
    return dataclasses.replace(
        DetectorConfig(), ecal_c=0.0, ecal_s=0.0, ecal_n=0.0, ecal_fwd_c=0.0, ecal_fwd_s=0.0,
        hcal_c=0.0, hcal_s=0.0, hcal_fwd_c=0.0, hcal_fwd_s=0.0, ecal_energy_min=0.0,
        hcal_energy_min=0.0, significance_min=0.0, separate_ecal_towers=separate,
    )  # fmt: skip


def _particles(n=300, seed=4):
    rng = np.random.default_rng(seed)
    pid = rng.choice([211, -211, 22, 11, -13, 130, 2112, 310, 3122, 14], size=n)
    charge = np.select(
        [pid == 211, pid == -211, pid == 11, pid == -13], [1.0, -1.0, -1.0, 1.0], 0.0
    )
    p3 = rng.normal(0, 3, size=(n, 3))
    p3[:, 2] *= 3
    e = np.linalg.norm(p3, axis=1) + 0.2
    vtx = np.column_stack([np.zeros((n, 2)), rng.normal(0, 30, size=n)])
    return make_particles(pid, charge, np.column_stack([p3, e]), vtx)


@pytest.mark.parametrize("separate", [False, True])
def test_ideal_calorimeter_books_every_deposited_energy(separate):
    cfg = _ideal(separate)
    parts = _particles()
    ev = simulate_event(parts, cfg, np.random.default_rng(0))
    hit = propagate(
        parts.px, parts.py, parts.pz, parts.charge, parts.vx, parts.vy, parts.vz,
        bz=cfg.bz, radius=cfg.radius, half_length=cfg.half_length,
    )  # fmt: skip
    visible = ~np.isin(np.abs(parts.pid), (13, 14)) & (np.abs(hit.eta) < 5.0)
    tower = ev.X[:, 0] == ELEM_TOWER
    track = ev.X[:, 0] == ELEM_TRACK
    # measured tower energy = all visible energy (tracked particles deposit too)
    assert ev.X[tower, 5].sum() == pytest.approx(parts.e[visible].sum(), rel=1e-5)
    # ygen of towers = energy of the visible particles that left no track
    tracked_e = ev.ygen[track, 6]
    tracked_visible = np.isin(parts.e.astype(np.float32), tracked_e) & visible
    expected = parts.e[visible].sum() - parts.e[tracked_visible].sum()
    assert ev.ygen[tower, 6].sum() == pytest.approx(expected, rel=1e-4)
    if separate:  # every tower is pure ECAL or pure HCAL
        assert np.all((ev.X[tower, 6] == 0) | (ev.X[tower, 7] == 0))
        hcal_only = tower & (ev.X[:, 6] == 0)
        assert set(np.unique(ev.ygen[hcal_only, 0])) <= {0, ParticleClass.NEUTRAL_HADRON}


def test_k0s_shares_its_momentum_between_ecal_and_hcal_towers():
    cfg = _ideal(True)
    parts = make_particles([310], [0.0], [[10.0, 0.0, 0.0, 10.0124]])
    ev = simulate_event(parts, cfg, np.random.default_rng(0))
    assert ev.X.shape[0] == 2  # one HCAL tower, one ECAL cell
    e_had, e_em = ev.X[0, 7], ev.X[1, 6]
    assert e_em == pytest.approx(0.3 * 10.0124, rel=1e-5)
    assert e_had == pytest.approx(0.7 * 10.0124, rel=1e-5)
    assert ev.ygen[:, 6] == pytest.approx([0.7 * 10.0124, 0.3 * 10.0124], rel=1e-5)
    assert np.all(ev.ygen[:, 0] == ParticleClass.NEUTRAL_HADRON)
