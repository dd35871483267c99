"""Generator-level targets (``ygen``) for every detector element.

Rules (DESIGN.md, "Truth targets"):

- a track's target is the particle that made it: class electron (|pid| 11), muon (13) or charged
  hadron, its physical charge and its true pT, eta, phi, E at the vertex;
- a tower's target is the sum of the four-momenta of the particles *without a reconstructed
  track* that deposited energy in it. A tower cannot measure charge, so the class is the neutral
  class of the largest (true-energy) contribution: photon when that particle is a photon or an
  electron, neutral hadron otherwise (an untracked charged pion counts as hadronic energy);
  charge 0. This follows the tower-target rule of the Delphes MLPF ntupliser (Pata et al. 2021).
- a tower hit only by tracked particles has nothing left to reconstruct: class 0, all zeros.
"""

from __future__ import annotations

import numpy as np

from particlegraph.physics.kinematics import pt_eta_phi
from particlegraph.sim.calorimeter import Deposits, Towers
from particlegraph.sim.elements import ParticleClass, target_rows
from particlegraph.sim.particles import Particles
from particlegraph.sim.tracker import Tracks


def charged_class(pid: np.ndarray) -> np.ndarray:
    """Class of a charged particle that left a track: electron, muon or charged hadron."""
    apid = np.abs(pid)
    return np.where(
        apid == 11,
        ParticleClass.ELECTRON,
        np.where(apid == 13, ParticleClass.MUON, ParticleClass.CHARGED_HADRON),
    ).astype(np.int64)


def track_targets(particles: Particles, tracks: Tracks) -> np.ndarray:
    """ygen rows (T, 7) for the tracks: the generator particle behind each track."""
    p = particles.select(tracks.particle)
    return target_rows(charged_class(p.pid), p.charge, p.pt, p.eta, p.phi, p.e)


def tower_targets(
    particles: Particles, tracks: Tracks, deposits: Deposits, towers: Towers
) -> np.ndarray:
    """ygen rows (W, 7) for the towers (see the module docstring for the rule).

    With separate ECAL and HCAL towers a particle that feeds both (K0_S, Lambda) contributes
    to each tower the share of its four-momentum that it deposited there.
    """
    w = towers.cell.size
    untracked = np.ones(particles.size, dtype=bool)
    untracked[tracks.particle] = False
    dep_e = deposits.e_em + deposits.e_had  # (D,)
    rows = np.searchsorted(towers.cell, deposits.tower)  # towers.cell is sorted
    rows = np.minimum(rows, max(w - 1, 0))
    hit = (deposits.tower >= 0) & (dep_e > 0) & untracked[deposits.particle]
    if w:
        hit &= towers.cell[rows] == deposits.tower
    else:
        hit[:] = False
    sel, rows, dep_e = deposits.particle[hit], rows[hit], dep_e[hit]
    share = dep_e / particles.e[sel]  # 1 for merged towers
    px, py, pz, e = (
        np.bincount(rows, weights=getattr(particles, c)[sel] * share, minlength=w)
        for c in ("px", "py", "pz", "e")
    )
    # class of the leading contribution: sort by (row, -energy), take the first of each row
    order = np.lexsort((-dep_e, rows))
    first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]] if order.size else order
    cls = np.zeros(w, dtype=np.int64)
    lead_pid = np.abs(particles.pid[sel[first]])
    cls[rows[first]] = np.where(
        np.isin(lead_pid, (11, 22)), ParticleClass.PHOTON, ParticleClass.NEUTRAL_HADRON
    )
    pt, eta, phi = pt_eta_phi(px, py, pz)
    return target_rows(cls, np.zeros(w), pt, eta, phi, e)
