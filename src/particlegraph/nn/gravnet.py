"""GravNet message passing (Qasim et al., Eur. Phys. J. C 79, 608 (2019), arXiv:1902.07987).

Each node maps its features to coordinates ``s`` in a learned space, connects to its ``k`` nearest
neighbours there, and receives their propagated features ``f_j`` weighted by ``exp(-10 d_ij^2)``.
Written for particlegraph with the pure-torch kNN of :mod:`particlegraph.graph.knn`.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from particlegraph.graph.knn import knn_graph

#: Edge weight exp(-DISTANCE_SCALE * d^2), the value of the GravNet paper.
DISTANCE_SCALE = 10.0
#: Message values per chunk of the aggregation without autograd (8 MiB of float32): the (E, P)
#: messages of a whole event (52 MB at 12,800 elements, k 16, P 64) are fresh pages from the
#: system at every call, above glibc's largest mmap threshold (32 MiB).
MESSAGE_CHUNK_VALUES = 1 << 21


def _target_runs(dst: Tensor, n: int) -> Tensor | None:
    """Start of each run of equal targets in ``dst`` (E,), or None unless every target's edges
    are contiguous (kNN graphs are grouped by target)."""
    if dst.numel() == 0:
        return None
    starts = torch.cat([dst.new_zeros(1), (dst[1:] != dst[:-1]).nonzero()[:, 0] + 1])
    if len(starts) != int(torch.bincount(dst, minlength=n).count_nonzero()):
        return None
    return starts


class GravNetConv(MessagePassing):  # type: ignore[misc]  # PyG ships no type stubs
    r"""GravNet layer: learned-space kNN graph + distance-weighted aggregation.

    .. math::
        s_i = W_s h_i,\quad f_i = W_h h_i,\quad
        a_i = \bigoplus_{j \in \mathrm{kNN}(i)} e^{-10\,\lVert s_i - s_j\rVert^2} f_j,\quad
        h_i' = W_o [h_i \,\Vert\, a_i] + b_o

    Args:
        in_channels: input features H_in.
        out_channels: output features H_out.
        space_dimensions: dimension S of the learned coordinate space (default 4).
        propagate_dimensions: dimension P of the propagated features (default 32).
        k: neighbours per node, the node itself included (default 16).
        aggr: ``"sum"`` (default), ``"mean"`` or ``"max"``.
        chunk_size: query chunk of the kNN (0 = automatic, None = one dense block for export).
        bin_size: ``None`` exact kNN; an integer switches large events to the binned kNN of
            :func:`~particlegraph.graph.knn.binned_knn_event` (linear time, approximate).

    Shapes:
        h (N, H_in), batch (N,) or None -> (N, H_out)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        space_dimensions: int = 4,
        propagate_dimensions: int = 32,
        k: int = 16,
        aggr: str = "sum",
        chunk_size: int | None = 0,
        bin_size: int | None = None,
    ) -> None:
        if aggr not in ("sum", "mean", "max"):
            raise ValueError(f"aggr must be 'sum', 'mean' or 'max', got {aggr!r}")
        super().__init__(aggr=aggr, flow="source_to_target")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.k = k
        self.chunk_size = chunk_size
        self.bin_size = bin_size
        self.lin_s = nn.Linear(in_channels, space_dimensions)
        self.lin_h = nn.Linear(in_channels, propagate_dimensions)
        self.lin_out = nn.Linear(in_channels + propagate_dimensions, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for lin in (self.lin_s, self.lin_h, self.lin_out):
            lin.reset_parameters()

    def graph(self, h: Tensor, batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The forward pass's graph: ``edge_index`` (2, E) [source, target] and weights (E,)."""
        s = self.lin_s(h)  # (N, S)
        with torch.no_grad():
            # float32 coordinates: under bf16 autocast rounding would change about 1 % of the edges.
            edge_index = knn_graph(
                s.detach().float(),
                self.k,
                batch,
                loop=True,
                chunk_size=self.chunk_size,
                bin_size=self.bin_size,
            )
        src, dst = edge_index
        d2 = (s[src] - s[dst]).pow(2).sum(-1)  # (E,) differentiable w.r.t. lin_s
        return edge_index, torch.exp(-DISTANCE_SCALE * d2)

    def aggregate_messages(self, edge_index: Tensor, f: Tensor, edge_weight: Tensor) -> Tensor:
        """``propagate``: the aggregation (N, P) of the messages ``w_e f_j`` along ``edge_index``.

        Without autograd, for ``aggr="sum"`` and edges grouped by target (every kNN graph), in
        chunks of whole targets (:data:`MESSAGE_CHUNK_VALUES`): each target's sum is the same
        scatter-add over the same edges in the same order as one ``propagate``, bit for bit,
        without an (E, P) temporary. Otherwise ``propagate`` itself.
        """
        n = f.size(0)
        tracked = torch.is_grad_enabled() and (f.requires_grad or edge_weight.requires_grad)
        starts = None if tracked or self.aggr != "sum" else _target_runs(edge_index[1], n)
        step = MESSAGE_CHUNK_VALUES // max(1, f.size(1))
        if starts is None or edge_index.size(1) <= step:
            return self.propagate(edge_index, x=f, edge_weight=edge_weight, size=(n, n))  # type: ignore[no-any-return]
        src, dst = edge_index
        # chunk ends: the first run start at or after each multiple of step, and E
        pos = torch.searchsorted(starts, torch.arange(step, len(src), step, device=src.device))
        ends = starts[pos[pos < len(starts)]]
        bounds = [0, *torch.unique(ends).tolist(), len(src)]
        out = f.new_zeros(n, f.size(1))
        for lo, hi in itertools.pairwise(bounds):
            if hi > lo:
                msg = self.message(f[src[lo:hi]], edge_weight[lo:hi])
                out.scatter_add_(0, dst[lo:hi, None].expand_as(msg), msg)
        return out

    def forward(self, h: Tensor, batch: Tensor | None = None) -> Tensor:
        edge_index, edge_weight = self.graph(h, batch)
        f = self.lin_h(h)  # (N, P)
        agg = self.aggregate_messages(edge_index, f, edge_weight)
        result: Tensor = self.lin_out(torch.cat([h, agg], dim=-1))
        return result

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j  # (E, P)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
            f"k={self.k}, aggr={self.aggr})"
        )
