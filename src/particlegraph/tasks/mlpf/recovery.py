"""Neutral recovery: the rule-based PF's residual neutral where MLPF predicts no particle.

A post-network step beside the operating point and the calibration, **off by default**. MLPF
calls a sizeable share of hard neutral hadrons "none", nearly all in calorimeter towers that have
a linked track (docs/benchmarks.md, "MLPF jets: what the fourth session tried"); the rule-based
baseline (:mod:`particlegraph.sim.particle_flow`) keeps the tower energy minus the linked tracks'
expected deposit as a neutral when it is significant. With a significance ``k`` set, for every
tower that MLPF predicts as class 0 (after the operating point):

1. the rule's neutral energy of each sub-detector (ECAL, HCAL) of the tower is computed with
   :func:`particlegraph.sim.particle_flow.tower_neutrals` (the baseline's own function, so the
   same linking, expected deposits, energy minima and significance definition
   ``E - P >= k * sqrt(sigma_tower(E)^2 + sum (sigma_track p)^2)``), with ``k`` in place of
   the detector's ``significance_min`` (the baseline uses 2);
2. only sub-detectors with at least one linked track count: energy in a sub-detector without a
   linked track is MLPF's own decision (the operating point tuned those against fakes), so
   ``k = infinity`` is the same as no recovery;
3. what is left becomes the rule's candidate row (:func:`~particlegraph.sim.particle_flow.
   neutral_rows`): photon when the ECAL part is the larger, neutral hadron otherwise, with the
   residual energy along the tower's direction, massless.

Towers and tracks are rebuilt from the ``X`` columns alone (tower cell from its eta, phi; track
cell from its calorimeter entry point; track pT resolution from the detector's tables at the
measured pT, eta), so the step needs the :class:`~particlegraph.sim.detector.DetectorConfig` of
the events (:func:`detector_of`: stored in generated files; the MLPF default otherwise).

The result is a hybrid ("MLPF + rule recovery"), not MLPF alone. ``k`` is stored in
``operating_point.json`` as ``neutral_recovery_significance`` (absent or null: off) and chosen on
validation events (``bench/mlpf_recovery_scan.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.sim.calorimeter import Towers, ecal_sigma, expected_cells, hcal_sigma
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK, Y_PID
from particlegraph.sim.particle_flow import neutral_rows, tower_neutrals
from particlegraph.sim.tracker import Tracks, resolution

#: The operating-point key that holds ``k``.
RECOVERY_KEY = "neutral_recovery_significance"


def check_significance(k: object, where: str = RECOVERY_KEY) -> float | None:
    """``k`` as a float (None: off); refused unless a finite number > 0.

    Raises:
        ConfigError: naming ``where`` and the value.
    """
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, int | float) or not math.isfinite(k) or k <= 0:
        raise ConfigError(
            f"{where} must be a finite number > 0 (resolutions; null = no recovery), got {k!r}"
        )
    return float(k)


@dataclass(frozen=True)
class NeutralRecovery:
    """Recovery settings: significance ``k`` (resolutions) and the events' detector."""

    significance: float
    detector: DetectorConfig = field(
        default_factory=lambda: DetectorConfig(separate_ecal_towers=True)
    )

    def __post_init__(self) -> None:
        check_significance(self.significance, "neutral recovery significance")

    def apply(self, x: np.ndarray, ypred: np.ndarray) -> np.ndarray:
        """A copy of ``ypred`` (N, 7) with the recovered neutrals (see :func:`recover_neutrals`)."""
        return recover_neutrals(x, ypred, self.significance, self.detector)


def _towers(x: np.ndarray, cfg: DetectorConfig) -> tuple[np.ndarray, Towers]:
    """Row indices (W,) of the tower elements of ``x`` (N, 12), sorted by cell, and their
    :class:`~particlegraph.sim.calorimeter.Towers` rebuilt from the X columns."""
    rows = np.flatnonzero(x[:, 0] == ELEM_TOWER)
    t = x[rows].astype(np.float64)
    eta, phi = t[:, 2], np.arctan2(t[:, 3], t[:, 4])
    e_em, e_had = t[:, 6], t[:, 7]
    cell = cfg.grid.index(eta, phi)
    if cfg.separate_ecal_towers:  # ECAL cells carry E_em only, HCAL towers E_had only
        ecal = cfg.ecal_grid.index(eta, phi)
        cell = np.where((e_em > 0) & (e_had <= 0), ecal + cfg.grid.num_towers, cell)
    o = np.argsort(cell, kind="stable")
    centre = cfg.cells.eta_center[np.maximum(cell[o], 0)]  # the resolution's eta, as measured
    towers = Towers(cell[o], eta[o], phi[o], e_em[o], e_had[o], ecal_sigma(e_em[o], centre, cfg),
                    hcal_sigma(e_had[o], centre, cfg))  # fmt: skip
    return rows[o], towers


def _tracks(
    x: np.ndarray, cfg: DetectorConfig
) -> tuple[Tracks, np.ndarray, np.ndarray, np.ndarray]:
    """``(tracks, track_tower (T,), is_muon, is_electron)`` from the track rows of ``x``."""
    t = x[x[:, 0] == ELEM_TRACK].astype(np.float64)
    pt, eta, phi = t[:, 1], t[:, 2], np.arctan2(t[:, 3], t[:, 4])
    is_muon, is_electron = t[:, 10] > 0.5, t[:, 11] > 0.5
    pid = np.where(is_electron, 11, np.where(is_muon, 13, 211))
    sigma = resolution(pid, pt, eta, cfg)
    tracks = Tracks(np.zeros(len(t), np.int64), pt, eta, phi, t[:, 9], sigma)
    cell = expected_cells(t[:, 6], np.arctan2(t[:, 7], t[:, 8]), is_electron, cfg)
    return tracks, cell, is_muon, is_electron


def rule_residuals(
    x: np.ndarray, significance: float | None, cfg: DetectorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The rule's neutral candidate of every tower of ``x`` (N, 12), linked sub-detectors only.

    Args:
        x: one event's elements.
        significance: ``k`` in resolutions (None: the detector's ``significance_min``).
        cfg: the detector the event was simulated with.

    Returns:
        ``(rows (W,), candidates (W, 7))``: the tower rows of ``x`` and, per tower, the rule's
        candidate from the energy of its sub-detectors that have a linked track (class 0 when
        none is left).
    """
    rows, towers = _towers(x, cfg)
    tracks, track_tower, is_muon, is_electron = _tracks(x, cfg)
    n = tower_neutrals(tracks, track_tower, is_muon, is_electron, towers, cfg, significance)
    e_gamma = np.where(n.linked_em > 0, n.e_gamma, 0.0)
    e_nh = np.where(n.linked_had > 0, n.e_nh, 0.0)
    return rows, neutral_rows(e_gamma, e_nh, towers)


def recover_neutrals(
    x: np.ndarray, ypred: np.ndarray, significance: float | None, cfg: DetectorConfig
) -> np.ndarray:
    """``ypred`` (N, 7) with the rule's residual neutral on towers MLPF calls "none".

    Args:
        x: one event's elements (N, 12).
        ypred: MLPF's predictions (N, 7, ygen layout), after the operating point (and calibration).
        significance: ``k`` in resolutions; None returns ``ypred`` itself (no recovery).
        cfg: the event's detector.

    Returns:
        A float32 copy with the recovered rows replaced (``ypred`` itself when off).
    """
    if significance is None:
        return ypred
    check_significance(significance)
    out = np.array(ypred, dtype=np.float32, copy=True)
    rows, cand = rule_residuals(x, significance, cfg)
    take = (np.rint(out[rows, Y_PID]) == 0) & (cand[:, Y_PID] != 0)
    out[rows[take]] = cand[take]
    return out


def detector_of(data: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> DetectorConfig:
    """The detector stored in the first file of ``data``; the MLPF default (separate ECAL
    towers, :func:`~particlegraph.tasks.mlpf.generate.mlpf_detector`) when it has none."""
    from particlegraph.config import from_dict
    from particlegraph.tasks.mlpf.generate import mlpf_detector, read_settings
    from particlegraph.tasks.mlpf.store import resolve_files

    files = resolve_files(data)
    stored = read_settings(Path(files[0])).get("detector") if files else None
    if not isinstance(stored, dict):
        return mlpf_detector()
    return from_dict(DetectorConfig, stored, where="detector")
