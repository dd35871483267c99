"""The evaluation figures: PNGs drawn from the arrays of an
:class:`~particlegraph.tasks.mlpf.evaluate_result.Evaluation`, computing nothing themselves.

Each function writes one figure (or one report section's figures) into the folder it is given and
returns the path or the :class:`~particlegraph.report.html.ReportSection` showing it:
:func:`make_figures` (confusion, rates, responses, jets, MET, multiplicity), :func:`diagnostics_figures`
(per-class response and resolution vs pT and |eta|, jets vs |eta|, the operating point) and
:func:`training_section` (loss curves). Resolution :data:`EVAL_DPI`, mplhep CMS style.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.physics.jets import JET_PT_EDGES
from particlegraph.plot import save_figure
from particlegraph.report.html import ReportSection
from particlegraph.sim.elements import CLASS_LABELS, CLASS_NAMES
from particlegraph.tasks.mlpf import metrics as pf
from particlegraph.tasks.mlpf.evaluate_result import (
    ETA_DIFF_BINS,
    HISTORY_FILE,
    PT_EDGES,
    RATIO_BINS,
    EvaluationFigures,
    RateCurves,
)
from particlegraph.tasks.mlpf.evaluate_tables import SHOWN_CLASSES
from particlegraph.tasks.mlpf.operating_point import OperatingPoint

PathLike = str | os.PathLike[str]

#: Resolution of the evaluation figures (many panels per page; 80 dpi keeps them light).
EVAL_DPI = 80

#: x axis label and log scale of the rate figures, by (kind, variable).
_RATE_AXES = {
    ("efficiency", "pt"): ("gen $p_T$ [GeV]", True),
    ("efficiency", "eta"): (r"gen $\eta$", False),
    ("fake_rate", "pt"): ("reco $p_T$ [GeV]", True),
    ("fake_rate", "eta"): (r"reco $\eta$", False),
}
#: (bins, x axis label) of the response figures, by variable.
_RESPONSE_AXES = {
    "pt": (RATIO_BINS, r"$p_T^{reco} / p_T^{gen}$"),
    "energy": (RATIO_BINS, r"$E^{reco} / E^{gen}$"),
    "eta": (ETA_DIFF_BINS, r"$\eta^{reco} - \eta^{gen}$"),
}


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Any, Any]:
    """Figure with fixed margins: cheaper than tight/constrained layout, which measure text."""
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend

    headless_backend()
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.1, top=0.93, wspace=0.32, hspace=0.35)
    return fig, axes


def _class_grid() -> tuple[Any, list[Any]]:
    """A 2 x 3 grid with one panel per shown class (the sixth panel hidden)."""
    fig, axes = _figure(2, 3, 24, 15)
    flat = list(axes.ravel())
    flat[-1].set_visible(False)
    return fig, flat[: len(SHOWN_CLASSES)]


# --- the evaluation figures ------------------------------------------------------------------


def confusion_section(fd: EvaluationFigures, out_dir: Path) -> ReportSection:
    """``confusion.png``: one row-normalised confusion matrix per side."""
    from particlegraph.tasks.mlpf import plots

    fig, axes = _figure(1, len(fd.sides), 11 * len(fd.sides), 10)
    fig.subplots_adjust(bottom=0.2, left=0.15)
    for ax, side in zip(axes[0], fd.sides, strict=True):
        plots.plot_confusion(fd.confusion[side], ax=ax, title=plots.SIDE_STYLE[side]["label"])
    png = save_figure(fig, out_dir / "confusion.png", dpi=EVAL_DPI)
    return ReportSection(
        "Confusion matrices",
        [png],
        "Rows: true class (ygen), columns: predicted class, normalised per row "
        "(the diagonal is the efficiency).",
    )


def rate_png(curves: RateCurves, out_dir: Path) -> Path:
    """``<kind>_vs_<var>.png``: the rate of each class per side, with binomial error bars."""
    from particlegraph.tasks.mlpf import plots

    xlabel, logx = _RATE_AXES[(curves.kind, curves.var)]
    fig, axes = _class_grid()
    for ax, c in zip(axes, SHOWN_CLASSES, strict=True):
        plots.plot_binned(
            curves.edges, curves.rate[c], ax=ax, xlabel=xlabel,
            ylabel=curves.kind.replace("_", " "), logx=logx, counts=curves.count[c],
        )  # fmt: skip
        ax.set_title(CLASS_LABELS[c], fontsize="medium")
    return save_figure(fig, out_dir / f"{curves.kind}_vs_{curves.var}.png", dpi=EVAL_DPI)


def count_rows(fd: EvaluationFigures) -> list[list[Any]]:
    """Entries per pT bin of the rate figures: true class per gen-pT bin (efficiency, one row
    per class: gen is the same for every side), predicted class per reco-pT bin and side."""
    rows: list[list[Any]] = []
    for curves in fd.rates:
        if curves.var != "pt":
            continue
        eff = curves.kind == "efficiency"
        for c in SHOWN_CLASSES:
            who = ["gen"] if eff else [_side_label(s) for s in fd.sides]
            for label, side in zip(who, fd.sides, strict=False):
                what = "true" if eff else "predicted"
                rows.append(
                    [f"{CLASS_NAMES[c]} ({what}, {label})", *curves.count[c][side].tolist()]
                )
    return rows


def _side_label(side: str) -> str:
    from particlegraph.tasks.mlpf import plots

    return str(plots.SIDE_STYLE[side]["label"])


def rate_sections(fd: EvaluationFigures, out_dir: Path) -> list[ReportSection]:
    """The four rate figures and the table of their entries per pT bin."""
    images = [rate_png(curves, out_dir) for curves in fd.rates]
    return [
        ReportSection(
            "Efficiency and fake rate",
            images,
            "Efficiency of class c: fraction of elements with true class c predicted as c, "
            "binned in gen pT / eta. Fake rate of class c: fraction of elements predicted as c "
            "whose true class is not c, binned in reco pT / eta.",
        ),
        ReportSection(
            "Entries per pT bin",
            text="The n of the binomial error bars sqrt(p (1 - p) / n): elements of each true "
            "class per gen pT bin (efficiency), elements predicted as each class per reco pT "
            "bin (fake rate).",
            rows=count_rows(fd),
            header=["class", *(f"{a:.3g}-{b:.3g}" for a, b in itertools.pairwise(PT_EDGES))],
        ),
    ]


def response_section(fd: EvaluationFigures, out_dir: Path) -> ReportSection:
    """``response_{pt,energy,eta}.png``: per class, the response distributions of each side."""
    from particlegraph.tasks.mlpf import plots

    images = []
    for var, per_class in fd.responses.items():
        bins, xlabel = _RESPONSE_AXES[var]
        fig, axes = _class_grid()
        for ax, c in zip(axes, SHOWN_CLASSES, strict=True):
            plots.plot_distributions(per_class[c], ax=ax, bins=bins, xlabel=xlabel)
            ax.set_title(CLASS_LABELS[c], fontsize="medium")
        images.append(save_figure(fig, out_dir / f"response_{var}.png", dpi=EVAL_DPI))
    return ReportSection(
        "Response per class",
        images,
        "On elements where gen and reco are both of the class; resolution = IQR/median "
        "of the ratio (IQR of the difference for eta).",
    )


def jets_png(fd: EvaluationFigures, out_dir: Path) -> Path:
    """``jets.png``: jet pT response, spectra and resolution vs gen jet pT."""
    from particlegraph.tasks.mlpf import plots

    fig, axes = _figure(1, 3, 33, 10)
    axes = axes[0]
    plots.plot_distributions(
        fd.jet_ratio, ax=axes[0], bins=np.linspace(0.0, 2.0, 61),
        xlabel=r"jet $p_T^{reco} / p_T^{gen}$",
    )  # fmt: skip
    plots.plot_distributions(
        {"gen": fd.gen_jets_pt, **fd.jet_reco_pt}, ax=axes[1],
        bins=np.geomspace(10.0, 1000.0, 41),
        xlabel=r"jet $p_T$ [GeV] (gen: all; reco: matched)", density=False,
    )  # fmt: skip
    axes[1].set_xscale("log")
    axes[1].minorticks_off()
    plots.plot_binned(
        np.asarray(JET_PT_EDGES), fd.jet_resolution, ax=axes[2], xlabel=r"gen jet $p_T$ [GeV]",
        ylabel="jet $p_T$ resolution (IQR/median)", logx=True, ylim=None,
    )  # fmt: skip
    axes[2].set_ylim(bottom=0.0)
    return save_figure(fig, out_dir / "jets.png", dpi=EVAL_DPI)


def met_png(fd: EvaluationFigures, out_dir: Path) -> Path:
    """``met.png``: MET reco / gen and reco - gen per event."""
    from particlegraph.tasks.mlpf import plots

    fig, axes = _figure(1, 2, 22, 10)
    axes = axes[0]
    plots.plot_distributions(
        fd.met_ratio, ax=axes[0], bins=np.linspace(0.0, 3.0, 61), xlabel=r"$MET^{reco} / MET^{gen}$"
    )
    span = max([np.percentile(np.abs(d), 98) for d in fd.met_diff.values()] + [1.0])
    plots.plot_distributions(
        fd.met_diff, ax=axes[1], bins=np.linspace(-span, span, 41),
        xlabel=r"$MET^{reco} - MET^{gen}$ [GeV]",
    )  # fmt: skip
    return save_figure(fig, out_dir / "met.png", dpi=EVAL_DPI)


def multiplicity_png(fd: EvaluationFigures, out_dir: Path) -> Path:
    """``multiplicity.png``: particles per event, reco vs gen, in all and per class."""
    from particlegraph.tasks.mlpf import plots

    fig, axes = _figure(2, 3, 24, 15)
    flat = list(axes.ravel())
    gen, reco = fd.gen_multiplicity, fd.reco_multiplicity
    plots.plot_multiplicity(
        gen[:, 1:].sum(1), {s: reco[s][:, 1:].sum(1) for s in fd.sides}, ax=flat[0],
        label="particles",
    )  # fmt: skip
    for ax, c in zip(flat[1:], SHOWN_CLASSES, strict=True):
        plots.plot_multiplicity(
            gen[:, c], {s: reco[s][:, c] for s in fd.sides}, ax=ax, label=CLASS_LABELS[c]
        )
    return save_figure(fig, out_dir / "multiplicity.png", dpi=EVAL_DPI)


def make_figures(fd: EvaluationFigures, out_dir: PathLike) -> list[ReportSection]:
    """Write every evaluation PNG into ``out_dir`` and return the report sections showing them."""
    from particlegraph.tasks.mlpf import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with plots.pf_style():
        sections = [confusion_section(fd, out_dir), *rate_sections(fd, out_dir)]
        sections.append(response_section(fd, out_dir))
        images = [jets_png(fd, out_dir), met_png(fd, out_dir), multiplicity_png(fd, out_dir)]
    st = fd.settings
    sections.append(
        ReportSection(
            "Jets, MET and multiplicity",
            images,
            f"Anti-kT R={st['jet_radius']} jets (fastjet); gen jets with pT > "
            f"{st['gen_jet_min_pt_gev']} GeV matched to reco jets (pT > "
            f"{st['reco_jet_min_pt_gev']} GeV) within Delta R < {st['jet_match_dr']}. "
            "MET = |vector sum of particle pT| per event.",
        )
    )
    return sections


# --- diagnostics, operating point, training --------------------------------------------------


def _curve(values: list[Any]) -> np.ndarray:
    """A JSON list with None for empty bins as a float array with NaN there."""
    return np.asarray([np.nan if v is None else v for v in values])


#: (key in diagnostics, quantity, y label, y range) of the per-class diagnostic figures.
_DIAGNOSTIC_PLOTS = (
    ("pt_binned", "response", "pT response (median reco/gen)", (0.0, 1.5)),
    ("pt_binned", "resolution", "pT resolution (IQR/median)", None),
    ("abs_eta_binned", "response", "pT response (median reco/gen)", (0.0, 1.5)),
    ("abs_eta_binned", "resolution", "pT resolution (IQR/median)", None),
    ("phi_binned", "resolution", "phi resolution (IQR) [rad]", None),
)


def diagnostic_class_pngs(diag: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """``class_<key>_<var>.png`` per entry of :data:`_DIAGNOSTIC_PLOTS`, one panel per class."""
    from particlegraph.tasks.mlpf import plots
    from particlegraph.tasks.mlpf.diagnostics import CLASS_PT_EDGES, ETA_EDGES

    sides = [s for s in pf.SIDES if s in diag]
    pt_edges = np.asarray(CLASS_PT_EDGES)
    pt_edges[-1] = 300.0  # open last bin drawn up to 300 GeV
    pt_edges[0] = 0.3
    eta_edges = np.asarray(ETA_EDGES)
    images = []
    for key, var, ylabel, ylim in _DIAGNOSTIC_PLOTS:
        fig, axes = _class_grid()
        on_eta = key == "abs_eta_binned"
        for ax, c in zip(axes, SHOWN_CLASSES, strict=True):
            name = CLASS_NAMES[c]
            curves = {s: _curve(diag[s]["classes"][name][key][var]) for s in sides}
            plots.plot_binned(
                eta_edges if on_eta else pt_edges, curves, ax=ax, logx=not on_eta,
                xlabel=r"gen $|\eta|$" if on_eta else "gen $p_T$ [GeV]", ylabel=ylabel,
                ylim=ylim,
            )  # fmt: skip
            if ylim is None:
                ax.set_ylim(bottom=0.0)
            ax.set_title(CLASS_LABELS[c], fontsize="medium")
        images.append(save_figure(fig, out_dir / f"class_{key}_{var}.png", dpi=EVAL_DPI))
    return images


def jets_vs_eta_png(diag: Mapping[str, Any], out_dir: Path) -> Path:
    """``jets_vs_eta.png``: jet pT response and resolution in bins of gen jet |eta|."""
    from particlegraph.tasks.mlpf import plots
    from particlegraph.tasks.mlpf.diagnostics import ETA_EDGES

    sides = [s for s in pf.SIDES if s in diag]
    fig, axes = _figure(1, 2, 22, 10)
    for ax, var in zip(axes[0], ("response", "resolution"), strict=True):
        curves = {s: _curve(diag[s]["jet_abs_eta_binned"][var]) for s in sides}
        plots.plot_binned(
            np.asarray(ETA_EDGES), curves, ax=ax, xlabel=r"gen jet $|\eta|$",
            ylabel=f"jet pT {var}", ylim=(0.0, 1.5) if var == "response" else None,
        )  # fmt: skip
    return save_figure(fig, out_dir / "jets_vs_eta.png", dpi=EVAL_DPI)


def operating_point_section(op: OperatingPoint, out_dir: Path) -> ReportSection:
    """``operating_point.png``: efficiency vs fake rate of each tuned class, the chosen point."""
    from particlegraph.tasks.mlpf import plots

    fig, axes = _figure(1, len(op.curves), 11 * len(op.curves), 10)
    for ax, (name, curves) in zip(axes[0], op.curves.items(), strict=True):
        chosen = (op.mlpf["fake_rate"].get(name), op.mlpf["efficiency"].get(name))
        plots.plot_efficiency_vs_fake(
            curves, ax=ax, title=name.replace("_", " "),
            chosen=chosen if None not in chosen else None,
        )  # fmt: skip
    png = save_figure(fig, out_dir / "operating_point.png", dpi=EVAL_DPI)
    return ReportSection(
        "Operating point (validation events)",
        [png],
        f"Class offsets {list(op.class_offsets)} chosen on {op.events} validation "
        "events: MLPF by moving one class's offset, the baseline by a pT threshold "
        "on its candidates.",
    )


def diagnostics_figures(
    diag: Mapping[str, Any], op: OperatingPoint | None, out_dir: PathLike
) -> list[ReportSection]:
    """PNGs of :mod:`.diagnostics` (response, resolution and phi vs pT and |eta| per class, jets
    vs |eta|) and, when the run has one, the operating point's efficiency-vs-fake curves."""
    from particlegraph.tasks.mlpf import plots

    out_dir = Path(out_dir)
    with plots.pf_style():
        images = [*diagnostic_class_pngs(diag, out_dir), jets_vs_eta_png(diag, out_dir)]
        sections = [
            ReportSection(
                "Diagnostics per class and jets vs |eta|",
                images,
                "On elements whose gen and reco class agree; phi resolution = IQR of the wrapped "
                "phi_reco - phi_gen. Numbers in metrics.json['diagnostics'].",
            )
        ]
        if op is not None and op.curves:
            sections.append(operating_point_section(op, out_dir))
    return sections


def training_section(history: list[dict[str, Any]], out_dir: PathLike) -> ReportSection | None:
    """``loss.png``: training and validation loss per epoch; None without records."""
    if not history:
        return None
    from matplotlib.ticker import MaxNLocator

    from particlegraph.tasks.mlpf import plots

    with plots.pf_style():
        fig, axes = _figure(1, 1, 11, 9)
        ax = axes[0, 0]
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(history)]
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            values = [r.get(key) for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.subplots_adjust(right=0.75)
        png = save_figure(fig, Path(out_dir) / "loss.png", dpi=EVAL_DPI)
    return ReportSection("Training", [png], f"From {HISTORY_FILE}.")
