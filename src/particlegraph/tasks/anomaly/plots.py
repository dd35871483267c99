"""Figures of the anomaly task: score histograms, ROC curves, sculpting profiles, event displays.

Every function takes keyword-only ``ax=None`` and returns its artists (or axes), matplotlib only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from particlegraph.metrics.roc import roc_curve
from particlegraph.plot import headless_backend, save_figure


def save(fig: Any, path: str | os.PathLike[str]) -> Path:
    """The engine's :func:`particlegraph.plot.save_figure` at this task's 100 dpi, cropped."""
    return save_figure(fig, path, dpi=100, tight=True)


def _ax(ax: Axes | None) -> Axes:
    headless_backend()
    return plt.subplots(figsize=(6, 4.2))[1] if ax is None else ax


def score_histograms(
    scores: Mapping[str, np.ndarray], *, title: str = "", ax: Axes | None = None
) -> Axes:
    """Normalised histograms of one score per sample, log-spaced bins when the score is positive."""
    ax = _ax(ax)
    allv = np.concatenate([v[np.isfinite(v)] for v in scores.values()])
    lo, hi = float(np.quantile(allv, 0.001)), float(np.quantile(allv, 0.999))
    if lo > 0:
        bins = np.geomspace(lo, max(hi, lo * 1.01), 50)
        ax.set_xscale("log")
    else:
        bins = np.linspace(lo, max(hi, lo + 1e-6), 50)
    for name, v in scores.items():
        ax.hist(
            np.clip(v, bins[0], bins[-1]),
            bins=bins.tolist(),
            histtype="step",
            density=True,
            label=name,
        )
    ax.set_yscale("log")
    ax.set_xlabel(f"anomaly score {title}")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    return ax


def roc_curves(
    bkg: np.ndarray, signals: Mapping[str, np.ndarray], *, title: str = "", ax: Axes | None = None
) -> Axes:
    """1/eps_B versus eps_S for each signal against one background (log y)."""
    ax = _ax(ax)
    for name, s in signals.items():
        c = roc_curve(np.r_[s, bkg], np.r_[np.ones(s.size), np.zeros(bkg.size)])
        ok = c.eps_b > 0
        ax.plot(c.eps_s[ok], 1.0 / c.eps_b[ok], label=name)
    x = np.linspace(1e-3, 1.0, 200)
    ax.plot(x, 1.0 / x, "k:", lw=0.8, label="random")
    ax.set_yscale("log")
    ax.set_xlabel(r"$\epsilon_S$")
    ax.set_ylabel(r"$1/\epsilon_B$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return ax


def score_profile(x: np.ndarray, score: np.ndarray, *, xlabel: str, ax: Axes | None = None) -> Axes:
    """Median score and its 16-84 % band in 12 quantile bins of ``x`` (background events)."""
    ax = _ax(ax)
    ok = np.isfinite(x) & np.isfinite(score)
    edges = np.unique(np.quantile(x[ok], np.linspace(0, 1, 13)))
    idx = np.clip(np.searchsorted(edges, x[ok], side="right") - 1, 0, edges.size - 2)
    centres, med, lo, hi = [], [], [], []
    for b in range(edges.size - 1):
        v = score[ok][idx == b]
        if v.size:
            centres.append(0.5 * (edges[b] + edges[b + 1]))
            q = np.quantile(v, [0.16, 0.5, 0.84])
            lo.append(q[0])
            med.append(q[1])
            hi.append(q[2])
    ax.fill_between(centres, lo, hi, alpha=0.3, label="16-84 %")
    ax.plot(centres, med, "o-", label="median")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("anomaly score")
    ax.legend(fontsize=7)
    return ax


def sculpting_profile(
    x: np.ndarray, score: np.ndarray, cut: float, *, xlabel: str, ax: Axes | None = None
) -> Axes:
    """Background distribution of ``x`` before and after ``score > cut`` (normalised), log y."""
    ax = _ax(ax)
    ok = np.isfinite(x)
    bins = np.linspace(float(np.quantile(x[ok], 0.0)), float(np.quantile(x[ok], 0.995)) + 1e-6, 30)
    ax.hist(x[ok], bins=bins.tolist(), histtype="step", density=True, label="all background")
    sel = ok & (score > cut)
    if sel.sum() > 0:
        ax.hist(x[sel], bins=bins.tolist(), histtype="step", density=True,
                label=f"score > cut ({int(sel.sum())} ev.)")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    return ax


def event_display(
    eta: np.ndarray,
    phi: np.ndarray,
    pt: np.ndarray,
    contribution: np.ndarray,
    edge_index: np.ndarray | None = None,
    edge_contribution: np.ndarray | None = None,
    *,
    title: str = "",
    ax: Axes | None = None,
) -> Any:
    """eta-phi display: marker area ~ pT, colour ~ contribution; edges drawn across the phi seam short."""
    ax = _ax(ax)
    if edge_index is not None and edge_index.size:
        ec = np.zeros(edge_index.shape[1]) if edge_contribution is None else edge_contribution
        norm = Normalize(float(ec.min()), float(ec.max()) + 1e-12)
        for e, (j, i) in enumerate(edge_index.T):
            dphi = (phi[j] - phi[i] + np.pi) % (2 * np.pi) - np.pi
            ax.plot([eta[i], eta[i] + (eta[j] - eta[i])], [phi[i], phi[i] + dphi],
                    color=plt.cm.Greys(0.3 + 0.7 * norm(ec[e])), lw=0.8, zorder=1)  # fmt: skip
    size = 20.0 + 300.0 * pt / max(float(pt.max()), 1e-9)
    sc = ax.scatter(
        eta, phi, s=size, c=contribution, cmap="viridis", edgecolors="k", linewidths=0.3, zorder=2
    )
    plt.colorbar(sc, ax=ax, label="contribution to the score")
    ax.set_xlabel(r"$\eta$")
    ax.set_ylabel(r"$\phi$ [rad]")
    ax.set_ylim(-np.pi, np.pi)
    ax.set_title(title, fontsize=9)
    return sc


def class_bars(
    labels: Sequence[str], values: np.ndarray, *, ylabel: str, ax: Axes | None = None
) -> Axes:
    """Bar chart of one value per particle class (PDG code)."""
    ax = _ax(ax)
    ax.bar(np.arange(len(labels)), values)
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.set_ylabel(ylabel)
    return ax
