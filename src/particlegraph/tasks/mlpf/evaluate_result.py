"""What ``mlpf evaluate`` computes, before anything is drawn or written.

:func:`figure_data` reduces a :class:`~particlegraph.tasks.mlpf.metrics.PFCollection` to the arrays
every evaluation figure shows (rates with their counts, response samples, jets, MET and
multiplicities, MLPF and the baseline side by side); :class:`Evaluation` holds them with the
``metrics.json`` content, the operating point and the training history. The writer
(:mod:`.evaluate_writer`) turns an :class:`Evaluation` into files and computes nothing itself.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.tasks.mlpf import metrics as pf
from particlegraph.tasks.mlpf.evaluate_tables import SHOWN_CLASSES
from particlegraph.tasks.mlpf.operating_point import OperatingPoint

#: Folder of the output directory that holds the evaluation PNGs.
EVAL_DIR = "evaluation"
#: Bins of efficiency / fake rate vs pT [GeV] and vs eta.
PT_EDGES = np.geomspace(0.3, 300.0, 16)
ETA_EDGES = np.linspace(-5.0, 5.0, 21)
#: Bins of the pT / E response (reco / gen) and of the eta difference (reco - gen).
RATIO_BINS = np.linspace(0.0, 2.0, 81)
ETA_DIFF_BINS = np.linspace(-0.3, 0.3, 61)
#: The training history a run keeps (``mlpf train``), shown as loss curves.
HISTORY_FILE = "history.json"

#: (kind, variable, bin edges) of the rate figures, in the order they are drawn.
RATE_PLOTS = (
    ("efficiency", "pt", PT_EDGES),
    ("efficiency", "eta", ETA_EDGES),
    ("fake_rate", "pt", PT_EDGES),
    ("fake_rate", "eta", ETA_EDGES),
)
#: Variables of the response figures, in the order they are drawn.
RESPONSE_VARS = ("pt", "energy", "eta")


@dataclass(frozen=True)
class RateCurves:
    """Efficiency or fake rate of every shown class in bins of one variable.

    Attributes:
        kind: ``"efficiency"`` (binned in the gen variable) or ``"fake_rate"`` (in the reco one).
        var: ``"pt"`` [GeV] or ``"eta"``.
        edges: (B+1,) bin edges.
        rate: class -> side -> (B,) rate, NaN in empty bins.
        count: class -> side -> (B,) entries (the n of the binomial error bars).
    """

    kind: str
    var: str
    edges: np.ndarray
    rate: dict[int, dict[str, np.ndarray]]
    count: dict[int, dict[str, np.ndarray]]


@dataclass(frozen=True)
class EvaluationFigures:
    """The arrays of every evaluation figure, MLPF and the baseline per ``side``.

    Attributes:
        sides: the reconstructed sides present (``"mlpf"``, ``"baseline"``).
        confusion: side -> (6, 6) confusion matrix (rows true class).
        rates: the four :class:`RateCurves` of :data:`RATE_PLOTS`.
        responses: variable (:data:`RESPONSE_VARS`) -> class -> side -> samples: reco / gen for
            pt and energy, reco - gen for eta, on elements where gen and reco are of the class.
        jet_ratio: side -> (P,) reco / gen pT of matched jets (sides with matched jets only).
        gen_jets_pt: (G,) pT of all gen jets [GeV].
        jet_reco_pt: side -> (P,) reco pT of matched jets [GeV].
        jet_resolution: side -> (B,) IQR/median of the jet pT ratio in bins of
            :data:`particlegraph.physics.jets.JET_PT_EDGES`.
        met_ratio: side -> MET reco / gen of the events with gen MET > 0.
        met_diff: side -> (K,) MET reco - gen [GeV].
        gen_multiplicity: (K, 6) gen particles per class and event.
        reco_multiplicity: side -> (K, 6).
        settings: jet settings of the collection (radius, thresholds, matching Delta R).
    """

    sides: tuple[str, ...]
    confusion: dict[str, np.ndarray]
    rates: tuple[RateCurves, ...]
    responses: dict[str, dict[int, dict[str, np.ndarray]]]
    jet_ratio: dict[str, np.ndarray]
    gen_jets_pt: np.ndarray
    jet_reco_pt: dict[str, np.ndarray]
    jet_resolution: dict[str, np.ndarray]
    met_ratio: dict[str, np.ndarray]
    met_diff: dict[str, np.ndarray]
    gen_multiplicity: np.ndarray
    reco_multiplicity: dict[str, np.ndarray]
    settings: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """Everything ``mlpf evaluate`` found, ready to be written.

    Attributes:
        metrics: the content of ``metrics.json`` (:func:`~particlegraph.tasks.mlpf.evaluate.evaluate`).
        figures: the figure arrays, None when no figure is wanted.
        operating_point: the run's operating point (its efficiency-vs-fake curves are drawn).
        history: the run's training records (``epoch``, ``train_loss``, ``val_loss``), may be empty.
    """

    metrics: dict[str, Any]
    figures: EvaluationFigures | None = None
    operating_point: OperatingPoint | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def rate_curves(col: pf.PFCollection, kind: str, var: str, edges: np.ndarray) -> RateCurves:
    """Efficiency (``kind="efficiency"``) or fake rate of every shown class vs ``var``."""
    gen = col.gen
    rate: dict[int, dict[str, np.ndarray]] = {}
    count: dict[int, dict[str, np.ndarray]] = {}
    for c in SHOWN_CLASSES:
        rate[c], count[c] = {}, {}
        for side in col.sides:
            reco = col.reco[side]
            if kind == "efficiency":
                sel = gen["cls"] == c
                r, n = pf.binned_rate(gen[var][sel], reco["cls"][sel] == c, edges)
            else:
                sel = reco["cls"] == c
                r, n = pf.binned_rate(reco[var][sel], gen["cls"][sel] != c, edges)
            rate[c][side], count[c][side] = r, n
    return RateCurves(kind, var, edges, rate, count)


def response_samples(col: pf.PFCollection, var: str) -> dict[int, dict[str, np.ndarray]]:
    """Class -> side -> reco / gen of ``var`` (reco - gen for eta) where both are of the class."""
    gen = col.gen
    out: dict[int, dict[str, np.ndarray]] = {}
    for c in SHOWN_CLASSES:
        out[c] = {}
        for side in col.sides:
            reco = col.reco[side]
            both = (gen["cls"] == c) & (reco["cls"] == c)
            g, r = gen[var][both].astype(float), reco[var][both].astype(float)
            if var == "eta":
                out[c][side] = r - g
            else:
                ok = g > 0
                out[c][side] = r[ok] / g[ok]
    return out


def figure_data(col: pf.PFCollection) -> EvaluationFigures:
    """The arrays of every evaluation figure, from the collected events."""
    sides = col.sides
    pairs = {s: col.jet_pairs[s] for s in sides}  # (P, 3): gen pT, reco pT, gen eta
    ok = col.gen_met > 0
    return EvaluationFigures(
        sides=tuple(sides),
        confusion={s: col.confusion[s] for s in sides},
        rates=tuple(rate_curves(col, kind, var, edges) for kind, var, edges in RATE_PLOTS),
        responses={var: response_samples(col, var) for var in RESPONSE_VARS},
        jet_ratio={s: p[:, 1] / p[:, 0] for s, p in pairs.items() if len(p)},
        gen_jets_pt=np.asarray(col.gen_jets_pt),
        jet_reco_pt={s: p[:, 1] for s, p in pairs.items()},
        jet_resolution={s: np.asarray(pf.jet_pt_binned(p)["resolution"]) for s, p in pairs.items()},
        met_ratio={s: col.reco_met[s][ok] / col.gen_met[ok] for s in sides},
        met_diff={s: col.reco_met[s] - col.gen_met for s in sides},
        gen_multiplicity=np.asarray(col.gen_multiplicity),
        reco_multiplicity={s: np.asarray(col.reco_multiplicity[s]) for s in sides},
        settings=dict(col.settings),
    )


def read_history(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The training records of ``run_dir/history.json``; empty without a readable one."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    try:
        records = json.loads(path.read_text()).get("records", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
