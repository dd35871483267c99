"""What the tabular classifier learned: gradients, Taylor coefficients, ROC curves.

Derivatives are taken of the network output (signal probability) with respect to the
standardised observables ``z = (x - mean) / std`` stored in the model, so coefficients of
observables with different units are comparable (Wunsch et al., arXiv:1803.08782). Heat maps
(:func:`heatmap_derivatives`) are drawn in the raw observables and differentiate with respect to them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError
from particlegraph.explain.gradients import (
    GridDerivatives,
    TaylorCoefficients,
    gradients,
    grid_derivatives,
    taylor_coefficients,
)
from particlegraph.metrics import roc
from particlegraph.tasks.tabular.model import MLPClassifier


def _as_tensor(x: np.ndarray | Tensor, model: nn.Module) -> Tensor:
    ref = next(model.buffers())
    return torch.as_tensor(x, dtype=ref.dtype, device=ref.device)


@torch.no_grad()
def predict(model: MLPClassifier, x: np.ndarray | Tensor) -> np.ndarray:
    """Network output (signal probability) for raw observables (B, F) -> (B,) numpy."""
    model.eval()
    return model.prob(_as_tensor(x, model)).cpu().numpy()


def gradient_summary(model: MLPClassifier, x: np.ndarray | Tensor) -> dict[str, list[float]]:
    """Mean gradient and mean absolute gradient of the output per standardised observable.

    Returns:
        ``{"mean_gradient": [F floats], "mean_abs_gradient": [F floats]}``.
    """
    model.eval()
    z = model.standardize(_as_tensor(x, model))
    g = gradients(model.prob_z, z)  # (B, F)
    return {
        "mean_gradient": g.mean(0).tolist(),
        "mean_abs_gradient": g.abs().mean(0).tolist(),
    }


def model_taylor(
    model: MLPClassifier, x: np.ndarray | Tensor, *, chunk_size: int | None = None
) -> TaylorCoefficients:
    """``<|t_i|>``, ``<|t_ij|>`` of the network output over raw rows ``x`` (B, F)."""
    was_training = model.training
    model.eval()
    z = model.standardize(_as_tensor(x, model))
    tc = taylor_coefficients(model.prob_z, z, chunk_size=chunk_size)
    model.train(was_training)
    return TaylorCoefficients(first=tc.first.cpu(), second=tc.second.cpu())


def taylor_dict(tc: TaylorCoefficients, names: Sequence[str]) -> dict[str, Any]:
    """JSON-ready ``{"observables", "first_order" (F), "second_order" (F x F), "ranked"}``."""
    return {
        "observables": list(names),
        "first_order": tc.first.tolist(),
        "second_order": tc.second.tolist(),
        "ranked": [{"coefficient": k, "value": v} for k, v in tc.ranked(list(names))],
    }


class TaylorTracker:
    """Epoch callback for :func:`particlegraph.train.loop.fit`: Taylor coefficients per epoch.

    Called as ``tracker(epoch, model)``; returns the coefficients as flat floats
    (``taylor_<label>``) so they also land in the run's history (and survive a resume).
    :attr:`epochs`, :attr:`first`, :attr:`second` keep the values of this process.
    """

    def __init__(self, x: np.ndarray | Tensor, names: Sequence[str]) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.names = list(names)
        self.epochs: list[int] = []
        self.first: list[list[float]] = []
        self.second: list[list[list[float]]] = []

    def __call__(self, epoch: int, model: nn.Module) -> dict[str, float]:
        if not isinstance(model, MLPClassifier):
            raise ConfigError("TaylorTracker needs an MLPClassifier")
        tc = model_taylor(model, self.x.to(next(model.buffers()).device))
        self.epochs.append(epoch)
        self.first.append(tc.first.tolist())
        self.second.append(tc.second.tolist())
        return {f"taylor_{k}": v for k, v in tc.ranked(self.names)}


def taylor_evolution_from_records(
    records: Sequence[Mapping[str, float]], names: Sequence[str]
) -> dict[str, Any]:
    """Per-epoch coefficients ``{"epoch": [...], "<label>": [...]}`` from history records."""
    labels = _labels(names)
    out: dict[str, Any] = {"epoch": [int(r["epoch"]) for r in records]}
    for lab in labels:
        out[lab] = [float(r.get(f"taylor_{lab}", np.nan)) for r in records]
    return out


def _labels(names: Sequence[str]) -> list[str]:
    nf = len(names)
    labs = [f"t_{n}" for n in names]
    labs += [f"t_{names[i]},{names[j]}" for i in range(nf) for j in range(i, nf)]
    return labs


# ---------------------------------------------------------------------------------------------
# ROC
# ---------------------------------------------------------------------------------------------


class RocCurve(NamedTuple):
    """ROC of one score: false/true positive rates (K,), AUC, and whether the score was negated."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    flipped: bool


def roc_curve_auto(score: np.ndarray, y: np.ndarray) -> RocCurve:
    """ROC of ``score`` for labels ``y`` (1 = signal), negating the score when that separates better.

    A plain observable has no preferred direction; the AUC is therefore always >= 0.5.
    """
    if len(np.unique(y)) != 2:
        raise ConfigError("ROC needs both signal and background events")
    curve = roc.roc_curve(score, y)
    area = roc.auc(curve)
    flipped = area < 0.5
    if flipped:
        curve = roc.roc_curve(-np.asarray(score), y)
    return RocCurve(fpr=curve.eps_b, tpr=curve.eps_s, auc=max(area, 1.0 - area), flipped=flipped)


def roc_table(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    network: np.ndarray | None = None,
    abs_columns: Sequence[int] = (1,),
) -> dict[str, RocCurve]:
    """ROC per observable, per ``|observable|`` in ``abs_columns``, and for the network output."""
    out = {name: roc_curve_auto(x[:, i], y) for i, name in enumerate(names)}
    for i in abs_columns:
        out[f"|{names[i]}|"] = roc_curve_auto(np.abs(x[:, i]), y)
    if network is not None:
        out["network"] = roc_curve_auto(network, y)
    return out


# ---------------------------------------------------------------------------------------------
# heat maps
# ---------------------------------------------------------------------------------------------


def heatmap_derivatives(
    model: MLPClassifier,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    bins: int = 100,
) -> tuple[np.ndarray, np.ndarray, GridDerivatives]:
    """Output and derivatives of a two-observable model on a ``bins x bins`` grid of raw values.

    Returns ``(xs (bins,), ys (bins,), GridDerivatives)``, each field (bins, bins) indexed [y, x].
    """
    if model.cfg.n_inputs != 2:
        raise ConfigError(f"heat maps need a two-input model, got {model.cfg.n_inputs} inputs")
    model.eval()
    ref = next(model.buffers())
    xs = torch.linspace(*x_range, bins, dtype=ref.dtype, device=ref.device)
    ys = torch.linspace(*y_range, bins, dtype=ref.dtype, device=ref.device)
    gd = grid_derivatives(model.prob, xs, ys)
    gd = GridDerivatives(*(t.cpu() for t in gd))
    return xs.cpu().numpy(), ys.cpu().numpy(), gd
