"""Figures of the explanation workflow: relevance maps, histograms, event display, faithfulness.

Every ``plot_*`` function draws on a given ``ax`` (a new figure when ``ax=None``) and returns its
artists; ``*_figure`` functions build a multi-panel figure and return it. Relevance colour maps
are diverging (red positive, blue negative) and symmetric around zero. (Slightly over 400
lines: one module per figure family of the explanation report, all sharing the colour scale.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from particlegraph.explain.faithfulness import FlippingCurve, RandomizationResult
from particlegraph.plot import headless_backend

CMAP = "RdBu_r"


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    if ax is None:
        headless_backend()
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _symmetric_limit(values: np.ndarray) -> float:
    vmax = float(np.max(np.abs(values))) if values.size else 0.0
    return vmax if vmax > 0 else 1.0


def axis_labels(names: Sequence[str], n: int, prefix: str) -> list[str]:
    """The first ``n`` of ``names``, completed with ``prefix0``, ``prefix1``, ... (no task's
    names are assumed here: each task passes its own feature and class names)."""
    given = list(names)[:n]
    return given + [f"{prefix}{i}" for i in range(len(given), n)]


def neighbour_labels(sources: np.ndarray | None, num_rows: int) -> list[str]:
    """Row labels of a relevance map: "self" then "#1", "#2", ... (element index when known)."""
    labels = []
    for r in range(num_rows):
        name = "self" if r == 0 else f"#{r}"
        if sources is not None and sources[r] >= 0:
            name += f" ({int(sources[r])})"
        labels.append(name)
    return labels


def plot_relevance_map(
    values: np.ndarray,
    *,
    row_labels: Sequence[str] | None = None,
    feature_names: Sequence[str] = (),
    vmax: float | None = None,
    title: str | None = None,
    colorbar: bool = True,
    xlabels: bool = True,
    ax: Axes | None = None,
) -> AxesImage:
    """Heat map of a relevance map (rows: the element and its neighbours, columns: features).

    Args:
        values: (R, F) relevance; row 0 is the explained element itself.
        row_labels: R labels (default "self", "#1", ...).
        feature_names: F column names (default ``x0``, ``x1``, ...); a task passes its own.
        vmax: colour limit, symmetric around zero (default the largest |value|).
        colorbar: draw a colour bar next to the axes.
        xlabels: label the feature axis (off for inner panels of a grid).
    """
    values = np.asarray(values, dtype=float)
    ax = _axes(ax, (0.55 * values.shape[1] + 2.0, 0.35 * values.shape[0] + 1.5))
    lim = vmax if vmax is not None else _symmetric_limit(values)
    image = ax.imshow(values, cmap=CMAP, vmin=-lim, vmax=lim, aspect="auto")
    if xlabels:
        ax.set_xticks(range(values.shape[1]), axis_labels(feature_names, values.shape[1], 'x'),
                      rotation=60, ha="right", fontsize=8)  # fmt: skip
        ax.set_xlabel("input feature")
    else:
        ax.set_xticks(range(values.shape[1]), [])
    labels = row_labels if row_labels is not None else neighbour_labels(None, values.shape[0])
    ax.set_yticks(range(values.shape[0]), list(labels), fontsize=8)
    ax.set_ylabel("element")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="relevance")
    return image


def class_maps_figure(
    mean: np.ndarray,
    count: np.ndarray,
    *,
    class_names: Sequence[str] = (),
    feature_names: Sequence[str] = (),
    title: str | None = None,
) -> Figure:
    """Averaged relevance maps per true class (rows) for correct / wrong predictions (columns).

    Args:
        mean: (C, 2, R, F) from :meth:`ClassMapAccumulator.result`.
        count: (C, 2) number of elements averaged in each panel.
    """
    classes = [c for c in range(mean.shape[0]) if count[c].sum() > 0] or [0]
    lim = _symmetric_limit(mean[classes])
    num_rows = mean.shape[2]
    headless_backend()
    fig, axes = plt.subplots(
        len(classes), 2, figsize=(12, 0.22 * num_rows * len(classes) + 2.2), squeeze=False,
        sharex=True, sharey=True, layout="constrained",
    )  # fmt: skip
    images: list[AxesImage] = []
    for i, c in enumerate(classes):
        for j, split in enumerate(("correct", "wrong")):
            image = plot_relevance_map(
                mean[c, j], feature_names=feature_names, vmax=lim, ax=axes[i, j],
                title=f"true {axis_labels(class_names, c + 1, 'class ')[c]}, {split} (n={int(count[c, j])})",
                colorbar=False, xlabels=i == len(classes) - 1,
            )  # fmt: skip
            images.append(image)
            if j == 1:
                axes[i, j].set_ylabel("")
    fig.colorbar(images[-1], ax=axes, label="relevance / total |relevance| of the element",
                 shrink=0.6)  # fmt: skip
    if title:
        fig.suptitle(title)
    return fig


def plot_feature_histogram(
    counts: np.ndarray,
    edges: np.ndarray,
    *,
    feature_names: Sequence[str] = (),
    title: str | None = None,
    colorbar: bool = True,
    ax: Axes | None = None,
) -> AxesImage:
    """Histograms of each feature's relevance fraction, one row per feature, as a heat map.

    Args:
        counts: (F, B) counts of one class (from :class:`FeatureHistogram`).
        edges: (B + 1,) bin edges of the relevance fraction.
    """
    counts = np.asarray(counts, dtype=float)
    ax = _axes(ax, (6.0, 4.5))
    # Normalise each feature's row to a density so rare and common features read alike.
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(
        rows, aspect="auto", cmap="viridis", origin="lower", vmin=0.0, vmax=1.0,
        extent=(float(edges[0]), float(edges[-1]), -0.5, counts.shape[0] - 0.5),
    )  # fmt: skip
    ax.set_yticks(
        range(counts.shape[0]), axis_labels(feature_names, counts.shape[0], "x"), fontsize=8
    )
    ax.set_xticks(np.linspace(float(edges[0]), float(edges[-1]), 5))
    ax.set_xlabel("feature relevance / total |relevance| of element")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="fraction of elements")
    return image


def feature_histograms_figure(
    counts: np.ndarray,
    edges: np.ndarray,
    *,
    class_names: Sequence[str] = (),
    feature_names: Sequence[str] = (),
    title: str | None = None,
) -> Figure:
    """One :func:`plot_feature_histogram` panel per true class that has entries; counts (C, F, B)."""
    classes = [c for c in range(counts.shape[0]) if counts[c].sum() > 0] or [0]
    ncols = min(3, len(classes))
    nrows = (len(classes) + ncols - 1) // ncols
    headless_backend()
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols + 1.0, 4.0 * nrows),
                             squeeze=False, layout="constrained")  # fmt: skip
    for ax in axes.flat[len(classes) :]:
        ax.set_visible(False)
    images: list[AxesImage] = []
    for ax, c in zip(axes.flat, classes, strict=False):
        n = int(counts[c, 0].sum())
        images.append(plot_feature_histogram(
            counts[c], edges, feature_names=feature_names, ax=ax,
            title=f"true {axis_labels(class_names, c + 1, 'class ')[c]} (n={n})", colorbar=False,
        ))  # fmt: skip
    fig.colorbar(images[-1], ax=axes, label="fraction of elements (per feature)", shrink=0.6)
    if title:
        fig.suptitle(title)
    return fig


def plot_event_display(
    eta: np.ndarray,
    phi: np.ndarray,
    element_relevance: np.ndarray,
    *,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    is_track: np.ndarray | None = None,
    highlight: int | None = None,
    max_edges: int = 300,
    ax: Axes | None = None,
) -> dict[str, Any]:
    """Eta-phi display: element relevance as marker size and colour, edge relevance as width.

    Args:
        eta, phi: (N,) element positions [rad for phi].
        element_relevance: (N,) relevance per element (colour: signed; size: |relevance|).
        edges: optional ``(target, source, relevance)`` arrays, e.g. from
            :func:`particlegraph.explain.rmaps.edge_relevance`; the ``max_edges`` with the largest
            |relevance| are drawn, line width proportional to |relevance|. Edges spanning more
            than pi in phi (across the wrap-around) are skipped: a straight line would cross the
            whole frame.
        is_track: (N,) bool; tracks are drawn as triangles, towers as circles.
        highlight: index of an element to mark with a star (the explained target).

    Returns:
        dict with ``"towers"``, ``"tracks"`` (PathCollection), ``"edges"`` (LineCollection or
        None) and ``"target"`` (PathCollection or None).
    """
    ax = _axes(ax, (7.0, 5.5))
    eta = np.asarray(eta, float)
    phi = np.asarray(phi, float)
    rel = np.asarray(element_relevance, float)
    lim = _symmetric_limit(rel)
    size = 4.0 + 120.0 * np.abs(rel) / lim
    track = np.zeros(eta.shape, bool) if is_track is None else np.asarray(is_track, bool)
    artists: dict[str, Any] = {"edges": None, "target": None}
    if edges is not None and len(edges[0]):
        t, s, r = (np.asarray(a) for a in edges)
        keep = np.argsort(-np.abs(r), kind="stable")[:max_edges]
        t, s, r = t[keep], s[keep], r[keep]
        short = np.abs(phi[t] - phi[s]) < np.pi
        segments = np.stack(
            [np.stack([eta[t], phi[t]], -1), np.stack([eta[s], phi[s]], -1)], axis=1
        )[short]
        widths = 0.3 + 3.0 * np.abs(r[short]) / _symmetric_limit(r)
        colors = np.where(r[short] >= 0, "tab:red", "tab:blue")
        lines = LineCollection(segments, linewidths=widths, colors=colors, alpha=0.5, zorder=1)
        ax.add_collection(lines)
        artists["edges"] = lines
    common = {"c": rel, "cmap": CMAP, "vmin": -lim, "vmax": lim, "edgecolors": "k",
              "linewidths": 0.2, "zorder": 2}  # fmt: skip
    towers: PathCollection = ax.scatter(eta[~track], phi[~track], s=size[~track], marker="o",
                                        **{**common, "c": rel[~track]}, label="tower")  # fmt: skip
    tracks: PathCollection = ax.scatter(eta[track], phi[track], s=size[track], marker="^",
                                        **{**common, "c": rel[track]}, label="track")  # fmt: skip
    artists["towers"], artists["tracks"] = towers, tracks
    if highlight is not None:
        artists["target"] = ax.scatter([eta[highlight]], [phi[highlight]], s=250, marker="*",
                                       facecolors="none", edgecolors="k", zorder=3,
                                       label="explained element")  # fmt: skip
    ax.set_xlabel(r"$\eta$")
    ax.set_ylabel(r"$\phi$ [rad]")
    ax.set_ylim(-np.pi, np.pi)
    ax.figure.colorbar(towers, ax=ax, label="element relevance")
    ax.legend(loc="upper right", fontsize=8)
    return artists


def plot_flipping_curves(
    curves: Mapping[str, FlippingCurve],
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> list[Line2D]:
    """Output drop vs fraction removed: relevance order (solid) and random order (dashed, band)."""
    ax = _axes(ax)
    lines: list[Line2D] = []
    for i, (label, curve) in enumerate(curves.items()):
        color = f"C{i}"
        (solid,) = ax.plot(curve.fractions, curve.relevance, color=color, marker="o", ms=3,
                           label=f"{label} (gap {curve.auc_gap:.3g})")  # fmt: skip
        (dashed,) = ax.plot(curve.fractions, curve.random, color=color, ls="--")
        ax.fill_between(curve.fractions, curve.random - curve.random_std,
                        curve.random + curve.random_std, color=color, alpha=0.15)  # fmt: skip
        lines += [solid, dashed]
    ax.axhline(0.0, color="0.6", lw=0.5)
    ax.set_xlabel("fraction removed (solid: most relevant first, dashed: random)")
    ax.set_ylabel("output drop")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return lines


def plot_randomization(
    results: Mapping[str, RandomizationResult],
    *,
    title: str | None = None,
    ax: Axes | None = None,
) -> list[Line2D]:
    """Rank correlation with the trained model's relevance per cascading randomisation step."""
    ax = _axes(ax, (7.0, 4.0))
    lines: list[Line2D] = []
    steps: tuple[str, ...] = ()
    for i, (label, res) in enumerate(results.items()):
        x = np.arange(len(res.steps))
        (a,) = ax.plot(x, res.spearman, color=f"C{i}", marker="o", label=f"{label}")
        (b,) = ax.plot(x, res.spearman_abs, color=f"C{i}", marker="s", ls="--",
                       label=f"{label} (|R|)")  # fmt: skip
        lines += [a, b]
        steps = res.steps if len(res.steps) > len(steps) else steps
    ax.set_xticks(range(len(steps)), list(steps), rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("layers re-initialised (cumulative, from the output)")
    ax.set_ylabel("Spearman correlation with trained")
    ax.set_ylim(-1.05, 1.05)
    ax.axhline(0.0, color="0.6", lw=0.5)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return lines


def _grid(num: int, ncols: int, panel: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(ncols, num))
    nrows = (num + ncols - 1) // ncols
    headless_backend()
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows),
                             squeeze=False, layout="constrained")  # fmt: skip
    for ax in axes.flat[num:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:num])


def flipping_figure(
    curves: Mapping[str, FlippingCurve], *, title: str | None = None, ncols: int = 4
) -> Figure:
    """One :func:`plot_flipping_curves` panel per output (readable with many outputs)."""
    fig, axes = _grid(len(curves), ncols, (4.2, 3.4))
    for ax, (label, curve) in zip(axes, curves.items(), strict=True):
        plot_flipping_curves({label: curve}, ax=ax, title=label)
        ax.set_xlabel("fraction removed")
        ax.legend(
            ["relevance order", "random order"], fontsize=7, title=f"gap {curve.auc_gap:.3g}",
            title_fontsize=7,
        )  # fmt: skip
    if title:
        fig.suptitle(title)
    return fig


def randomization_figure(
    results: Mapping[str, RandomizationResult], *, title: str | None = None, ncols: int = 4
) -> Figure:
    """One :func:`plot_randomization` panel per output."""
    fig, axes = _grid(len(results), ncols, (4.2, 3.6))
    for ax, (label, res) in zip(axes, results.items(), strict=True):
        plot_randomization({label: res}, ax=ax, title=label)
        ax.set_xlabel("")
        ax.set_ylabel("Spearman rho")
        ax.legend(["R", "|R|"], fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def relevance_maps_figure(
    panels: Sequence[tuple[np.ndarray, Sequence[str], str]],
    *,
    feature_names: Sequence[str] = (),
    title: str | None = None,
    ncols: int = 3,
) -> Figure:
    """Several single-element relevance maps side by side, each with its own colour scale.

    Args:
        panels: per panel ``(values (R, F), row labels (R,), panel title)``.
    """
    num_rows = max((p[0].shape[0] for p in panels), default=1)
    fig, axes = _grid(max(len(panels), 1), ncols, (6.5, 0.35 * num_rows + 2.2))
    for ax, (values, labels, panel_title) in zip(axes, panels, strict=False):
        plot_relevance_map(values, row_labels=labels, feature_names=feature_names,
                           title=panel_title, ax=ax)  # fmt: skip
    if title:
        fig.suptitle(title)
    return fig


def event_display_figure(
    eta: np.ndarray,
    phi: np.ndarray,
    panels: Sequence[tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], int | None, str]],
    *,
    is_track: np.ndarray | None = None,
) -> Figure:
    """Event displays side by side; per panel ``(element relevance (N,), edges, highlight, title)``.

    See :func:`plot_event_display` for the meaning of the entries.
    """
    fig, axes = _grid(len(panels), len(panels), (7.5, 6.0))
    for ax, (element, edges, highlight, panel_title) in zip(axes, panels, strict=True):
        plot_event_display(eta, phi, element, edges=edges, is_track=is_track,
                           highlight=highlight, ax=ax)  # fmt: skip
        ax.set_title(panel_title, fontsize=9)
    return fig
