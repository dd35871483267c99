"""Tracker response: which charged particles make a track, and their measured momentum.

Efficiencies and relative pT resolutions are the piecewise tables of the Delphes CMS card (see
:class:`~particlegraph.sim.detector.DetectorConfig`); the pT is smeared log-normally with mean pT
and standard deviation sigma * pT, as Delphes' MomentumSmearing does. Unlike the card, the track
direction is smeared too: phi and cot(theta) = sinh(eta) get Gaussian errors
``sigma = sqrt(a^2 + (b / pT)^2)`` (constant term plus multiple scattering), with the CMS tracker's
single-muon resolutions (JINST 9 (2014) P10009) as defaults, so a track's direction is a
measurement and its calorimeter entry point (extrapolated from the measured parameters,
:func:`measured_entry_points`) carries the tracker's error.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.helix import propagate
from particlegraph.sim.particles import Particles


class Tracks(NamedTuple):
    """Reconstructed tracks; fields have shape (T,).

    ``particle`` index of the particle that made the track, ``pt`` [GeV], ``eta``, ``phi`` at
    the vertex (all three measured, i.e. smeared), ``charge`` [e], ``sigma_rel`` relative pT
    resolution used.
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


def direction_resolution(
    pt: np.ndarray, eta: np.ndarray, cfg: DetectorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Track direction resolutions ``(sigma(phi) [rad], sigma(cot theta))``, each (T,).

    ``sigma = sqrt(a^2 + (b / pT)^2)`` with the ``track_{phi,cot}_res_{a,b}`` of the |eta| region
    (``res_eta_edges``); pT in GeV.
    """
    region = np.searchsorted(np.asarray(cfg.res_eta_edges), np.abs(eta), side="left")
    inv_pt = 1.0 / np.maximum(pt, 1e-6)
    out = []
    for angle in ("phi", "cot"):
        a = np.asarray(getattr(cfg, f"track_{angle}_res_a"))[region]
        b = np.asarray(getattr(cfg, f"track_{angle}_res_b"))[region]
        out.append(np.hypot(a, b * inv_pt))
    return out[0], out[1]


def smear_direction(
    pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, cfg: DetectorConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Measured ``(eta, phi)`` of tracks with true ``pt`` [GeV], ``eta``, ``phi`` [rad], (T,) each.

    phi gets a Gaussian error sigma(phi), wrapped into (-pi, pi]; cot(theta) = sinh(eta) gets
    sigma(cot theta) and eta = asinh(cot theta). With all resolution terms zero nothing is drawn
    (the random stream of an unsmeared detector is unchanged).
    """
    terms = (cfg.track_phi_res_a, cfg.track_phi_res_b, cfg.track_cot_res_a, cfg.track_cot_res_b)
    if not any(any(t) for t in terms) or pt.size == 0:
        return eta, phi
    s_phi, s_cot = direction_resolution(pt, eta, cfg)
    noise = rng.standard_normal((2, pt.size))
    phi_m = np.angle(np.exp(1j * (phi + s_phi * noise[0])))  # wrapped
    eta_m = np.arcsinh(np.sinh(eta) + s_cot * noise[1])
    return eta_m, phi_m


def measured_entry_points(
    particles: Particles, tracks: Tracks, cfg: DetectorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """``(eta_outer, phi_outer)`` of each track, (T,): the helix of the *measured* pT, eta, phi
    and charge from the particle's vertex extrapolated to the calorimeter surface, so the entry
    point carries the tracker's resolution (the vertex itself is known to ~10-30 um: exact here).
    """
    idx = tracks.particle
    px, py = tracks.pt * np.cos(tracks.phi), tracks.pt * np.sin(tracks.phi)
    pz = tracks.pt * np.sinh(tracks.eta)
    hit = propagate(
        px, py, pz, tracks.charge, particles.vx[idx], particles.vy[idx], particles.vz[idx],
        bz=cfg.bz, radius=cfg.radius, half_length=cfg.half_length,
    )  # fmt: skip
    return hit.eta, hit.phi


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
    eta_meas, phi_meas = smear_direction(pt, eta, phi, cfg, rng)
    return Tracks(idx, pt_meas, eta_meas, phi_meas, particles.charge[idx], sigma)
