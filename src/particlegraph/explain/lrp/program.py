"""The computation graph that LRP walks backwards, recorded from one forward pass.

A :class:`Program` is a list of per-element tensors (``values[t]`` of shape (N, D_t), the forward
activations) and the operations that made them, in forward order. Only five operation kinds
exist, which is all an MLPF, tracking or anomaly GNN needs:

- :class:`Linear` — ``out = a W^T + b`` per element (BatchNorm already folded in);
- :class:`PassThrough` — element-wise maps whose relevance passes unchanged (activations,
  dropout, the input encoding), with an optional column map ``out[:, c] <- in[:, map[c]]``;
- :class:`Concat` — concatenation along features (skip connections, branching heads);
- :class:`Aggregate` — message passing ``out_i = sum_{e: j->i} W_e u_j`` with the forward pass's
  edge weights held fixed (sum, mean, max, GCN, sigmoid weights all reduce to this);
- the input tensor (id 0): raw features (N, F).

A :class:`Tracer` records a program while re-running a model's forward pass from its modules;
model adapters (:mod:`.models`) use it and compare the result with the model's own output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.fold import bn_scale_shift, fold_linear_bn


@dataclass(frozen=True)
class Linear:
    """``values[output] = values[input] @ weight.T + bias``; weight (out, in), bias (out,) | None."""

    name: str
    input: int
    output: int
    weight: Tensor
    bias: Tensor | None
    kind: str = "linear"

    @property
    def inputs(self) -> tuple[int, ...]:
        return (self.input,)


@dataclass(frozen=True)
class PassThrough:
    """Element-wise map; relevance of output column c goes to input column ``column_map[c]``.

    ``column_map`` None means the identity (activations, dropout).
    """

    name: str
    input: int
    output: int
    column_map: Tensor | None = None
    kind: str = "pass"

    @property
    def inputs(self) -> tuple[int, ...]:
        return (self.input,)


@dataclass(frozen=True)
class Concat:
    """``values[output] = cat([values[i] for i in inputs], dim=1)``."""

    name: str
    inputs: tuple[int, ...]
    output: int
    kind: str = "concat"


@dataclass(frozen=True)
class Aggregate:
    """Fixed-weight message passing: ``out[i] = sum_{e: src_e = j, dst_e = i} weight[e] * u[j]``.

    ``src``/``dst`` (E,) long, ``weight`` (E, 1) or (E, C) (per-channel weights express max).
    """

    name: str
    input: int
    output: int
    src: Tensor
    dst: Tensor
    weight: Tensor
    kind: str = "aggregation"

    @property
    def inputs(self) -> tuple[int, ...]:
        return (self.input,)


Op = Linear | PassThrough | Concat | Aggregate

#: Parameter-free element-wise activations, through which relevance passes unchanged.
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ELU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Softplus,
    nn.Hardtanh, nn.ReLU6, nn.SELU, nn.CELU, nn.Mish, nn.Hardswish, nn.Hardsigmoid,
)  # fmt: skip


@dataclass
class Program:
    """Recorded forward pass: ``values[t]`` (N, D_t) per tensor id, ``ops`` in forward order."""

    values: list[Tensor]
    ops: list[Op]
    names: list[str]
    outputs: dict[str, int] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return int(self.values[0].shape[0])

    def producer(self) -> dict[int, Op]:
        """Map tensor id -> op that produced it (the input has none)."""
        return {op.output: op for op in self.ops}

    def ancestors(self, tensor: int) -> set[int]:
        """Tensor ids that ``tensor`` depends on, itself included."""
        prod = self.producer()
        seen, stack = {tensor}, [tensor]
        while stack:
            op = prod.get(stack.pop())
            if op is None:
                continue
            for i in op.inputs:
                if i not in seen:
                    seen.add(i)
                    stack.append(i)
        return seen


class Tracer:
    """Builds a :class:`Program` step by step, computing each forward value from the op itself.

    ``x`` (N, F) is tensor 0. Every method returns the id of the new tensor; ``value(id)`` gives
    the activations. Everything runs under ``torch.no_grad()`` in the caller's dtype/device.
    """

    def __init__(self, x: Tensor) -> None:
        self.values: list[Tensor] = [x.detach()]
        self.names: list[str] = ["input"]
        self.ops: list[Op] = []

    def value(self, tensor: int) -> Tensor:
        return self.values[tensor]

    def _add(self, name: str, value: Tensor) -> int:
        self.values.append(value.detach())
        self.names.append(name)
        return len(self.values) - 1

    def linear(
        self, name: str, a: int, weight: Tensor, bias: Tensor | None, value: Tensor | None = None
    ) -> int:
        """``a @ weight.T + bias``; ``value`` (N, out) overrides the computed output.

        Adapters pass the model's own output as ``value`` so the recorded forward pass (and any
        kNN graph built from it downstream) is bit-for-bit the model's, not a round-off neighbour.
        """
        weight = weight.detach()
        bias = None if bias is None else bias.detach()
        if value is None:
            value = self.values[a] @ weight.T
            if bias is not None:
                value = value + bias
        elif value.shape != (self.values[a].shape[0], weight.shape[0]):
            raise ConfigError(f"linear {name!r}: value has shape {tuple(value.shape)}")
        tid = self._add(name, value)
        self.ops.append(Linear(name, a, tid, weight, bias))
        return tid

    def module_linear(
        self, name: str, a: int, lin: nn.Linear, bn: nn.BatchNorm1d | None = None
    ) -> int:
        """An ``nn.Linear`` (optionally followed by a BatchNorm1d folded into it)."""
        value = lin(self.values[a])
        if bn is None:
            return self.linear(name, a, lin.weight, lin.bias, value)
        weight, bias = fold_linear_bn(lin, bn)
        return self.linear(name, a, weight, bias, bn(value))

    def batchnorm(self, name: str, a: int, bn: nn.BatchNorm1d) -> int:
        """A BatchNorm1d not preceded by a Linear: a diagonal linear layer."""
        scale, shift = bn_scale_shift(bn)
        return self.linear(name, a, torch.diag(scale), shift, bn(self.values[a]))

    def passthrough(
        self, name: str, a: int, value: Tensor, column_map: Tensor | None = None
    ) -> int:
        """Element-wise map whose output ``value`` the caller computed (e.g. ``act(values[a])``)."""
        if value.shape[0] != self.values[a].shape[0]:
            raise ConfigError(f"pass-through {name!r} changed the number of elements")
        if column_map is None and value.shape != self.values[a].shape:
            raise ConfigError(f"pass-through {name!r} changed the shape without a column map")
        if column_map is not None:
            column_map = column_map.to(device=value.device, dtype=torch.long)
            if column_map.shape != (value.shape[1],):
                raise ConfigError(f"column map of {name!r} must have shape ({value.shape[1]},)")
        tid = self._add(name, value)
        self.ops.append(PassThrough(name, a, tid, column_map))
        return tid

    def activation(self, name: str, a: int, fn: Callable[[Tensor], Tensor]) -> int:
        return self.passthrough(name, a, fn(self.values[a]))

    def concat(self, name: str, inputs: Sequence[int]) -> int:
        tid = self._add(name, torch.cat([self.values[i] for i in inputs], dim=1))
        self.ops.append(Concat(name, tuple(inputs), tid))
        return tid

    def aggregate(
        self,
        name: str,
        u: int,
        src: Tensor,
        dst: Tensor,
        weight: Tensor,
        value: Tensor | None = None,
    ) -> int:
        """``out[i] = sum_{j->i} weight_e u_j``; weight (E,), (E, 1) or (E, C).

        ``value`` (N, C) overrides the computed output (the model's own aggregation result).
        """
        uval = self.values[u]
        if weight.dim() == 1:
            weight = weight[:, None]
        weight = weight.detach().to(uval.dtype)
        if value is None:
            msg = weight * uval[src]  # (E, C)
            value = torch.zeros_like(uval).index_add_(0, dst, msg)
        tid = self._add(name, value)
        self.ops.append(Aggregate(name, u, tid, src.long(), dst.long(), weight))
        return tid

    def sequential(self, name: str, a: int, seq: nn.Module) -> int:
        """Trace an MLP: ``nn.Sequential`` of Linear / BatchNorm1d / activations / Dropout.

        A BatchNorm1d right after a Linear is folded into it; the activations in
        :data:`ELEMENTWISE` pass relevance through; other modules (Softmax, LayerNorm, ...) are
        refused rather than explained wrongly.
        """
        layers = list(seq.children()) if isinstance(seq, nn.Sequential) else [seq]
        i = 0
        while i < len(layers):
            layer, lname = layers[i], f"{name}.{i}"
            if isinstance(layer, nn.Linear):
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                if isinstance(nxt, nn.BatchNorm1d):
                    a = self.module_linear(lname, a, layer, nxt)
                    i += 2
                    continue
                a = self.module_linear(lname, a, layer)
            elif isinstance(layer, nn.BatchNorm1d):
                a = self.batchnorm(lname, a, layer)
            elif isinstance(layer, nn.Sequential):
                a = self.sequential(lname, a, layer)
            elif isinstance(layer, nn.Dropout | nn.Identity):
                pass  # identity in eval mode
            elif isinstance(layer, ELEMENTWISE):
                a = self.activation(lname, a, layer)
            else:
                raise ConfigError(
                    f"LRP cannot trace layer {lname!r} ({type(layer).__name__}); supported: "
                    "Linear, BatchNorm1d, Dropout and element-wise activations "
                    f"({', '.join(t.__name__ for t in ELEMENTWISE)})"
                )
            i += 1
        return a

    def program(self, outputs: dict[str, int]) -> Program:
        return Program(self.values, self.ops, self.names, dict(outputs))


# --- fixed aggregation weights ------------------------------------------------------------------


def aggregation_weights(
    src: Tensor,
    dst: Tensor,
    num_nodes: int,
    mode: str = "sum",
    edge_weight: Tensor | None = None,
    messages: Tensor | None = None,
) -> Tensor:
    """Weights (E, 1) or (E, C) that turn an aggregation into ``out_i = sum_e W_e u_{src_e}``.

    Args:
        src, dst: (E,) edge endpoints, message flows ``src -> dst``.
        num_nodes: N.
        mode: ``"sum"`` (weights as given), ``"mean"`` (divided by the in-degree of dst),
            ``"max"`` (per channel, 1 on the edge that wins ``max_e edge_weight_e * messages_e``,
            times its edge weight), ``"gcn"`` (``w / sqrt(deg_src deg_dst)`` with weighted degrees
            counted over dst, self-loops expected in the edge list).
        edge_weight: (E,) multiplicative edge weights (GravNet ``exp(-10 d^2)``, learned sigmoid
            weights ...); None means 1.
        messages: (N, C) the node features being aggregated; needed for ``"max"`` only.
    """
    num_edges = src.shape[0]
    dtype = edge_weight.dtype if edge_weight is not None else torch.get_default_dtype()
    w = (
        torch.ones(num_edges, dtype=dtype, device=src.device)
        if edge_weight is None
        else edge_weight
    )
    w = w.detach()
    if mode == "sum":
        return w[:, None]
    if mode == "mean":
        deg = torch.zeros(num_nodes, dtype=w.dtype, device=w.device).index_add_(
            0, dst, torch.ones_like(w)
        )
        return (w / deg[dst].clamp(min=1))[:, None]
    if mode == "gcn":
        deg = torch.zeros(num_nodes, dtype=w.dtype, device=w.device).index_add_(0, dst, w)
        inv = torch.where(deg > 0, deg.rsqrt(), torch.zeros_like(deg))
        return (inv[src] * w * inv[dst])[:, None]
    if mode == "max":
        if messages is None:
            raise ConfigError("aggregation_weights(mode='max') needs the messages (N, C)")
        msg = w[:, None] * messages[src].detach()  # (E, C)
        channels = msg.shape[1]
        best = torch.full((num_nodes, channels), -torch.inf, dtype=msg.dtype, device=msg.device)
        best = best.scatter_reduce(0, dst[:, None].expand(-1, channels), msg, reduce="amax")
        wins = msg == best[dst]  # (E, C)
        # ties: keep the first winning edge per (node, channel) so the map stays a selection
        order = torch.arange(num_edges, device=src.device)[:, None].expand(-1, channels)
        first = torch.full((num_nodes, channels), num_edges, device=src.device, dtype=torch.long)
        first = first.scatter_reduce(
            0, dst[:, None].expand(-1, channels), torch.where(wins, order, num_edges), reduce="amin"
        )
        chosen = order == first[dst]
        return torch.where(chosen, w[:, None].expand(-1, channels), torch.zeros_like(msg))
    raise ConfigError(f"unknown aggregation {mode!r}; choose sum, mean, max or gcn")
