"""MLPF training loss: class (weighted CE or focal) + charge CE + per-output regression.

The three terms follow the MLPF paper (Pata et al. 2021, arXiv:2101.08578): the class loss runs
on every element, the charge loss on elements whose true particle is charged, the regression loss
on elements with a true particle (class != 0). Each term is a ratio ``sum / denominator``; under
DDP the denominators are summed over ranks (``reduce_fn``) and the loss is multiplied by the world
size, so DDP's gradient averaging gives exactly the gradient of the global batch even when ranks
hold different numbers of elements.

Focal loss: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017 (arXiv:1708.02002).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from particlegraph.errors import ConfigError
from particlegraph.sim import elements as schema
from particlegraph.sim.elements import MLPFEvent

NUM_REGRESSION = 5  # log pT ratio, delta eta, sin phi, cos phi, log E ratio (models.mlpf)


@dataclass(frozen=True)
class LossConfig:
    """The ``loss:`` section of an MLPF run config."""

    classification: str = "ce"  # "ce" (class-weighted cross-entropy) or "focal"
    focal_gamma: float = 2.0  # focusing exponent of the focal loss
    class_weighting: str = "auto"  # "auto" (inverse class frequency), "none", or "manual"
    class_weights: tuple[float, ...] = ()  # 6 weights; "auto" fills them in the run's config.yaml
    auto_weight_power: float = 0.5  # auto weight of class c = (1 / frequency_c) ** power
    regression: str = "huber"  # "huber" or "mse"
    huber_delta: float = 1.0  # transition point of the Huber loss (in target units)
    regression_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)  # per regression output
    weight_class: float = 1.0  # weight of the class term in the total
    weight_charge: float = 1.0  # weight of the charge term
    weight_regression: float = 1.0  # weight of the regression term

    def __post_init__(self) -> None:
        if self.classification not in ("ce", "focal"):
            raise ConfigError(
                f"loss.classification must be 'ce' or 'focal', got {self.classification!r}"
            )
        if self.class_weighting not in ("auto", "none", "manual"):
            raise ConfigError(
                f"loss.class_weighting must be 'auto', 'none' or 'manual', got {self.class_weighting!r}"
            )
        if self.class_weighting == "manual" and len(self.class_weights) != schema.NUM_CLASSES:
            raise ConfigError(
                f"loss.class_weights needs {schema.NUM_CLASSES} values with class_weighting=manual, "
                f"got {len(self.class_weights)}"
            )
        if self.class_weights and (
            len(self.class_weights) != schema.NUM_CLASSES or min(self.class_weights) < 0
        ):
            raise ConfigError(
                f"loss.class_weights must be {schema.NUM_CLASSES} non-negative values, "
                f"got {list(self.class_weights)}"
            )
        if self.regression not in ("huber", "mse"):
            raise ConfigError(f"loss.regression must be 'huber' or 'mse', got {self.regression!r}")
        if len(self.regression_weights) != NUM_REGRESSION:
            raise ConfigError(
                f"loss.regression_weights needs {NUM_REGRESSION} values, "
                f"got {len(self.regression_weights)}"
            )
        if self.focal_gamma < 0 or self.huber_delta <= 0 or self.auto_weight_power < 0:
            raise ConfigError(
                "loss.focal_gamma, loss.auto_weight_power must be >= 0 and huber_delta > 0"
            )


# --- class weights -----------------------------------------------------------------------------


def count_classes(events: Iterable[MLPFEvent]) -> np.ndarray:
    """Number of elements per ygen class (6,) int64 over ``events``."""
    counts = np.zeros(schema.NUM_CLASSES, dtype=np.int64)
    for ev in events:
        pid = np.rint(ev.ygen[:, schema.Y_PID]).astype(np.int64)
        counts += np.bincount(pid.clip(0, schema.NUM_CLASSES - 1), minlength=schema.NUM_CLASSES)
    return counts


def class_weights_from_counts(counts: Sequence[int] | np.ndarray, power: float = 0.5) -> np.ndarray:
    """Inverse-frequency class weights ``(1 / f_c) ** power`` (6,), normalised to mean 1 per element.

    The normalisation makes ``sum_c f_c w_c = 1``, so the weighted loss keeps the scale of the
    unweighted one. Classes absent from ``counts`` get the largest weight of the present ones.

    Raises:
        ConfigError: ``counts`` is all zero.
    """
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise ConfigError("cannot compute class weights: the sample has no elements")
    freq = c / total
    present = freq > 0
    w = np.zeros_like(freq)
    w[present] = freq[present] ** (-power)
    w /= float((freq * w).sum())
    w[~present] = w[present].max()
    return w


# --- loss ----------------------------------------------------------------------------------------


def _focal_terms(logits: Tensor, target: Tensor, weight: Tensor | None, gamma: float) -> Tensor:
    """Per-element focal loss ``-w_c (1 - p_t)^gamma log p_t`` (N,)."""
    logp = F.log_softmax(logits, dim=-1)
    logp_t = logp.gather(1, target[:, None]).squeeze(1)  # (N,)
    loss = -((1.0 - logp_t.exp()).clamp_min(0.0) ** gamma) * logp_t
    return loss * weight[target] if weight is not None else loss


def mlpf_loss(
    logits: Tensor,
    charge_logits: Tensor,
    regression: Tensor,
    targets: tuple[Tensor, Tensor, Tensor, Tensor],
    cfg: LossConfig,
    class_weights: Tensor | None = None,
    *,
    reduce_fn: Callable[[Tensor], Tensor] | None = None,
    scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """Total MLPF loss and its parts.

    Args:
        logits: class logits (N, 6).
        charge_logits: logits of charge -1/0/+1 (N, 3).
        regression: predicted regression targets (N, 5).
        targets: ``(cls (N,) long, charge (N,) long in 0..2, regression (N, 5), has_particle (N,)
            bool)``, the fields of ``models.mlpf.MLPFTargets``.
        cfg: loss settings.
        class_weights: (6,) weights of the class term, or None for unweighted.
        reduce_fn: sums a tensor over ranks (DDP); None in a single process.
        scale: multiplies the loss (the world size under DDP, see the module docstring).

    Returns:
        ``(loss, {"loss_class", "loss_charge", "loss_regression", "accuracy"})``; the parts are
        the global values (not scaled), as floats.
    """
    cls, charge, reg_target, has = targets
    logits, charge_logits, regression = logits.float(), charge_logits.float(), regression.float()
    w = class_weights.to(logits.device, torch.float32) if class_weights is not None else None

    # class term: sum of weighted per-element losses / sum of the weights (as torch's CE "mean")
    if cfg.classification == "focal":
        cls_sum = _focal_terms(logits, cls, w, cfg.focal_gamma).sum()
    else:
        cls_sum = F.cross_entropy(logits, cls, weight=w, reduction="sum")
    cls_den = w[cls].sum() if w is not None else logits.new_tensor(float(cls.numel()))

    charged = (
        (cls == schema.ParticleClass.CHARGED_HADRON)
        | (cls == schema.ParticleClass.ELECTRON)
        | (cls == schema.ParticleClass.MUON)
    )
    charge_sum = F.cross_entropy(charge_logits[charged], charge[charged], reduction="sum")
    charge_den = charged.sum().to(logits.dtype)

    rw = logits.new_tensor(cfg.regression_weights)  # (5,)
    pred, tgt = regression[has], reg_target[has].float()
    if cfg.regression == "huber":
        per = F.huber_loss(pred, tgt, reduction="none", delta=cfg.huber_delta)
    else:
        per = F.mse_loss(pred, tgt, reduction="none")
    reg_sum = (per * rw).sum()
    reg_den = has.sum().to(logits.dtype)

    correct = (logits.argmax(-1) == cls).sum().to(logits.dtype)
    total = logits.new_tensor(float(cls.numel()))
    dens = torch.stack([cls_den, charge_den, reg_den, total])
    if reduce_fn is not None:
        dens = reduce_fn(dens)
    dens = dens.detach().clamp_min(1.0e-12)

    loss_cls = cls_sum / dens[0]
    loss_charge = charge_sum / dens[1]
    loss_reg = reg_sum / dens[2]
    loss = (
        cfg.weight_class * loss_cls
        + cfg.weight_charge * loss_charge
        + cfg.weight_regression * loss_reg
    )
    parts = torch.stack([loss_cls, loss_charge, loss_reg, correct / dens[3]]).detach()
    if reduce_fn is not None:
        parts = reduce_fn(parts)  # local shares of the global ratios add up over ranks
    names = ("loss_class", "loss_charge", "loss_regression", "accuracy")
    return loss * scale, dict(zip(names, parts.tolist(), strict=True))
