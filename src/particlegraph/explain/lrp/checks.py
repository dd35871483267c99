"""Sanity checks shipped with the engine: conservation and LRP-0 == gradient x input."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from particlegraph.explain.lrp.explain import explain_event
from particlegraph.explain.lrp.models import trace_model
from particlegraph.explain.lrp.output import OutputSpec, parse_output
from particlegraph.explain.lrp.rules import Epsilon
from particlegraph.explain.lrp.sparse import SparseRelevance


def conservation_summary(rel: SparseRelevance) -> dict[str, float]:
    """Conservation figures of one explanation (JSON-ready floats).

    ``explained`` (sum over targets of the explained output), ``relevance`` (sum of all input
    relevance), ``absorbed`` (bias + epsilon share), ``event_rel_err`` = ``|relevance + absorbed -
    explained| / sum |explained|``, ``max_target_rel_err`` (the worst target),
    ``absorbed_fraction`` = ``sum |absorbed| / sum |explained|``.
    """
    explained = rel.explained.double()
    total = rel.per_target_total().double()
    absorbed = rel.absorbed.double()
    scale = float(explained.abs().sum().clamp(min=1e-300))
    return {
        "targets": len(rel.targets),
        "pairs": rel.num_pairs,
        "explained": float(explained.sum()),
        "relevance": float(total.sum()),
        "absorbed": float(absorbed.sum()),
        "event_rel_err": float((total + absorbed - explained).sum().abs()) / scale,
        "max_target_rel_err": float(rel.conservation_error().max()) if len(rel.targets) else 0.0,
        "absorbed_fraction": float(absorbed.abs().sum()) / scale,
    }


def layer_balance(rel: SparseRelevance) -> dict[str, float]:
    """Per layer: max over targets of ``|R_in - R_passed_down - absorbed| / max(|R_in|)``.

    Needs an explanation made with ``record_layers=True`` (use ``compose=False`` to cover every
    layer, not only those after the composed per-element prefix).
    """
    if rel.layers is None:
        raise ValueError("layer_balance needs explain_event(..., record_layers=True)")
    out = {}
    for name, bal in rel.layers.items():
        scale = float(bal[:, 0].abs().max().clamp(min=1e-300)) if len(bal) else 1.0
        resid = (bal[:, 0] - bal[:, 1] - bal[:, 2]).abs()
        out[name] = float(resid.max()) / scale if len(bal) else 0.0
    return out


def gradient_x_input(
    model: nn.Module,
    x: Tensor,
    batch: Tensor | None,
    output: OutputSpec | str,
    targets: Tensor,
) -> Tensor:
    """(T, N, F) ``x * d out[t, index] / dx`` by autograd, one backward pass per target."""
    spec = parse_output(output, getattr(model, "lrp_output_names", None))
    was_training = model.training
    model.eval()
    try:
        xg = x.detach().clone().requires_grad_(True)
        program_keys = list(trace_model(model, x, batch, check=False).outputs)
        out = model(xg, batch) if batch is not None else model(xg)
        outs = dict(zip(program_keys, out if isinstance(out, tuple) else (out,), strict=False))
        y = outs[spec.head][:, spec.index]
        rows = []
        for t in targets.tolist():
            (g,) = torch.autograd.grad(y[t], xg, retain_graph=True)
            rows.append(g * x)
    finally:
        model.train(was_training)
    return torch.stack(rows)


def lrp0_gradient_error(
    model: nn.Module,
    x: Tensor,
    output: OutputSpec | str,
    batch: Tensor | None = None,
    targets: Tensor | None = None,
) -> float:
    """Max relative difference between LRP-0 and gradient x input.

    They agree exactly on bias-free ReLU networks whose graph does not depend on the input
    (Montavon et al. 2019); a large value on such a model means the engine or an adapter is wrong.
    """
    targets = torch.arange(len(x)) if targets is None else targets
    rel = explain_event(model, x, batch, output=output, targets=targets, composite=Epsilon(eps=0.0))
    gxi = gradient_x_input(model, x, batch, output, targets)
    dense = rel.to_dense()
    return float((dense - gxi).abs().max() / gxi.abs().max().clamp(min=1e-300))
