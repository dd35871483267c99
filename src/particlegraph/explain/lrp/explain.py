"""``explain_event`` / ``explain_outputs``: LRP relevance of one or several output neurons for
every element of an event."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.engine import propagate, propagate_many
from particlegraph.explain.lrp.models import trace_model
from particlegraph.explain.lrp.output import OutputSpec, parse_output
from particlegraph.explain.lrp.program import Program
from particlegraph.explain.lrp.rules import Composite, Rule, as_composite
from particlegraph.explain.lrp.sparse import MultiRelevance, SparseRelevance


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
    if x.dim() != 2:
        raise ConfigError(f"x must have shape (N, F), got {tuple(x.shape)}")
    program = trace_model(model, x, batch)
    [(out_id, index)] = _heads(model, program, [output])
    targets = _targets(targets, x)
    return propagate(
        program, out_id, index, targets, as_composite(composite), chunk_size,
        compose=compose, record_layers=record_layers,
    )  # fmt: skip


def explain_outputs(
    model: nn.Module,
    x: Tensor,
    outputs: Sequence[OutputSpec | str],
    batch: Tensor | None = None,
    targets: Tensor | None = None,
    composite: Composite | Rule | str | None = None,
    chunk_size: int | None = None,
    *,
    program: Program | None = None,
    compose: bool = True,
    record_layers: bool = False,
) -> MultiRelevance:
    """Explain several output neurons at every target element of one event, in one pass.

    The forward trace, the rule preparation, the per-element prefix matrices and the pair
    bookkeeping are shared; only the arithmetic on the relevance values grows with the number
    of outputs O. Arguments as in :func:`explain_event`; ``outputs`` lists O neurons (e.g. all
    12 of MLPF); ``program`` reuses a trace already recorded with :func:`.models.trace_model`.

    Returns:
        :class:`MultiRelevance` with values (P, O, F), explained and absorbed (T, O), and
        ``names`` the outputs' labels; ``result.output(o)`` equals
        ``explain_event(model, x, output=outputs[o], ...)`` up to float round-off.
    """
    if not outputs:
        raise ConfigError("explain_outputs needs at least one output")
    if x.dim() != 2:
        raise ConfigError(f"x must have shape (N, F), got {tuple(x.shape)}")
    if program is None:
        program = trace_model(model, x, batch)
    heads = _heads(model, program, outputs)
    rel = propagate_many(
        program, heads, _targets(targets, x), as_composite(composite), chunk_size,
        compose=compose, record_layers=record_layers,
    )  # fmt: skip
    names = getattr(model, "lrp_output_names", None)
    rel.names = tuple(parse_output(o, names).label(names) for o in outputs)
    return rel


def _heads(
    model: nn.Module, program: Program, outputs: Sequence[OutputSpec | str]
) -> list[tuple[int, int]]:
    """(tensor id, column) of each output, checked against the traced program."""
    heads = []
    for output in outputs:
        spec = parse_output(output, getattr(model, "lrp_output_names", None))
        if spec.head not in program.outputs:
            raise ConfigError(
                f"{type(model).__name__} has no output {spec.head!r}; "
                f"it has {', '.join(program.outputs)}"
            )
        out_id = program.outputs[spec.head]
        width = program.values[out_id].shape[1]
        if spec.index >= width:
            raise ConfigError(f"output {spec} index {spec.index} out of range ({width} columns)")
        heads.append((out_id, spec.index))
    return heads


def _targets(targets: Tensor | None, x: Tensor) -> Tensor:
    """(T,) validated unique element ids; None = all N elements."""
    n = x.shape[0]
    if targets is None:
        return torch.arange(n, device=x.device)
    targets = torch.as_tensor(targets, device=x.device).long().reshape(-1)
    if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= n):
        raise ConfigError(
            f"targets must be element ids in [0, {n}), got range [{int(targets.min())}, {int(targets.max())}]"
        )
    if len(torch.unique(targets)) != len(targets):
        raise ConfigError("targets must not contain duplicate element ids")
    return targets
