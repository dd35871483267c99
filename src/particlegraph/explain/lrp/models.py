"""Model adapters: re-run a model's forward pass with a :class:`~.program.Tracer`.

An adapter knows the model's real computation graph (skip connections, concatenations, separate
heads) and records it as a :class:`~.program.Program`; it then checks that the recorded outputs
equal the model's own outputs, so an adapter that drifts from its model fails loudly.

Building blocks for other graph models: :meth:`Tracer.sequential` (MLPs), :func:`trace_gravnet`
(learned-kNN message passing), :func:`trace_message_passing` (any fixed-weight aggregation:
sum / mean / max / GCN / learned sigmoid edge weights). A task's model carries its own adapter:
``lrp_trace(tracer, x, batch) -> dict[str, int]`` records it and ``lrp_outputs(x, batch) ->
dict[str, Tensor]`` returns the model's own outputs under the same names, so the trace is always
checked; ``lrp_output_names`` (an :class:`~.output.OutputNames`) names its output columns.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.program import Program, Tracer, aggregation_weights

#: Relative tolerance of the check "traced output == model output" (float32 round-off).
TRACE_RTOL = 1e-4
#: Events up to this size are checked in full; bigger ones on their first elements only (for
#: adapters whose wiring does not depend on N). A wiring error changes nearly every element, so
#: 256 elements find it as surely as 2,048 did, and the second forward pass (an O(N^2) kNN per
#: block) stops costing ~12 % of a one-output explanation at 1,000 elements (profiled).
CHECK_ELEMENTS = 256
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
    ``aggr`` (``"sum"``, ``"mean"`` or ``"max"``); no relevance flows into ``lin_s``. The
    aggregated value is the layer's own: ``aggregate_messages(edge_index, f, edge_weight)``
    where it has one (particlegraph's GravNetConv), else PyG's ``propagate``.
    """
    n = tr.value(h).shape[0]
    edge_index, edge_weight = conv.graph(tr.value(h), batch)
    u = tr.module_linear(f"{name}.lin_h", h, conv.lin_h)
    value = None
    if hasattr(conv, "aggregate_messages"):  # its own aggregation, bit for bit
        value = conv.aggregate_messages(edge_index, tr.value(u), edge_weight)
    elif hasattr(conv, "propagate"):  # PyG layer
        value = conv.propagate(edge_index, x=tr.value(u), edge_weight=edge_weight, size=(n, n))
    m = trace_message_passing(
        tr, f"{name}.aggregate", u, edge_index, str(conv.aggr), edge_weight, value
    )
    c = tr.concat(f"{name}.cat", [h, m])
    return tr.module_linear(f"{name}.lin_out", c, conv.lin_out)


def trace_sequential(model: nn.Module, x: Tensor, batch: Tensor | None = None) -> Program:
    """Record a plain MLP (``nn.Sequential``); output ``"output"``."""
    tr = Tracer(x)
    out = tr.sequential("layers", 0, model)
    return tr.program({"output": out})


def _model_outputs(model: nn.Module, x: Tensor, batch: Tensor | None) -> dict[str, Tensor]:
    """The model's own outputs, named as its trace names them."""
    if isinstance(model, nn.Sequential):
        return {"output": model(x)}
    own = getattr(model, "lrp_outputs", None)
    if own is None:
        raise ConfigError(
            f"{type(model).__name__} has an lrp_trace method but no lrp_outputs(x, batch) method, "
            "so its trace cannot be checked against the model; add lrp_outputs (returning the "
            "model's outputs under the names lrp_trace uses) or pass check=False"
        )
    outputs: dict[str, Tensor] = own(x, batch)
    return outputs


def _trace(model: nn.Module, x: Tensor, batch: Tensor | None) -> Program:
    if hasattr(model, "lrp_trace"):
        tr = Tracer(x)
        custom: Any = model
        return tr.program(custom.lrp_trace(tr, x, batch))
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
    own = _model_outputs(model, x, batch)
    missing = set(program.outputs) - set(own)
    if missing:
        raise ConfigError(
            f"LRP trace of {type(model).__name__} has outputs {sorted(missing)} that the model's "
            "lrp_outputs does not return, so they cannot be checked"
        )
    for key, ref in own.items():
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
    input; an int ``c`` on the whole input when N <= c, else, for adapters whose wiring does not
    depend on N (``nn.Sequential`` and models with ``lrp_prefix_check = True``), on a trace of the
    first ``c`` elements, which saves a second forward pass (and its O(N^2) kNN) on big events;
    ``False`` skips it. A model with ``lrp_trace`` must have ``lrp_outputs`` to be checked.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            program = _trace(model, x, batch)
            n = x.shape[0]
            if check is True or (check is not False and n <= int(check)):
                _check(model, program, x, batch)
            elif check is not False and (
                isinstance(model, nn.Sequential) or getattr(model, "lrp_prefix_check", False)
            ):
                c = int(check)
                sub_batch = None if batch is None else batch[:c]
                _check(model, _trace(model, x[:c], sub_batch), x[:c], sub_batch)
            elif check is not False:
                _check(model, program, x, batch)
    finally:
        model.train(was_training)
    return program
