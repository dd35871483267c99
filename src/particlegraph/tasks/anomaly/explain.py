"""Which particles and which edges make an event anomalous.

For one event (graph) and one trained model:

- **score decomposition** (exact, sums to the score): node-ae: node i contributes
  ``err_i / n``; GAE: every positive edge's loss ``/ |E|`` and every non-edge pair's loss
  ``/ |non-edges|`` is split half-half between its two particles (edges keep their own share
  as the per-edge contribution);
- **gradient x input** and **integrated gradients** of the score with respect to the model inputs
  (N, F) (raw features for gae-seed, the 12 preprocessed ones otherwise), edges held fixed; the
  IG baseline is all-zero inputs and its completeness error ``sum IG - (f(x) - f(0))`` is
  reported. All IG path points are scored in one batch (the scores are batched per graph);
- **LRP** of every latent dimension (summed over the event's nodes) through the GCN encoder with
  the engine's GCN-normalised aggregation rule (:mod:`particlegraph.explain.lrp`), LRP-epsilon,
  with its conservation error.

:func:`class_averages` averages the per-node score share by particle type (PDG code) over many
events; :func:`write_explanations` writes JSON, eta-phi event displays and a small report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from particlegraph.explain.lrp import Tracer, explain_event
from particlegraph.tasks.anomaly.graphs import PDG_CODES, PDG_LABELS
from particlegraph.tasks.anomaly.models import AnomalyModel, EdgeGAE, NodeAE
from particlegraph.tasks.anomaly.scores import gae_terms, scatter_mean


def score_from_inputs(
    model: AnomalyModel, h: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int
) -> Tensor:
    """Differentiable per-graph score (B,) from model inputs ``h`` (N, F)."""
    if isinstance(model, EdgeGAE):
        return gae_terms(model.encode_inputs(h, edge_index), edge_index, batch, num_graphs).score
    assert isinstance(model, NodeAE)
    err, _ = model.node_errors_inputs(h, edge_index)
    return scatter_mean(err, batch, num_graphs)


def decompose(model: AnomalyModel, g: Data) -> tuple[np.ndarray, np.ndarray | None]:
    """Exact split of the score into (node contributions (n,), edge contributions (E,) | None)."""
    with torch.no_grad():
        h = model.inputs(g.x)
        n = g.num_nodes
        if isinstance(model, NodeAE):
            err, _ = model.node_errors_inputs(h, g.edge_index)
            return (err / n).numpy().astype(np.float64), None
        z = model.encode_inputs(h, g.edge_index)
        src, dst = g.edge_index
        pos = F.softplus(-(z[src] * z[dst]).sum(-1)) / max(src.numel(), 1)  # (E,)
        adj = torch.zeros(n, n, dtype=torch.bool)
        adj[dst, src] = True
        neg_mask = ~adj & ~torch.eye(n, dtype=torch.bool)
        neg = F.softplus(z @ z.T) * neg_mask / max(int(neg_mask.sum()), 1)  # (n, n)
        node = torch.zeros(n, dtype=z.dtype)
        node.index_add_(0, src, pos / 2).index_add_(0, dst, pos / 2)
        node += neg.sum(1) / 2 + neg.sum(0) / 2
        return node.numpy().astype(np.float64), pos.numpy().astype(np.float64)


def input_gradients(
    model: AnomalyModel, g: Data, steps: int = 32
) -> tuple[np.ndarray, np.ndarray, float]:
    """(gradient x input (n, F), integrated gradients (n, F), IG completeness error)."""
    model.eval()
    h = model.inputs(g.x).detach()
    n = h.shape[0]
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    alpha = torch.as_tensor((nodes + 1.0) / 2.0, dtype=h.dtype)
    w = torch.as_tensor(weights / 2.0, dtype=h.dtype)
    # S + 2 copies of the graph in one batch: the S path points, x itself and the baseline
    scale = torch.cat([alpha, torch.tensor([1.0, 0.0], dtype=h.dtype)])  # (S + 2,)
    copies = scale.numel()
    hb = (scale[:, None, None] * h[None]).reshape(-1, h.shape[1]).requires_grad_(True)
    offs = torch.arange(copies)[:, None] * n
    ei = (g.edge_index[None] + offs[:, :, None].expand(-1, 2, 1)).permute(1, 0, 2).reshape(2, -1)
    batch = torch.arange(copies).repeat_interleave(n)
    s = score_from_inputs(model, hb, ei, batch, copies)  # (S + 2,)
    (grad,) = torch.autograd.grad(s.sum(), hb)
    grad = grad.reshape(copies, n, -1)
    gxi = (h * grad[steps]).numpy()
    ig = (h * (grad[:steps] * w[:, None, None]).sum(0)).detach().numpy()
    completeness = float(ig.sum() - (s[steps] - s[steps + 1]).item())
    return gxi.astype(np.float64), ig.astype(np.float64), completeness


class _LatentView(nn.Module):
    """LRP adapter: the model's encoder on one graph, output ``latent`` (n, L)."""

    def __init__(self, model: AnomalyModel, edge_index: Tensor) -> None:
        super().__init__()
        self.model = model
        self.edge_index = edge_index

    def lrp_trace(self, tr: Tracer, x: Tensor, batch: Tensor | None) -> dict[str, int]:
        return {"latent": self.model.trace_encoder(tr, self.edge_index)}

    def lrp_outputs(self, x: Tensor, batch: Tensor | None) -> dict[str, Tensor]:
        """The model's own latent, which the engine compares with the trace."""
        return {"latent": self.model.encode_inputs(x, self.edge_index)}


def lrp_latent(model: AnomalyModel, g: Data) -> tuple[np.ndarray, float]:
    """LRP relevance (L, n, F) of each latent dimension summed over nodes, and the worst
    relative conservation error ``|sum R + absorbed - explained| / |explained|`` per target."""
    with torch.no_grad():
        h = model.inputs(g.x).double()
    m64 = type(model)(model.cfg)
    m64.load_state_dict(model.state_dict())
    m64 = m64.double().eval()
    view = _LatentView(m64, g.edge_index)
    latent = m64.encode_inputs(h, g.edge_index).shape[1]
    out = np.zeros((latent, h.shape[0], h.shape[1]))
    worst = 0.0
    for d in range(latent):
        rel = explain_event(view, h, output=f"latent:{d}")
        out[d] = rel.to_dense().sum(0).numpy()  # (n, F): summed over the explained nodes
        err = rel.conservation_error()
        big = rel.explained.abs() > 1e-6 * float(rel.explained.abs().max().clamp_min(1e-30))
        if bool(big.any()):
            worst = max(worst, float(err[big].max()))
    return out, worst


@dataclass
class EventExplanation:
    """All contributions for one event; arrays over its n particles and E edges."""

    sample: str
    event: int
    score: float
    x: np.ndarray  # (n, 5) raw features (pT, eta, phi, m, pdg_id)
    edge_index: np.ndarray  # (2, E)
    node_contribution: np.ndarray  # (n,) exact score share
    edge_contribution: np.ndarray | None  # (E,) GAE positive-edge share
    grad_x_input: np.ndarray  # (n, F)
    integrated_gradients: np.ndarray  # (n, F)
    ig_completeness_error: float
    lrp: np.ndarray  # (L, n, F)
    lrp_conservation_error: float
    input_names: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        d = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}
        d["input_names"] = list(self.input_names)
        return d


def explain_graph(
    model: AnomalyModel, g: Data, sample: str = "", *, lrp: bool = True
) -> EventExplanation:
    """Every contribution of :mod:`this module <particlegraph.tasks.anomaly.explain>` for one graph."""
    model.eval()
    node, edge = decompose(model, g)
    gxi, ig, comp = input_gradients(model, g)
    rel, cons = lrp_latent(model, g) if lrp else (np.zeros((0, *gxi.shape)), float("nan"))
    return EventExplanation(
        sample, int(g.event), float(node.sum()), g.x.numpy().astype(np.float64),
        g.edge_index.numpy(), node, edge, gxi, ig, comp, rel, cons, model.input_names,
    )  # fmt: skip


def class_averages(model: AnomalyModel, graphs: list[Data]) -> dict[str, float]:
    """Mean share of the score per particle of each PDG code, over ``graphs``.

    Share = node contribution / event score, so every event counts equally; codes never seen
    give NaN.
    """
    sums = np.zeros(len(PDG_CODES))
    counts = np.zeros(len(PDG_CODES))
    for g in graphs:
        node, _ = decompose(model, g)
        share = node / max(node.sum(), 1e-30)
        pdg = g.x[:, 4].round().numpy()
        for c, code in enumerate(PDG_CODES):
            sel = pdg == code
            sums[c] += share[sel].sum()
            counts[c] += sel.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    return {lab: float(v) for lab, v in zip(PDG_LABELS, mean, strict=True)}


def write_explanations(
    explanations: list[EventExplanation],
    classes: dict[str, dict[str, float]],
    out: str | Path,
    title: str,
) -> Path:
    """``explanations.json``, one eta-phi display per event, per-class bars, ``report.html``."""
    from particlegraph.atomic import write_json
    from particlegraph.report.html import ReportSection, write_report
    from particlegraph.tasks.anomaly import plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "explanations.json",
        {"events": [e.to_dict() for e in explanations], "class_averages": classes},
    )
    imgs = []
    rows = []
    for e in explanations:
        sc = plots.event_display(
            e.x[:, 1], e.x[:, 2], e.x[:, 0], e.node_contribution, e.edge_index, e.edge_contribution,
            title=f"{e.sample} event {e.event}: score {e.score:.3g}",
        )  # fmt: skip
        imgs.append(plots.save(sc.axes.figure, out / f"display_{e.sample}_{e.event}.png"))
        top = int(np.argmax(e.node_contribution))
        rows.append([e.sample, e.event, e.score, top, e.x[top, 0], int(e.x[top, 4]),
                     e.ig_completeness_error, e.lrp_conservation_error])  # fmt: skip
    bar_imgs = []
    for name, avg in classes.items():
        ax = plots.class_bars(
            list(avg),
            np.array(list(avg.values())),
            ylabel=f"mean score share per particle ({name})",
        )
        bar_imgs.append(plots.save(ax.figure, out / f"classes_{name}.png"))
    sections = [
        ReportSection(
            "Event displays",
            imgs,
            "marker area ~ pT, colour ~ the particle's exact share of the score; edge shade ~ its share (GAE).",
        ),
        ReportSection(
            "Per particle type", bar_imgs, "mean share of the event score per particle, by PDG code"
        ),
    ]
    header = [
        "sample",
        "event",
        "score",
        "top node",
        "its pT [GeV]",
        "its PDG",
        "IG completeness err",
        "LRP conservation err",
    ]
    return write_report(out / "report.html", title, rows, sections, header=header)


def explain_sample(
    run: str | Path, sample: Any, n_events: int = 3, n_class_events: int = 200, *, lrp: bool = True
) -> tuple[list[EventExplanation], dict[str, float]]:
    """Explain the ``n_events`` highest-scoring events of ``sample`` (an evaluate ``SampleRef``)
    and average the per-type score shares over its first ``n_class_events`` events."""
    from particlegraph.tasks.anomaly.scores import score_graphs
    from particlegraph.tasks.anomaly.train import load_graphs, load_run

    model, cfg, _ = load_run(run)
    graphs = [
        g for g in load_graphs(sample.path, cfg.model, sample.start, sample.stop) if g.num_nodes > 1
    ]
    if not graphs:
        from particlegraph.errors import DataFileError

        raise DataFileError(f"{sample.path}: no event with at least two particles to explain")
    s = score_graphs(model, graphs).columns["recon"]
    top = np.argsort(-s, kind="stable")[:n_events]
    exps = [explain_graph(model, graphs[i], sample.name, lrp=lrp) for i in top]
    return exps, class_averages(model, graphs[:n_class_events])


def explain(
    run: str | Path,
    samples: Sequence[Any],
    out: str | Path,
    *,
    n_events: int = 3,
    n_class_events: int = 200,
    lrp: bool = True,
    overwrite: bool = False,
    title: str | None = None,
) -> Path:
    """``anomaly explain``: explain the top events of each sample and write ``out``.

    ``samples`` are ``name=path[:start[:stop]]`` strings or evaluate ``SampleRef``s. ``out`` is
    refused (before anything is computed) when it is, or lies inside, the run or a sample, or
    exists and was not made by ``anomaly explain``, unless ``overwrite``. ``title``: the page's
    (default ``Anomaly explanations: <run folder name>``). Returns the page.
    """
    from particlegraph.outputs import Output, claim, guard_outputs
    from particlegraph.tasks.anomaly.evaluate import parse_sample

    refs = [parse_sample(s) if isinstance(s, str) else s for s in samples]
    out = Path(out)
    guard_outputs("anomaly explain", [Output(out, "dir", "--out")],
                  [run, *(r.path for r in refs)], overwrite=overwrite)  # fmt: skip
    exps: list[EventExplanation] = []
    classes: dict[str, dict[str, float]] = {}
    for ref in refs:
        e, c = explain_sample(run, ref, n_events, n_class_events, lrp=lrp)
        exps += e
        classes[ref.name] = c
    claim(out, "anomaly explain", {"run": str(run), "samples": [r.name for r in refs]})
    title = title or f"Anomaly explanations: {Path(run).name}"
    return write_explanations(exps, classes, out, title)
