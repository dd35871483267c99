"""Per-graph anomaly scores, vectorised over a batch and deterministic.

Edge autoencoders (``gae-seed``, ``gae``): the expected ``recon_loss`` of the graph, with every
node pair scored instead of sampled negatives (a graph has at most 40 nodes, so the dense
(B, 40, 40) inner products are cheap):

    score_g = mean_{(j->i) in E_g} softplus(-z_i.z_j) + mean_{i != j, (j->i) not in E_g} softplus(z_i.z_j)

``softplus(-t) = -log sigmoid(t)`` is the positive-edge BCE and ``softplus(t) = -log(1 -
sigmoid(t))`` the negative one (PyG adds 1e-15 inside the log; we use the exact form).
Node autoencoder (``node-ae``): the mean (or pT-weighted mean) of the per-node MSE.
Per-graph reductions scatter per-node / per-edge values by graph id (``index_add_``), so the
score of a graph does not depend on which other graphs share its batch (BatchNorm in eval mode).

Remedy scores (node-ae): ``latent`` = Mahalanobis distance of the graph's pooled latent
(mean and standard deviation over nodes, (2 L,)) to a Gaussian fitted on background graphs; it is
large for events *simpler* than the background as well as for busier ones. ``combined`` =
Fisher's combination ``-log(1 - F_recon) - log(1 - F_latent)`` of the two scores' background CDFs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_dense_batch

from particlegraph.tasks.anomaly.dense import (
    DenseGraphs,
    GraphBatch,
    collate,
    dense_events,
    dense_graphs,
)
from particlegraph.tasks.anomaly.models import AnomalyModel, EdgeGAE, NodeAE, SetAE
from particlegraph.tasks.anomaly.samples import Candidates, take_events


def scatter_mean(values: Tensor, index: Tensor, size: int, weights: Tensor | None = None) -> Tensor:
    """Per-group (weighted) mean of ``values`` (M,) by ``index`` (M,) into (size,); 0 for empty groups."""
    w = torch.ones_like(values) if weights is None else weights.to(values.dtype)
    num = torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(
        0, index, values * w
    )
    den = torch.zeros(size, dtype=values.dtype, device=values.device).index_add_(0, index, w)
    return torch.where(
        den > 0, num / den.clamp_min(torch.finfo(values.dtype).tiny), torch.zeros_like(num)
    )


@dataclass
class EdgeTerms:
    """Per-edge and per-graph pieces of the dense GAE score of a batch."""

    pos_edge_loss: Tensor  # (E,) softplus(-z_i.z_j) per positive edge
    pos: Tensor  # (B,) mean positive-edge loss per graph
    neg: Tensor  # (B,) mean loss over all non-edge ordered pairs per graph
    score: Tensor  # (B,) pos + neg


def gae_terms(z: Tensor, edge_index: Tensor, batch: Tensor, num_graphs: int) -> EdgeTerms:
    """Dense GAE reconstruction score of every graph of a batch.

    Args:
        z: (N, L) node latents of the whole batch.
        edge_index: (2, E) positive edges (global indices, within graphs).
        batch: (N,) graph id per node, sorted.
        num_graphs: B.
    """
    src, dst = edge_index
    pos_edge = F.softplus(-(z[src] * z[dst]).sum(-1))  # (E,)
    pos = scatter_mean(pos_edge, batch[dst], num_graphs)
    zd, mask = to_dense_batch(z, batch, batch_size=num_graphs)  # (B, n, L), (B, n)
    b, n = mask.shape
    logits = torch.bmm(zd, zd.transpose(1, 2))  # (B, n, n): [target i, source j]
    ptr = torch.zeros(num_graphs + 1, dtype=torch.long, device=z.device)
    ptr[1:] = torch.bincount(batch, minlength=num_graphs).cumsum(0)
    local = torch.arange(z.shape[0], device=z.device) - ptr[batch]
    adj = torch.zeros(b, n, n, dtype=torch.bool, device=z.device)
    adj[batch[dst], local[dst], local[src]] = True
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    neg_mask = mask[:, :, None] & mask[:, None, :] & ~eye & ~adj
    neg_loss = F.softplus(logits) * neg_mask
    cnt = neg_mask.sum((1, 2))
    neg = torch.where(cnt > 0, neg_loss.sum((1, 2)) / cnt.clamp_min(1), torch.zeros_like(pos))
    return EdgeTerms(pos_edge, pos, neg, pos + neg)


@dataclass
class GraphScores:
    """Scores of a set of graphs: ``columns`` name -> (G,) numpy arrays (higher = more anomalous)."""

    columns: dict[str, np.ndarray]
    latent_summary: np.ndarray | None = None  # (G, 2 L) pooled latents (node-ae)


def latent_summary(z: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """(B, 2 L): per-graph mean and standard deviation of node latents over its nodes."""
    mean = torch.stack([scatter_mean(z[:, d], batch, num_graphs) for d in range(z.shape[1])], 1)
    var = torch.stack(
        [
            scatter_mean((z[:, d] - mean[batch, d]) ** 2, batch, num_graphs)
            for d in range(z.shape[1])
        ],
        1,
    )
    return torch.cat([mean, var.clamp_min(0).sqrt()], 1)


@torch.no_grad()
def score_batch(model: AnomalyModel, batch: GraphBatch | Batch) -> dict[str, Tensor]:
    """Per-graph score tensors (B,) of one batch; node-ae also returns ``latent_summary``."""
    model.eval()
    b = int(batch.num_graphs)
    if isinstance(model, SetAE):  # dense by construction; one graph or many give the same
        hd, mask = to_dense_batch(model.inputs(batch.x), batch.batch, batch_size=b)
        ch, z = model.chamfer_dense(hd, mask)
        zf = z[mask]
        return {"recon": ch, "latent_summary": latent_summary(zf, batch.batch, b)}
    if isinstance(model, EdgeGAE):
        z = model.encode(batch.x, batch.edge_index)
        return {"recon": gae_terms(z, batch.edge_index, batch.batch, b).score}
    assert isinstance(model, NodeAE)
    err, z = model.node_errors(batch.x, batch.edge_index)
    return {
        "recon": scatter_mean(err, batch.batch, b),
        "recon_ptw": scatter_mean(err, batch.batch, b, weights=batch.x[:, 0]),
        "latent_summary": latent_summary(z, batch.batch, b),
    }


_UPPER: dict[tuple[int, str], Tensor] = {}


def _upper_flat(n: int, device: torch.device) -> Tensor:
    """Flat indices (n (n-1) / 2,) of the strict upper triangle of an (n, n) block (cached)."""
    key = (n, str(device))
    if key not in _UPPER:
        iu = torch.triu_indices(n, n, 1, device=device)
        _UPPER[key] = iu[0] * n + iu[1]
    return _UPPER[key]


@torch.no_grad()
def score_dense(model: AnomalyModel, dg: DenseGraphs) -> dict[str, Tensor]:
    """The scores of :func:`score_batch` on padded dense graphs (n <= 40 nodes), the fast path
    of :func:`score_graphs` and :func:`score_events`: one ``bmm`` per GCN layer instead of
    gathers and scatters.

    GAE: with padded latents set to zero, every padded pair has logit 0 and softplus(0) = ln 2,
    so the sum over real non-edge pairs is the sum over the whole (n, n) block minus the padding
    (``(n^2 - m^2) ln 2``), the diagonal and the positive edges (summed in float64).
    """
    model.eval()
    mask = dg.mask
    if isinstance(model, SetAE):
        ch, z = model.chamfer_dense(model.dense_inputs(dg.x), mask)
        return {"recon": ch, "latent_summary": _dense_summary(z, mask)}
    hd = model.dense_inputs(dg.x)
    z = model.encode_dense(hd, dg.a_hat) * mask[:, :, None]  # (B, n, L), zero padding
    if isinstance(model, EdgeGAE):
        return {"recon": _dense_gae(z, mask, dg.edges)}
    assert isinstance(model, NodeAE)
    m = mask.sum(1).to(z.dtype)
    err = ((model.decoder(z) - hd) ** 2).mean(-1) * mask  # (B, n)
    w = dg.x[:, :, 0] * mask
    return {
        "recon": err.sum(1) / m.clamp_min(1),
        "recon_ptw": torch.where(
            w.sum(1) > 0, (err * w).sum(1) / w.sum(1).clamp_min(1e-30), torch.zeros_like(m)
        ),
        "latent_summary": _dense_summary(z, mask),
    }


def _dense_summary(z: Tensor, mask: Tensor) -> Tensor:
    """(B, 2 L) mean and standard deviation of the latents (B, n, L) over each graph's nodes."""
    z = z * mask[:, :, None]
    cnt = mask.sum(1).clamp_min(1)[:, None].to(z.dtype)
    zm = z.sum(1) / cnt
    zv = (((z - zm[:, None, :]) ** 2) * mask[:, :, None]).sum(1) / cnt
    return torch.cat([zm, zv.clamp_min(0).sqrt()], 1)


def _dense_gae(z: Tensor, mask: Tensor, edges: Tensor) -> Tensor:
    """(B,) dense GAE score of zero-padded latents ``z`` (B, n, L), positive ``edges`` (E,)
    flat into (B, n, n) [target, source], grouped graph after graph (as :mod:`.dense` makes
    them)."""
    b, n = mask.shape
    m = mask.sum(1).to(torch.float64)  # (B,) nodes per graph
    # z z^T is symmetric: softplus over the strict upper triangle only (half the work),
    # counted twice; padded pairs there are (n(n-1) - m(m-1)) / 2 times softplus(0) = ln 2,
    # taken in z's precision and the sum in float64, so that padding cancels exactly (a float32
    # sum over a mostly padded block lost 1e-4 of a 5-node graph's score)
    logits = torch.bmm(z, z.transpose(1, 2)).view(b, n * n)  # (B, n^2) [target, source]
    upper = F.softplus(logits.index_select(1, _upper_flat(n, z.device))).sum(1, dtype=torch.float64)
    ln2 = float(F.softplus(torch.zeros((), dtype=z.dtype)))
    off_diag = 2.0 * (upper - (n * (n - 1) - m * (m - 1)) / 2 * ln2)  # ordered pairs i != j
    logit = logits.view(-1).index_select(0, edges)  # (E,)
    # the edges of graph g lie in [g n^2, (g+1) n^2) and come graph after graph (both builders
    # keep that order), so "edge < g n^2" is monotone along them and a binary search finds each
    # graph's first edge; per-graph sums are differences of one float64 cumulative sum
    bounds = torch.arange(b + 1, dtype=edges.dtype) * (n * n)
    ptr = torch.searchsorted(edges, bounds)  # (B+1,)
    n_pos = (ptr[1:] - ptr[:-1]).to(torch.float64)
    sp_neg = F.softplus(-logit)  # softplus(t) = softplus(-t) + t: one call
    per = edges.numel() // max(b, 1)
    if per * b == edges.numel() and bool((n_pos == per).all()):  # every graph has `per` edges
        pos_sum = sp_neg.view(b, per).sum(1, dtype=torch.float64)
        pos_sp = pos_sum + logit.view(b, per).sum(1, dtype=torch.float64)
    else:
        both = torch.stack([sp_neg, sp_neg + logit], 1).double()  # (E, 2)
        csum = torch.cat([both.new_zeros(1, 2), torch.cumsum(both, 0)])  # (E+1, 2)
        sums = csum.index_select(0, ptr[1:]) - csum.index_select(0, ptr[:-1])  # (B, 2)
        pos_sum, pos_sp = sums[:, 0], sums[:, 1]
    n_neg = m * m - m - n_pos
    pos = torch.where(n_pos > 0, pos_sum / n_pos.clamp_min(1), torch.zeros_like(m))
    neg = torch.where(n_neg > 0, (off_diag - pos_sp) / n_neg.clamp_min(1), torch.zeros_like(m))
    return (pos + neg).to(z.dtype)


def _columns(parts: dict[str, list[Tensor]]) -> GraphScores:
    cols = {k: torch.cat(v).numpy().astype(np.float64) for k, v in parts.items()}
    summ = cols.pop("latent_summary", None)
    return GraphScores(cols, summ)


def score_graphs(model: AnomalyModel, graphs: list[Data], batch_size: int = 512) -> GraphScores:
    """Scores of ``graphs`` in batches of ``batch_size`` (result independent of the batch size)."""
    parts: dict[str, list[Tensor]] = {}
    for lo in range(0, len(graphs), batch_size):
        for k, v in score_dense(model, dense_graphs(collate(graphs[lo : lo + batch_size]))).items():
            parts.setdefault(k, []).append(v.cpu())
    return _columns(parts)


def score_events(model: AnomalyModel, c: Candidates, batch_size: int = 4096) -> GraphScores:
    """Scores of every event of ``c`` straight from its PF candidates (:func:`.dense.dense_events`:
    no ``Data`` per event), ``batch_size`` events at a time; equal to building the graphs with
    the model's settings and calling :func:`score_graphs`."""
    m = model.cfg
    parts: dict[str, list[Tensor]] = {}
    for lo in range(0, c.num_events, batch_size):
        dg = dense_events(take_events(c, lo, lo + batch_size), k=m.k, symmetric=m.use_symmetric,
                          lowest=m.select == "lowest", frame=m.frame)  # fmt: skip
        for k, v in score_dense(model, dg).items():
            parts.setdefault(k, []).append(v.cpu())
    return _columns(parts)


def score_one_by_one(model: AnomalyModel, graphs: list[Data]) -> GraphScores:
    """Reference: every graph scored alone through PyG's own batching; slow, for tests/benchmarks."""
    parts: dict[str, list[Tensor]] = {}
    for g in graphs:
        for k, v in score_batch(model, Batch.from_data_list([g])).items():
            parts.setdefault(k, []).append(v.cpu())
    return _columns(parts)


@dataclass(frozen=True)
class Calibration:
    """Background reference of the remedy scores, fitted on held-out background graphs."""

    mean: np.ndarray  # (2 L,) latent-summary mean
    inv_cov: np.ndarray  # (2 L, 2 L) inverse covariance (ridge 1e-6 relative)
    recon_ref: np.ndarray  # sorted background recon scores
    latent_ref: np.ndarray  # sorted background latent (Mahalanobis) scores

    @classmethod
    def fit(cls, recon: np.ndarray, summary: np.ndarray) -> Calibration:
        mean = summary.mean(0)
        cov = np.cov(summary, rowvar=False).reshape(summary.shape[1], summary.shape[1])
        cov = (
            cov
            + 1e-6 * np.trace(cov) / max(len(cov), 1) * np.eye(len(cov))
            + 1e-12 * np.eye(len(cov))
        )
        inv = np.linalg.inv(cov)
        cal = cls(mean, inv, np.sort(recon), np.zeros(0))
        return cls(mean, inv, np.sort(recon), np.sort(cal.mahalanobis(summary)))

    def mahalanobis(self, summary: np.ndarray) -> np.ndarray:
        d = summary - self.mean
        quad: np.ndarray = np.einsum("gi,ij,gj->g", d, self.inv_cov, d)
        dist: np.ndarray = np.sqrt(quad.clip(min=0))
        return dist

    @staticmethod
    def _tail(ref: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Background survival fraction P(S >= s), floored at half an event: (G,)."""
        above = ref.size - np.searchsorted(ref, s, side="left")
        return np.maximum(above, 0.5) / ref.size

    def remedy(self, recon: np.ndarray, summary: np.ndarray) -> dict[str, np.ndarray]:
        """``latent`` (Mahalanobis) and ``combined`` (Fisher) scores (G,)."""
        lat = self.mahalanobis(summary)
        comb = -np.log(self._tail(self.recon_ref, recon)) - np.log(self._tail(self.latent_ref, lat))
        return {"latent": lat, "combined": comb}

    def to_dict(self) -> dict[str, list[float] | list[list[float]]]:
        return {"mean": self.mean.tolist(), "inv_cov": self.inv_cov.tolist(),
                "recon_ref": self.recon_ref.tolist(), "latent_ref": self.latent_ref.tolist()}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, list]) -> Calibration:  # type: ignore[type-arg]
        return cls(
            *(
                np.asarray(d[k], dtype=np.float64)
                for k in ("mean", "inv_cov", "recon_ref", "latent_ref")
            )
        )
