"""``inspect``: realism numbers of a sample (PF candidates per event, leading-pT spectra, HT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.tasks.anomaly.samples import read_candidates, read_metadata, sample_files


def inspect_sample(path: str | Path, max_events: int | None = None) -> dict[str, Any]:
    """Summary of one sample folder/file: events, PF candidates per event (mean, median, 10-90 %
    range), leading / 40th candidate pT [GeV] quantiles, HT [GeV], trigger efficiency."""
    if Path(path).suffix == ".pt":
        return _inspect_pt(Path(path), max_events)
    c = read_candidates(path, max_events)
    meta = read_metadata(sample_files(path)[0])
    counts = np.diff(c.offsets)
    lead = c.pt[c.offsets[:-1][counts > 0]]
    has40 = counts >= 40
    pt40 = c.pt[(c.offsets[:-1] + 39)[has40]]
    return {
        "path": str(path), "sample": meta.get("sample"), "process": meta.get("process"),
        "pileup": meta.get("pileup"), "events": c.num_events,
        "pf_candidates": _q(c.n_cand.astype(float)), "leading_pt": _q(lead.astype(float)),
        "pt_40th": _q(pt40.astype(float)), "events_with_40": float(has40.mean()) if counts.size else 0.0,
        "ht": _q(c.ht.astype(float)), "trigger_efficiency": meta.get("trigger_efficiency"),
    }  # fmt: skip


def _q(a: np.ndarray) -> dict[str, float]:
    """10 %, 50 %, 90 % quantiles and mean of ``a`` ({} when empty)."""
    if a.size == 0:
        return {}
    qs = {k: float(np.quantile(a, v)) for k, v in (("p10", 0.1), ("median", 0.5), ("p90", 0.9))}
    return qs | {"mean": float(a.mean())}


def _inspect_pt(path: Path, max_events: int | None) -> dict[str, Any]:
    """Summary of an exercise ``.pt`` file: graphs, nodes and edges per graph, leading pT."""
    from particlegraph.tasks.anomaly.formats import read_pt_graphs

    graphs = read_pt_graphs(path)[:max_events]
    nodes = np.array([g.x.shape[0] for g in graphs], dtype=float)
    lead = np.array([float(g.x[:, 0].max()) for g in graphs if g.x.shape[0]], dtype=float)
    labels = sorted({int(g.y[0]) for g in graphs})
    return {
        "path": str(path), "format": "exercise .pt", "events": len(graphs), "labels": labels,
        "nodes": _q(nodes), "edges": _q(np.array([g.edge_index.shape[1] for g in graphs], float)),
        "leading_pt": _q(lead),
    }  # fmt: skip


def plot_leading_pt(
    paths: dict[str, str | Path], out: str | Path, max_events: int | None = None
) -> Path:
    """Normalised leading-candidate pT spectra (log-log) of several samples, as a PNG."""
    from particlegraph.tasks.anomaly import plots

    ax = plots._ax(None)
    bins = np.geomspace(1, 2000, 50)
    for name, p in paths.items():
        c = read_candidates(p, max_events)
        counts = np.diff(c.offsets)
        ax.hist(
            c.pt[c.offsets[:-1][counts > 0]],
            bins=bins.tolist(),
            histtype="step",
            density=True,
            label=name,
        )
    ax.set(xscale="log", yscale="log", xlabel="leading PF candidate pT [GeV]", ylabel="density")
    ax.legend(fontsize=7)
    return plots.save(ax.figure, out)
