"""``set-ae``: a node-wise autoencoder with dynamic EdgeConv layers and a set-level (Chamfer) loss.

EdgeConv (Wang et al., "Dynamic Graph CNN for Learning on Point Clouds", ACM TOG 38 (2019) 146,
arXiv:1801.07829): ``h_i' = max_{j in kNN(i)} MLP([h_i, h_j - h_i])`` with the k nearest
neighbours recomputed in each layer's own feature space ("dynamic" graph). Particle-graph
autoencoders built from such layers and trained with a set distance were studied by Tsan et al.,
"Particle Graph Autoencoders and Differentiable, Learned Energy Mover's Distance",
arXiv:2111.12849; this is our own small version for the 40 leading PF candidates.

Graphs hold at most 40 nodes, so everything runs on padded dense blocks (B, n, C) with a node
mask (B, n): pairwise distances (B, n, n), ``topk`` neighbours, one gather. Padded nodes are never
anyone's neighbour and their outputs are ignored, so a graph's result does not depend on the other
graphs of its batch.

Loss and score (per graph, on the model inputs ``x`` and the decoded set ``y``, n nodes each):

    chamfer = mean_i min_j |x_i - y_j|^2 + mean_j min_i |x_i - y_j|^2

a permutation-invariant reconstruction error of the *set* of particles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch


class DenseEdgeConv(nn.Module):
    """Dynamic EdgeConv on padded graphs: (B, n, C_in) + mask (B, n) -> (B, n, C_out).

    ``MLP = Linear(2 C_in, C_out) -> ReLU -> Linear(C_out, C_out)``, max over the ``k`` nearest
    other nodes (Euclidean in the input features); a node without neighbours (a one-node graph)
    aggregates ``MLP([h_i, 0])``.
    """

    def __init__(self, in_channels: int, out_channels: int, k: int = 8) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"EdgeConv needs k >= 1, got {k}")
        self.k = k
        self.lin1 = nn.Linear(2 * in_channels, out_channels)
        self.lin2 = nn.Linear(out_channels, out_channels)

    def neighbours(self, h: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Indices (B, n, k') of each node's k' = min(k, n - 1) nearest other real nodes and a
        validity mask (B, n, k') (False where a graph has fewer than k' + 1 nodes)."""
        n = h.shape[1]
        kk = max(min(self.k, n - 1), 1)
        with torch.no_grad():
            d = torch.cdist(h, h)  # (B, n, n)
            bad = ~(mask[:, :, None] & mask[:, None, :]) | torch.eye(
                n, dtype=torch.bool, device=h.device
            )
            d = d.masked_fill(bad, float("inf"))
            dist, idx = torch.topk(d, kk, dim=-1, largest=False)  # (B, n, k')
        return idx, torch.isfinite(dist)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        b, n, c = h.shape
        idx, valid = self.neighbours(h, mask)
        w = self.lin1.weight  # (C_out, 2 C_in): [h_i, h_j - h_i] -> split per node, gather per edge
        own = h @ (w[:, :c] - w[:, c:]).T + self.lin1.bias  # (B, n, C_out)
        other = h @ w[:, c:].T  # (B, n, C_out)
        kk = idx.shape[-1]
        flat = idx.reshape(b, n * kk, 1).expand(-1, -1, other.shape[-1])
        hj = torch.gather(other, 1, flat).reshape(b, n, kk, -1)  # (B, n, k', C_out)
        msg = self.lin2(F.relu(own[:, :, None, :] + hj))  # (B, n, k', C_out)
        msg = msg.masked_fill(~valid[..., None], float("-inf"))
        out = msg.max(dim=2).values
        alone = self.lin2(F.relu(own))  # MLP([h_i, 0 - ...]) stand-in for nodes with no neighbour
        has = valid.any(-1, keepdim=True)
        return torch.where(has, out, alone)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.lin1.in_features // 2}, {self.lin2.out_features}, k={self.k})"


def chamfer(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Per-graph Chamfer distance (B,) between sets ``x`` and ``y`` (B, n, F) of the real nodes
    ``mask`` (B, n) (squared Euclidean; 0 for an empty graph)."""
    d = ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)  # (B, n, n); no sqrt: finite grads
    pair = mask[:, :, None] & mask[:, None, :]
    d = d.masked_fill(~pair, float("inf"))
    m = mask.sum(1).clamp_min(1).to(x.dtype)
    a = torch.where(mask, d.min(dim=2).values, torch.zeros_like(d[:, :, 0])).sum(1) / m
    c = torch.where(mask, d.min(dim=1).values, torch.zeros_like(d[:, 0, :])).sum(1) / m
    return a + c


class SetEncoderDecoder(nn.Module):
    """Linear -> ReLU -> EdgeConv x layers -> Linear(latent) per node; decoder Linear -> ReLU ->
    EdgeConv -> Linear(out) per node (all dense, with a mask)."""

    def __init__(self, n_in: int, hidden: int, latent: int, layers: int, k: int) -> None:
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.convs = nn.ModuleList(DenseEdgeConv(hidden, hidden, k) for _ in range(layers))
        self.to_latent = nn.Linear(hidden, latent)
        self.dec_in = nn.Linear(latent, hidden)
        self.dec_conv = DenseEdgeConv(hidden, hidden, k)
        self.dec_out = nn.Linear(hidden, n_in)

    def encode(self, h: Tensor, mask: Tensor) -> Tensor:
        """Latent (B, n, latent) of model inputs ``h`` (B, n, F)."""
        a = F.relu(self.inp(h))
        for conv in self.convs:
            a = F.relu(conv(a, mask))
        z: Tensor = self.to_latent(a)
        return z

    def decode(self, z: Tensor, mask: Tensor) -> Tensor:
        """Decoded node set (B, n, F) of latents ``z`` (B, n, latent)."""
        a = F.relu(self.dec_in(z))
        a = F.relu(self.dec_conv(a, mask))
        out: Tensor = self.dec_out(a)
        return out


def dense_from_sparse(h: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
    """(N, F) node rows + graph ids (N,) -> padded (B, n, F) and mask (B, n)."""
    hd, mask = to_dense_batch(h, batch)
    return hd, mask
