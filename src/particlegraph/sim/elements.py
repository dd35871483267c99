"""Column contracts of the Delphes MLPF format (see DESIGN.md, "Data contracts").

One event is ``X`` (N, 12) float32, ``ygen`` (N, 7) and ``ycand`` (N, 7) float32; row i of the
targets belongs to element i.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np

# --- X: detector elements -------------------------------------------------------------------
NUM_X_FEATURES = 12
ELEM_TOWER = 1
ELEM_TRACK = 2

#: Feature names per column, for towers and tracks (column 0 is the element type).
TOWER_FEATURES = (
    "type",
    "Et",
    "eta",
    "sin_phi",
    "cos_phi",
    "E",
    "E_em",
    "E_had",
    "-",
    "-",
    "-",
    "-",
)
TRACK_FEATURES = (
    "type", "pt", "eta", "sin_phi", "cos_phi", "p", "eta_outer", "sin_phi_outer", "cos_phi_outer",
    "charge", "is_gen_muon", "is_gen_electron",
)  # fmt: skip
#: Neutral names valid for both element types, used for axis labels.
X_FEATURES = (
    "type", "pt|Et", "eta", "sin_phi", "cos_phi", "p|E", "eta_out|E_em", "sin_phi_out|E_had",
    "cos_phi_out", "charge", "is_muon", "is_electron",
)  # fmt: skip

# --- targets: ygen / ycand -------------------------------------------------------------------
NUM_Y_FEATURES = 7
Y_FEATURES = ("pid", "charge", "pt", "eta", "sin_phi", "cos_phi", "energy")
Y_PID, Y_CHARGE, Y_PT, Y_ETA, Y_SIN_PHI, Y_COS_PHI, Y_ENERGY = range(NUM_Y_FEATURES)


class ParticleClass(IntEnum):
    """Target classes. Charges are physical (the public dataset flips lepton charges; we do not)."""

    NONE = 0
    CHARGED_HADRON = 1
    NEUTRAL_HADRON = 2
    PHOTON = 3
    ELECTRON = 4
    MUON = 5


NUM_CLASSES = len(ParticleClass)
CLASS_NAMES = tuple(c.name.lower() for c in ParticleClass)  # "none", "charged_hadron", ...
CLASS_LABELS = ("none", "ch. hadron", "n. hadron", r"$\gamma$", r"$e^\pm$", r"$\mu^\pm$")
CHARGED_CLASSES = (ParticleClass.CHARGED_HADRON, ParticleClass.ELECTRON, ParticleClass.MUON)

#: Class fractions of ygen in the public Delphes ttbar PU200 sample (MLPF, Pata et al. 2021,
#: Eur. Phys. J. C 81, 381, arXiv:2101.08578), used as realism anchors in docs/benchmarks.md.
DELPHES_YGEN_FRACTIONS = {
    "none": 0.03, "charged_hadron": 0.52, "neutral_hadron": 0.18, "photon": 0.26,
    "electron": 0.002, "muon": 0.0007,
}  # fmt: skip


def class_index(name: str) -> int:
    """Class id for a name such as ``neutral_hadron`` (case-insensitive)."""
    key = name.strip().lower()
    if key not in CLASS_NAMES:
        from particlegraph.errors import ConfigError

        raise ConfigError(
            f"unknown particle class {name!r}; choose one of {', '.join(CLASS_NAMES)}"
        )
    return CLASS_NAMES.index(key)


def target_rows(
    cls: np.ndarray,
    charge: np.ndarray,
    pt: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    energy: np.ndarray,
) -> np.ndarray:
    """Target rows (M, 7) float32 in the ygen/ycand layout from per-particle columns.

    ``pt`` and ``energy`` in GeV, ``phi`` in rad (stored as sin, cos); rows of class 0 are all zero.
    """
    y = np.stack([cls, charge, pt, eta, np.sin(phi), np.cos(phi), energy], axis=1).astype(
        np.float32
    )
    y[cls == ParticleClass.NONE] = 0.0
    return y.reshape(-1, NUM_Y_FEATURES)


class MLPFEvent(NamedTuple):
    """One event: ``X`` (N, 12), ``ygen`` (N, 7), ``ycand`` (N, 7), all float32."""

    X: np.ndarray
    ygen: np.ndarray
    ycand: np.ndarray
