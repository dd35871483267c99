"""The pages of a tracking run (``RUN/index.html``) and of an evaluation (``OUT/index.html``).

Both pipelines (the default layer-pair one and the exercise's) are described from their files,
through :func:`particlegraph.report.run_index.write_run_index`: the run page from ``config.yaml``,
``run.json`` and the training histories (``*/history.json``, one per trained stage); the
evaluation page from ``metrics.json`` (methods side by side, each number with its standard error
over events) and the figures found in ``figures/``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.config import parse_mapping
from particlegraph.plot import save_figure
from particlegraph.report.html import ReportSection
from particlegraph.report.run_index import write_run_index
from particlegraph.tasks.tracking.dataset import HitEvent
from particlegraph.tasks.tracking.plots import (
    embedding_figure,
    event_display_figure,
    plot_efficiency,
    plot_fake_rate,
)

Tables = Mapping[str, Sequence[Mapping[str, np.ndarray]]]

#: Per-method columns of the evaluation table: (metrics key, column title).
COLUMNS = (
    ("score", "TrackML score"),
    ("efficiency_pt1", "eff (pT>1)"),
    ("efficiency_pt0.5", "eff (pT>0.5)"),
    ("perfect_efficiency_pt1", "perfect eff (pT>1)"),
    ("fake_rate_pt1", "fake rate"),
    ("duplicate_rate_pt1", "duplicate rate (pT>1)"),
)
HEADER = ["method", *(title for _, title in COLUMNS)]

#: What each evaluation figure shows (exercise pipeline).
CAPTIONS = {
    "event_display.png": "First event: hits in x-y and r-z coloured by true particle (left) and "
    "by the pipeline's track (right).",
    "event_display_raw_dbscan.png": "The same event with DBSCAN on raw x, y, z.",
    "embedding.png": "PCA of the stage-1 embedding and of the GNN's refined embedding; the 40 "
    "particles with most hits coloured.",
    "efficiency.png": "Double-majority efficiency vs pT and eta (pT > 1 GeV) and fake rate vs eta.",
}


def _error(entry: Mapping[str, Any], events: int) -> float:
    """Standard error of a mean over events: ``sem`` when stored, else ``std / sqrt(n - 1)``
    (``std`` over ``n`` events without Bessel's correction, as :func:`.evaluate.summarize` keeps)."""
    if "sem" in entry:
        return float(entry["sem"])
    return float(entry.get("std", math.nan)) / math.sqrt(events - 1) if events > 1 else math.nan


def pm(entry: Mapping[str, Any] | None, events: int) -> str:
    """``mean ± standard error`` of a per-event statistic (a dash when missing)."""
    if not entry or entry.get("mean") is None:
        return "\u2013"
    mean, err = float(entry["mean"]), _error(entry, events)
    return f"{mean:.4f}" if not math.isfinite(err) else f"{mean:.4f} \u00b1 {err:.4f}"


def summary_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    """One row per method: score, efficiencies, fake and duplicate rates (mean ± error)."""
    n = int(summary.get("events", 0))
    return [
        [name, *(pm(m.get(key), n) for key, _ in COLUMNS)] for name, m in summary["methods"].items()
    ]


def write_evaluation_figures(
    out: Path, eff: Tables, fakes: Tables, ev: HitEvent, tracks: Mapping[str, np.ndarray],
    stage1: np.ndarray, refined: np.ndarray,
) -> None:  # fmt: skip
    """Event displays, embeddings, efficiency and fake-rate curves in ``out/figures/``."""
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend

    headless_backend()
    fig_dir = out / "figures"
    xyz = ev.xyz.numpy()
    pid = ev.particle_id.numpy()
    save_figure(event_display_figure(xyz, pid, tracks["gnn"]), fig_dir / "event_display.png")
    save_figure(
        event_display_figure(xyz, pid, tracks["raw_dbscan"]),
        fig_dir / "event_display_raw_dbscan.png",
    )
    save_figure(embedding_figure(stage1, refined, pid), fig_dir / "embedding.png")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    plot_efficiency(eff, "pt", ax=axes[0])
    plot_efficiency(eff, "eta", ax=axes[1], pt_min=1.0)
    plot_fake_rate(fakes, ax=axes[2])
    save_figure(fig, fig_dir / "efficiency.png")


def write_evaluation_page(out: Path, summary: Mapping[str, Any]) -> Path:
    """``out/index.html`` of an evaluation (either pipeline) from its ``metrics.json`` content.

    Tables: the methods (summary), the graph quality and the time per stage, each mean ± its
    standard error over events; the figures of ``out/figures/`` (those that exist); links to
    ``metrics.json``, the events written and the run's own page when it has one.
    """
    out = Path(out)
    n = int(summary.get("events", 0))
    graph = [[k, pm(v, n)] for k, v in summary.get("graph", {}).items()]
    times = [[k, pm(v, n)] for k, v in summary.get("times", {}).items()]
    figures = [p for name in CAPTIONS if (p := out / "figures" / name).is_file()]
    sections = [
        ReportSection("Graph quality", rows=graph, header=["quantity", "mean over events"]),
        ReportSection("Time per event [s]", rows=times, header=["stage", "mean over events"]),
    ]
    if figures:
        sections.insert(0, ReportSection("Figures", figures, captions=CAPTIONS))
    run_page = Path(str(summary.get("run", ""))) / "index.html"
    if summary.get("run") and run_page.is_file():
        sections.append(ReportSection("Run", links=[("the run's page", str(run_page))]))
    title = f"Tracking evaluation: {n} events of {Path(str(summary.get('data', ''))).name}"
    return write_run_index(
        out, title, "evaluation", sections, files=["metrics.json", "events"],
        summary_rows=summary_rows(summary), header=HEADER,
    )  # fmt: skip


#: Files of a run that its page links (the ones that exist).
RUN_FILES = ("config.yaml", "run.json", "model.pt", "module_map.json")


def _history_figure(histories: Sequence[Path], path: Path) -> None:
    """Training and validation loss per epoch, one panel per trained stage."""
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend

    headless_backend()
    fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 4), squeeze=False)
    for ax, hist in zip(axes[0], histories, strict=True):
        records = json.loads(hist.read_text()).get("records", [])
        epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
        for key in ("train_loss", "val_loss"):
            ax.plot(epochs, [r.get(key, math.nan) for r in records], marker="o", label=key)
        ax.set(title=hist.parent.name, xlabel="epoch", ylabel="loss")
        ax.legend()
    save_figure(fig, path)


def write_run_page(run_dir: str | Path) -> Path:
    """``RUN/index.html`` of a trained tracking run (either pipeline): the validation choice of
    the track building, the loss curves of every trained stage, the config and the files."""
    run_dir = Path(run_dir)
    config = parse_mapping((run_dir / "config.yaml").read_text(), str(run_dir / "config.yaml"))
    info = json.loads((run_dir / "run.json").read_text())
    scan = info.get("build_scan") or info.get("dbscan_scan") or []
    best = max(scan, key=lambda r: r["score"]) if scan else {}
    rows: list[list[Any]] = [
        ["pipeline", info.get("pipeline", "exercise")],
        ["training events", len(info.get("train_events", []))],
        ["validation events", len(info.get("val_events", []))],
        [
            "track building (chosen on validation)",
            json.dumps(info.get("build", info.get("dbscan"))),
        ],
        ["validation TrackML score of that choice", best.get("score")],
    ]
    rows += [[k, v] for k, v in info.items() if k.endswith("best_epoch")]
    histories = sorted(run_dir.glob("*/history.json"))
    sections = []
    if histories:
        _history_figure(histories, run_dir / "training_curves.png")
        sections.append(ReportSection("Training curves", ["training_curves.png"],
                                      captions=["Loss per epoch of each trained stage."]))  # fmt: skip
    files: list[str | Path] = [*RUN_FILES, *(h.relative_to(run_dir) for h in histories)]
    return write_run_index(
        run_dir, f"Tracking run: {run_dir.name}", "training", sections, config=config,
        files=files, summary_rows=rows, header=["training", "value"],
    )  # fmt: skip
