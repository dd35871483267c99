"""Propagation of particles through a uniform solenoid field to the calorimeter surface.

The surface is a closed cylinder (barrel at radius R, end caps at |z| = L), as in Delphes'
``ParticlePropagator``. Charged particles follow helices, neutral ones straight lines; a particle
that curls up before reaching R (pT < 0.3 B R / 2 for one from the axis) leaves through an end cap.

Conventions: with B along +z a positive particle turns clockwise, so its transverse direction is
phi(s) = phi0 - k s with signed curvature k = 0.299792458 q B / pT [1/m] and s the transverse path
length [m]; the position is x(s) = x0 + (sin phi0 - sin(phi0 - k s)) / k,
y(s) = y0 + (cos(phi0 - k s) - cos phi0) / k, z(s) = z0 + s pz / pT.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: pT [GeV] = C_LIGHT * |q| [e] * B [T] * radius of curvature [m].
C_LIGHT = 0.299792458


class SurfaceHit(NamedTuple):
    """Where each particle crosses the calorimeter surface; fields have shape (P,).

    ``x, y, z`` [mm], ``eta`` and ``phi`` of that point seen from the origin, ``barrel``
    True when it crossed the barrel (False: an end cap).
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    barrel: np.ndarray


def _line_to_radius(
    x0: np.ndarray, y0: np.ndarray, ux: np.ndarray, uy: np.ndarray, r: float
) -> np.ndarray:
    """Transverse path length s >= 0 along unit direction (ux, uy) from (x0, y0) to radius r [m]."""
    b = x0 * ux + y0 * uy
    c = x0**2 + y0**2 - r**2
    disc = np.maximum(b**2 - c, 0.0)
    result: np.ndarray = np.maximum(-b + np.sqrt(disc), 0.0)
    return result


def _helix_to_radius(
    x0: np.ndarray, y0: np.ndarray, phi0: np.ndarray, k: np.ndarray, r: float
) -> np.ndarray:
    """Smallest positive transverse path s [m] at which the helix reaches radius r; inf if never.

    With the circle centre C and u = phi0 - k s, |P(s)|^2 = |C|^2 + 1/k^2 + (2/k) d cos(u + a),
    where d = |C| and (sin a, cos a) = (Cx, Cy) / d; solve for cos(u + a) and keep the first
    crossing in the direction of motion.
    """
    cx = x0 + np.sin(phi0) / k
    cy = y0 - np.cos(phi0) / k
    d = np.hypot(cx, cy)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = k * (r**2 - d**2 - 1.0 / k**2) / (2.0 * d)
    reachable = np.abs(c) <= 1.0
    alpha = np.arctan2(cx, cy)
    acos = np.arccos(np.clip(c, -1.0, 1.0))
    best = np.full(x0.shape, np.inf)
    for sign in (1.0, -1.0):
        u = sign * acos - alpha
        turn = np.mod(np.sign(k) * (phi0 - u), 2 * np.pi)  # |k| s, in [0, 2 pi)
        turn = np.where(turn < 1e-12, 2 * np.pi, turn)  # do not stop at the starting point
        best = np.minimum(best, turn / np.abs(k))
    return np.where(reachable & (d > 0), best, np.inf)


def propagate(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    charge: np.ndarray,
    vx: np.ndarray,
    vy: np.ndarray,
    vz: np.ndarray,
    *,
    bz: float,
    radius: float,
    half_length: float,
) -> SurfaceHit:
    """Propagate particles from their vertex to the calorimeter surface.

    Args:
        px, py, pz: momentum [GeV], shape (P,).
        charge: charge [e], shape (P,).
        vx, vy, vz: production vertex [mm], shape (P,); assumed inside the cylinder.
        bz: field along z [T]. radius, half_length: the surface [m].

    Returns:
        :class:`SurfaceHit` with the crossing point [mm] and its eta, phi.
    """
    pt = np.hypot(px, py)
    safe_pt = np.where(pt > 0, pt, 1.0)
    cos0, sin0 = np.where(pt > 0, px / safe_pt, 1.0), py / safe_pt  # direction at the vertex
    x0, y0, z0 = vx * 1e-3, vy * 1e-3, vz * 1e-3  # mm -> m
    k = C_LIGHT * charge * bz / safe_pt  # signed curvature [1/m]
    c = np.flatnonzero((k != 0) & (pt > 0))  # the helices (about half of the particles)
    kc = k[c]
    phi0c = np.arctan2(sin0[c], cos0[c])
    # transverse path to the barrel: straight line, replaced by the helix where curved
    s_r = _line_to_radius(x0, y0, cos0, sin0, radius)
    s_r[c] = _helix_to_radius(x0[c], y0[c], phi0c, kc, radius)
    # transverse path to the end cap on the side pz points to
    with np.errstate(divide="ignore", invalid="ignore"):
        s_z = np.where(pz != 0, (np.sign(pz) * half_length - z0) * pt / pz, np.inf)
    s_z = np.where(pt > 0, np.maximum(s_z, 0.0), 0.0)
    barrel = s_r <= s_z
    s = np.where(barrel, s_r, s_z)
    s = np.where(np.isfinite(s), s, 0.0)
    x = x0 + s * cos0
    y = y0 + s * sin0
    u = phi0c - kc * s[c]
    x[c] = x0[c] + (sin0[c] - np.sin(u)) / kc
    y[c] = y0[c] + (np.cos(u) - cos0[c]) / kc
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(pt > 0, z0 + s * pz / safe_pt, np.sign(pz) * half_length)
    r_xy = np.hypot(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(r_xy > 0, np.arcsinh(z / r_xy), np.sign(z) * np.inf)
    return SurfaceHit(x * 1e3, y * 1e3, z * 1e3, eta, np.arctan2(y, x), barrel)
