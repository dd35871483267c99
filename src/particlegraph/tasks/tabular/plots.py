"""Figures of the tabular task: training curves, Taylor coefficients, ROC, observables, heat maps.

Single-panel functions take keyword-only ``ax=None`` and return their artists; the multi-panel
ones take ``fig=None`` and return their axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from particlegraph.plot import headless_backend


def _ax(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    headless_backend()
    return plt.figure().add_subplot()


def plot_metric_curves(
    records: Sequence[Mapping[str, float]], metric: str, *, ax: Axes | None = None
) -> list[Any]:
    """``train_<metric>`` and ``val_<metric>`` per epoch from fit history records."""
    ax = _ax(ax)
    epochs = [r["epoch"] for r in records]
    artists: list[Any] = []
    for split in ("train", "val"):
        key = f"{split}_{metric}"
        if any(key in r for r in records):
            vals = [r.get(key, np.nan) for r in records]
            artists += ax.plot(epochs, vals, marker="o", ms=3, label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.legend()
    return artists


def plot_gradient_summary(
    summary: Mapping[str, Sequence[float]], names: Sequence[str], *, ax: Axes | None = None
) -> list[Any]:
    """Bars of mean gradient and mean |gradient| per observable."""
    ax = _ax(ax)
    pos = np.arange(len(names))
    b1 = ax.bar(pos - 0.2, summary["mean_gradient"], 0.4, label="<df/dz>")
    b2 = ax.bar(pos + 0.2, summary["mean_abs_gradient"], 0.4, label="<|df/dz|>")
    ax.set_xticks(pos, list(names))
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_ylabel("gradient of output w.r.t. standardised observable")
    ax.legend()
    return [b1, b2]


def plot_taylor_ranking(ranked: Sequence[tuple[str, float]], *, ax: Axes | None = None) -> Any:
    """Horizontal bars of the Taylor coefficients ``<|t|>``, largest on top."""
    ax = _ax(ax)
    labels = [k for k, _ in ranked][::-1]
    vals = [v for _, v in ranked][::-1]
    colors = ["C0" if "," not in k else "C1" for k in labels]
    bars = ax.barh(labels, vals, color=colors)
    ax.set_xlabel("<|t|>  (C0: first order, C1: second order)")
    return bars


def plot_taylor_matrix(
    first: Sequence[float],
    second: Sequence[Sequence[float]],
    names: Sequence[str],
    *,
    ax: Axes | None = None,
) -> Any:
    """Matrix plot: ``<|t_i|>`` in row 0, the symmetric ``<|t_ij|>`` in rows 1..F, values written in."""
    ax = _ax(ax)
    nf = len(names)
    mat = np.full((nf + 1, nf), np.nan)
    mat[0] = np.asarray(first)
    mat[1:] = np.asarray(second)
    im = ax.imshow(mat, cmap="viridis")
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, f"{v:.3g}", ha="center", va="center", color="w", fontsize=8)
    ax.set_xticks(range(nf), list(names))
    ax.set_yticks(range(nf + 1), ["<|t_i|>", *names])
    ax.axhline(0.5, color="w", lw=2)
    ax.figure.colorbar(im, ax=ax, label="<|t|>")
    return im


def plot_taylor_evolution(
    evolution: Mapping[str, Sequence[float]], *, ax: Axes | None = None
) -> list[Any]:
    """Each Taylor coefficient against the training epoch (Wunsch et al., Fig. 6 style)."""
    ax = _ax(ax)
    epochs = evolution["epoch"]
    artists: list[Any] = []
    for key, vals in evolution.items():
        if key == "epoch":
            continue
        style = "-" if "," not in key else "--"
        artists += ax.plot(epochs, vals, style, label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("<|t|>")
    ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2)
    return artists


def plot_roc(curves: Mapping[str, Any], *, ax: Axes | None = None) -> list[Any]:
    """ROC curves (signal efficiency vs background efficiency) with AUC in the legend.

    ``curves`` maps a name to an object with ``fpr``, ``tpr``, ``auc``, ``flipped``.
    """
    ax = _ax(ax)
    artists: list[Any] = []
    for name, c in curves.items():
        lab = f"{'-' if c.flipped else ''}{name} (AUC {c.auc:.3f})"
        artists += ax.plot(c.fpr, c.tpr, lw=2 if name == "network" else 1.2, label=lab)
    artists += ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("background efficiency")
    ax.set_ylabel("signal efficiency")
    ax.legend(fontsize=8)
    return artists


def plot_observable_matrix(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    fig: Figure | None = None,
    max_points: int = 3000,
) -> np.ndarray:
    """F x F matrix: signal/background histograms on the diagonal, scatter plots off it.

    Returns the (F, F) array of axes.
    """
    nf = len(names)
    headless_backend()
    fig = fig or plt.figure(figsize=(3 * nf, 3 * nf))
    axes = fig.subplots(nf, nf, squeeze=False)
    sel = slice(0, max_points)
    for i in range(nf):
        for j in range(nf):
            ax = axes[i, j]
            if i == j:
                lo, hi = np.percentile(x[:, i], [0.5, 99.5])
                bins = np.linspace(float(lo), float(hi), 40)
                ax.hist(x[y == 0, i], bins, histtype="step", density=True, label="background")
                ax.hist(x[y == 1, i], bins, histtype="step", density=True, label="signal")
            else:
                xs, ys, lab = x[sel, j], x[sel, i], y[sel]
                ax.scatter(xs[lab == 0], ys[lab == 0], s=2, alpha=0.3, label="background")
                ax.scatter(xs[lab == 1], ys[lab == 1], s=2, alpha=0.3, label="signal")
            if i == nf - 1:
                ax.set_xlabel(names[j])
            if j == 0:
                ax.set_ylabel(names[i])
    axes[0, 0].legend(fontsize=7)
    return axes


def plot_heatmap(
    xs: np.ndarray,
    ys: np.ndarray,
    values: np.ndarray,
    *,
    ax: Axes | None = None,
    title: str = "",
    diverging: bool = False,
) -> Any:
    """One heat map ``values[y, x]`` over grid axes ``xs`` (nx,), ``ys`` (ny,)."""
    ax = _ax(ax)
    values = np.asarray(values)
    kw: dict[str, Any] = {"cmap": "viridis"}
    if diverging:
        lim = float(np.nanmax(np.abs(values))) or 1.0
        kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
    mesh = ax.pcolormesh(xs, ys, values, shading="auto", **kw)
    ax.figure.colorbar(mesh, ax=ax)
    ax.set_title(title)
    return mesh


def plot_grid_derivatives(
    xs: np.ndarray, ys: np.ndarray, gd: Any, names: Sequence[str], *, fig: Figure | None = None
) -> np.ndarray:
    """2 x 3 panel: output, d/dx, d/dy (top); d2/dx2, d2/dxdy, d2/dy2 (bottom). Returns axes."""
    headless_backend()
    fig = fig or plt.figure(figsize=(14, 8))
    axes = fig.subplots(2, 3, squeeze=False)
    a, b = names
    panels = [
        (gd.output, "output f", False),
        (gd.d_x, f"∂f/∂{a}", True),
        (gd.d_y, f"∂f/∂{b}", True),
        (gd.d_xx, f"∂²f/∂{a}²", True),
        (gd.d_xy, f"∂²f/∂{a}∂{b}", True),
        (gd.d_yy, f"∂²f/∂{b}²", True),
    ]
    for ax, (vals, title, div) in zip(axes.flat, panels, strict=True):
        plot_heatmap(xs, ys, np.asarray(vals), ax=ax, title=title, diverging=div)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
    fig.tight_layout()
    return axes
