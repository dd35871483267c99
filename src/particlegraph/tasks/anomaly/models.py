"""Graph autoencoders of the anomaly task: ``gae-seed``, ``gae`` and ``node-ae``.

- ``gae-seed``: the source exercise's model exactly: BatchNorm(5) -> GCNConv(5, 32) -> ReLU ->
  BatchNorm(32) -> GCNConv(32, 8) on the raw features ``(pT, eta, phi, m, pdg_id)``, wrapped in
  PyG's ``GAE`` (inner-product edge decoder), trained with ``recon_loss`` on the directed kNN
  edges and negatives sampled inside each graph (``batched_negative_sampling``).
- ``gae``: the same idea done well: preprocessed features (:func:`~.graphs.preprocess`), a wider
  encoder Linear -> ReLU -> (GCNConv -> ReLU) x (layers - 1) -> GCNConv(latent), symmetrised edges.
- ``node-ae``: the node-wise autoencoder the exercise proposes: the same GCN encoder to a small
  latent per node and an MLP decoder back to the 12 preprocessed features; loss = MSE per node.

Each model keeps its preprocessing as a buffer (``prep``: log-pT mean/std, eta mean/std), so a
checkpoint is self-contained. ``trace_encoder`` records the encoder for LRP with the engine's
GCN-normalised aggregation (:func:`particlegraph.explain.lrp.trace_message_passing`).

Shapes: ``x`` (N, 5) raw features, ``edge_index`` (2, E), latent ``z`` (N, latent).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GAE, GCNConv
from torch_geometric.utils import batched_negative_sampling

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp import Tracer, trace_message_passing
from particlegraph.tasks.anomaly.graphs import PRE_FEATURES, RAW_FEATURES, Preprocessing, preprocess

MODEL_NAMES = ("gae-seed", "gae", "node-ae", "set-ae")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one anomaly model (the ``model:`` section of a run config)."""

    name: str = "node-ae"  # gae-seed | gae | node-ae | set-ae
    hidden: int = 64  # encoder/decoder width (gae, node-ae; gae-seed is fixed at 32)
    latent: int = 4  # latent size per node (gae-seed is fixed at 8)
    layers: int = 2  # GCN layers of the encoder (gae, node-ae)
    symmetric: bool | None = None  # symmetrise the kNN edges; None: False for gae-seed, else True
    k: int = 3  # kNN neighbours in (eta, phi)
    select: str = "highest"  # the 40 "highest"-pT candidates, or "lowest" (the exercise's bug)
    frame: str = "lab"  # node coordinates: "lab" or "event" (pT fractions, relative eta/phi)
    edgeconv_k: int = 8  # set-ae: neighbours of the dynamic EdgeConv layers (feature space)

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ConfigError(
                f"model.name must be one of {', '.join(MODEL_NAMES)}, got {self.name!r}"
            )
        if self.frame not in ("lab", "event"):
            raise ConfigError(f"model.frame must be 'lab' or 'event', got {self.frame!r}")
        if self.select not in ("highest", "lowest"):
            raise ConfigError(f"model.select must be 'highest' or 'lowest', got {self.select!r}")
        if self.edgeconv_k < 1:
            raise ConfigError(f"model.edgeconv_k must be >= 1, got {self.edgeconv_k}")
        if self.hidden < 1 or self.latent < 1 or self.layers < 1 or self.k < 1:
            raise ConfigError("model.hidden, model.latent, model.layers and model.k must be >= 1")

    @property
    def use_symmetric(self) -> bool:
        return (self.name != "gae-seed") if self.symmetric is None else self.symmetric


def trace_gcn(tr: Tracer, name: str, a: int, conv: GCNConv, edge_index: Tensor) -> int:
    """Record ``GCNConv`` = lin -> GCN-normalised aggregation (with self loops) -> + bias."""
    n = tr.value(a).shape[0]
    loops = torch.arange(n, device=edge_index.device)
    ei = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    u = tr.module_linear(f"{name}.lin", a, conv.lin)
    m = trace_message_passing(tr, f"{name}.aggregate", u, ei, "gcn")
    if conv.bias is None:
        return m
    eye = torch.eye(conv.bias.numel(), dtype=tr.value(m).dtype, device=tr.value(m).device)
    return tr.linear(f"{name}.bias", m, eye, conv.bias)


def dense_gcn(conv: GCNConv, h: Tensor, a_hat: Tensor) -> Tensor:
    """``GCNConv`` on padded dense graphs: ``a_hat @ lin(h) + bias``; h (B, n, C) -> (B, n, C').

    When C < C' the aggregation runs first, ``lin(a_hat @ h)`` (the same product, fewer
    operations: n^2 C instead of n^2 C'). The aggregation is computed as ``(h^T a_hat^T)^T``:
    with a few channels, a batch of (C, n) x (n, n) products is about 4x faster on a CPU than
    (n, n) x (n, C) (measured with C = 5 and 8, n = 40), and no faster or slower otherwise;
    :mod:`.dense` stores ``a_hat`` as the transpose of a contiguous block so that
    ``a_hat^T`` costs nothing."""
    a_t = a_hat.to(h.dtype).transpose(1, 2)  # (B, n, n) [source, target]

    def aggregate(u: Tensor) -> Tensor:
        return torch.bmm(u.transpose(1, 2), a_t).transpose(1, 2)

    first = conv.in_channels < conv.out_channels
    out: Tensor = conv.lin(aggregate(h)) if first else aggregate(conv.lin(h))
    return out if conv.bias is None else out + conv.bias


def _bn(bn: nn.BatchNorm1d, h: Tensor) -> Tensor:
    out: Tensor = bn(h.reshape(-1, h.shape[-1]))
    return out.reshape(h.shape)


class SeedEncoder(nn.Module):
    """The exercise's encoder: BN -> GCNConv(5, 32) -> ReLU -> BN -> GCNConv(32, 8)."""

    def __init__(self, in_channels: int = 5, hidden: int = 32, latent: int = 8) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm1d(in_channels)
        self.conv1 = GCNConv(in_channels, hidden)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.conv2 = GCNConv(hidden, latent)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = F.relu(self.conv1(self.bn1(x), edge_index))
        z: Tensor = self.conv2(self.bn2(h), edge_index)
        return z

    def dense(self, h: Tensor, a_hat: Tensor) -> Tensor:
        """The same encoder on padded dense graphs (B, n, 5) with a normalised adjacency.

        In eval mode the second BatchNorm is folded into conv2's linear map (one pass over the
        (B, n, 32) hidden tensor fewer): ``W (s h + t) = (W s) h + W t``."""
        h = F.relu(dense_gcn(self.conv1, _bn(self.bn1, h), a_hat))
        if self.training:
            return dense_gcn(self.conv2, _bn(self.bn2, h), a_hat)
        bn, conv = self.bn2, self.conv2
        assert bn.running_var is not None and bn.running_mean is not None
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale + (0.0 if bn.bias is None else bn.bias)
        u = F.linear(h, conv.lin.weight * scale, conv.lin.weight @ shift)  # (B, n, latent)
        out: Tensor = torch.bmm(u.transpose(1, 2), a_hat.to(h.dtype).transpose(1, 2))
        out = out.transpose(1, 2)
        return out if conv.bias is None else out + conv.bias

    def trace(self, tr: Tracer, a: int, edge_index: Tensor) -> int:
        a = tr.batchnorm("bn1", a, self.bn1)
        a = tr.activation("relu1", trace_gcn(tr, "conv1", a, self.conv1, edge_index), F.relu)
        a = tr.batchnorm("bn2", a, self.bn2)
        return trace_gcn(tr, "conv2", a, self.conv2, edge_index)


class GCNEncoder(nn.Module):
    """Linear(in, hidden) -> ReLU -> [GCNConv(hidden, hidden) -> ReLU] x (layers-1) -> GCNConv(latent)."""

    def __init__(self, in_channels: int, hidden: int, latent: int, layers: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_channels, hidden)
        self.convs = nn.ModuleList(GCNConv(hidden, hidden) for _ in range(layers - 1))
        self.out = GCNConv(hidden, latent)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        h = F.relu(self.lin(x))
        for conv in self.convs:
            h = F.relu(conv(h, edge_index))
        z: Tensor = self.out(h, edge_index)
        return z

    def dense(self, h: Tensor, a_hat: Tensor) -> Tensor:
        """The same encoder on padded dense graphs (B, n, C) with a normalised adjacency."""
        h = F.relu(self.lin(h))
        for conv in self.convs:
            h = F.relu(dense_gcn(conv, h, a_hat))
        return dense_gcn(self.out, h, a_hat)

    def trace(self, tr: Tracer, a: int, edge_index: Tensor) -> int:
        a = tr.activation("lin.relu", tr.module_linear("lin", a, self.lin), F.relu)
        for i, conv in enumerate(self.convs):
            a = tr.activation(
                f"convs.{i}.relu", trace_gcn(tr, f"convs.{i}", a, conv, edge_index), F.relu
            )
        return trace_gcn(tr, "out", a, self.out, edge_index)


class AnomalyModel(nn.Module):
    """Base: holds the config and the preprocessing buffer; ``inputs`` maps raw -> model inputs."""

    prep: Tensor  # (4,) log-pT mean, std, eta mean, std

    def __init__(self, cfg: ModelConfig, prep: Preprocessing | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        p = prep or Preprocessing(0.0, 1.0, 0.0, 1.0)
        self.register_buffer(
            "prep", torch.tensor([p.log_pt_mean, p.log_pt_std, p.eta_mean, p.eta_std])
        )
        self.encoder: nn.Module

    @property
    def input_names(self) -> tuple[str, ...]:
        return RAW_FEATURES if self.cfg.name == "gae-seed" else PRE_FEATURES

    def inputs(self, x: Tensor) -> Tensor:
        """Model inputs from raw features: raw (gae-seed) or preprocessed (N, 12)."""
        return x if self.cfg.name == "gae-seed" else preprocess(x, self.prep)

    def encode_inputs(self, h: Tensor, edge_index: Tensor) -> Tensor:
        """Latent (N, latent) from model inputs (already preprocessed)."""
        z: Tensor = self.encoder(h, edge_index)
        return z

    def encode(self, x: Tensor, edge_index: Tensor) -> Tensor:
        return self.encode_inputs(self.inputs(x), edge_index)

    def dense_inputs(self, xd: Tensor) -> Tensor:
        """Model inputs of padded raw features (B, n, 5) -> (B, n, F)."""
        b, n, f = xd.shape
        h = self.inputs(xd.reshape(-1, f))
        return h.reshape(b, n, h.shape[-1])  # not -1: a block of empty events has 0 elements

    def encode_dense(self, hd: Tensor, a_hat: Tensor) -> Tensor:
        """Latent (B, n, L) of padded model inputs ``hd`` (B, n, F); padding rows are junk."""
        z: Tensor = self.encoder.dense(hd, a_hat)  # type: ignore[operator]
        return z

    def trace_encoder(self, tr: Tracer, edge_index: Tensor) -> int:
        """Record the encoder on ``tr``'s input (the model inputs) for LRP; returns the latent id."""
        latent: int = self.encoder.trace(tr, 0, edge_index)  # type: ignore[operator]
        return latent


class EdgeGAE(AnomalyModel):
    """``gae-seed`` / ``gae``: GCN encoder + PyG ``GAE`` inner-product decoder."""

    def __init__(self, cfg: ModelConfig, prep: Preprocessing | None = None) -> None:
        super().__init__(cfg, prep)
        if cfg.name == "gae-seed":
            self.encoder = SeedEncoder(len(RAW_FEATURES))
        else:
            self.encoder = GCNEncoder(len(PRE_FEATURES), cfg.hidden, cfg.latent, cfg.layers)
        self.gae = GAE(self.encoder)

    def loss(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        """PyG ``recon_loss`` with negatives sampled inside each graph (training; random)."""
        z = self.encode(x, edge_index)
        neg = batched_negative_sampling(edge_index, batch)
        loss: Tensor = self.gae.recon_loss(z, edge_index, neg)
        return loss


class NodeAE(AnomalyModel):
    """``node-ae``: GCN encoder to ``latent`` per node, MLP decoder to the 12 inputs."""

    def __init__(self, cfg: ModelConfig, prep: Preprocessing | None = None) -> None:
        super().__init__(cfg, prep)
        n_in = len(PRE_FEATURES)
        self.encoder = GCNEncoder(n_in, cfg.hidden, cfg.latent, cfg.layers)
        self.decoder = nn.Sequential(
            nn.Linear(cfg.latent, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, n_in)
        )

    def node_errors_inputs(self, h: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """(per-node MSE (N,), latent (N, latent)) from model inputs ``h`` (N, 12)."""
        z = self.encode_inputs(h, edge_index)
        return ((self.decoder(z) - h) ** 2).mean(dim=1), z

    def node_errors(self, x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        return self.node_errors_inputs(self.inputs(x), edge_index)

    def loss(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        return self.node_errors(x, edge_index)[0].mean()


class SetAE(AnomalyModel):
    """``set-ae``: dynamic-EdgeConv node-wise autoencoder with a Chamfer loss (:mod:`.setae`).

    Uses the preprocessed inputs (N, 12) and ignores the eta-phi kNN edges (its graph is rebuilt
    in feature space by every EdgeConv layer). No LRP adapter (explain refuses it).
    """

    def __init__(self, cfg: ModelConfig, prep: Preprocessing | None = None) -> None:
        from particlegraph.tasks.anomaly.setae import SetEncoderDecoder

        super().__init__(cfg, prep)
        self.net = SetEncoderDecoder(
            len(PRE_FEATURES), cfg.hidden, cfg.latent, cfg.layers, cfg.edgeconv_k
        )
        self.encoder = self.net

    def chamfer_dense(self, hd: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(per-graph Chamfer (B,), node latents (B, n, latent)) of padded inputs (B, n, 12)."""
        from particlegraph.tasks.anomaly.setae import chamfer

        z = self.net.encode(hd, mask)
        return chamfer(hd, self.net.decode(z, mask), mask), z

    def loss(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        from torch_geometric.utils import to_dense_batch

        hd, mask = to_dense_batch(self.inputs(x), batch)
        return self.chamfer_dense(hd, mask)[0].mean()

    def trace_encoder(self, tr: Tracer, edge_index: Tensor) -> int:
        raise ConfigError("set-ae has no LRP adapter; explain supports gae-seed, gae and node-ae")


def build_model(cfg: ModelConfig, prep: Preprocessing | None = None) -> AnomalyModel:
    """The model named by ``cfg.name``."""
    if cfg.name == "set-ae":
        return SetAE(cfg, prep)
    return NodeAE(cfg, prep) if cfg.name == "node-ae" else EdgeGAE(cfg, prep)
