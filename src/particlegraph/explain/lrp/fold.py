"""BatchNorm folded into the preceding Linear layer (eval-mode statistics).

``BN(W a + b) = s (W a + b - mu) + beta`` with ``s = gamma / sqrt(var + eps)`` is again a linear
layer ``W' a + b'`` with ``W' = s W`` (row-wise) and ``b' = s (b - mu) + beta``. LRP then treats the
pair as one layer, which is the standard practice (BatchNorm alone is not a contribution-
distributing layer). The tracer uses :func:`fold_linear_bn` without touching the model; the
context manager :func:`folded_batchnorm` folds a model in place and restores it exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def bn_scale_shift(bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Per-feature ``(scale, shift)`` so that eval-mode ``bn(y) = scale * y + shift``."""
    var = bn.running_var if bn.running_var is not None else torch.ones(bn.num_features)
    mean = bn.running_mean if bn.running_mean is not None else torch.zeros(bn.num_features)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


def fold_linear_bn(linear: nn.Linear, bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Weight (out, in) and bias (out,) of ``bn(linear(a))`` as one linear layer."""
    scale, shift = bn_scale_shift(bn)
    weight = linear.weight.detach() * scale[:, None]
    bias = shift if linear.bias is None else linear.bias.detach() * scale + shift
    return weight, bias


@contextmanager
def folded_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """Fold every ``Linear -> BatchNorm1d`` pair inside ``nn.Sequential`` containers in place.

    Inside the block the BatchNorm modules are replaced by ``nn.Identity`` and the Linear layers
    carry the folded parameters; on exit (also after an exception) the original modules and the
    original parameter values are put back bit for bit. The model must be in eval mode.
    """
    if model.training:
        from particlegraph.errors import ConfigError

        raise ConfigError(
            "folded_batchnorm needs model.eval(): BatchNorm folding uses running stats"
        )
    saved: list[tuple[nn.Sequential, int, nn.Module, nn.Linear, Tensor, Tensor | None]] = []
    try:
        for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
            for i in range(1, len(seq)):
                lin, bn = seq[i - 1], seq[i]
                if isinstance(lin, nn.Linear) and isinstance(bn, nn.BatchNorm1d):
                    weight, bias = fold_linear_bn(lin, bn)
                    old_b = None if lin.bias is None else lin.bias.detach().clone()
                    saved.append((seq, i, bn, lin, lin.weight.detach().clone(), old_b))
                    with torch.no_grad():
                        lin.weight.copy_(weight)
                        if lin.bias is None:
                            lin.bias = nn.Parameter(bias.clone())
                        else:
                            lin.bias.copy_(bias)
                    seq[i] = nn.Identity()
        yield model
    finally:
        for seq, i, bn, lin, saved_weight, saved_bias in reversed(saved):
            seq[i] = bn
            with torch.no_grad():
                lin.weight.copy_(saved_weight)
                if saved_bias is None:
                    lin.bias = None  # type: ignore[assignment]
                else:
                    lin.bias.copy_(saved_bias)
