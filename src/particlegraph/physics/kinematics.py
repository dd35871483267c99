"""Kinematics of massless and massive four-vectors: one definition of each quantity.

Conventions (every task uses these functions, so they agree everywhere):

* ``phi`` in (-pi, pi] [rad] from ``arctan2(py, px)``; 0 for a particle with pT = 0.
* ``eta = arcsinh(pz / pT)``; for pT = 0 it is ``+inf`` (``-inf``) along the +z (-z) beam and 0
  for a particle at rest (pz = 0), so a zero vector never produces NaN.
* ``delta_phi`` wraps into [-pi, pi): phi = +3.1 and -3.1 are 2 pi - 6.2 = 0.083 rad apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike


def pt(px: ArrayLike, py: ArrayLike) -> np.ndarray:
    """Transverse momentum ``sqrt(px^2 + py^2)`` [GeV]; broadcasts."""
    return np.hypot(np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64))


def phi(px: ArrayLike, py: ArrayLike) -> np.ndarray:
    """Azimuth ``arctan2(py, px)`` in (-pi, pi] [rad]; 0 when pT = 0."""
    return np.arctan2(np.asarray(py, dtype=np.float64), np.asarray(px, dtype=np.float64))


def eta(px: ArrayLike, py: ArrayLike, pz: ArrayLike) -> np.ndarray:
    """Pseudorapidity ``arcsinh(pz / pT)``; ``sign(pz) * inf`` when pT = 0 (0 when pz = 0 too)."""
    p_t = pt(px, py)
    p_z = np.asarray(pz, dtype=np.float64)
    safe = np.where(p_t > 0, p_t, 1.0)
    along_beam = np.where(p_z > 0, np.inf, np.where(p_z < 0, -np.inf, 0.0))
    return np.where(p_t > 0, np.arcsinh(p_z / safe), along_beam)


def pt_eta_phi(
    px: ArrayLike, py: ArrayLike, pz: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pT [GeV], eta, phi [rad])`` from Cartesian momenta [GeV], with the conventions above."""
    return pt(px, py), eta(px, py, pz), phi(px, py)


def phi_from_sincos(sin_phi: ArrayLike, cos_phi: ArrayLike) -> np.ndarray:
    """Azimuth in (-pi, pi] [rad] from a (not necessarily normalised) ``(sin, cos)`` pair."""
    result: np.ndarray = np.arctan2(np.asarray(sin_phi), np.asarray(cos_phi))
    return result


def delta_phi(phi1: Any, phi2: Any) -> Any:
    """``phi1 - phi2`` wrapped into [-pi, pi) [rad]; broadcasts. Torch tensors stay tensors
    (``%`` is the floored modulo for both numpy and torch), anything else becomes numpy."""
    if not (hasattr(phi1, "__torch_function__") or hasattr(phi2, "__torch_function__")):
        phi1, phi2 = np.asarray(phi1), np.asarray(phi2)
    return (phi1 - phi2 + np.pi) % (2.0 * np.pi) - np.pi


def delta_r(eta1: ArrayLike, phi1: ArrayLike, eta2: ArrayLike, phi2: ArrayLike) -> np.ndarray:
    """``sqrt(d_eta^2 + d_phi^2)`` with the azimuth wrapped; broadcasts."""
    result: np.ndarray = np.hypot(np.asarray(eta1) - np.asarray(eta2), delta_phi(phi1, phi2))
    return result


def massless_p4(pt_: ArrayLike, eta_: ArrayLike, phi_: ArrayLike) -> np.ndarray:
    """(M, 4) float64 ``(px, py, pz, E)`` [GeV] of massless particles from (pT, eta, phi)."""
    p_t = np.asarray(pt_, dtype=np.float64)
    e_ta = np.asarray(eta_, dtype=np.float64)
    p_hi = np.asarray(phi_, dtype=np.float64)
    return np.stack(
        [p_t * np.cos(p_hi), p_t * np.sin(p_hi), p_t * np.sinh(e_ta), p_t * np.cosh(e_ta)], axis=-1
    )
