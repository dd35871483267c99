"""Model adapters: re-run a model's forward pass with a :class:`~.program.Tracer`.

An adapter knows the model's real computation graph (skip connections, concatenations, separate
heads) and records it as a :class:`~.program.Program`; it then checks that the recorded outputs
equal the model's own outputs, so an adapter that drifts from its model fails loudly.

Building blocks for other graph models: :meth:`Tracer.sequential` (MLPs), :func:`trace_gravnet`
(learned-kNN message passing), :func:`trace_message_passing` (any fixed-weight aggregation:
sum / mean / max / GCN / learned sigmoid edge weights). A model may also provide its own
``lrp_trace(tracer, x, batch) -> dict[str, int]`` method, which takes precedence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.program import Program, Tracer, aggregation_weights

#: Relative tolerance of the check "traced output == model output" (float32 round-off).
TRACE_RTOL = 1e-4


def trace_message_passing(
    tr: Tracer,
    name: str,
    u: int,
    edge_index: Tensor,
    mode: str = "sum",
    edge_weight: Tensor | None = None,
) -> int:
    """Aggregate tensor ``u`` (N, C) along ``edge_index`` (2, E) [source, target] with the
    forward pass's weights held fixed; ``mode`` and ``edge_weight`` as in
    :func:`~.program.aggregation_weights`. Returns the aggregated tensor's id.
    """
    src, dst = edge_index[0], edge_index[1]
    weights = aggregation_weights(src, dst, tr.value(u).shape[0], mode, edge_weight, tr.value(u))
    return tr.aggregate(name, u, src, dst, weights)


def trace_gravnet(tr: Tracer, name: str, h: int, conv: nn.Module, batch: Tensor | None) -> int:
    """One GravNet layer ``lin_out(cat[h, AGG_j w_ij lin_h(h)_j])``; coordinates are held fixed.

    ``conv`` needs ``graph(h, batch) -> (edge_index, edge_weight)``, ``lin_h``, ``lin_out`` and
    ``aggr`` (``"sum"``, ``"mean"`` or ``"max"``); no relevance flows into ``lin_s``.
    """
    edge_index, edge_weight = conv.graph(tr.value(h), batch)
    u = tr.module_linear(f"{name}.lin_h", h, conv.lin_h)
    m = trace_message_passing(tr, f"{name}.aggregate", u, edge_index, str(conv.aggr), edge_weight)
    c = tr.concat(f"{name}.cat", [h, m])
    return tr.module_linear(f"{name}.lin_out", c, conv.lin_out)


def trace_mlpf(model: nn.Module, x: Tensor, batch: Tensor | None = None) -> Program:
    """Record :class:`particlegraph.models.mlpf.MLPF` (GravNet or FCN) on ``x`` (N, 12).

    Outputs: ``"class"`` (N, 6), ``"charge"`` (N, 3), ``"regression"`` (N, 5).
    """
    tr = Tracer(x)
    e = tr.passthrough("encoding", 0, model.encoding(x), model.encoding.column_map)
    h = tr.sequential("encoder", e, model.encoder)
    embs = []
    for i, block in enumerate(model.blocks):
        h = trace_gravnet(tr, f"blocks.{i}", h, block, batch)
        h = tr.activation(f"blocks.{i}.act", h, model.act)
        embs.append(h)
    z = tr.concat("z", [e, *embs] if embs else [e, h])
    logits = tr.sequential("class_head", z, model.class_head)
    charge = tr.sequential("charge_head", z, model.charge_head)
    reg_in = tr.concat("reg_input", [z, logits])
    reg = tr.sequential("reg_head", reg_in, model.reg_head)
    return tr.program({"class": logits, "charge": charge, "regression": reg})


def trace_sequential(model: nn.Module, x: Tensor, batch: Tensor | None = None) -> Program:
    """Record a plain MLP (``nn.Sequential``); output ``"output"``."""
    tr = Tracer(x)
    out = tr.sequential("layers", 0, model)
    return tr.program({"output": out})


def _is_mlpf(model: nn.Module) -> bool:
    return all(
        hasattr(model, a)
        for a in ("encoding", "encoder", "blocks", "class_head", "charge_head", "reg_head")
    )


def _model_outputs(model: nn.Module, x: Tensor, batch: Tensor | None) -> dict[str, Tensor]:
    if _is_mlpf(model):
        out = model(x, batch)
        return {"class": out[0], "charge": out[1], "regression": out[2]}
    if isinstance(model, nn.Sequential):
        return {"output": model(x)}
    return {}


def trace_model(
    model: nn.Module, x: Tensor, batch: Tensor | None = None, check: bool = True
) -> Program:
    """Record ``model`` on ``x`` with the matching adapter, in eval mode and without gradients.

    The model's training flag is restored afterwards. With ``check`` the recorded outputs are
    compared with the model's own (raises :class:`ConfigError` on a mismatch).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if hasattr(model, "lrp_trace"):
                tr = Tracer(x)
                program = tr.program(model.lrp_trace(tr, x, batch))
            elif _is_mlpf(model):
                program = trace_mlpf(model, x, batch)
            elif isinstance(model, nn.Sequential):
                program = trace_sequential(model, x, batch)
            else:
                raise ConfigError(
                    f"no LRP adapter for {type(model).__name__}: give it an "
                    "lrp_trace(tracer, x, batch) method or use an nn.Sequential"
                )
            if check:
                for key, ref in _model_outputs(model, x, batch).items():
                    got = program.values[program.outputs[key]]
                    err = float((got - ref).abs().max()) if ref.numel() else 0.0
                    scale = float(ref.abs().max()) if ref.numel() else 0.0
                    if err > TRACE_RTOL * max(scale, 1.0):
                        raise ConfigError(
                            f"LRP trace of {type(model).__name__} does not reproduce output {key!r} "
                            f"(max difference {err:.3g}); the adapter does not match the model"
                        )
    finally:
        model.train(was_training)
    return program
