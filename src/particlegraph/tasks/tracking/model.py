"""The tracking model: stage 1 metric-learning embedding, stage 2 edge-weighted GNN.

Stage 1 (graph construction, as in Exa.TrkX: Ju et al. 2021, arXiv:2103.06995) maps each hit's
standardised features to a point in a D1-dimensional space where hits of one particle are close;
the *predicted graph* links each hit to its ``k`` nearest neighbours within radius ``r`` there.
Stage 2 (the GNN of the GNN-tracking exercise) refines the embedding with ``gnn_layers``
:class:`~particlegraph.nn.edgeconv.EdgeWeightedConv` layers on that graph, input
``[standardised features, stage-1 embedding]``, and a final Linear to D2 dimensions; DBSCAN then
clusters the refined points into tracks (:mod:`.pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.models import trace_message_passing
from particlegraph.explain.lrp.program import Program, Tracer
from particlegraph.nn.edgeconv import EdgeWeightedConv
from particlegraph.tasks.tracking.dataset import FEATURES


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of both stages."""

    num_features: int = len(FEATURES)  # F, hit features (see dataset.FEATURES)
    embed_hidden: int = 64  # width of the stage-1 MLP
    embed_layers: int = 3  # hidden layers of the stage-1 MLP
    embed_dim: int = 8  # D1, stage-1 embedding dimension
    gnn_hidden: int = 16  # width of the edge-weighted conv layers (exercise: 16)
    gnn_layers: int = 4  # number of conv layers (exercise: 4)
    edge_hidden: int = 16  # hidden width of each layer's edge-kernel MLP
    out_dim: int = 8  # D2, refined embedding dimension

    def __post_init__(self) -> None:
        for name in (
            "num_features",
            "embed_hidden",
            "embed_dim",
            "gnn_hidden",
            "edge_hidden",
            "out_dim",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.embed_layers < 0 or self.gnn_layers < 0:
            raise ConfigError("model.embed_layers and model.gnn_layers must be >= 0")


def _mlp(n_in: int, hidden: int, layers: int, n_out: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = n_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, n_out))
    return nn.Sequential(*mods)


class TrackingModel(nn.Module):
    """Both stages in one module (one checkpoint).

    Shapes:
        x (N, F) raw hit features; :meth:`embed` -> (N, D1);
        :meth:`forward` (x, edge_index (2, E)) -> (N, D2)
    """

    mean: Tensor  # (F,) feature means (buffer)
    std: Tensor  # (F,) feature spreads (buffer)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        f = cfg.num_features
        self.register_buffer("mean", torch.zeros(f))
        self.register_buffer("std", torch.ones(f))
        self.embedder = _mlp(f, cfg.embed_hidden, cfg.embed_layers, cfg.embed_dim)
        width = f + cfg.embed_dim
        convs = []
        for _ in range(cfg.gnn_layers):
            convs.append(EdgeWeightedConv(width, cfg.gnn_hidden, cfg.edge_hidden))
            width = cfg.gnn_hidden
        self.convs = nn.ModuleList(convs)
        self.out = nn.Linear(width, cfg.out_dim)

    def set_standardization(self, mean: Tensor, std: Tensor) -> None:
        """Feature mean and spread (F,) from the training hits."""
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-6))

    def standardize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def embed(self, x: Tensor) -> Tensor:
        """Stage 1: (N, F) -> (N, D1)."""
        emb: Tensor = self.embedder(self.standardize(x))
        return emb

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Stage 2 on the predicted graph: (N, F), (2, E) -> (N, D2)."""
        xs = self.standardize(x)
        h = torch.cat([xs, self.embedder(xs)], dim=-1)
        for conv in self.convs:
            h = conv(h, edge_index)
        return self.out(h)  # type: ignore[no-any-return]

    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """Parameters trained in stage 1 (the embedder) or stage 2 (convs and output)."""
        if stage == 1:
            return list(self.embedder.parameters())
        return [*self.convs.parameters(), *self.out.parameters()]


def trace_tracking(model: TrackingModel, x: Tensor, edge_index: Tensor) -> Program:
    """Record the full model (standardisation, stage 1, GNN) for LRP on raw features ``x``.

    The standardisation is a diagonal linear map; each conv's BatchNorm a diagonal linear map;
    its sigmoid edge weights are held fixed (the engine's aggregation rule with ``edge_weight``),
    so no relevance flows into the edge kernel. Outputs ``"embedding"`` (N, D2), ``"stage1"``.
    """
    tr = Tracer(x)
    inv = 1.0 / model.std
    xs = tr.linear("standardize", 0, torch.diag(inv), -model.mean * inv, model.standardize(x))
    e1 = tr.sequential("embedder", xs, model.embedder)
    h = tr.concat("input", [xs, e1])
    n = x.shape[0]
    for i, layer in enumerate(model.convs):
        conv = cast(EdgeWeightedConv, layer)
        hn = tr.batchnorm(f"convs.{i}.norm", h, cast(nn.BatchNorm1d, conv.norm))
        w = conv.edge_weight(tr.value(hn), edge_index)
        agg = conv.propagate(edge_index, x=tr.value(hn), edge_weight=w, size=(n, n))
        m = trace_message_passing(tr, f"convs.{i}.aggregate", hn, edge_index, "sum", w, agg)
        c = tr.concat(f"convs.{i}.cat", [hn, m])
        lin = tr.module_linear(f"convs.{i}.lin", c, conv.lin)
        h = tr.activation(f"convs.{i}.relu", lin, torch.relu)
    out = tr.module_linear("out", h, model.out)
    return tr.program({"embedding": out, "stage1": e1})
