"""``explain_event``: LRP relevance of one output neuron for every element of an event."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.engine import propagate
from particlegraph.explain.lrp.models import trace_model
from particlegraph.explain.lrp.output import OutputSpec, parse_output
from particlegraph.explain.lrp.rules import Composite, Rule, as_composite
from particlegraph.explain.lrp.sparse import SparseRelevance


def explain_event(
    model: nn.Module,
    x: Tensor,
    batch: Tensor | None = None,
    output: OutputSpec | str | None = None,
    targets: Tensor | None = None,
    composite: Composite | Rule | str | None = None,
    chunk_size: int | None = None,
    *,
    compose: bool = True,
    record_layers: bool = False,
) -> SparseRelevance:
    """Explain one output neuron at every target element of one event (or a batch of events).

    Args:
        model: an ``nn.Sequential`` MLP or any model with ``lrp_trace`` and ``lrp_outputs``
            methods (see :mod:`.models`), e.g. the MLPF task's model. Run in eval mode; its state is restored.
        x: (N, F) raw element features (F = 12 for MLPF), on the model's device and dtype.
        batch: (N,) event index per element (sorted), or None for one event.
        output: which neuron (required), an :class:`OutputSpec` or a string such as
            ``"output:0"`` or, in the model's ``lrp_output_names`` grammar, e.g. MLPF's
            ``"class:neutral_hadron"``, ``"charge:+1"``, ``"pt"``, ``"energy"``.
        targets: (T,) unique element ids to explain; None = all N elements.
        composite: rules per layer; None = LRP-epsilon with eps = 1e-6 everywhere (nearly
            conservative; pass e.g. ``Epsilon(eps=0.25)`` or a :class:`Composite` for
            smoother maps).
        chunk_size: targets per chunk (bounds peak memory); None chooses automatically.
        compose: use the per-element prefix composition (same result, faster).
        record_layers: also return the per-layer relevance balance (see ``SparseRelevance.layers``).

    Returns:
        :class:`SparseRelevance` with relevance (P, F) over (target, source) pairs inside each
        target's receptive field, the explained value and the absorbed relevance per target.
    """
    if output is None:
        raise ConfigError("explain_event needs an output, e.g. output='class:neutral_hadron'")
    spec = parse_output(output, getattr(model, "lrp_output_names", None))
    if x.dim() != 2:
        raise ConfigError(f"x must have shape (N, F), got {tuple(x.shape)}")
    program = trace_model(model, x, batch)
    if spec.head not in program.outputs:
        raise ConfigError(
            f"{type(model).__name__} has no output {spec.head!r}; it has {', '.join(program.outputs)}"
        )
    out_id = program.outputs[spec.head]
    width = program.values[out_id].shape[1]
    if spec.index >= width:
        raise ConfigError(f"output {spec} index {spec.index} out of range ({width} columns)")
    n = x.shape[0]
    if targets is None:
        targets = torch.arange(n, device=x.device)
    targets = torch.as_tensor(targets, device=x.device).long().reshape(-1)
    if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= n):
        raise ConfigError(
            f"targets must be element ids in [0, {n}), got range [{int(targets.min())}, {int(targets.max())}]"
        )
    if len(torch.unique(targets)) != len(targets):
        raise ConfigError("targets must not contain duplicate element ids")
    return propagate(
        program, out_id, spec.index, targets, as_composite(composite), chunk_size,
        compose=compose, record_layers=record_layers,
    )  # fmt: skip
