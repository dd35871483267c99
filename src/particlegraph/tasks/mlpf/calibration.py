"""Energy calibration of MLPF's neutral particles, learned on validation events after the network.

The regression of a network trained with a Huber/MSE loss shrinks towards the mean of its targets:
hard neutral hadrons come out low (response 0.94-0.95 above 10 GeV, issue 20), which drags the
jet response below 1 where neutral energy matters. As jet energy corrections do (numerical
inversion, e.g. CMS JINST 12 (2017) P02014, ATLAS Eur. Phys. J. C 75 (2015) 17), per class c and
|eta| region:

1. on validation elements whose predicted and true class are both c, bin the *true* energy
   (:data:`E_EDGES`); in each bin with at least ``min_count`` elements take the median response
   ``R_b = median(E_pred / E_gen)`` and the median predicted energy ``x_b = median(E_pred)``;
2. the correction of a predicted energy E is ``1 / R(E)``, with ``R`` interpolated linearly in
   ``log E`` through the points ``(x_b, R_b)`` (sorted by ``x_b``) and held constant beyond the
   first and last point; a class or region without points is not corrected.

Because ``x_b`` is where the bin's particles *land* after the network, the corrected median
response in bins of the true energy is 1 up to the interpolation (the inversion's closure), which
a correction binned in the predicted energy alone does not give under shrinkage. pT and E of the
element are scaled by the same factor (eta and phi are kept).

Stored as ``RUN/calibration.json`` (atomic) and applied by ``evaluate`` when present.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.sim.elements import CLASS_NAMES, Y_ENERGY, Y_ETA, Y_PID, Y_PT

CALIBRATION_FILE = "calibration.json"
#: True-energy bin edges [GeV] of the inversion.
E_EDGES = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 80.0, 120.0, 200.0, 500.0)
#: |eta| regions: barrel, endcap (tracker coverage), forward.
ETA_EDGES = (0.0, 1.5, 3.0, 5.0)
#: Classes calibrated: neutral hadron and photon (charged particles keep their track's pT).
CLASSES = (2, 3)
#: Fewest elements of a true-energy bin that make an inversion point.
MIN_COUNT = 30


@dataclass(frozen=True)
class Calibration:
    """Per class (name) and |eta| region: the inversion points ``(x_b [GeV], R_b)``.

    Attributes:
        eta_edges: (R + 1,) |eta| region edges.
        points: ``{class name: [[(x_b, R_b), ...] per region]}``; ``x_b`` increasing.
        events: validation events it was learned on.
        counts: ``{class name: [elements per region]}`` used.
    """

    eta_edges: tuple[float, ...] = ETA_EDGES
    points: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)
    events: int = 0
    counts: dict[str, list[int]] = field(default_factory=dict)

    def factor(self, cls: int, energy: np.ndarray, abs_eta: np.ndarray) -> np.ndarray:
        """Correction factors ``1 / R(E)`` (M,) for predicted energies [GeV] of class ``cls``."""
        out = np.ones(len(energy), dtype=np.float64)
        regions = self.points.get(CLASS_NAMES[cls])
        if regions is None:
            return out
        region = np.clip(np.searchsorted(self.eta_edges, abs_eta, side="right") - 1, 0,
                         len(regions) - 1)  # fmt: skip
        for r, pts in enumerate(regions):
            sel = region == r
            if not pts or not sel.any():
                continue
            x, resp = np.asarray(pts, dtype=np.float64).T
            logx = np.log(np.maximum(x, 1e-6))
            e = np.log(np.maximum(np.asarray(energy, dtype=np.float64)[sel], 1e-6))
            out[sel] = 1.0 / np.interp(e, logx, resp)  # constant beyond the end points
        return out

    def apply(self, y: np.ndarray) -> np.ndarray:
        """A copy of predictions ``y`` (N, 7, ygen layout) with pT and E of the calibrated
        classes scaled by their factors."""
        y = np.array(y, dtype=np.float32, copy=True)
        cls = np.rint(y[:, Y_PID]).astype(np.int64)
        for c in CLASSES:
            sel = cls == c
            if not sel.any():
                continue
            f = self.factor(c, y[sel, Y_ENERGY], np.abs(y[sel, Y_ETA]))
            y[sel, Y_PT] *= f
            y[sel, Y_ENERGY] *= f
        return y


def inversion_points(
    e_gen: np.ndarray, e_pred: np.ndarray, edges: Sequence[float] = E_EDGES,
    min_count: int = MIN_COUNT,
) -> list[tuple[float, float]]:  # fmt: skip
    """``(median E_pred, median E_pred / E_gen)`` per true-energy bin with >= ``min_count``
    elements, sorted by the first value (a non-increasing pair is dropped so x grows strictly)."""
    e_gen = np.asarray(e_gen, dtype=np.float64)
    e_pred = np.asarray(e_pred, dtype=np.float64)
    ok = (e_gen > 0) & (e_pred > 0)
    idx = np.digitize(e_gen[ok], edges) - 1
    pts = []
    for b in range(len(edges) - 1):
        g, p = e_gen[ok][idx == b], e_pred[ok][idx == b]
        if g.size >= min_count:
            pts.append((float(np.median(p)), float(np.median(p / g))))
    pts.sort()
    out: list[tuple[float, float]] = []
    for x, r in pts:
        if not out or x > out[-1][0]:
            out.append((x, r))
    return out


def fit_calibration(
    events: Iterable[Sequence[np.ndarray]], min_count: int = MIN_COUNT
) -> Calibration:
    """Learn the calibration from validation events ``(X, ygen, ycand, ypred)`` (uncalibrated
    predictions, ygen layout)."""
    gen_e: dict[int, list[np.ndarray]] = {c: [] for c in CLASSES}
    pred_e: dict[int, list[np.ndarray]] = {c: [] for c in CLASSES}
    eta: dict[int, list[np.ndarray]] = {c: [] for c in CLASSES}
    k = 0
    for ev in events:
        ygen, ypred = np.asarray(ev[1]), np.asarray(ev[3])
        g, p = np.rint(ygen[:, Y_PID]), np.rint(ypred[:, Y_PID])
        for c in CLASSES:
            both = (g == c) & (p == c)
            gen_e[c].append(ygen[both, Y_ENERGY])
            pred_e[c].append(ypred[both, Y_ENERGY])
            eta[c].append(np.abs(ypred[both, Y_ETA]))
        k += 1
    if k == 0:
        raise DataFileError("no validation events to learn the calibration from")
    points, counts = {}, {}
    for c in CLASSES:
        ge, pe, ae = (np.concatenate(v[c]) for v in (gen_e, pred_e, eta))
        region = np.searchsorted(ETA_EDGES, ae, side="right") - 1
        regions = range(len(ETA_EDGES) - 1)
        points[CLASS_NAMES[c]] = [
            inversion_points(ge[region == r], pe[region == r], min_count=min_count) for r in regions
        ]
        counts[CLASS_NAMES[c]] = [int((region == r).sum()) for r in regions]
    return Calibration(ETA_EDGES, points, k, counts)


def save_calibration(cal: Calibration, run_dir: str | Path) -> Path:
    """Write ``run_dir/calibration.json`` atomically; return its path."""
    path = Path(run_dir) / CALIBRATION_FILE
    write_json(path, asdict(cal))
    return path


def load_calibration(run_dir: str | Path) -> Calibration | None:
    """The run's calibration, or None when it has none."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        return None
    import json

    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        points = {
            name: [[(float(x), float(r)) for x, r in pts] for pts in regions]
            for name, regions in raw["points"].items()
        }
        cal = Calibration(tuple(raw["eta_edges"]), points, int(raw["events"]), raw["counts"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataFileError(f"{path}: not a calibration written by particlegraph ({err})") from err
    for name, regions in cal.points.items():
        if name not in CLASS_NAMES or len(regions) != len(cal.eta_edges) - 1:
            raise ConfigError(f"{path}: class {name!r} needs one point list per |eta| region")
        for pts in regions:
            if any(r <= 0 for _, r in pts):
                raise ConfigError(f"{path}: responses must be positive")
    return cal
