"""Figures and the HTML report of a tracking evaluation (written next to ``metrics.json``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.plot import save_figure
from particlegraph.report.html import ReportSection, write_report
from particlegraph.tasks.tracking.dataset import HitEvent
from particlegraph.tasks.tracking.plots import (
    embedding_figure,
    event_display_figure,
    plot_efficiency,
    plot_fake_rate,
)

Tables = Mapping[str, Sequence[Mapping[str, np.ndarray]]]


def summary_rows(summary: Mapping[str, Any]) -> list[list[Any]]:
    """One row per method: score, efficiencies, fake and duplicate rates (means over events)."""
    rows = []
    for name, m in summary["methods"].items():
        rows.append([
            name, m["score"]["mean"], m["efficiency_pt1"]["mean"], m["efficiency_pt0.5"]["mean"],
            m["perfect_efficiency_pt1"]["mean"], m["fake_rate_pt1"]["mean"], m["duplicate_rate_pt1"]["mean"],
        ])  # fmt: skip
    return rows


HEADER = [
    "method",
    "TrackML score",
    "eff (pT>1)",
    "eff (pT>0.5)",
    "perfect eff (pT>1)",
    "fake rate",
    "duplicate rate (pT>1)",
]


def write_evaluation_report(
    out: Path, summary: Mapping[str, Any], eff: Tables, fakes: Tables, ev: HitEvent,
    tracks: Mapping[str, np.ndarray], stage1: np.ndarray, refined: np.ndarray,
) -> Path:  # fmt: skip
    """Event display, embeddings, efficiency and fake-rate curves, and ``report.html``."""
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
    g = summary["graph"]
    t = summary["times"]
    graph_rows = [
        ["predicted graph", g["predicted_edge_efficiency"]["mean"], g["predicted_edge_purity"]["mean"], g["predicted_edges_per_hit"]["mean"]],
        ["after the GNN (d < eps)", g["after_gnn_edge_efficiency"]["mean"], g["after_gnn_edge_purity"]["mean"], g["after_gnn_edges_per_hit"]["mean"]],
    ]  # fmt: skip
    time_rows = [[k, v["mean"], v["std"]] for k, v in t.items()]
    sections = [
        ReportSection("Event display (first event)", ["figures/event_display.png", "figures/event_display_raw_dbscan.png"],
                      "Hits in x-y and r-z, coloured by true particle (left) and by reconstructed track (right): the full pipeline, then DBSCAN on raw x, y, z."),
        ReportSection("Embeddings", ["figures/embedding.png"], "PCA of the stage-1 embedding and of the GNN's refined embedding; the 40 particles with most hits coloured."),
        ReportSection("Efficiency and fake rate", ["figures/efficiency.png"]),
        ReportSection("Graph quality", rows=graph_rows, header=["graph", "edge efficiency", "edge purity", "edges per hit"]),
        ReportSection("Time per event [s]", rows=time_rows, header=["stage", "mean", "std"]),
    ]  # fmt: skip
    return write_report(out / "report.html", f"Tracking evaluation ({summary['events']} events)",
                        summary_rows(summary), sections, header=HEADER)  # fmt: skip
