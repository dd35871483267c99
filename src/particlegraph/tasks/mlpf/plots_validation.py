"""Validation figures of an MLPF dataset: multiplicities, spectra per class, ygen vs ycand.

The functions draw pre-filled histograms (so a dataset is streamed once, see
:func:`particlegraph.tasks.mlpf.inspect.inspect_dataset`), take a keyword-only ``ax=None`` and
return their artists. :func:`cms_style` applies mplhep's CMS style.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from particlegraph.sim.elements import CLASS_LABELS, CLASS_NAMES


@contextlib.contextmanager
def cms_style() -> Iterator[None]:
    """Matplotlib style context with mplhep's CMS style."""
    import mplhep as hep

    with plt.style.context(hep.style.CMS):
        yield


def _ax(ax: Any) -> Any:
    return plt.gca() if ax is None else ax


def plot_multiplicity(
    counts: Mapping[str, Sequence[int]], *, bins: int | np.ndarray = 30, ax: Any = None
) -> list[Any]:
    """Step histograms of per-event multiplicities, one per entry of ``counts``.

    Args:
        counts: label -> number per event (e.g. ``{"elements": [...], "tracks": [...]}``).
        bins: number of bins or bin edges shared by every entry.
    """
    ax = _ax(ax)
    values = [np.asarray(v) for v in counts.values()]
    if isinstance(bins, int):
        top = max((int(v.max()) for v in values if len(v)), default=1)
        bins = np.linspace(0, max(top, 1) * 1.05, bins + 1)
    artists = []
    for label, v in zip(counts, values, strict=True):
        _, _, patches = ax.hist(v, bins=bins, histtype="step", linewidth=1.5, label=label)
        artists.append(patches)
    ax.set_xlabel("number per event")
    ax.set_ylabel("events")
    ax.legend()
    return artists


def plot_class_hists(
    hists: np.ndarray,
    edges: np.ndarray,
    *,
    xlabel: str,
    title: str | None = None,
    log_x: bool = False,
    classes: Sequence[int] = (1, 2, 3, 4, 5),
    ax: Any = None,
) -> list[Any]:
    """Step histograms per particle class from pre-filled counts.

    Args:
        hists: (num_classes, num_bins) counts, row c = class c.
        edges: (num_bins + 1,) bin edges.
        classes: which class rows to draw (class 0 "none" has no kinematics).
    """
    ax = _ax(ax)
    artists = []
    for c in classes:
        if hists[c].sum() == 0:
            continue
        line = ax.stairs(hists[c], edges, label=CLASS_LABELS[c], linewidth=1.5)
        artists.append(line)
    if log_x:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("particles")
    if title:
        ax.set_title(title, fontsize="medium")
    if artists:
        peak = max(hists[c].max() for c in classes)
        ax.set_ylim(0.5, peak * 40)  # log-y headroom so the legend sits above the curves
        ax.legend(fontsize="small", ncols=3, loc="upper center")
    return artists


def plot_confusion(
    matrix: np.ndarray,
    *,
    xlabel: str = "ycand class",
    ylabel: str = "ygen class",
    normalize: bool = True,
    ax: Any = None,
) -> Any:
    """Confusion matrix image; rows = true (ygen) class, columns = ycand class.

    Args:
        matrix: (C, C) counts.
        normalize: divide each row by its sum (efficiency / mistag per true class).
    """
    ax = _ax(ax)
    m = np.asarray(matrix, dtype=np.float64)
    if normalize:
        m = np.divide(
            m, m.sum(axis=1, keepdims=True), out=np.zeros_like(m), where=m.sum(1, keepdims=True) > 0
        )
    n = m.shape[0]
    image = ax.imshow(m, cmap="Blues", vmin=0, vmax=m.max() if m.max() > 0 else 1)
    for i in range(n):
        for j in range(n):
            value = f"{m[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
            ax.text(j, i, value, ha="center", va="center", fontsize="x-small",
                    color="white" if m[i, j] > 0.6 * m.max() else "black")  # fmt: skip
    labels = [CLASS_LABELS[i] if i < len(CLASS_NAMES) else str(i) for i in range(n)]
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(n), labels, fontsize="small")
    ax.minorticks_off()  # categorical axes: minor ticks (CMS style) would fall between classes
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel, labelpad=14)
    return image
