"""Particle-flow evaluation figures (MLPF vs the rule-based baseline), mplhep CMS style.

Every ``plot_*`` function draws on a given axis (keyword-only ``ax=None``: the current axis)
and returns its artists. :func:`pf_style` is a context manager with the mplhep CMS style, and
:func:`save_figure` writes a PNG atomically and closes the figure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from particlegraph.sim.elements import CLASS_LABELS

#: Colours and line styles per reconstructed side, reused by every figure.
SIDE_STYLE: dict[str, dict[str, Any]] = {
    "mlpf": {"color": "tab:red", "linestyle": "-", "label": "MLPF"},
    "baseline": {"color": "tab:blue", "linestyle": "--", "label": "rule-based PF"},
    "gen": {"color": "black", "linestyle": ":", "label": "gen"},
}


#: Minor ticks off: with the CMS style they are most of the drawing time of a figure grid.
_FAST_RC = {"xtick.minor.visible": False, "ytick.minor.visible": False}


@contextlib.contextmanager
def pf_style() -> Iterator[None]:
    """mplhep's CMS style when mplhep is installed, matplotlib defaults otherwise."""
    try:
        import mplhep
    except ImportError:  # pragma: no cover - mplhep is a core dependency
        yield
        return
    with plt.style.context([mplhep.style.CMS, _FAST_RC]):
        yield


def _style(name: str) -> dict[str, Any]:
    return dict(SIDE_STYLE.get(name, {"label": name}))


def plot_confusion(
    cm: np.ndarray,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    labels: Sequence[str] = CLASS_LABELS,
    normalize: bool = True,
) -> Any:
    """Confusion matrix, rows = true class, columns = predicted, annotated per cell.

    Args:
        cm: (C, C) counts.
        normalize: divide each row by its sum (so the diagonal is the efficiency).

    Returns:
        The ``AxesImage``.
    """
    ax = ax or plt.gca()
    cm = np.asarray(cm, dtype=np.float64)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1.0) if normalize else cm
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    n = len(cm)
    ax.set_xticks(range(n), labels[:n], rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(n), labels[:n], fontsize="small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.minorticks_off()
    for i in range(n):
        for j in range(n):
            value = shown[i, j]
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            colour = "white" if normalize and value > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize="x-small", color=colour)
    if title:
        ax.set_title(title, fontsize="medium")
    return image


def plot_binned(
    edges: np.ndarray,
    values: Mapping[str, np.ndarray],
    *,
    ax: Axes | None = None,
    xlabel: str = "",
    ylabel: str = "",
    logx: bool = False,
    ylim: tuple[float, float] | None = (0.0, 1.05),
    counts: Mapping[str, np.ndarray] | None = None,
) -> list[Any]:
    """Binned curves, one per side (e.g. efficiency vs pT): steps over ``edges``.

    The legend sits in head-room above the data (the y range is stretched for it), never on
    the curves.

    Args:
        edges: (B+1,) bin edges.
        values: side name -> (B,) values (NaN bins are left empty).
        counts: side name -> (B,) entries per bin; with it, rates get binomial error bars
            ``sqrt(p (1 - p) / n)`` and the legend gives the total entries.

    Returns:
        The line artists.
    """
    ax = ax or plt.gca()
    artists = []
    centres = np.sqrt(edges[:-1] * edges[1:]) if logx else 0.5 * (edges[:-1] + edges[1:])
    for name, v in values.items():
        style = _style(name)
        v = np.asarray(v, dtype=float)
        if counts is not None and name in counts:
            n = np.asarray(counts[name], dtype=float)
            style["label"] = f"{style.get('label', name)} (n={int(n.sum())})"
            with np.errstate(invalid="ignore", divide="ignore"):
                err = np.sqrt(np.clip(v * (1 - v), 0, None) / n)
            ax.errorbar(centres, v, yerr=err, fmt="none", color=style.get("color"), capsize=2)
        # baseline=None: no vertical drops to zero at the ends or around empty (NaN) bins
        artists.append(ax.stairs(v, edges, baseline=None, linewidth=2, **style))
    finite = [np.asarray(v, dtype=float) for v in values.values()]
    if not any(np.isfinite(v).any() for v in finite):
        ax.text(0.5, 0.5, "no entries", transform=ax.transAxes, ha="center", color="grey")
    elif all(np.nan_to_num(v).max(initial=0.0) == 0 for v in finite):
        ax.text(0.5, 0.5, "0 in every bin", transform=ax.transAxes, ha="center", color="grey")
    if logx:
        ax.set_xscale("log")
        ax.minorticks_off()  # log-axis minor ticks dominate the drawing time
    ax.set_xlim(edges[0], edges[-1])
    if ylim is not None:
        ax.set_ylim(ylim[0], ylim[0] + 1.45 * (ylim[1] - ylim[0]))  # head-room for the legend
    else:
        top = max((float(np.nanmax(v)) for v in finite if np.isfinite(v).any()), default=0.0)
        if top > 0:
            ax.set_ylim(top=1.45 * top)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="x-small", loc="upper left", frameon=False)
    return artists


def plot_distributions(
    samples: Mapping[str, np.ndarray],
    *,
    ax: Axes | None = None,
    bins: np.ndarray | int = 50,
    xlabel: str = "",
    density: bool = True,
    logy: bool = False,
) -> list[Any]:
    """Step histograms of one quantity per side (e.g. pT_reco / pT_gen); values outside
    the bins are not drawn.

    Returns:
        The ``StepPatch`` artists.
    """
    ax = ax or plt.gca()
    artists = []
    for name, v in samples.items():
        v = np.asarray(v, dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        counts, edges = np.histogram(v, bins=bins)
        if density and counts.sum() > 0:
            counts = counts / counts.sum()
        style = _style(name)
        style["label"] = f"{style.get('label', name)} (median {np.median(v):.3g})"
        artists.append(ax.stairs(counts, edges, linewidth=2, **style))
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction" if density else "entries")
    if artists:
        if not logy:  # head-room above the highest bin for the legend
            ax.set_ylim(0.0, 1.45 * max(float(np.max(a.get_data()[0])) for a in artists))
        ax.legend(fontsize="small", loc="upper right", frameon=False)
    else:
        ax.text(0.5, 0.5, "no entries", transform=ax.transAxes, ha="center", color="grey")
    return artists


def plot_multiplicity(
    gen: np.ndarray,
    reco: Mapping[str, np.ndarray],
    *,
    ax: Axes | None = None,
    label: str = "particles",
) -> list[Any]:
    """Particles per event, reco vs gen, one marker set per side and the diagonal.

    Args:
        gen: (K,) gen multiplicity per event.
        reco: side name -> (K,) reco multiplicity.

    Returns:
        The scatter artists and the diagonal line.
    """
    ax = ax or plt.gca()
    gen = np.asarray(gen, dtype=float)
    artists: list[Any] = []
    top = max([gen.max(initial=0.0)] + [np.max(r, initial=0.0) for r in reco.values()]) * 1.05
    (diag,) = ax.plot([0, top or 1.0], [0, top or 1.0], color="grey", linewidth=1)
    artists.append(diag)
    for name, r in reco.items():
        style = _style(name)
        artists.append(
            ax.scatter(
                gen,
                np.asarray(r, dtype=float),
                s=12,
                alpha=0.6,
                color=style.get("color"),
                label=style.get("label", name),
            )
        )
    ax.set_xlabel(f"gen {label} per event")
    ax.set_ylabel(f"reco {label} per event")
    ax.legend(fontsize="small")
    return artists


def plot_efficiency_vs_fake(
    curves: Mapping[str, Any],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    chosen: tuple[float, float] | None = None,
) -> list[Any]:
    """Efficiency vs fake rate of one class for MLPF (offset scan) and the baseline (pT cut).

    Args:
        curves: ``{"mlpf": {"efficiency", "fake_rate"}, "baseline": {...}}`` lists, one entry of
            ``operating_point.json["curves"]``.
        chosen: ``(fake rate, efficiency)`` of MLPF's chosen operating point, marked with a star.

    Returns:
        The line artists.
    """
    ax = ax if ax is not None else plt.gca()
    artists = []
    for side in ("mlpf", "baseline"):
        c = curves.get(side)
        if not c:
            continue
        pts = [
            (f, e)
            for f, e in zip(c["fake_rate"], c["efficiency"], strict=True)
            if f is not None and e is not None
        ]
        if not pts:
            continue
        f, e = np.asarray(pts).T
        st = _style(side)
        (line,) = ax.plot(f, e, marker="o", markersize=3, **st)
        artists.append(line)
    if chosen is not None:
        artists.append(ax.plot(*chosen, "*", color="tab:red", markersize=14, label="chosen")[0])
    ax.set_xlabel("fake rate")
    ax.set_ylabel("efficiency")
    if title:
        ax.set_title(title, fontsize="medium")
    ax.legend(fontsize="small")
    return artists
