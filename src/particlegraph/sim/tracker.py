"""Tracker response: which charged particles make a track, and their measured momentum.

Efficiencies and relative pT resolutions are the piecewise tables of the Delphes CMS card (see
:class:`~particlegraph.sim.detector.DetectorConfig`). Track directions are not smeared (as in
the card); the pT is smeared log-normally with mean pT and standard deviation sigma * pT, as
Delphes' MomentumSmearing does.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.particles import Particles


class Tracks(NamedTuple):
    """Reconstructed tracks; fields have shape (T,).

    ``particle`` index of the particle that made the track, ``pt`` [GeV] (smeared), ``eta``,
    ``phi`` at the vertex, ``charge`` [e], ``sigma_rel`` relative pT resolution used.
    """

    particle: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray
    sigma_rel: np.ndarray

    @property
    def p(self) -> np.ndarray:
        """Momentum magnitude [GeV]."""
        result: np.ndarray = self.pt * np.cosh(self.eta)
        return result


def _species(pid: np.ndarray) -> np.ndarray:
    """0 hadron, 1 electron, 2 muon for each PDG id."""
    apid = np.abs(pid)
    return np.where(apid == 11, 1, np.where(apid == 13, 2, 0))


def efficiency(pid: np.ndarray, pt: np.ndarray, eta: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """Tracking efficiency per charged particle, shape (P,) (0 outside the tracker)."""
    col = np.searchsorted(np.asarray(cfg.eff_pt_edges), pt, side="left")  # pT > edge -> next column
    endcap = np.abs(eta) > cfg.eff_eta_edge
    table = np.array(
        [
            [cfg.hadron_eff_barrel, cfg.hadron_eff_endcap],
            [cfg.electron_eff_barrel, cfg.electron_eff_endcap],
            [cfg.muon_eff_barrel, cfg.muon_eff_endcap],
        ]
    )  # (3 species, 2 regions, columns)
    eff = table[_species(pid), endcap.astype(np.int64), col]
    ok = (pt > cfg.track_pt_min) & (np.abs(eta) <= cfg.tracker_eta_max)
    return np.where(ok, eff, 0.0)


def resolution(pid: np.ndarray, pt: np.ndarray, eta: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """Relative pT resolution sigma(pT)/pT per particle, shape (P,)."""
    region = np.searchsorted(np.asarray(cfg.res_eta_edges), np.abs(eta), side="left")
    a = np.array([cfg.hadron_res_a, cfg.electron_res_a, cfg.muon_res_a])  # (3, regions)
    b = np.array([cfg.hadron_res_b, cfg.electron_res_b, cfg.muon_res_b])
    sp = _species(pid)
    result: np.ndarray = np.hypot(a[sp, region], b[sp, region] * pt)
    return result


def lognormal_smear(
    value: np.ndarray, sigma_rel: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Log-normal smearing with mean ``value`` and standard deviation ``sigma_rel * value``."""
    s2 = np.log1p(sigma_rel**2)
    result: np.ndarray = value * np.exp(rng.standard_normal(value.shape) * np.sqrt(s2) - 0.5 * s2)
    return result


def reconstruct_tracks(
    particles: Particles, cfg: DetectorConfig, rng: np.random.Generator
) -> Tracks:
    """Tracks from the charged particles of one event.

    Random numbers are drawn for every particle (not only charged ones) so that the stream stays
    aligned whatever the particle content.
    """
    charged = np.flatnonzero(particles.charge != 0)
    p = particles.select(charged)
    pt, eta = p.pt, p.eta
    eff = np.zeros(particles.size)
    eff[charged] = efficiency(p.pid, pt, eta, cfg)
    found = rng.random(particles.size)[charged] < eff[charged]
    idx = charged[found]
    pt, eta = pt[found], eta[found]
    sigma = resolution(particles.pid[idx], pt, eta, cfg)
    pt_meas = lognormal_smear(pt, sigma, rng)
    phi = np.arctan2(particles.py[idx], particles.px[idx])
    return Tracks(idx, pt_meas, eta, phi, particles.charge[idx], sigma)
