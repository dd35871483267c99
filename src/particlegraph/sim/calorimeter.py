"""Calorimeter response: energy deposits per tower, ECAL/HCAL smearing and thresholds.

Each particle deposits its full energy in the tower where it crosses the calorimeter surface,
split between ECAL and HCAL by the Delphes CMS card's energy fractions (e, gamma: ECAL; K0_S and
Lambda: 30 % ECAL; other hadrons: HCAL; muons and neutrinos: nothing). Per tower, the summed ECAL
and HCAL energies are smeared log-normally with the card's resolution formulas and zeroed below
``EnergyMin`` or below ``EnergySignificanceMin`` times the resolution, as in Delphes'
SimpleCalorimeter.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.particles import Particles
from particlegraph.sim.tracker import lognormal_smear


class Deposits(NamedTuple):
    """Energy deposit records, shape (D,): ``particle`` index, calorimeter ``tower`` (cell id,
    -1: none), ``e_em`` and ``e_had`` [GeV].

    With merged towers there is one record per particle (D = P); with separate ECAL and HCAL
    towers, one ECAL and one HCAL record per particle (D = 2P).
    """

    particle: np.ndarray
    tower: np.ndarray
    e_em: np.ndarray
    e_had: np.ndarray


class Towers(NamedTuple):
    """Towers that pass the thresholds; fields have shape (W,).

    ``cell`` tower index in the grid, ``eta``/``phi`` of the tower (bin centre or smeared inside the bin),
    ``e_em``, ``e_had`` measured energies [GeV], ``sigma_em``, ``sigma_had`` their resolutions [GeV].
    """

    cell: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    e_em: np.ndarray
    e_had: np.ndarray
    sigma_em: np.ndarray
    sigma_had: np.ndarray

    @property
    def energy(self) -> np.ndarray:
        """Total tower energy [GeV]."""
        result: np.ndarray = self.e_em + self.e_had
        return result


def em_fraction(pid: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """ECAL share of each particle's energy, shape (P,); the HCAL gets 1 - share."""
    apid = np.abs(pid)
    frac = np.zeros(apid.shape, dtype=np.float64)
    for code, value in zip(cfg.em_fraction_pids, cfg.em_fraction_values, strict=True):
        frac[apid == code] = value
    return frac


def deposit(
    particles: Particles, surface_eta: np.ndarray, surface_phi: np.ndarray, cfg: DetectorConfig
) -> Deposits:
    """Deposit records (tower and ECAL/HCAL energy) of every particle, before any smearing."""
    tower = cfg.grid.index(surface_eta, surface_phi)
    invisible = np.isin(np.abs(particles.pid), np.asarray(cfg.no_deposit_pids))
    tower = np.where(~invisible & (tower >= 0), tower, -1)
    energy = np.where(tower >= 0, particles.e, 0.0)
    f_em = em_fraction(particles.pid, cfg)
    index = np.arange(particles.size)
    if not cfg.separate_ecal_towers:
        return Deposits(index, tower, energy * f_em, energy * (1.0 - f_em))
    cell = cfg.ecal_grid.index(surface_eta, surface_phi)
    cell = np.where(~invisible & (cell >= 0), cell + cfg.grid.num_towers, -1)
    e_ecal = np.where(cell >= 0, particles.e * f_em, 0.0)
    zeros = np.zeros(particles.size)
    return Deposits(
        np.concatenate([index, index]),
        np.concatenate([tower, cell]),
        np.concatenate([zeros, e_ecal]),
        np.concatenate([energy * (1.0 - f_em), zeros]),
    )


def expected_cells(
    eta: np.ndarray, phi: np.ndarray, is_electron: np.ndarray, cfg: DetectorConfig
) -> np.ndarray:
    """Cell id (T,) where each track's expected deposit goes (-1: outside the calorimeter).

    ``eta``, ``phi``: the tracks' calorimeter entry points; with separate ECAL towers an
    electron's cell is its ECAL cell (ids after the HCAL towers), every other track's its HCAL
    tower, as :func:`deposit` numbers them.
    """
    cell = cfg.grid.index(eta, phi)
    if cfg.separate_ecal_towers:
        ecal = cfg.ecal_grid.index(eta, phi)
        ecal = np.where(ecal >= 0, ecal + cfg.grid.num_towers, -1)
        cell = np.where(is_electron, ecal, cell)
    return cell


def ecal_sigma(energy: np.ndarray, eta: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """ECAL energy resolution [GeV] at ``energy`` [GeV] and tower ``eta`` (card ECal formula)."""
    aeta = np.abs(eta)
    core = np.sqrt((cfg.ecal_c * energy) ** 2 + cfg.ecal_s**2 * energy + cfg.ecal_n**2)
    barrel = (1.0 + 0.64 * aeta**2) * core
    endcap = (2.16 + 5.6 * (aeta - 2.0) ** 2) * core
    fwd = np.sqrt((cfg.ecal_fwd_c * energy) ** 2 + cfg.ecal_fwd_s**2 * energy)
    return np.where(aeta <= 1.5, barrel, np.where(aeta <= 2.5, endcap, fwd))


def hcal_sigma(energy: np.ndarray, eta: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """HCAL energy resolution [GeV] at ``energy`` [GeV] and tower ``eta`` (card HCal formula)."""
    central = np.sqrt((cfg.hcal_c * energy) ** 2 + cfg.hcal_s**2 * energy)
    fwd = np.sqrt((cfg.hcal_fwd_c * energy) ** 2 + cfg.hcal_fwd_s**2 * energy)
    return np.where(np.abs(eta) <= cfg.hcal_fwd_eta, central, fwd)


def tower_sums(dep: Deposits, num_towers: int) -> tuple[np.ndarray, np.ndarray]:
    """True ECAL and HCAL energy per calorimeter cell, each (num_towers,) [GeV]."""
    hit = dep.tower >= 0
    e_em = np.bincount(dep.tower[hit], weights=dep.e_em[hit], minlength=num_towers)
    e_had = np.bincount(dep.tower[hit], weights=dep.e_had[hit], minlength=num_towers)
    return e_em, e_had


def measure_towers(dep: Deposits, cfg: DetectorConfig, rng: np.random.Generator) -> Towers:
    """Smear the hit towers, apply thresholds and return the towers with any energy left.

    Random numbers are drawn for every hit tower in grid order, so results are reproducible.
    """
    grid = cfg.cells
    true_em, true_had = tower_sums(dep, grid.eta_lo.size)
    hit = np.flatnonzero((true_em > 0) | (true_had > 0))  # (H,)
    eta_c = grid.eta_center[hit]
    sig_em_true = ecal_sigma(true_em[hit], eta_c, cfg)
    sig_had_true = hcal_sigma(true_had[hit], eta_c, cfg)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel_em = np.where(true_em[hit] > 0, sig_em_true / true_em[hit], 0.0)
        rel_had = np.where(true_had[hit] > 0, sig_had_true / true_had[hit], 0.0)
    e_em = lognormal_smear(true_em[hit], rel_em, rng)
    e_had = lognormal_smear(true_had[hit], rel_had, rng)
    e_em = np.where(
        (e_em >= cfg.ecal_energy_min) & (e_em >= cfg.significance_min * sig_em_true), e_em, 0.0
    )
    e_had = np.where(
        (e_had >= cfg.hcal_energy_min) & (e_had >= cfg.significance_min * sig_had_true), e_had, 0.0
    )
    u_eta, u_phi = rng.random(hit.size), rng.random(hit.size)
    keep = (e_em > 0) | (e_had > 0)
    idx = hit[keep]
    if cfg.smear_tower_center:
        eta = grid.eta_lo[idx] + u_eta[keep] * (grid.eta_hi[idx] - grid.eta_lo[idx])
        phi = grid.phi_lo[idx] + u_phi[keep] * grid.phi_width[idx]
    else:
        eta, phi = grid.eta_center[idx], grid.phi_center[idx]
    return Towers(
        idx,
        eta,
        phi,
        e_em[keep],
        e_had[keep],
        ecal_sigma(e_em[keep], grid.eta_center[idx], cfg),
        hcal_sigma(e_had[keep], grid.eta_center[idx], cfg),
    )
