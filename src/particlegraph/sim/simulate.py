"""One event through the fast detector: particles -> elements ``X``, targets ``ygen``, ``ycand``.

Element order: towers first (in cell order: HCAL/merged grid, then ECAL cells when separate),
then tracks (in particle order). Columns follow the
Delphes MLPF layout of :mod:`particlegraph.sim.elements`.
"""

from __future__ import annotations

import numpy as np

from particlegraph.sim.calorimeter import deposit, expected_cells, measure_towers
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK, NUM_X_FEATURES, MLPFEvent
from particlegraph.sim.helix import propagate
from particlegraph.sim.particle_flow import tower_candidates, track_candidates
from particlegraph.sim.particles import Particles
from particlegraph.sim.tracker import measured_entry_points, reconstruct_tracks
from particlegraph.sim.truth import tower_targets, track_targets


def simulate_event(
    particles: Particles, cfg: DetectorConfig, rng: np.random.Generator
) -> MLPFEvent:
    """Simulate the detector response to one event's stable particles.

    Args:
        particles: all stable particles (hard scatter and pile-up), P of them.
        cfg: detector description.
        rng: random stream (tracking efficiency, smearing, tower-centre smearing).

    Returns:
        :class:`MLPFEvent` with ``X`` (N, 12), ``ygen`` (N, 7), ``ycand`` (N, 7) float32,
        N = towers + tracks.
    """
    hit = propagate(
        particles.px, particles.py, particles.pz, particles.charge,
        particles.vx, particles.vy, particles.vz,
        bz=cfg.bz, radius=cfg.radius, half_length=cfg.half_length,
    )  # fmt: skip
    tracks = reconstruct_tracks(particles, cfg, rng)
    dep = deposit(particles, hit.eta, hit.phi, cfg)
    towers = measure_towers(dep, cfg, rng)

    apid = np.abs(particles.pid[tracks.particle])
    is_muon, is_electron = apid == 13, apid == 11
    eta_out, phi_out = measured_entry_points(particles, tracks, cfg)  # from the measured helix
    track_tower = expected_cells(eta_out, phi_out, is_electron, cfg)

    x_towers = np.zeros((towers.cell.size, NUM_X_FEATURES), dtype=np.float64)
    energy = towers.energy
    x_towers[:, 0] = ELEM_TOWER
    x_towers[:, 1] = energy / np.cosh(towers.eta)
    x_towers[:, 2] = towers.eta
    x_towers[:, 3] = np.sin(towers.phi)
    x_towers[:, 4] = np.cos(towers.phi)
    x_towers[:, 5] = energy
    x_towers[:, 6] = towers.e_em
    x_towers[:, 7] = towers.e_had

    x_tracks = np.zeros((tracks.particle.size, NUM_X_FEATURES), dtype=np.float64)
    x_tracks[:, 0] = ELEM_TRACK
    x_tracks[:, 1] = tracks.pt
    x_tracks[:, 2] = tracks.eta
    x_tracks[:, 3] = np.sin(tracks.phi)
    x_tracks[:, 4] = np.cos(tracks.phi)
    x_tracks[:, 5] = tracks.p
    x_tracks[:, 6] = eta_out
    x_tracks[:, 7] = np.sin(phi_out)
    x_tracks[:, 8] = np.cos(phi_out)
    x_tracks[:, 9] = tracks.charge
    x_tracks[:, 10] = is_muon
    x_tracks[:, 11] = is_electron

    ygen = np.concatenate(
        [
            tower_targets(particles, tracks, dep, towers),
            track_targets(particles, tracks),
        ]
    )
    ycand = np.concatenate(
        [
            tower_candidates(tracks, track_tower, is_muon, is_electron, towers, cfg),
            track_candidates(tracks, is_muon, is_electron),
        ]
    )
    x = np.concatenate([x_towers, x_tracks]).astype(np.float32)
    return MLPFEvent(x, ygen.astype(np.float32), ycand.astype(np.float32))
