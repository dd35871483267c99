"""Which neighbouring hits and which hit features shaped a hit's refined embedding.

Two explanations on one event's predicted graph (held fixed):

- LRP (epsilon rule) of each refined-embedding coordinate of a target hit through the whole model
  (standardisation, stage-1 MLP, the edge-weighted convs with their sigmoid edge weights held
  fixed, the output layer), with the engine's sparse propagation; relevance per (source hit,
  raw feature), summed in absolute value over the D2 coordinates. Conservation is checked.
- gradient x input of the refined distance between a pair of hits, d = |f(x)_i - f(x)_j|:
  d (N, F) relevance over every hit's raw features (edge weights are part of the function).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.engine import propagate
from particlegraph.explain.lrp.rules import Epsilon, as_composite
from particlegraph.graph.radius import radius_graph
from particlegraph.tasks.tracking.dataset import FEATURES, load_events
from particlegraph.tasks.tracking.model import TrackingModel, trace_tracking
from particlegraph.tasks.tracking.train import load_run

#: Largest relative disagreement tolerated between the traced and the model's own output.
TRACE_RTOL = 1e-4


@dataclass
class HitExplanation:
    """LRP of one target hit: relevance per source hit and feature, and the checks."""

    target: int
    sources: np.ndarray  # (S,) hit indices in the receptive field
    relevance: np.ndarray  # (S, F) sum over output coordinates of |R|
    signed: np.ndarray  # (S, F) sum over output coordinates of R (sign = direction of push)
    conservation_error: float  # max over coordinates of |sum R + absorbed - output| / |output|
    explained: np.ndarray  # (D2,) the explained outputs


def explain_hit(
    model: TrackingModel, x: Tensor, edge_index: Tensor, target: int, eps: float = 1e-6
) -> HitExplanation:
    """LRP-epsilon of every refined coordinate of hit ``target``; see the module docstring."""
    model.eval()
    with torch.no_grad():
        program = trace_tracking(model, x, edge_index)
        ref = model(x, edge_index)
    out_id = program.outputs["embedding"]
    got = program.values[out_id]
    if not torch.allclose(
        got, ref, rtol=TRACE_RTOL, atol=TRACE_RTOL * float(ref.abs().max().clamp_min(1))
    ):
        raise ConfigError("the LRP trace of the tracking model does not reproduce its output")
    comp = as_composite(Epsilon(eps=eps))
    tgt = torch.tensor([target])
    total: dict[int, np.ndarray] = {}
    signed: dict[int, np.ndarray] = {}
    errors, explained = [], []
    for c in range(got.shape[1]):
        rel = propagate(program, out_id, c, tgt, comp)
        errors.append(float(rel.conservation_error().max()))
        explained.append(float(rel.explained[0]))
        for s, v in zip(rel.source.tolist(), rel.values.numpy(), strict=True):
            total[s] = total.get(s, 0.0) + np.abs(v)
            signed[s] = signed.get(s, 0.0) + v
    sources = np.array(sorted(total), dtype=np.int64)
    return HitExplanation(
        target,
        sources,
        np.stack([total[s] for s in sources.tolist()])
        if sources.size
        else np.zeros((0, x.shape[1])),
        np.stack([signed[s] for s in sources.tolist()])
        if sources.size
        else np.zeros((0, x.shape[1])),
        max(errors) if errors else 0.0,
        np.array(explained),
    )


def pair_gradient_x_input(
    model: TrackingModel, x: Tensor, edge_index: Tensor, i: int, j: int
) -> tuple[float, Tensor]:
    """Refined distance d_ij and its gradient x input (N, F) with respect to the raw features."""
    model.eval()
    xg = x.clone().requires_grad_(True)
    e = model(xg, edge_index)
    d = (e[i] - e[j]).norm()
    (grad,) = torch.autograd.grad(d, xg)
    return float(d.detach()), (grad * x).detach()


def default_target(particle_id: Tensor, pt: Tensor) -> tuple[int, int]:
    """Two hits of the highest-pT particle with at least two hits (a natural pair to explain)."""
    pid = particle_id.numpy()
    order = np.argsort(-pt.numpy())
    for h in order.tolist():
        p = pid[h]
        if p == 0:
            continue
        hits = np.flatnonzero(pid == p)
        if hits.size >= 2:
            return int(hits[0]), int(hits[1])
    return 0, min(1, len(pid) - 1)


def explain_run(
    run_dir: str | Path, data: str | Path, out: str | Path, *, event_id: int | None = None,
    hit: int | None = None, partner: int | None = None, plots: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Explain one hit (and one pair) of one event; writes ``explain.json`` and a display."""
    from particlegraph.tasks.tracking.trackml import list_events

    model, cfg, _ = load_run(run_dir)
    eid = event_id if event_id is not None else list_events(data)[0]
    ev = load_events(data, [eid])[0]
    with torch.no_grad():
        graph = radius_graph(model.embed(ev.x), cfg.graph.radius, cfg.graph.k)
    i0, j0 = default_target(ev.particle_id, ev.pt)
    i = hit if hit is not None else i0
    j = partner if partner is not None else j0
    n = ev.num_hits
    if not (0 <= i < n and 0 <= j < n):
        raise ConfigError(f"--hit and --partner must be hit indices in [0, {n}), got {i}, {j}")
    lrp = explain_hit(model, ev.x, graph, i)
    d, gxi = pair_gradient_x_input(model, ev.x, graph, i, j)
    pid = ev.particle_id.numpy()
    per_hit = lrp.relevance.sum(1)
    top = np.argsort(-per_hit)[:15]
    pair_hit = gxi.abs().sum(1).numpy()
    result = {
        "event_id": eid,
        "target_hit": i,
        "target_particle": int(pid[i]),
        "lrp": {
            "conservation_error": lrp.conservation_error,
            "receptive_field": int(lrp.sources.size),
            "feature_relevance": dict(zip(FEATURES, lrp.relevance.sum(0).astype(float).tolist(), strict=True)),
            "same_particle_share": float(per_hit[pid[lrp.sources] == pid[i]].sum() / max(per_hit.sum(), 1e-30)),
            "top_sources": [
                {"hit": int(lrp.sources[k]), "same_particle": bool(pid[lrp.sources[k]] == pid[i]), "relevance": float(per_hit[k])}
                for k in top.tolist()
            ],
        },
        "pair": {
            "hits": [i, j], "same_particle": bool(pid[i] == pid[j] != 0), "distance": d,
            "feature_relevance": dict(zip(FEATURES, gxi.abs().sum(0).numpy().astype(float).tolist(), strict=True)),
            "top_hits": [int(h) for h in np.argsort(-pair_hit)[:10].tolist()],
        },
    }  # fmt: skip
    out = Path(out)
    write_json(out / "explain.json", result)
    if plots:
        _display(out, ev.xyz.numpy(), pid, graph, lrp, i, pair_hit, j)
    return result


def explain(
    run_dir: str | Path, data: str | Path, out: str | Path, *, event_id: int | None = None,
    hit: int | None = None, partner: int | None = None, edge: int | None = None,
    lrp_eps: float = 1e-6,
) -> dict[str, Any]:  # fmt: skip
    """Explain one event of ``data`` with the run's model, whichever pipeline it is.

    Default (layer-pair) pipeline: gradient x input and LRP of one edge's score
    (:func:`~particlegraph.tasks.tracking.explain_edges.explain_edge_score`, ``edge``,
    ``lrp_eps``);
    the exercise's pipeline: LRP of one hit's refined embedding and gradient x input of a pair
    distance (:func:`explain_run`, ``hit`` and ``partner``). Writes ``out/explain.json`` (and a
    display); returns its content.
    """
    from particlegraph.tasks.tracking.runconfig import run_pipeline

    if run_pipeline(Path(run_dir)) == "layerpair":
        from particlegraph.tasks.tracking.explain_edges import explain_edge_score

        return explain_edge_score(run_dir, data, out, event_id=event_id, edge=edge, eps=lrp_eps)
    return explain_run(run_dir, data, out, event_id=event_id, hit=hit, partner=partner)


def _display(out: Path, xyz: np.ndarray, pid: np.ndarray, graph: Tensor, lrp: HitExplanation,
             target: int, pair_hit: np.ndarray, partner: int) -> None:  # fmt: skip
    """x-y display around the target: hits coloured by LRP relevance, edges into the field."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from particlegraph.plot import headless_backend, save_figure

    headless_backend()
    rel = np.zeros(xyz.shape[0])
    rel[lrp.sources] = lrp.relevance.sum(1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    src = set(lrp.sources.tolist())
    g = graph.numpy()
    inside = np.array([a in src and b in src for a, b in zip(g[0], g[1], strict=True)], dtype=bool)
    seg = np.stack([xyz[g[0][inside], :2], xyz[g[1][inside], :2]], axis=1)
    w = rel[g[0][inside]]
    for ax, values, title in ((axes[0], rel, "LRP relevance of the target's refined embedding"),
                              (axes[1], pair_hit, f"|gradient x input| of d(hit {target}, hit {partner})")):  # fmt: skip
        ax.add_collection(
            LineCollection(
                list(seg),
                linewidths=0.3 + 2.0 * w / max(w.max(initial=0), 1e-30),
                colors="0.6",
                alpha=0.6,
            )
        )
        keep = values > 0
        ax.scatter(xyz[~keep, 0], xyz[~keep, 1], s=0.3, c="0.9", linewidths=0, rasterized=True)
        sc = ax.scatter(
            xyz[keep, 0], xyz[keep, 1], s=8, c=values[keep], cmap="viridis", linewidths=0
        )
        same = pid == pid[target]
        ax.scatter(
            xyz[same, 0],
            xyz[same, 1],
            s=30,
            facecolors="none",
            edgecolors="red",
            linewidths=0.7,
            label="target's particle",
        )
        ax.scatter(*xyz[target, :2], marker="*", s=150, c="red", label="target hit")
        pts = xyz[list(src), :2] if src else xyz[[target], :2]
        lo, hi = pts.min(0), pts.max(0)
        pad = 0.15 * float(max((hi - lo).max(), 50.0))
        ax.set_xlim(lo[0] - pad, hi[0] + pad)
        ax.set_ylim(lo[1] - pad, hi[1] + pad)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x [mm]")
        ax.set_ylabel("y [mm]")
        fig.colorbar(sc, ax=ax)
        ax.legend(fontsize=8, loc="upper right")
    save_figure(fig, out / "explain_display.png")
