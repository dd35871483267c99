"""Node and edge features of the layer-pair graph and the edge classifier (filter + interaction net).

Node features ``NODE_FEATURES`` (N, 7): r [m], cos phi, sin phi, z [m], eta of the hit position,
cluster cell count and charge. Edge features ``EDGE_FEATURES`` (E, 7) of an edge i -> j: dr
[100 mm], dphi [rad], dz [100 mm], deta, z0 [m] (the pair's line at r = 0; 0 where |dr| <= 1 mm),
dphi / dr [1/m] (phi slope) and the curvature [1/m] of the circle through the origin and both
hits. Both are standardised with statistics of the training events stored in the model.

:class:`EdgeClassifier`: an optional cheap filter MLP on ``[x_i, x_j, e_ij]`` (Exa.TrkX's filter,
Ju et al. arXiv:2103.06995) that removes most fake edges, then
:class:`~particlegraph.nn.interaction.InteractionNetwork` on the edges it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.nn.interaction import EDGE_CHUNK, InteractionNetwork, edge_mlp, edge_mlp_chunked
from particlegraph.nn.mlp import MLP

NODE_FEATURES = ("r", "cos_phi", "sin_phi", "z", "eta", "cell_count", "charge_value")
EDGE_FEATURES = ("dr", "dphi", "dz", "deta", "z0", "phi_slope", "curvature")


def node_features(x: Tensor) -> Tensor:
    """``NODE_FEATURES`` (N, 7) from the dataset's hit features ``x`` (N, 6) (r, cos, sin, z [m], ...)."""
    return torch.cat([x[:, :4], hit_eta(x)[:, None], x[:, 4:6]], dim=1)


def hit_eta(x: Tensor) -> Tensor:
    """Pseudorapidity (N,) of the hit positions in ``x`` (N, 6)."""
    return torch.asinh(x[:, 3] / x[:, 0].clamp_min(1e-6))


def edge_features(x: Tensor, edge_index: Tensor, eta: Tensor | None = None) -> Tensor:
    """``EDGE_FEATURES`` (E, 7) of edges (2, E) from hit features ``x`` (N, 6) (positions in m);
    ``eta`` (N,) is :func:`hit_eta` of ``x`` when the caller has it (a chunked caller computes
    it once rather than once per chunk)."""
    i, j = edge_index
    eta = hit_eta(x) if eta is None else eta
    # every hit quantity gathered once per end (the same values as indexing at each use)
    hit = (x[:, 0], x[:, 3], x[:, 1], x[:, 2], eta)  # r, z, cos phi, sin phi, eta
    ri, zi, ci, si, etai = (t.index_select(0, i) for t in hit)
    rj, zj, cj, sj, etaj = (t.index_select(0, j) for t in hit)
    dr = rj - ri
    dz = zj - zi
    # dphi from the angle-difference identities (no wrap-around)
    dphi = torch.atan2(sj * ci - cj * si, cj * ci + sj * si)
    ok = dr.abs() > 1e-3
    safe = torch.where(ok, dr, torch.ones_like(dr))
    z0 = torch.where(ok, zi - ri * dz / safe, torch.zeros_like(dr)).clamp(-3.0, 3.0)
    slope = torch.where(ok, dphi / safe, torch.zeros_like(dr)).clamp(-50.0, 50.0)
    xi, yi, xj, yj = ri * ci, ri * si, rj * cj, rj * sj
    chord = torch.sqrt((xj - xi) ** 2 + (yj - yi) ** 2).clamp_min(1e-6)
    curv = 2.0 * (xi * yj - xj * yi) / (ri.clamp_min(1e-6) * rj.clamp_min(1e-6) * chord)
    deta = etaj - etai
    return torch.stack([dr * 10, dphi, dz * 10, deta, z0, slope, curv], dim=1)


@dataclass(frozen=True)
class EdgeModelConfig:
    """The classifier: interaction network widths and the optional filter MLP."""

    hidden: int = 32  # latent width of the interaction network
    iterations: int = 6  # message-passing rounds
    mlp_layers: int = 2  # Linear layers per MLP
    filter_hidden: int = 0  # width of the filter MLP; 0: no filter
    filter_layers: int = 3

    def __post_init__(self) -> None:
        if self.hidden < 1 or self.iterations < 1 or self.mlp_layers < 1 or self.filter_hidden < 0:
            raise ConfigError("model: hidden, iterations, mlp_layers >= 1 and filter_hidden >= 0")


class EdgeClassifier(nn.Module):
    """Standardisation + (filter MLP) + interaction network; logits per edge.

    Shapes:
        x (N, 6) dataset hit features, edge_index (2, E) -> logits (E,)
    """

    def __init__(self, cfg: EdgeModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        nf, ef = len(NODE_FEATURES), len(EDGE_FEATURES)
        for name, width in (("node", nf), ("edge", ef)):
            self.register_buffer(f"{name}_mean", torch.zeros(width))
            self.register_buffer(f"{name}_std", torch.ones(width))
        self.filter: nn.Module | None = None
        if cfg.filter_hidden > 0:
            self.filter = MLP(2 * nf + ef, cfg.filter_hidden, 1, cfg.filter_layers,
                              activation="relu", norm="none")  # fmt: skip
        self.gnn = InteractionNetwork(nf, ef, cfg.hidden, cfg.iterations, cfg.mlp_layers)

    def set_standardization(self, x: Tensor, edge_index: Tensor) -> None:
        """Set the feature means and standard deviations from training hits and edges."""
        n, e = node_features(x), edge_features(x, edge_index)
        for name, t in (("node", n), ("edge", e)):
            getattr(self, f"{name}_mean").copy_(t.mean(0))
            getattr(self, f"{name}_std").copy_(t.std(0).clamp_min(1e-6))

    def inputs(self, x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """Standardised node (N, 7) and edge (E, 7) features."""
        nm, ns, em, es = (
            self.get_buffer(k) for k in ("node_mean", "node_std", "edge_mean", "edge_std")
        )
        n = (node_features(x) - nm) / ns
        e = (edge_features(x, edge_index) - em) / es
        return n, e

    def filter_logits(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Filter logits (E,); zeros (keep everything) without a filter."""
        if self.filter is None:
            return x.new_zeros(edge_index.shape[1])
        n, e = self.inputs(x, edge_index)
        assert isinstance(self.filter, nn.Sequential)
        return edge_mlp(self.filter, n, edge_index, e).squeeze(1)

    @torch.no_grad()
    def inputs_chunked(
        self, x: Tensor, edge_index: Tensor, chunk: int = EDGE_CHUNK
    ) -> tuple[Tensor, Tensor]:
        """:meth:`inputs` without gradients, the edge features ``chunk`` edges at a time (their
        temporaries stay small at millions of edges)."""
        nm, ns, em, es = (
            self.get_buffer(k) for k in ("node_mean", "node_std", "edge_mean", "edge_std")
        )
        n = (node_features(x) - nm) / ns
        e = x.new_empty(edge_index.shape[1], len(EDGE_FEATURES))
        eta = hit_eta(x)
        for i in range(0, edge_index.shape[1], chunk):
            e[i : i + chunk] = (edge_features(x, edge_index[:, i : i + chunk], eta) - em) / es
        return n, e

    @torch.no_grad()
    def filter_logits_chunked(
        self, x: Tensor, edge_index: Tensor, chunk: int = EDGE_CHUNK
    ) -> Tensor:
        """:meth:`filter_logits` without gradients, ``chunk`` edges at a time (bounded memory)."""
        if self.filter is None:
            return x.new_zeros(edge_index.shape[1])
        if edge_index.shape[1] == 0:
            return x.new_zeros(0)
        n, e = self.inputs_chunked(x, edge_index, chunk)
        assert isinstance(self.filter, nn.Sequential)
        out = x.new_empty(edge_index.shape[1], 1)
        return edge_mlp_chunked(self.filter, n, edge_index, e, out, chunk).squeeze(1)

    @torch.no_grad()
    def logits_chunked(self, x: Tensor, edge_index: Tensor, chunk: int = EDGE_CHUNK) -> Tensor:
        """The interaction network's logits (E,) for inference, ``chunk`` edges at a time
        (:meth:`~particlegraph.nn.interaction.InteractionNetwork.forward_chunked`): the same
        logits as ``self(x, edge_index)`` to float round-off, at a fraction of the memory."""
        n, e = self.inputs_chunked(x, edge_index, chunk)
        logits: Tensor = self.gnn.forward_chunked(n, edge_index, e, chunk)
        return logits

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        n, e = self.inputs(x, edge_index)
        logits: Tensor = self.gnn(n, edge_index, e)
        return logits

    def forward_features(self, n: Tensor, edge_index: Tensor, e: Tensor) -> Tensor:
        """Logits from already standardised features (for gradient explanations)."""
        logits: Tensor = self.gnn(n, edge_index, e)
        return logits
