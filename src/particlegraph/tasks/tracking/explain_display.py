"""Event display of one edge's LRP explanation (default pipeline): where the relevance sits.

Two views of the hits, x-y and z-r [mm]: hits coloured by their LRP relevance (summed over the
hit features; red pushes the logit up, blue down, one symmetric scale), the edges with the
largest |relevance| (summed over the edge features) drawn with a width in proportion, the
explained edge in black and the hits of its particle circled. Only the hits that hold at least 1 % of
the largest |relevance| are coloured (the others are grey dots), and the view is zoomed onto them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from particlegraph.explain.lrp import EdgeRelevance

#: Edges drawn (largest |relevance| first).
EDGES_DRAWN = 30


def _views(xyz: np.ndarray) -> list[tuple[np.ndarray, str, str]]:
    """(points (N, 2), x label, y label) of the x-y and z-r views."""
    r = np.hypot(xyz[:, 0], xyz[:, 1])
    return [(xyz[:, :2], "x [mm]", "y [mm]"), (np.stack([xyz[:, 2], r], 1), "z [mm]", "r [mm]")]


def edge_display(
    path: Path, xyz: np.ndarray, pid: np.ndarray, edge_index: np.ndarray, rel: EdgeRelevance
) -> Path:
    """Draw the explanation of ``rel.edges[0]`` for hits at ``xyz`` (N, 3) [mm] with particle ids
    ``pid`` (N,) on the graph ``edge_index`` (2, E); saves ``path`` (PNG) and returns it."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from particlegraph.plot import headless_backend, save_figure

    headless_backend()
    edge = int(rel.edges[0])
    node_rel = rel.node_dense()[0].sum(1).double().numpy()  # (N,)
    edge_rel = rel.edge_dense()[0].sum(1).double().numpy()  # (E,)
    vmax = float(np.abs(node_rel).max(initial=0.0)) or 1.0
    top = np.argsort(-np.abs(edge_rel))[:EDGES_DRAWN]
    top = top[edge_rel[top] != 0]
    width = 0.4 + 3.0 * np.abs(edge_rel[top]) / max(
        float(np.abs(edge_rel[top]).max(initial=0)), 1e-300
    )
    a, b = edge_index[:, edge]
    own = pid == pid[a] if pid[a] != 0 and pid[a] == pid[b] else np.zeros(len(pid), dtype=bool)
    shown = np.abs(node_rel) >= 0.01 * vmax
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    for ax, (pts, xlab, ylab) in zip(axes, _views(xyz), strict=True):
        ax.scatter(pts[:, 0], pts[:, 1], s=0.3, c="0.85", linewidths=0, rasterized=True)
        seg = np.stack([pts[edge_index[0, top]], pts[edge_index[1, top]]], axis=1)
        colors = np.where(edge_rel[top] > 0, "tab:red", "tab:blue")
        ax.add_collection(
            LineCollection(list(seg), linewidths=width, colors=list(colors), alpha=0.6)
        )
        hit = shown
        ax.scatter(pts[own, 0], pts[own, 1], s=90, facecolors="none", edgecolors="k",
                   linewidths=0.6, label="the edge's particle", zorder=2)  # fmt: skip
        ax.plot(pts[[a, b], 0], pts[[a, b], 1], "k-", lw=2.5, label=f"edge {edge}", zorder=3)
        sc = ax.scatter(pts[hit, 0], pts[hit, 1], s=28, c=node_rel[hit], cmap="RdBu_r",
                        vmin=-vmax, vmax=vmax, linewidths=0.3, edgecolors="0.5", zorder=4)  # fmt: skip
        box = pts[shown | own] if bool((shown | own).any()) else pts[[a, b]]
        lo, hi = box.min(0), box.max(0)
        pad = np.maximum(0.1 * (hi - lo), 20.0)  # per axis [mm]
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xlabel(xlab)
        ax.set_ylabel(ylab)
        ax.legend(loc="best", fontsize=8)
        fig.colorbar(sc, ax=ax, label="LRP relevance per hit")
    fig.suptitle(
        f"LRP-epsilon of edge {edge}'s logit ({float(rel.explained[0]):.3g}; absorbed "
        f"{float(rel.absorbed[0]):.3g}): hits and the {len(top)} most relevant edges "
        "(red: pushes the logit up)",
        fontsize=10,
    )
    return save_figure(fig, path)
