"""Evaluate a trained MLPF run against the rule-based PF baseline on held-out events.

``evaluate(run_dir, data)`` loads the run's best checkpoint, predicts every event of ``data``,
computes the metrics of :mod:`particlegraph.tasks.mlpf.metrics` and :mod:`particlegraph.physics.jets`
for MLPF (``ypred``) and the baseline (``ycand``) side by side, and writes into the run
directory::

    run_dir/metrics.json          {"mlpf": {...}, "baseline": {...}, "gen": {...}, "events": K, ...}
    run_dir/evaluation/*.png      confusion matrices, efficiency / fake rate vs pT and eta,
                                  response per class, jets, MET, multiplicity (mplhep CMS style)
    run_dir/index.html            summary tables and every plot

Definitions of every number are in docs/evaluation.md.

Why ~680 lines (the largest module, a candidate for a split into a figures module): the
evaluation pass, its figure pages and the console summary; the metric definitions themselves
live in :mod:`.metrics` and :mod:`.diagnostics`.
"""

from __future__ import annotations

import itertools
import json
import os
import textwrap
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError
from particlegraph.physics.jets import JET_PT_EDGES
from particlegraph.plot import save_figure
from particlegraph.report.html import ReportSection
from particlegraph.sim.elements import CLASS_LABELS, CLASS_NAMES, NUM_CLASSES
from particlegraph.tasks.mlpf import metrics as pf
from particlegraph.tasks.mlpf.calibration import load_calibration
from particlegraph.tasks.mlpf.diagnostics import summarize_diagnostics
from particlegraph.tasks.mlpf.uncertainty import summarize_uncertainties

PathLike = str | os.PathLike[str]

EVAL_DIR = "evaluation"
PT_EDGES = np.geomspace(0.3, 300.0, 16)  # GeV, bins of efficiency / fake rate vs pT
ETA_EDGES = np.linspace(-5.0, 5.0, 21)
RATIO_BINS = np.linspace(0.0, 2.0, 81)
ETA_DIFF_BINS = np.linspace(-0.3, 0.3, 61)
SHOWN_CLASSES = pf.PARTICLE_CLASSES  # charged hadron .. muon


# --- prediction ------------------------------------------------------------------------------

#: Resolution of the evaluation figures (many panels per page; 80 dpi keeps them light).
EVAL_DPI = 80


def predict_events(
    model: Any,
    data: PathLike | Iterable[PathLike],
    *,
    max_events: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    progress: bool = True,
    class_offsets: Any = None,
    offset_max_pt: float | None = None,
    calibration: Any = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Run ``model`` on every event of ``data`` and yield ``(X, ygen, ycand, ypred)`` per event.

    Args:
        model: an MLPF module, ``forward(x (N, 12), batch (N,)) -> MLPFOutput``.
        data: dataset directory, one shard, or a list of shards (Parquet or .pkl.bz2).
        max_events: stop after this many events (None: all).
        device: "auto", "cpu" or "cuda".
        batch_size: events per forward pass.
        progress: show progress (a bar on a terminal, plain lines with total and ETA in a pipe).
        class_offsets: (6,) tensor of the operating point (``operating_point.json``), or None.
        offset_max_pt: the offsets act below this element pT|Et [GeV] (None: everywhere).
        calibration: a :class:`~particlegraph.tasks.mlpf.calibration.Calibration` applied to
            every event's predictions, or None.

    Yields:
        numpy float32 arrays ``X`` (N, 12), ``ygen``, ``ycand``, ``ypred`` (N, 7).
    """
    import torch

    from particlegraph.cli.common import progress as progress_bar
    from particlegraph.device import resolve_device
    from particlegraph.tasks.mlpf.dataset import MLPFDataset, make_loader
    from particlegraph.tasks.mlpf.model import decode_predictions

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    dev = resolve_device(device)
    model = model.to(dev).eval()
    dataset = MLPFDataset(data, max_events=max_events)
    loader = make_loader(dataset, batch_size=batch_size)
    # Parquet footers give the total for free (a .pkl.bz2 would have to be read twice)
    parquet = all(f.name.endswith(".parquet") for f in dataset.files)
    total = dataset.count_events() if parquet else max_events
    bar = progress_bar(total=total, unit="ev", desc="evaluate", enabled=progress)
    with torch.inference_mode(), bar:
        for batch in loader:
            batch = batch.to(dev)
            out = model(batch.x, batch.batch)
            ypred = (
                decode_predictions(batch.x, out, class_offsets, offset_max_pt).float().cpu().numpy()
            )
            x = batch.x.cpu().numpy()
            ygen = batch.ygen.cpu().numpy()
            ycand = batch.ycand.cpu().numpy()
            ptr = batch.ptr.cpu().numpy()
            for a, b in itertools.pairwise(ptr.tolist()):
                yp = ypred[a:b] if calibration is None else calibration.apply(ypred[a:b])
                yield x[a:b], ygen[a:b], ycand[a:b], yp
            bar.update(len(ptr) - 1)


# --- tables ----------------------------------------------------------------------------------


def class_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """Rows ``class | eff mlpf | eff baseline | fake mlpf | fake baseline`` per particle class."""
    rows = []
    for c in SHOWN_CLASSES:
        name = CLASS_NAMES[c]
        row: list[Any] = [name]
        for key in ("efficiency", "fake_rate"):
            row += [metrics.get(side, {}).get(key, {}).get(name) for side in pf.SIDES]
        rows.append(row)
    return rows


CLASS_HEADER = ["class", "eff MLPF", "eff baseline", "fake MLPF", "fake baseline"]
EVENT_HEADER = ["quantity", "MLPF", "baseline"]
_EVENT_KEYS = (
    ("jet pT resolution (IQR/median)", "jet_pt_resolution"),
    ("jet pT response (median)", "jet_pt_response"),
    ("jet matching efficiency", "jet_matching_efficiency"),
    ("MET resolution (IQR/median)", "met_resolution"),
    ("MET response (median)", "met_response"),
    ("std(MET reco - gen) [GeV]", "met_std_gev"),
)


def event_rows(metrics: Mapping[str, Any]) -> list[list[Any]]:
    """Rows ``quantity | MLPF | baseline`` for jets and MET, then pT resolution per class."""
    rows = [
        [label] + [metrics.get(side, {}).get(key) for side in pf.SIDES]
        for label, key in _EVENT_KEYS
    ]
    diag = metrics.get("diagnostics", {})
    for c in SHOWN_CLASSES:
        name = CLASS_NAMES[c]
        for label, key in (("pT response", "pt_response"), ("pT resolution", "pt_resolution")):
            rows.append(
                [f"{label} {name}"]
                + [metrics.get(side, {}).get(key, {}).get(name) for side in pf.SIDES]
            )
        rows.append(
            [f"phi resolution {name} [rad]"]
            + [
                diag.get(side, {}).get("classes", {}).get(name, {}).get("phi_resolution")
                for side in pf.SIDES
            ]
        )
    return rows


def format_table(header: list[str], rows: list[list[Any]]) -> str:
    """Plain-text table with aligned columns (floats with 4 decimals, None as '-')."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    text = [[str(h) for h in header]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in text) for i in range(len(header))]
    lines = []
    for k, r in enumerate(text):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


#: Why the charged classes read 1.0000 / 0.0000 for both algorithms (printed under the table).
CHARGED_NOTE = (
    "note: charged hadron, electron and muon read 1 by construction: a track's target is the "
    "particle that made it and the track carries the generator's electron/muon flags (as in the "
    "public Delphes sample), so the class can be read off the input; the baseline does so "
    "exactly, MLPF has to learn it (its fake rates show where it does not). The neutral classes "
    "(neutral hadron, photon) measure the reconstruction."
)


#: Quantities of the console summary's table with errors.
HEADLINE_NAMES = (
    "jet_pt_resolution/hard", "jet_pt_response/hard", "met_resolution", "met_std_gev",
    "efficiency/neutral_hadron", "fake_rate/neutral_hadron", "efficiency/photon",
    "fake_rate/photon", "pt_resolution/neutral_hadron", "pt_resolution/photon",
    "phi_resolution/charged_hadron",
)  # fmt: skip


def format_summary(metrics: Mapping[str, Any]) -> str:
    """The compact summary printed by the CLI: the class table, why charged classes are exact,
    jets and MET, then the headline numbers with bootstrap errors."""
    from particlegraph.tasks.mlpf import report

    errors = ""
    if "uncertainty" in metrics:
        errors = "\n\n" + format_table(
            report.UNCERTAINTY_HEADER, report.uncertainty_rows(metrics, HEADLINE_NAMES)
        )
    return (
        f"events: {metrics.get('events')}\n"
        + format_table(CLASS_HEADER, class_rows(metrics))
        + "\n"
        + textwrap.fill(CHARGED_NOTE, width=100, subsequent_indent="      ")
        + "\n\n"
        + format_table(EVENT_HEADER, event_rows(metrics))
        + errors
    )


# --- figures ---------------------------------------------------------------------------------


def _figure(plt: Any, rows: int, cols: int, width: float, height: float) -> tuple[Any, Any]:
    """Figure with fixed margins: cheaper than tight/constrained layout, which measure text."""
    from particlegraph.plot import headless_backend

    headless_backend()
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.1, top=0.93, wspace=0.32, hspace=0.35)
    return fig, axes


def _class_grid(plt: Any) -> tuple[Any, list[Any]]:
    fig, axes = _figure(plt, 2, 3, 24, 15)
    flat = list(axes.ravel())
    flat[-1].set_visible(False)
    return fig, flat[: len(SHOWN_CLASSES)]


def make_figures(col: pf.PFCollection, out_dir: PathLike) -> list[ReportSection]:
    """Write every evaluation PNG into ``out_dir`` and return the report sections showing them."""
    import matplotlib.pyplot as plt

    from particlegraph.tasks.mlpf import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = col.sides
    gen = col.gen
    sections: list[ReportSection] = []

    with plots.pf_style():
        fig, axes = _figure(plt, 1, len(sides), 11 * len(sides), 10)
        fig.subplots_adjust(bottom=0.2, left=0.15)
        for ax, side in zip(axes[0], sides, strict=True):
            plots.plot_confusion(col.confusion[side], ax=ax, title=plots.SIDE_STYLE[side]["label"])
        conf = save_figure(fig, out_dir / "confusion.png", dpi=EVAL_DPI)
        sections.append(
            ReportSection(
                "Confusion matrices",
                [conf],
                "Rows: true class (ygen), columns: predicted class, normalised per row "
                "(the diagonal is the efficiency).",
            )
        )

        rate_images = []
        count_rows: list[list[Any]] = []  # entries per pT bin: the n of the error bars
        for kind, var, edges, xlabel, logx in (
            ("efficiency", "pt", PT_EDGES, "gen $p_T$ [GeV]", True),
            ("efficiency", "eta", ETA_EDGES, r"gen $\eta$", False),
            ("fake_rate", "pt", PT_EDGES, "reco $p_T$ [GeV]", True),
            ("fake_rate", "eta", ETA_EDGES, r"reco $\eta$", False),
        ):
            fig, axes = _class_grid(plt)
            for ax, c in zip(axes, SHOWN_CLASSES, strict=True):
                curves, counts = {}, {}
                for side in sides:
                    reco = col.reco[side]
                    if kind == "efficiency":
                        sel = gen["cls"] == c
                        rate = pf.binned_rate(gen[var][sel], reco["cls"][sel] == c, edges)
                    else:
                        sel = reco["cls"] == c
                        rate = pf.binned_rate(reco[var][sel], gen["cls"][sel] != c, edges)
                    curves[side], counts[side] = rate
                if var == "pt":
                    who = ["gen"] if kind == "efficiency" else [plots.SIDE_STYLE[s]["label"]
                                                                for s in sides]  # fmt: skip
                    for label, side in zip(who, sides, strict=False):
                        what = "true" if kind == "efficiency" else "predicted"
                        count_rows.append([f"{CLASS_NAMES[c]} ({what}, {label})",
                                           *counts[side].tolist()])  # fmt: skip
                plots.plot_binned(
                    edges, curves, ax=ax, xlabel=xlabel, ylabel=kind.replace("_", " "),
                    logx=logx, counts=counts,
                )  # fmt: skip
                ax.set_title(CLASS_LABELS[c], fontsize="medium")
            rate_images.append(save_figure(fig, out_dir / f"{kind}_vs_{var}.png", dpi=EVAL_DPI))
        sections.append(
            ReportSection(
                "Efficiency and fake rate",
                rate_images,
                "Efficiency of class c: fraction of elements with true class c predicted as c, "
                "binned in gen pT / eta. Fake rate of class c: fraction of elements predicted as c "
                "whose true class is not c, binned in reco pT / eta.",
            )
        )
        sections.append(
            ReportSection(
                "Entries per pT bin",
                text="The n of the binomial error bars sqrt(p (1 - p) / n): elements of each true "
                "class per gen pT bin (efficiency), elements predicted as each class per reco pT "
                "bin (fake rate).",
                rows=count_rows,
                header=["class", *(f"{a:.3g}-{b:.3g}" for a, b in itertools.pairwise(PT_EDGES))],
            )
        )

        resp_images = []
        for var, bins, xlabel in (
            ("pt", RATIO_BINS, r"$p_T^{reco} / p_T^{gen}$"),
            ("energy", RATIO_BINS, r"$E^{reco} / E^{gen}$"),
            ("eta", ETA_DIFF_BINS, r"$\eta^{reco} - \eta^{gen}$"),
        ):
            fig, axes = _class_grid(plt)
            for ax, c in zip(axes, SHOWN_CLASSES, strict=True):
                samples = {}
                for side in sides:
                    reco = col.reco[side]
                    both = (gen["cls"] == c) & (reco["cls"] == c)
                    g, r = gen[var][both].astype(float), reco[var][both].astype(float)
                    if var == "eta":
                        samples[side] = r - g
                    else:
                        ok = g > 0
                        samples[side] = r[ok] / g[ok]
                plots.plot_distributions(samples, ax=ax, bins=bins, xlabel=xlabel)
                ax.set_title(CLASS_LABELS[c], fontsize="medium")
            resp_images.append(save_figure(fig, out_dir / f"response_{var}.png", dpi=EVAL_DPI))
        sections.append(
            ReportSection(
                "Response per class",
                resp_images,
                "On elements where gen and reco are both of the class; resolution = IQR/median "
                "of the ratio (IQR of the difference for eta).",
            )
        )

        fig, axes = _figure(plt, 1, 3, 33, 10)
        axes = axes[0]
        pairs = {s: col.jet_pairs[s] for s in sides}
        plots.plot_distributions(
            {s: p[:, 1] / p[:, 0] for s, p in pairs.items() if len(p)},
            ax=axes[0],
            bins=np.linspace(0.0, 2.0, 61),
            xlabel=r"jet $p_T^{reco} / p_T^{gen}$",
        )
        plots.plot_distributions(
            {"gen": col.gen_jets_pt, **{s: p[:, 1] for s, p in pairs.items()}},
            ax=axes[1],
            bins=np.geomspace(10.0, 1000.0, 41),
            xlabel=r"jet $p_T$ [GeV] (gen: all; reco: matched)",
            density=False,
        )
        axes[1].set_xscale("log")
        axes[1].minorticks_off()
        edges = np.asarray(JET_PT_EDGES)
        plots.plot_binned(
            edges,
            {s: np.asarray(pf.jet_pt_binned(p)["resolution"]) for s, p in pairs.items()},
            ax=axes[2],
            xlabel=r"gen jet $p_T$ [GeV]",
            ylabel="jet $p_T$ resolution (IQR/median)",
            logx=True,
            ylim=None,
        )
        axes[2].set_ylim(bottom=0.0)
        jets_png = save_figure(fig, out_dir / "jets.png", dpi=EVAL_DPI)

        fig, axes = _figure(plt, 1, 2, 22, 10)
        axes = axes[0]
        ok = col.gen_met > 0
        plots.plot_distributions(
            {s: col.reco_met[s][ok] / col.gen_met[ok] for s in sides},
            ax=axes[0],
            bins=np.linspace(0.0, 3.0, 61),
            xlabel=r"$MET^{reco} / MET^{gen}$",
        )
        diffs = {s: col.reco_met[s] - col.gen_met for s in sides}
        span = max([np.percentile(np.abs(d), 98) for d in diffs.values()] + [1.0])
        plots.plot_distributions(
            diffs,
            ax=axes[1],
            bins=np.linspace(-span, span, 41),
            xlabel=r"$MET^{reco} - MET^{gen}$ [GeV]",
        )
        met_png = save_figure(fig, out_dir / "met.png", dpi=EVAL_DPI)

        fig, axes = _figure(plt, 2, 3, 24, 15)
        flat = list(axes.ravel())
        plots.plot_multiplicity(
            col.gen_multiplicity[:, 1:].sum(1),
            {s: col.reco_multiplicity[s][:, 1:].sum(1) for s in sides},
            ax=flat[0],
            label="particles",
        )
        for ax, c in zip(flat[1:], SHOWN_CLASSES, strict=True):
            plots.plot_multiplicity(
                col.gen_multiplicity[:, c],
                {s: col.reco_multiplicity[s][:, c] for s in sides},
                ax=ax,
                label=CLASS_LABELS[c],
            )
        mult_png = save_figure(fig, out_dir / "multiplicity.png", dpi=EVAL_DPI)

    st = col.settings
    sections.append(
        ReportSection(
            "Jets, MET and multiplicity",
            [jets_png, met_png, mult_png],
            f"Anti-kT R={st['jet_radius']} jets (fastjet); gen jets with pT > "
            f"{st['gen_jet_min_pt_gev']} GeV matched to reco jets (pT > "
            f"{st['reco_jet_min_pt_gev']} GeV) within Delta R < {st['jet_match_dr']}. "
            "MET = |vector sum of particle pT| per event.",
        )
    )
    return sections


def diagnostics_figures(diag: Mapping[str, Any], op: Any, out_dir: PathLike) -> list[ReportSection]:
    """PNGs of :mod:`.diagnostics` (response, resolution and phi vs pT and |eta| per class, jets
    vs |eta|) and, when the run has one, the operating point's efficiency-vs-fake curves."""
    import matplotlib.pyplot as plt

    from particlegraph.tasks.mlpf import plots
    from particlegraph.tasks.mlpf.diagnostics import CLASS_PT_EDGES, ETA_EDGES

    out_dir = Path(out_dir)
    sides = [s for s in pf.SIDES if s in diag]
    pt_edges = np.asarray(CLASS_PT_EDGES)
    pt_edges[-1] = 300.0  # open last bin drawn up to 300 GeV
    pt_edges[0] = 0.3
    eta_edges = np.asarray(ETA_EDGES)
    images = []
    with plots.pf_style():
        for key, var, ylabel, ylim in (
            ("pt_binned", "response", "pT response (median reco/gen)", (0.0, 1.5)),
            ("pt_binned", "resolution", "pT resolution (IQR/median)", None),
            ("abs_eta_binned", "response", "pT response (median reco/gen)", (0.0, 1.5)),
            ("abs_eta_binned", "resolution", "pT resolution (IQR/median)", None),
            ("phi_binned", "resolution", "phi resolution (IQR) [rad]", None),
        ):
            fig, axes = _class_grid(plt)
            on_eta = key == "abs_eta_binned"
            for ax, c in zip(axes, SHOWN_CLASSES, strict=True):
                name = CLASS_NAMES[c]
                curves = {
                    s: np.asarray(
                        [np.nan if v is None else v for v in diag[s]["classes"][name][key][var]]
                    )
                    for s in sides
                }
                plots.plot_binned(
                    eta_edges if on_eta else pt_edges, curves, ax=ax, logx=not on_eta,
                    xlabel=r"gen $|\eta|$" if on_eta else "gen $p_T$ [GeV]", ylabel=ylabel,
                    ylim=ylim,
                )  # fmt: skip
                if ylim is None:
                    ax.set_ylim(bottom=0.0)
                ax.set_title(CLASS_LABELS[c], fontsize="medium")
            images.append(save_figure(fig, out_dir / f"class_{key}_{var}.png", dpi=EVAL_DPI))
        fig, axes = _figure(plt, 1, 2, 22, 10)
        for ax, var in zip(axes[0], ("response", "resolution"), strict=True):
            curves = {
                s: np.asarray(
                    [np.nan if v is None else v for v in diag[s]["jet_abs_eta_binned"][var]]
                )
                for s in sides
            }
            plots.plot_binned(
                eta_edges, curves, ax=ax, xlabel=r"gen jet $|\eta|$", ylabel=f"jet pT {var}",
                ylim=(0.0, 1.5) if var == "response" else None,
            )  # fmt: skip
        images.append(save_figure(fig, out_dir / "jets_vs_eta.png", dpi=EVAL_DPI))
        sections = [
            ReportSection(
                "Diagnostics per class and jets vs |eta|",
                images,
                "On elements whose gen and reco class agree; phi resolution = IQR of the wrapped "
                "phi_reco - phi_gen. Numbers in metrics.json['diagnostics'].",
            )
        ]
        if op is not None and op.curves:
            fig, axes = _figure(plt, 1, len(op.curves), 11 * len(op.curves), 10)
            for ax, (name, curves) in zip(axes[0], op.curves.items(), strict=True):
                chosen = (op.mlpf["fake_rate"].get(name), op.mlpf["efficiency"].get(name))
                plots.plot_efficiency_vs_fake(
                    curves,
                    ax=ax,
                    title=name.replace("_", " "),
                    chosen=chosen if None not in chosen else None,
                )
            png = save_figure(fig, out_dir / "operating_point.png", dpi=EVAL_DPI)
            sections.append(
                ReportSection(
                    "Operating point (validation events)",
                    [png],
                    f"Class offsets {list(op.class_offsets)} chosen on {op.events} validation "
                    "events: MLPF by moving one class's offset, the baseline by a pT threshold "
                    "on its candidates.",
                )
            )
    return sections


def training_section(run_dir: PathLike, out_dir: PathLike) -> ReportSection | None:
    """Loss curves from ``run_dir/history.json`` when training wrote one, else None."""
    path = Path(run_dir) / "history.json"
    if not path.is_file():
        return None
    try:
        records = json.loads(path.read_text()).get("records", [])
    except (OSError, ValueError):
        return None
    if not records:
        return None
    import matplotlib.pyplot as plt

    from particlegraph.tasks.mlpf import plots

    with plots.pf_style():
        fig, axes = _figure(plt, 1, 1, 11, 9)
        ax = axes[0, 0]
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
        for key, style in (("train_loss", "-"), ("val_loss", "--")):
            values = [r.get(key) for r in records]
            if any(v is not None for v in values):
                ax.plot(epochs, [np.nan if v is None else v for v in values], style, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.subplots_adjust(right=0.75)
        png = save_figure(fig, Path(out_dir, dpi=EVAL_DPI) / "loss.png")
    return ReportSection("Training", [png], f"From {path.name}.")


# --- the workflow ----------------------------------------------------------------------------


def write_outputs(
    run_dir: PathLike,
    col: pf.PFCollection,
    metrics: dict[str, Any],
    *,
    title: str | None = None,
    figures: bool = True,
    op: Any = None,
) -> Path:
    """Write ``metrics.json``, the PNGs under ``evaluation/`` and ``index.html``; return the HTML path.

    With ``figures=False`` the report holds the tables only (no PNG is written).
    """
    run_dir = Path(run_dir)
    out_dir = run_dir / EVAL_DIR
    from particlegraph.tasks.mlpf import report

    write_json(run_dir / "metrics.json", metrics)
    sections = report.with_captions(make_figures(col, out_dir)) if figures else []
    if figures and "diagnostics" in metrics:
        sections += diagnostics_figures(metrics["diagnostics"], op, out_dir)
    sections[:0] = [
        ReportSection(
            "Efficiency and fake rate per class",
            rows=report.rate_rows(metrics, SHOWN_CLASSES),
            header=CLASS_HEADER,
            text=f"{metrics['events']} events; value \u00b1 binomial standard error (passed/total). "
            + CHARGED_NOTE.removeprefix("note: ")[0].upper()
            + CHARGED_NOTE.removeprefix("note: ")[1:],
            links=report.definition_links("efficiency", "fake rate", "charged classes"),
        ),
        ReportSection(
            "Headline numbers with bootstrap errors",
            rows=report.uncertainty_rows(metrics),
            header=report.UNCERTAINTY_HEADER,
            text=f"{metrics['events']} events; value \u00b1 bootstrap standard deviation over "
            "events; the difference is paired (same replicas).",
            links=report.definition_links("bootstrap", "jets and MET", doc="evaluation.md"),
        ),
        ReportSection(
            "Event-level metrics",
            rows=event_rows(metrics),
            header=EVENT_HEADER,
            links=report.definition_links("jets and MET", doc="evaluation.md"),
        ),
    ]
    train = training_section(run_dir, out_dir) if figures else None
    if train is not None:
        report.save_stage(
            run_dir, "training", [train._replace(captions=report.EVALUATION_CAPTIONS)]
        )
    report.save_stage(run_dir, "evaluation", sections)
    return report.write_run_report(run_dir, title)


def evaluate(
    run_dir: PathLike,
    data: PathLike | Iterable[PathLike],
    max_events: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    *,
    which: str = "best",
    model: Any = None,
    progress: bool = True,
    figures: bool = True,
    use_operating_point: bool = True,
    use_calibration: bool = True,
) -> dict[str, Any]:
    """Evaluate a trained run on ``data``, write metrics, plots and the report, return the metrics.

    Args:
        run_dir: run directory written by ``particlegraph mlpf train``.
        data: held-out dataset directory, one shard, or a list of shards.
        max_events: evaluate at most this many events (None: all).
        device: "auto", "cpu" or "cuda".
        batch_size: events per forward pass.
        which: checkpoint, "best" (falls back to "last") or "last".
        model: use this module instead of loading the run's checkpoint (tests, notebooks).
        progress: show a progress bar on a terminal.
        figures: write the PNGs (about 10 s of CPU); False writes metrics and tables only.
        use_operating_point: apply ``run_dir/operating_point.json`` (class offsets chosen on
            validation events) when the run has one; False: plain arg-max.
        use_calibration: apply the run's ``calibration.json`` (energy calibration learned on
            validation events, :mod:`.calibration`; looked for in the output directory, then in
            the run itself) when there is one.

    ``run_dir = "pretrained:<name>"`` evaluates a shipped model and writes into
    ``runs/pretrained_<name>/``.

    Returns:
        The content of ``run_dir/metrics.json``: ``{"mlpf": {...}, "baseline": {...},
        "gen": {...}, "events": K, "inference": {...}, "data": str, "checkpoint": which}``.
    """
    from particlegraph.tasks.mlpf.operating_point import load_operating_point
    from particlegraph.tasks.mlpf.train import load_model, resolve_run_dir, run_output_dir

    source, run_dir = resolve_run_dir(run_dir), run_output_dir(run_dir)
    if max_events is not None and max_events < 1:
        raise ConfigError(f"max_events must be >= 1 or None, got {max_events}")
    if model is None:
        model, _ = load_model(source, which=which)
    op = load_operating_point(source) if use_operating_point else None
    cal = None
    if use_calibration:
        cal = load_calibration(run_dir) or load_calibration(source)
    t0 = time.perf_counter()
    col = pf.collect(
        predict_events(
            model,
            data,
            max_events=max_events,
            device=device,
            batch_size=batch_size,
            progress=progress,
            class_offsets=op.offsets_tensor() if op is not None else None,
            offset_max_pt=op.offset_max_pt_gev if op is not None else None,
            calibration=cal,
        )
    )
    elapsed = time.perf_counter() - t0
    metrics = pf.summarize(col)
    metrics["diagnostics"] = summarize_diagnostics(col)
    metrics["uncertainty"] = summarize_uncertainties(col)
    metrics["inference"] = {
        "device": str(next(iter(model.parameters())).device) if _has_params(model) else device,
        "batch_size": batch_size,
        "seconds_incl_metrics": round(elapsed, 3),
        "events_per_s_incl_metrics": round(col.events / elapsed, 2) if elapsed > 0 else None,
    }
    metrics["data"] = str(data) if isinstance(data, str | os.PathLike) else "list of files"
    metrics["checkpoint"] = which
    metrics["operating_point"] = (
        {
            "class_offsets": list(op.class_offsets),
            "offset_max_pt_gev": op.offset_max_pt_gev,
            "feasible": op.feasible,
        }
        if op
        else None
    )
    metrics["calibration"] = (
        {"events": cal.events, "classes": sorted(cal.points), "counts": cal.counts}
        if cal is not None
        else None
    )
    metrics["classes"] = list(CLASS_NAMES[:NUM_CLASSES])
    write_outputs(run_dir, col, metrics, figures=figures, op=op)
    return metrics


def _has_params(model: Any) -> bool:
    try:
        next(iter(model.parameters()))
    except (StopIteration, AttributeError):
        return False
    return True
