"""Final-state particles of one event as a struct of flat numpy arrays.

Momenta are in GeV, production vertices in mm (Pythia's units). One :class:`Particles` holds
every stable particle of an event (hard scatter plus pile-up), so the detector simulation works on
whole arrays instead of looping over particles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from particlegraph.physics import kinematics

#: |PDG id| of particles that leave no signal in the detector (neutrinos, SUSY LSP-like states).
INVISIBLE_PIDS = (12, 14, 16, 1000022, 1000023, 1000025, 1000035, 1000045)


class Particles(NamedTuple):
    """Stable particles of one event; every field has shape (P,).

    ``pid`` PDG id (int32), ``charge`` electric charge in units of e (float64),
    ``px, py, pz, e`` four-momentum [GeV], ``vx, vy, vz`` production vertex [mm].
    """

    pid: np.ndarray
    charge: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray

    @property
    def size(self) -> int:
        """Number of particles (``len()`` would count the fields of the tuple)."""
        return int(self.pid.shape[0])

    @property
    def pt(self) -> np.ndarray:
        """Transverse momentum [GeV], shape (P,)."""
        return kinematics.pt(self.px, self.py)

    @property
    def phi(self) -> np.ndarray:
        """Azimuth [rad] in (-pi, pi], shape (P,)."""
        return kinematics.phi(self.px, self.py)

    @property
    def eta(self) -> np.ndarray:
        """Pseudorapidity, shape (P,); +-inf for particles along the beam."""
        return kinematics.eta(self.px, self.py, self.pz)

    def select(self, mask: np.ndarray) -> Particles:
        """Subset by a boolean mask or an index array."""
        return Particles(*(f[mask] for f in self))


def empty_particles() -> Particles:
    """An event without particles."""
    f = np.zeros(0, dtype=np.float64)
    return Particles(np.zeros(0, dtype=np.int32), f, f, f, f, f, f, f, f)


def concatenate(parts: Sequence[Particles]) -> Particles:
    """Concatenate several particle sets (e.g. hard scatter and pile-up) into one."""
    if not parts:
        return empty_particles()
    return Particles(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def make_particles(
    pid: np.ndarray,
    charge: np.ndarray,
    p4: np.ndarray,
    vertex: np.ndarray | None = None,
) -> Particles:
    """Build :class:`Particles` from a (P,) pid, (P,) charge, (P, 4) [px, py, pz, E] and (P, 3) vertex [mm]."""
    p4 = np.asarray(p4, dtype=np.float64).reshape(-1, 4)
    n = p4.shape[0]
    vtx = (
        np.zeros((n, 3)) if vertex is None else np.asarray(vertex, dtype=np.float64).reshape(-1, 3)
    )
    return Particles(
        np.asarray(pid, dtype=np.int32).reshape(n),
        np.asarray(charge, dtype=np.float64).reshape(n),
        p4[:, 0].copy(),
        p4[:, 1].copy(),
        p4[:, 2].copy(),
        p4[:, 3].copy(),
        vtx[:, 0].copy(),
        vtx[:, 1].copy(),
        vtx[:, 2].copy(),
    )
