"""Figures of the tracking task; plot functions take keyword-only ``ax=None`` and return artists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from particlegraph.plot import headless_backend

PT_BINS = np.array([0.1, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0])
ETA_BINS = np.linspace(-4.0, 4.0, 17)


def _ax(ax: Axes | None) -> Axes:
    headless_backend()
    return ax if ax is not None else plt.figure().add_subplot()


def _colours(labels: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """A repeatable colour per label (tab20), grey for noise; shape (N, 4)."""
    cmap = matplotlib.colormaps["tab20"]
    _, inv = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(0)
    shuffle = rng.permutation(max(int(inv.max(initial=0)) + 1, 1))
    col = cmap((shuffle[inv] % 20) / 19.0)
    col[noise] = (0.75, 0.75, 0.75, 0.4)
    return np.asarray(col)


def plot_hits(
    xyz: np.ndarray,
    labels: np.ndarray,
    noise: np.ndarray,
    *,
    view: str = "xy",
    ax: Axes | None = None,
) -> Any:
    """Hits in x-y or r-z [mm] coloured by ``labels`` (particles or tracks); noise grey."""
    ax = _ax(ax)
    if view == "xy":
        u, v = xyz[:, 0], xyz[:, 1]
        ax.set_xlabel("x [mm]")
        ax.set_ylabel("y [mm]")
        ax.set_aspect("equal")
    else:
        u, v = xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])
        ax.set_xlabel("z [mm]")
        ax.set_ylabel("r [mm]")
    size = 2.0 if xyz.shape[0] < 5000 else 0.2
    return ax.scatter(u, v, c=_colours(labels, noise), s=size, linewidths=0, rasterized=True)


def event_display_figure(xyz: np.ndarray, particle_id: np.ndarray, track_id: np.ndarray) -> Figure:
    """2 x 2: x-y and r-z, coloured by true particle (left) and by reconstructed track (right)."""
    headless_backend()
    fig, axes = plt.subplots(2, 2, figsize=(11, 10))
    noise = particle_id == 0
    for row, view in enumerate(("xy", "rz")):
        plot_hits(xyz, particle_id, noise, view=view, ax=axes[row, 0])
        plot_hits(xyz, track_id, np.zeros_like(noise), view=view, ax=axes[row, 1])
    axes[0, 0].set_title("true particles (noise grey)")
    axes[0, 1].set_title("reconstructed tracks")
    return fig


def pca2(points: np.ndarray) -> np.ndarray:
    """First two principal components (N, 2) of ``points`` (N, D)."""
    c = points - points.mean(0)
    _, _, vt = np.linalg.svd(c[:: max(1, c.shape[0] // 20000)], full_matrices=False)
    pcs: np.ndarray = c @ vt[:2].T
    return pcs


def embedding_figure(
    before: np.ndarray, after: np.ndarray, particle_id: np.ndarray, top: int = 40
) -> Figure:
    """PCA projections of the stage-1 and refined embeddings; the ``top`` largest particles
    coloured, the rest grey."""
    uniq, counts = np.unique(particle_id[particle_id != 0], return_counts=True)
    show = uniq[np.argsort(-counts)[:top]]
    sel = np.isin(particle_id, show)
    headless_backend()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, pts, title in (
        (axes[0], before, "stage 1 (metric learning)"),
        (axes[1], after, "after the GNN"),
    ):
        p = pca2(pts)
        ax.scatter(p[~sel, 0], p[~sel, 1], s=0.3, c="0.85", linewidths=0, rasterized=True)
        ax.scatter(
            p[sel, 0],
            p[sel, 1],
            s=4,
            c=_colours(particle_id[sel], np.zeros(sel.sum(), bool)),
            linewidths=0,
        )
        ax.set_title(f"{title}: PCA of the embedding")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    return fig


def binned_rate(
    values: np.ndarray, flags: np.ndarray, bins: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: centre, fraction of ``flags`` and its binomial standard error."""
    idx = np.digitize(values, bins) - 1
    ok = (idx >= 0) & (idx < bins.size - 1)
    n = np.bincount(idx[ok], minlength=bins.size - 1).astype(float)
    k = np.bincount(idx[ok], weights=flags[ok].astype(float), minlength=bins.size - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = k / n
        err = np.sqrt(frac * (1 - frac) / n)
    return 0.5 * (bins[1:] + bins[:-1]), frac, err


def plot_efficiency(
    tables: Mapping[str, Sequence[Mapping[str, np.ndarray]]], variable: str, *, ax: Axes | None = None,
    pt_min: float = 0.0,
) -> list[Any]:  # fmt: skip
    """Double-majority efficiency vs ``variable`` ("pt" or "eta") for each method."""
    ax = _ax(ax)
    bins = PT_BINS if variable == "pt" else ETA_BINS
    artists = []
    for name, tabs in tables.items():
        v = np.concatenate([t[variable] for t in tabs])
        f = np.concatenate([t["found"] for t in tabs])
        if variable == "eta":
            keep = np.concatenate([t["pt"] for t in tabs]) > pt_min
            v, f = v[keep], f[keep]
        x, y, e = binned_rate(v, f, bins)
        artists.append(ax.errorbar(x, y, yerr=e, marker="o", ms=3, label=name, capsize=2))
    if variable == "pt":
        ax.set_xscale("log")
        ax.set_xlabel("particle pT [GeV]")
    else:
        ax.set_xlabel(f"particle eta (pT > {pt_min:g} GeV)")
    ax.set_ylabel("double-majority efficiency")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return artists


def plot_fake_rate(
    tables: Mapping[str, Sequence[Mapping[str, np.ndarray]]], *, ax: Axes | None = None
) -> list[Any]:
    """Fake rate of candidate tracks (>= 3 hits) vs the track's mean eta for each method."""
    ax = _ax(ax)
    artists = []
    for name, tabs in tables.items():
        v = np.concatenate([t["eta"] for t in tabs])
        f = np.concatenate([t["fake"] for t in tabs])
        x, y, e = binned_rate(v, f, ETA_BINS)
        artists.append(ax.errorbar(x, y, yerr=e, marker="o", ms=3, label=name, capsize=2))
    ax.set_xlabel("track eta (mean of its hits)")
    ax.set_ylabel("fake rate")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    return artists
