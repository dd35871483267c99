"""MLPF operating point: class log-odds offsets chosen on validation events against the baseline.

The class head is trained with inverse-frequency class weights, which buys efficiency on the rare
neutral classes with fakes. The operating point undoes as much of that as the physics needs: the
predicted class is ``argmax(logits + offsets)`` with a (6,) vector of log-odds offsets (0 for
"none" and the charged classes), chosen on *validation* events so that MLPF's neutral-hadron and
photon fake rates are no larger than the rule-based baseline's on the same events while the sum of
the two efficiency gains over the baseline is as large as possible. "No larger" allows
:data:`FAKE_TOLERANCE_SIGMA` binomial standard errors of the baseline's validation fake rate
(``sqrt(f (1 - f) / n)``, n = the baseline's candidates of that class): a limit tighter than the
validation sample can resolve would trade real efficiency for statistical noise. When no offsets
on the grid meet both limits, the ones with the smallest excess fake rate are taken and
``feasible`` is False.

The offsets act only on elements whose own measured pT|Et is below ``offset_max_pt_gev`` (searched
on :data:`MAX_PT_GRID`, None = all elements): the count-based fake rates are made by the soft
bulk, while a global offset also removes hard neutral particles (whose class margins are modest,
being rare in training) that jets and MET are made of.

``run_dir/operating_point.json`` keeps the offsets, the validation efficiencies and fake rates of
both algorithms at the chosen point, and efficiency-vs-fake-rate curves for both: MLPF by moving
one class's offset with the other fixed, the baseline by raising a pT threshold on its candidates
of that class (a rule-based PF has no score; a threshold is its one knob). It may also hold
``neutral_recovery_significance`` (:mod:`.recovery`; absent or null: no recovery, the default).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import DataFileError
from particlegraph.sim import elements as schema
from particlegraph.tasks.mlpf.recovery import RECOVERY_KEY, check_significance

log = logging.getLogger(__name__)

OPERATING_POINT_FILE = "operating_point.json"
#: Classes whose offsets are tuned (neutral hadron, photon) and whose fakes are constrained.
TUNED_CLASSES = (int(schema.ParticleClass.NEUTRAL_HADRON), int(schema.ParticleClass.PHOTON))
#: Offset grid [log-odds] searched for each tuned class.
OFFSET_GRID = tuple(float(v) for v in np.round(np.arange(-4.0, 2.01, 0.25), 2))
#: Element pT|Et cuts [GeV] below which the offsets act (None: every element), searched in turn.
MAX_PT_GRID: tuple[float | None, ...] = (1.0, 2.0, 5.0, 10.0, None)
#: Statistical tolerance of the fake-rate limits, in standard errors of the baseline's rate.
FAKE_TOLERANCE_SIGMA = 1.0
#: Baseline candidate pT thresholds [GeV] that trace its efficiency-vs-fake curve.
BASELINE_PT_THRESHOLDS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 20.0)


@dataclass(frozen=True)
class OperatingPoint:
    """Class offsets and what they gave on the validation events.

    Attributes:
        class_offsets: (6,) log-odds added to the class logits before the arg-max.
        offset_max_pt_gev: the offsets act on elements with pT|Et below this [GeV] (None: all).
        feasible: both fake-rate limits met on the validation events.
        events: validation events used.
        mlpf / baseline: ``{"efficiency": {class: float}, "fake_rate": {class: float}}`` at the
            chosen point, for the tuned classes.
        curves: ``{class: {"mlpf": {"offset", "efficiency", "fake_rate"}, "baseline":
            {"pt_threshold_gev", "efficiency", "fake_rate"}}}`` (lists).
        neutral_recovery_significance: ``k`` of the neutral recovery (:mod:`.recovery`), applied
            by ``evaluate`` after the network; None (the default): off.
    """

    class_offsets: tuple[float, ...] = (0.0,) * schema.NUM_CLASSES
    offset_max_pt_gev: float | None = None
    feasible: bool = True
    events: int = 0
    mlpf: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)
    neutral_recovery_significance: float | None = None

    def offsets_tensor(self) -> Any:
        """The offsets as a (6,) float32 torch tensor (for ``decode_predictions``)."""
        import torch

        return torch.tensor(self.class_offsets, dtype=torch.float32)


def _rates(true_cls: np.ndarray, pred_cls: np.ndarray, c: int) -> tuple[float, float]:
    """(efficiency, fake rate) of class ``c``; NaN where undefined."""
    is_true, is_pred = true_cls == c, pred_cls == c
    n_true, n_pred = int(is_true.sum()), int(is_pred.sum())
    hit = int((is_true & is_pred).sum())
    eff = hit / n_true if n_true else float("nan")
    fake = (n_pred - hit) / n_pred if n_pred else float("nan")
    return eff, fake


def choose_offsets(
    logits: np.ndarray,
    true_cls: np.ndarray,
    baseline_cls: np.ndarray,
    grid: Sequence[float] = OFFSET_GRID,
    tolerance_sigma: float = FAKE_TOLERANCE_SIGMA,
    gate: np.ndarray | None = None,
) -> tuple[np.ndarray, bool, float, float]:
    """Search the offsets of :data:`TUNED_CLASSES` on ``grid`` x ``grid``.

    Args:
        logits: (M, 6) class logits of the validation elements.
        true_cls: (M,) ygen class; baseline_cls: (M,) ycand class.
        grid: offsets [log-odds] tried for each tuned class.
        tolerance_sigma: the fake-rate limit is the baseline's rate plus this many binomial
            standard errors of it (0: the bare rate).
        gate: (M,) bool, the elements the offsets act on (None: all).

    Returns:
        ``(offsets (6,), feasible, excess, gain)``: maximise the summed efficiency gain over the baseline subject
        to fake rate <= the limit for each tuned class; if impossible, minimise the largest
        fake-rate excess over the limit (ties: larger efficiency gain).
    """
    logits = np.asarray(logits, dtype=np.float64)
    g = np.ones(len(logits)) if gate is None else np.asarray(gate, dtype=np.float64)
    base = {c: _rates(true_cls, baseline_cls, c) for c in TUNED_CLASSES}
    limit = {c: fake_rate_limit(true_cls, baseline_cls, c, tolerance_sigma) for c in TUNED_CLASSES}
    best: tuple[float, float, float, float] | None = None  # (excess, -gain, o1, o2)
    for o1 in grid:
        for o2 in grid:
            shifted = logits.copy()
            shifted[:, TUNED_CLASSES[0]] += o1 * g
            shifted[:, TUNED_CLASSES[1]] += o2 * g
            pred = shifted.argmax(-1)
            excess, gain = 0.0, 0.0
            for c in TUNED_CLASSES:
                eff, fake = _rates(true_cls, pred, c)
                if np.isnan(eff):
                    continue
                fake = 0.0 if np.isnan(fake) else fake
                excess = max(excess, fake - limit[c])
                gain += eff - base[c][0]
            key = (max(excess, 0.0), -gain, o1, o2)
            if best is None or key[:2] < best[:2]:
                best = key
    assert best is not None
    offsets = np.zeros(schema.NUM_CLASSES)
    offsets[TUNED_CLASSES[0]], offsets[TUNED_CLASSES[1]] = best[2], best[3]
    return offsets, best[0] <= 0.0, best[0], -best[1]


def shift_logits(
    logits: np.ndarray, offsets: np.ndarray, element_pt: np.ndarray | None, max_pt: float | None
) -> np.ndarray:
    """``logits + offsets`` on elements with ``element_pt < max_pt`` (all when max_pt is None)."""
    if max_pt is None or element_pt is None:
        return np.asarray(logits + offsets)
    return np.asarray(logits + offsets[None, :] * (np.asarray(element_pt) < max_pt)[:, None])


def fake_rate_limit(
    true_cls: np.ndarray, baseline_cls: np.ndarray, c: int, tolerance_sigma: float
) -> float:
    """The baseline's fake rate of class ``c`` plus ``tolerance_sigma`` binomial standard errors."""
    n = int((baseline_cls == c).sum())
    _, fake = _rates(true_cls, baseline_cls, c)
    if n == 0 or np.isnan(fake):
        return 0.0
    return fake + tolerance_sigma * float(np.sqrt(fake * (1.0 - fake) / n))


def efficiency_fake_curves(
    logits: np.ndarray,
    true_cls: np.ndarray,
    baseline: np.ndarray,
    offsets: np.ndarray,
    grid: Sequence[float] = OFFSET_GRID,
    *,
    element_pt: np.ndarray | None = None,
    max_pt: float | None = None,
) -> dict[str, Any]:
    """Efficiency vs fake rate of each tuned class for MLPF (offset scan) and baseline (pT cut).

    Args:
        logits: (M, 6); true_cls: (M,); baseline: (M, 7) ycand rows; offsets: (6,) chosen point.
    """
    base_cls = np.rint(baseline[:, schema.Y_PID]).astype(np.int64)
    base_pt = baseline[:, schema.Y_PT]
    curves: dict[str, Any] = {}
    for c in TUNED_CLASSES:
        m_eff, m_fake = [], []
        for o in grid:
            off = offsets.copy()
            off[c] = o
            eff, fake = _rates(
                true_cls, shift_logits(logits, off, element_pt, max_pt).argmax(-1), c
            )
            m_eff.append(_num(eff))
            m_fake.append(_num(fake))
        b_eff, b_fake = [], []
        for t in BASELINE_PT_THRESHOLDS:
            pred = np.where((base_cls == c) & (base_pt < t), 0, base_cls)
            eff, fake = _rates(true_cls, pred, c)
            b_eff.append(_num(eff))
            b_fake.append(_num(fake))
        curves[schema.CLASS_NAMES[c]] = {
            "mlpf": {"offset": list(grid), "efficiency": m_eff, "fake_rate": m_fake},
            "baseline": {
                "pt_threshold_gev": list(BASELINE_PT_THRESHOLDS),
                "efficiency": b_eff,
                "fake_rate": b_fake,
            },
        }
    return curves


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def operating_point_from_arrays(
    logits: np.ndarray,
    ygen: np.ndarray,
    ycand: np.ndarray,
    events: int = 0,
    element_pt: np.ndarray | None = None,
) -> OperatingPoint:
    """The :class:`OperatingPoint` of validation elements: logits (M, 6), ygen and ycand (M, 7),
    the elements' own pT|Et (M,) [GeV] (None: offsets act on every element)."""
    if len(logits) == 0:
        raise DataFileError("cannot choose an operating point: the validation sample is empty")
    true_cls = np.rint(ygen[:, schema.Y_PID]).astype(np.int64)
    base_cls = np.rint(ycand[:, schema.Y_PID]).astype(np.int64)
    best: tuple[tuple[float, float], np.ndarray, bool, float | None] | None = None
    for max_pt in MAX_PT_GRID if element_pt is not None else (None,):
        gate = None if max_pt is None else np.asarray(element_pt) < max_pt
        off, ok, excess, gain = choose_offsets(logits, true_cls, base_cls, gate=gate)
        if best is None or (excess, -gain) < best[0]:
            best = ((excess, -gain), off, ok, max_pt)
    assert best is not None
    _, offsets, feasible, max_pt = best
    pred = shift_logits(logits, offsets, element_pt, max_pt).argmax(-1)
    mlpf: dict[str, Any] = {"efficiency": {}, "fake_rate": {}}
    base: dict[str, Any] = {"efficiency": {}, "fake_rate": {}, "fake_rate_limit": {}}
    for c in TUNED_CLASSES:
        name = schema.CLASS_NAMES[c]
        for side, p in ((mlpf, pred), (base, base_cls)):
            eff, fake = _rates(true_cls, p, c)
            side["efficiency"][name], side["fake_rate"][name] = _num(eff), _num(fake)
        limit = fake_rate_limit(true_cls, base_cls, c, FAKE_TOLERANCE_SIGMA)
        base["fake_rate_limit"][name] = _num(limit)
    if not feasible:
        log.warning(
            "no class offsets keep both neutral fake rates at or below the baseline's on the "
            "validation events; chose the smallest excess (%s)",
            mlpf["fake_rate"],
        )
    return OperatingPoint(
        class_offsets=tuple(float(v) for v in offsets),
        offset_max_pt_gev=max_pt,
        feasible=feasible,
        events=events,
        mlpf=mlpf,
        baseline=base,
        curves=efficiency_fake_curves(
            logits, true_cls, ycand, offsets, element_pt=element_pt, max_pt=max_pt
        ),
    )


def collect_logits(
    model: Any, files: Iterable[Path], *, max_events: int | None = None, batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Run ``model`` (CPU) over ``files``: ``(logits (M, 6), ygen (M, 7), ycand (M, 7), events,
    element pT|Et (M,))``."""
    import torch

    from particlegraph.tasks.mlpf.dataset import MLPFDataset, make_loader

    loader = make_loader(MLPFDataset(list(files), max_events=max_events), batch_size=batch_size)
    model = model.eval()
    logits, ygen, ycand, pts, events = [], [], [], [], 0
    with torch.inference_mode():
        for batch in loader:
            out = model(batch.x, batch.batch)
            logits.append(out.logits.float().cpu().numpy())
            ygen.append(batch.ygen.cpu().numpy())
            ycand.append(batch.ycand.cpu().numpy())
            pts.append(batch.x[:, 1].cpu().numpy())
            events += int(batch.num_graphs)
    if not logits:
        raise DataFileError("cannot choose an operating point: no validation events were read")
    cat = np.concatenate
    return cat(logits), cat(ygen), cat(ycand), events, cat(pts)


def select_operating_point(
    model: Any, val_files: Sequence[Path], run_dir: str | Path, max_events: int | None = None
) -> OperatingPoint:
    """Choose the operating point on ``val_files`` and write ``run_dir/operating_point.json``."""
    logits, ygen, ycand, events, pts = collect_logits(model, val_files, max_events=max_events)
    op = operating_point_from_arrays(logits, ygen, ycand, events, element_pt=pts)
    write_json(Path(run_dir) / OPERATING_POINT_FILE, asdict(op))
    return op


def load_operating_point(run_dir: str | Path) -> OperatingPoint | None:
    """The operating point stored in ``run_dir``, or None (plain arg-max) when there is none."""
    path = Path(run_dir) / OPERATING_POINT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        offsets = tuple(float(v) for v in data["class_offsets"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataFileError(
            f"{path} is not a valid operating point ({exc}); delete it to use the plain arg-max"
        ) from exc
    if len(offsets) != schema.NUM_CLASSES:
        raise DataFileError(
            f"{path} has {len(offsets)} class offsets, expected {schema.NUM_CLASSES}; delete it"
        )
    k = check_significance(data.get(RECOVERY_KEY), f"{path}: {RECOVERY_KEY}")
    return OperatingPoint(
        class_offsets=offsets,
        offset_max_pt_gev=data.get("offset_max_pt_gev"),
        feasible=bool(data.get("feasible", True)),
        events=int(data.get("events", 0)),
        mlpf=data.get("mlpf", {}),
        baseline=data.get("baseline", {}),
        curves=data.get("curves", {}),
        neutral_recovery_significance=k,
    )


def store_neutral_recovery(run_dir: str | Path, significance: float | None) -> OperatingPoint:
    """Set (a number) or clear (None) the neutral recovery of the operating point in
    ``run_dir/operating_point.json`` (atomic) and return the new operating point.

    Raises:
        ConfigError: ``significance`` is not None nor a finite number > 0.
        DataFileError: the folder has no valid operating point.
    """
    k = check_significance(significance)
    op = load_operating_point(run_dir)
    if op is None:
        raise DataFileError(f"{Path(run_dir) / OPERATING_POINT_FILE} does not exist")
    path = Path(run_dir) / OPERATING_POINT_FILE
    data = json.loads(path.read_text())
    data[RECOVERY_KEY] = k
    write_json(path, data)
    return replace(op, neutral_recovery_significance=k)
