"""Photon conversions in the tracker material: e+ e- pairs produced where a photon converts.

A photon flies on a straight line from its vertex through the sensitive surfaces of a
:class:`~particlegraph.sim.silicon.SiliconConfig`; at each crossing it converts with probability
1 - exp(-7/9 t), t = ``x_over_x0`` / cos(incidence) (PDG Review, "Passage of particles through
matter", Eq. 34.31: the high-energy pair-production length is 9/7 X0). The first conversion
along its path makes an electron and a positron at the crossing point, along the photon's
direction, sharing its momentum as x and 1 - x with x drawn from the complete-screening
Bethe-Heitler spectrum d sigma / dx ~ 1 - 4/3 x (1 - x) (PDG Eq. 34.30); the opening angle
(~ m_e / E) is neglected, so the pair's momenta sum exactly to the photon's. The pair then
enters the hit simulation like any charged particle, with its production vertex on the layer.

Units: GeV, mm.
"""

from __future__ import annotations

import numpy as np

from particlegraph.sim.material import M_ELECTRON
from particlegraph.sim.particles import Particles, empty_particles
from particlegraph.sim.silicon import SiliconConfig, Surfaces, surfaces

#: Photon PDG id.
PHOTON = 22
#: Smallest path [mm] to a crossing (a photon born on a surface does not convert there again).
_MIN_STEP = 1e-3


def line_crossings(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, ux: np.ndarray, uy: np.ndarray,
    cot: np.ndarray, surf: Surfaces,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Transverse path s [mm] to every surface and 1 / cos(incidence) there, both (P, S).

    Straight lines from (x, y, z) with unit transverse direction (ux, uy) and dz/ds = ``cot``;
    s = inf where a surface is not reached (outside its extent, behind, or parallel).
    """
    b = x * ux + y * uy
    c = x**2 + y**2
    disc = b[:, None] ** 2 - (c[:, None] - surf.radius[None, :] ** 2)
    root = np.sqrt(np.clip(disc, 0.0, None))
    s_out = -b[:, None] + root  # leaving the cylinder (a particle starting inside)
    s_in = -b[:, None] - root  # entering it (starting outside)
    s_bar = np.where(s_in > _MIN_STEP, s_in, np.where(s_out > _MIN_STEP, s_out, np.inf))
    s_bar = np.where((disc >= 0) & surf.barrel[None, :], s_bar, np.inf)
    z_bar = z[:, None] + np.where(np.isfinite(s_bar), s_bar, 0.0) * cot[:, None]
    s_bar = np.where(np.abs(z_bar) <= surf.half_length[None, :], s_bar, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_dsk = (surf.z[None, :] - z[:, None]) / cot[:, None]
    s_dsk = np.where(
        np.isfinite(s_dsk) & (s_dsk > _MIN_STEP) & ~surf.barrel[None, :], s_dsk, np.inf
    )
    s_fin = np.where(np.isfinite(s_dsk), s_dsk, 0.0)
    r_dsk = np.hypot(x[:, None] + s_fin * ux[:, None], y[:, None] + s_fin * uy[:, None])
    s_dsk = np.where((r_dsk >= surf.r_min[None, :]) & (r_dsk <= surf.r_max[None, :]), s_dsk, np.inf)
    s = np.minimum(s_bar, s_dsk)
    # incidence: barrel normal is radial, disk normal is z; direction (ux, uy, cot) / |.|
    norm = np.sqrt(1.0 + cot**2)[:, None]
    s_f = np.where(np.isfinite(s), s, 0.0)
    xr = x[:, None] + s_f * ux[:, None]
    yr = y[:, None] + s_f * uy[:, None]
    radial = (xr * ux[:, None] + yr * uy[:, None]) / np.maximum(np.hypot(xr, yr), 1e-12)
    cos_inc = np.where(surf.barrel[None, :], radial, cot[:, None]) / norm
    inv_cos = np.minimum(1.0 / np.maximum(np.abs(cos_inc), 1e-6), 10.0)
    return s, inv_cos


def bethe_heitler_fraction(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) electron momentum fractions x from d sigma / dx ~ 1 - 4/3 x (1 - x), by rejection."""
    out = np.empty(0)
    while out.size < n:
        x = rng.random(2 * (n - out.size) + 8)
        keep = rng.random(x.size) < 1.0 - 4.0 / 3.0 * x * (1.0 - x)
        out = np.concatenate([out, x[keep]])
    return out[:n]


def convert_photons(
    particles: Particles, cfg: SiliconConfig, rng: np.random.Generator
) -> tuple[Particles, np.ndarray]:
    """Convert the photons of ``particles`` in the tracker's sensitive layers.

    Args:
        particles: the event's stable particles (only ``pid == 22`` with E > 2 m_e is used).
        cfg: the tracker (surfaces and ``x_over_x0``).
        rng: random numbers.

    Returns:
        ``(pairs, parent)``: the electrons and positrons (2C,), electron then positron of each
        conversion, with the conversion point as production vertex, and the index (2C,) of each
        one's photon in ``particles``.
    """
    gam = np.flatnonzero((particles.pid == PHOTON) & (particles.e > 2 * M_ELECTRON))
    g = particles.select(gam)
    pt = g.pt
    gam, g, pt = gam[pt > 0], g.select(pt > 0), pt[pt > 0]
    if gam.size == 0 or cfg.x_over_x0 <= 0:
        return empty_particles(), np.zeros(0, dtype=np.int64)
    ux, uy, cot = g.px / pt, g.py / pt, g.pz / pt
    s, inv_cos = line_crossings(g.vx, g.vy, g.vz, ux, uy, cot, surfaces(cfg))
    prob = 1.0 - np.exp(-7.0 / 9.0 * cfg.x_over_x0 * inv_cos)
    converts = np.isfinite(s) & (rng.random(s.shape) < prob)
    s_conv = np.where(converts, s, np.inf)
    first = np.argmin(s_conv, axis=1)
    s_first = s_conv[np.arange(gam.size), first]
    done = np.isfinite(s_first)
    c, s_c = np.flatnonzero(done), s_first[done]
    frac = bethe_heitler_fraction(c.size, rng)
    vx = g.vx[c] + s_c * ux[c]
    vy = g.vy[c] + s_c * uy[c]
    vz = g.vz[c] + s_c * cot[c]
    p3 = np.stack([g.px[c], g.py[c], g.pz[c]], axis=1)
    electron, positron = p3 * frac[:, None], p3 * (1.0 - frac[:, None])
    mom = np.stack([electron, positron], axis=1).reshape(-1, 3)  # e-, e+ of each conversion
    energy = np.sqrt(np.sum(mom**2, axis=1) + M_ELECTRON**2)
    pairs = Particles(
        np.tile(np.array([11, -11], dtype=np.int32), c.size),
        np.tile(np.array([-1.0, 1.0]), c.size),
        mom[:, 0], mom[:, 1], mom[:, 2], energy,
        np.repeat(vx, 2), np.repeat(vy, 2), np.repeat(vz, 2),
    )  # fmt: skip
    return pairs, np.repeat(gam[c], 2)
