"""Rule-based particle-flow baseline (``ycand``), modelled on Delphes' SimpleCalorimeter e-flow.

- Every track becomes a charged candidate: electron or muon when its ``is_gen_electron`` /
  ``is_gen_muon`` flag is set, charged hadron otherwise; pT, eta, phi of the track,
  E = sqrt(p^2 + m^2) with the electron, muon or charged-pion mass.
- A track is linked to the tower where it crosses the calorimeter surface. Its expected deposit is
  its energy, in the ECAL for electrons and in the HCAL for hadrons (muons deposit nothing).
- Per tower and per sub-detector, the measured energy minus the linked tracks' expected deposit
  is a neutral candidate (photon from the ECAL, neutral hadron from the HCAL) when it exceeds
  the sub-detector's ``EnergyMin`` and ``significance_min`` times the combined resolution
  sqrt(sigma_tower^2 + sum of (sigma_track * E_track)^2). Without linked tracks the whole
  measured energy (which already passed the tower thresholds) is the candidate.
- One tower row carries at most one candidate: when both a photon and a neutral hadron survive,
  the row carries their summed energy along the tower direction, with the class of the larger
  of the two (pT = E / cosh eta, massless). Towers with nothing left get class 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from particlegraph.sim.calorimeter import Towers
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import ParticleClass, target_rows
from particlegraph.sim.tracker import Tracks

ELECTRON_MASS = 0.000511  # GeV
MUON_MASS = 0.105658  # GeV
PION_MASS = 0.139570  # GeV


def track_candidates(tracks: Tracks, is_muon: np.ndarray, is_electron: np.ndarray) -> np.ndarray:
    """ycand rows (T, 7) for the tracks."""
    cls = np.where(
        is_electron,
        ParticleClass.ELECTRON,
        np.where(is_muon, ParticleClass.MUON, ParticleClass.CHARGED_HADRON),
    ).astype(np.int64)
    mass = np.where(is_electron, ELECTRON_MASS, np.where(is_muon, MUON_MASS, PION_MASS))
    energy = np.sqrt(tracks.p**2 + mass**2)
    return target_rows(cls, tracks.charge, tracks.pt, tracks.eta, tracks.phi, energy)


def _neutral_energy(
    measured: np.ndarray,
    sigma: np.ndarray,
    expected: np.ndarray,
    track_var: np.ndarray,
    n_linked: np.ndarray,
    energy_min: float,
    significance_min: float,
) -> np.ndarray:
    """Neutral energy left in one sub-detector of each tower after track subtraction [GeV]."""
    resid = measured - expected
    combined = np.sqrt(sigma**2 + track_var)
    passes = (resid >= energy_min) & (resid >= significance_min * combined)
    return np.where(n_linked == 0, measured, np.where(passes, resid, 0.0))


class TowerNeutrals(NamedTuple):
    """The rule's neutral energy per tower and sub-detector, fields (W,).

    ``e_gamma`` / ``e_nh``: ECAL / HCAL energy left after subtracting the linked tracks'
    expected deposit [GeV] (0 when not significant); ``linked_em`` / ``linked_had``: number of
    tracks linked to the tower's ECAL / HCAL part.
    """

    e_gamma: np.ndarray
    e_nh: np.ndarray
    linked_em: np.ndarray
    linked_had: np.ndarray


def tower_neutrals(
    tracks: Tracks,
    track_tower: np.ndarray,
    is_muon: np.ndarray,
    is_electron: np.ndarray,
    towers: Towers,
    cfg: DetectorConfig,
    significance_min: float | None = None,
) -> TowerNeutrals:
    """The rule's per-sub-detector neutral energies of every tower (see the module docstring).

    Args:
        tracks: the event's tracks (T,).
        track_tower: (T,) cell id of the tower each track's expected deposit goes to (-1: none);
            with separate ECAL towers, the ECAL cell for electrons and the HCAL cell otherwise.
        is_muon, is_electron: (T,) track flags.
        towers: the measured towers (W,), sorted by ``cell``.
        cfg: detector (energy minima, and ``significance_min`` unless given).
        significance_min: the residual must exceed this many combined resolutions (None: the
            detector's ``significance_min``, the baseline's value).
    """
    k = cfg.significance_min if significance_min is None else significance_min
    w = towers.cell.size
    rows = np.minimum(np.searchsorted(towers.cell, track_tower), max(w - 1, 0))  # cells sorted
    linked = (track_tower >= 0) & (towers.cell[rows] == track_tower) if w else track_tower < -1
    rows = np.where(linked, rows, -1)
    energy = tracks.p  # massless is good enough for the expected deposit
    to_ecal = (rows >= 0) & is_electron
    to_hcal = (rows >= 0) & ~is_electron & ~is_muon

    def per_row(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.bincount(rows[mask], weights=values[mask], minlength=w)

    var = (tracks.sigma_rel * energy) ** 2
    n_em, n_had = per_row(to_ecal, np.ones_like(energy)), per_row(to_hcal, np.ones_like(energy))
    e_gamma = _neutral_energy(
        towers.e_em, towers.sigma_em, per_row(to_ecal, energy), per_row(to_ecal, var),
        n_em, cfg.ecal_energy_min, k,
    )  # fmt: skip
    e_nh = _neutral_energy(
        towers.e_had, towers.sigma_had, per_row(to_hcal, energy), per_row(to_hcal, var),
        n_had, cfg.hcal_energy_min, k,
    )  # fmt: skip
    return TowerNeutrals(e_gamma, e_nh, n_em, n_had)


def neutral_rows(e_gamma: np.ndarray, e_nh: np.ndarray, towers: Towers) -> np.ndarray:
    """ycand rows (W, 7) of towers carrying ECAL / HCAL neutral energies ``e_gamma``, ``e_nh``
    [GeV]: one candidate per tower with the summed energy along the tower, photon when
    ``e_gamma >= e_nh`` and neutral hadron otherwise, class 0 when nothing is left."""
    total = e_gamma + e_nh
    cls = np.where(
        total <= 0,
        ParticleClass.NONE,
        np.where(e_gamma >= e_nh, ParticleClass.PHOTON, ParticleClass.NEUTRAL_HADRON),
    ).astype(np.int64)
    pt = total / np.cosh(towers.eta)
    return target_rows(cls, np.zeros(total.size), pt, towers.eta, towers.phi, total)


def tower_candidates(
    tracks: Tracks,
    track_tower: np.ndarray,
    is_muon: np.ndarray,
    is_electron: np.ndarray,
    towers: Towers,
    cfg: DetectorConfig,
) -> np.ndarray:
    """ycand rows (W, 7) for the towers (arguments as :func:`tower_neutrals`)."""
    n = tower_neutrals(tracks, track_tower, is_muon, is_electron, towers, cfg)
    return neutral_rows(n.e_gamma, n.e_nh, towers)
