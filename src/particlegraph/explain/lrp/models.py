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

from typing import Any

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.program import Program, Tracer, aggregation_weights

#: Relative tolerance of the check "traced output == model output" (float32 round-off).
TRACE_RTOL = 1e-4
#: Events up to this size are checked in full; bigger ones on their first elements only.
CHECK_ELEMENTS = 2048
#: Fraction of elements allowed to differ in that check (kNN near-ties, see ``_check``).
CHECK_FRACTION = 0.01


def trace_message_passing(
    tr: Tracer,
    name: str,
    u: int,
    edge_index: Tensor,
    mode: str = "sum",
    edge_weight: Tensor | None = None,
    value: Tensor | None = None,
) -> int:
    """Aggregate tensor ``u`` (N, C) along ``edge_index`` (2, E) [source, target] with the
    forward pass's weights held fixed; ``mode`` and ``edge_weight`` as in
    :func:`~.program.aggregation_weights`; ``value`` the model's own result, if at hand.
    Returns the aggregated tensor's id.
    """
    src, dst = edge_index[0], edge_index[1]
    weights = aggregation_weights(src, dst, tr.value(u).shape[0], mode, edge_weight, tr.value(u))
    return tr.aggregate(name, u, src, dst, weights, value)


def trace_gravnet(tr: Tracer, name: str, h: int, conv: Any, batch: Tensor | None) -> int:
    """One GravNet layer ``lin_out(cat[h, AGG_j w_ij lin_h(h)_j])``; coordinates are held fixed.

    ``conv`` needs ``graph(h, batch) -> (edge_index, edge_weight)``, ``lin_h``, ``lin_out`` and
    ``aggr`` (``"sum"``, ``"mean"`` or ``"max"``); no relevance flows into ``lin_s``.
    """
    n = tr.value(h).shape[0]
    edge_index, edge_weight = conv.graph(tr.value(h), batch)
    u = tr.module_linear(f"{name}.lin_h", h, conv.lin_h)
    value = None
    if hasattr(conv, "propagate"):  # PyG layer: its own aggregation, bit for bit
        value = conv.propagate(edge_index, x=tr.value(u), edge_weight=edge_weight, size=(n, n))
    m = trace_message_passing(
        tr, f"{name}.aggregate", u, edge_index, str(conv.aggr), edge_weight, value
    )
    c = tr.concat(f"{name}.cat", [h, m])
    return tr.module_linear(f"{name}.lin_out", c, conv.lin_out)


def trace_mlpf(model: Any, x: Tensor, batch: Tensor | None = None) -> Program:
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


def _trace(model: nn.Module, x: Tensor, batch: Tensor | None) -> Program:
    if hasattr(model, "lrp_trace"):
        tr = Tracer(x)
        custom: Any = model
        return tr.program(custom.lrp_trace(tr, x, batch))
    if _is_mlpf(model):
        return trace_mlpf(model, x, batch)
    if isinstance(model, nn.Sequential):
        return trace_sequential(model, x, batch)
    raise ConfigError(
        f"no LRP adapter for {type(model).__name__}: give it an "
        "lrp_trace(tracer, x, batch) method or use an nn.Sequential"
    )


def _check(model: nn.Module, program: Program, x: Tensor, batch: Tensor | None) -> None:
    """Compare traced and model outputs element by element.

    A wiring error changes (nearly) every element; a second forward pass on a GPU may differ from
    the first in the last bits (atomic additions in the aggregation), which can flip a near-tie
    of the next layer's kNN graph and change the outputs of a few elements. So up to
    ``max(2, CHECK_FRACTION * N)`` differing elements are tolerated.
    """
    for key, ref in _model_outputs(model, x, batch).items():
        if ref.numel() == 0:
            continue
        got = program.values[program.outputs[key]]
        diff = (got - ref).abs()
        scale = max(float(ref.abs().max()), 1.0)
        bad = int((diff > TRACE_RTOL * scale).any(dim=1).sum())
        if bad > max(2, int(CHECK_FRACTION * len(ref))):
            raise ConfigError(
                f"LRP trace of {type(model).__name__} does not reproduce output {key!r} on "
                f"{bad} of {len(ref)} elements (max difference {float(diff.max()):.3g}); "
                "the adapter does not match the model"
            )


def trace_model(
    model: nn.Module, x: Tensor, batch: Tensor | None = None, check: bool | int = CHECK_ELEMENTS
) -> Program:
    """Record ``model`` on ``x`` with the matching adapter, in eval mode and without gradients.

    The model's training flag is restored afterwards. ``check`` compares the recorded outputs
    with the model's own and raises :class:`ConfigError` on a mismatch: ``True`` on the whole
    input; an int ``c`` on the whole input when N <= c, else (MLPF and MLP adapters, whose wiring
    does not depend on N) on a trace of the first ``c`` elements, which saves a second forward
    pass (and its O(N^2) kNN) on big events; ``False`` skips it.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            program = _trace(model, x, batch)
            n = x.shape[0]
            if check is True or (check is not False and n <= int(check)):
                _check(model, program, x, batch)
            elif check is not False and not hasattr(model, "lrp_trace"):
                c = int(check)
                sub_batch = None if batch is None else batch[:c]
                _check(model, _trace(model, x[:c], sub_batch), x[:c], sub_batch)
            elif check is not False:
                _check(model, program, x, batch)
    finally:
        model.train(was_training)
    return program
