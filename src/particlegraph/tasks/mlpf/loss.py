"""MLPF training loss: class (weighted CE or focal) + charge CE + per-output regression.

The three terms follow the MLPF paper (Pata et al. 2021, arXiv:2101.08578): the class loss runs
on every element, the charge loss on elements whose true particle is charged, the regression loss
on elements with a true particle (class != 0). Each term is a ratio ``sum / denominator``; under
DDP the denominators are summed over ranks (``reduce_fn``) and the loss is multiplied by the world
size, so DDP's gradient averaging gives exactly the gradient of the global batch even when ranks
hold different numbers of elements.

Regression weighting (``loss.regression_weighting``): with ``none`` every particle counts once,
so the loss is dominated by the sub-GeV bulk and hard particles shrink (their corrections are pulled
to the soft ones). ``energy`` weights each particle by its true energy (normalised by the sum, so
the term is an energy-weighted mean: what jets and MET are made of); ``pt_bins`` gives every
gen-pT bin of :data:`PT_BIN_EDGES` the same total weight within a batch (each particle
``1 / count of its bin``), balancing soft and hard particles without letting a few TeV particles
dominate.

Class-term energy weighting (``loss.class_energy_power`` = a): every element's cross-entropy is
multiplied by ``max(E_elem, 1 GeV) ** a`` (its measured p or E, :func:`element_energy_weights`), so a
wrong decision on a 50 GeV tower costs more than one on a 0.5 GeV tower: a jet or MET loses (or
double counts) the element's energy, not one count. ``a = 0`` (the default) is the plain per-element
loss.

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

NUM_REGRESSION = 5  # log pT ratio, delta eta, sin dphi, cos dphi, log E ratio (model.py)
#: Gen pT bin edges [GeV] of ``regression_weighting: pt_bins`` (the last bin is open).
PT_BIN_EDGES = (0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
REGRESSION_WEIGHTINGS = ("none", "energy", "pt_bins")


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
    regression_weighting: str = "none"  # per particle: "none", "energy" or "pt_bins" (see above)
    class_energy_power: float = 0.0  # class term per element x max(E_elem / GeV, 1) ** power
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
        if self.regression_weighting not in REGRESSION_WEIGHTINGS:
            raise ConfigError(
                f"loss.regression_weighting must be one of {list(REGRESSION_WEIGHTINGS)}, "
                f"got {self.regression_weighting!r}"
            )
        if self.regression not in ("huber", "mse"):
            raise ConfigError(f"loss.regression must be 'huber' or 'mse', got {self.regression!r}")
        if len(self.regression_weights) != NUM_REGRESSION:
            raise ConfigError(
                f"loss.regression_weights needs {NUM_REGRESSION} values, "
                f"got {len(self.regression_weights)}"
            )
        if (
            self.focal_gamma < 0
            or self.huber_delta <= 0
            or self.auto_weight_power < 0
            or self.class_energy_power < 0
        ):
            raise ConfigError(
                "loss.focal_gamma, loss.auto_weight_power and loss.class_energy_power must be "
                ">= 0 and huber_delta > 0"
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
    w: np.ndarray = np.zeros_like(freq)
    w[present] = freq[present] ** (-power)
    w /= float((freq * w).sum())
    w[~present] = w[present].max()
    return w


# --- loss ----------------------------------------------------------------------------------------


def particle_weights(mode: str, gen_pt: Tensor, gen_energy: Tensor) -> Tensor:
    """Per-particle regression weights (M,) for ``mode`` of :data:`REGRESSION_WEIGHTINGS`.

    Args:
        mode: "none" (all 1), "energy" (the true energy [GeV]) or "pt_bins" (``1 / n_b``, n_b the
            number of particles in this call whose gen pT falls in the same bin of
            :data:`PT_BIN_EDGES`, so every non-empty bin carries a total weight of 1).
        gen_pt: (M,) true pT [GeV] of the particles.
        gen_energy: (M,) true energy [GeV].
    """
    if mode == "none":
        return torch.ones_like(gen_pt)
    if mode == "energy":
        return gen_energy.clamp_min(MIN_WEIGHT_ENERGY)
    edges = gen_pt.new_tensor(PT_BIN_EDGES[1:])
    idx = torch.bucketize(gen_pt, edges, right=True)  # (M,) bin b: edges[b] <= pT < edges[b+1]
    counts = torch.bincount(idx, minlength=len(PT_BIN_EDGES)).to(gen_pt.dtype)
    return 1.0 / counts[idx]


#: Smallest energy weight [GeV] of ``regression_weighting: energy``.
MIN_WEIGHT_ENERGY = 0.1


#: Energy [GeV] below which an element's class-term energy weight stays 1.
MIN_CLASS_WEIGHT_ENERGY = 1.0


def element_energy_weights(energy: Tensor, power: float) -> Tensor:
    """Class-term weights ``max(E, 1 GeV) ** power`` (N,) of elements with measured energy
    ``energy`` (N,) [GeV] (a track's p, a tower's E); all 1 for ``power = 0``."""
    return energy.float().clamp_min(MIN_CLASS_WEIGHT_ENERGY) ** power


def _focal_terms(logits: Tensor, target: Tensor, weight: Tensor | None, gamma: float) -> Tensor:
    """Per-element focal loss ``-w_c (1 - p_t)^gamma log p_t`` (N,)."""
    logp = F.log_softmax(logits, dim=-1)
    logp_t = logp.gather(1, target[:, None]).squeeze(1)  # (N,)
    loss = -((1.0 - logp_t.exp()).clamp_min(0.0) ** gamma) * logp_t
    return loss * weight[target] if weight is not None else loss


def class_term(
    logits: Tensor,
    cls: Tensor,
    weight: Tensor | None,
    cfg: LossConfig,
    element_weight: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``(sum, denominator)`` of the class term: the weighted per-element losses and the sum of
    their weights (as torch's cross-entropy "mean"); logits (N, 6), cls (N,) long, the optional
    per-element weights (N,) (:func:`element_energy_weights`) multiply the class weights."""
    if cfg.classification == "focal":
        per = _focal_terms(logits, cls, weight, cfg.focal_gamma)
    else:
        per = F.cross_entropy(logits, cls, weight=weight, reduction="none")
    w_el = weight[cls] if weight is not None else torch.ones_like(per)
    if element_weight is None:
        return per.sum(), w_el.sum()
    return (per * element_weight).sum(), (w_el * element_weight).sum()


def charge_term(charge_logits: Tensor, charge: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:
    """``(sum, denominator)`` of the charge cross-entropy over elements whose true particle is
    charged (charged hadron, electron, muon); charge_logits (N, 3), charge and cls (N,) long."""
    charged = (
        (cls == schema.ParticleClass.CHARGED_HADRON)
        | (cls == schema.ParticleClass.ELECTRON)
        | (cls == schema.ParticleClass.MUON)
    )
    total = F.cross_entropy(charge_logits[charged], charge[charged], reduction="sum")
    return total, charged.sum().to(charge_logits.dtype)


def regression_term(
    regression: Tensor,
    target: Tensor,
    has: Tensor,
    cfg: LossConfig,
    gen_pt_energy: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """``(sum, denominator)`` of the regression term over elements with a true particle.

    Each particle's Huber (or squared) error, summed over the outputs with
    ``cfg.regression_weights``, carries its weight of :func:`particle_weights`; the denominator
    is the sum of those weights. regression and target (N, 5), has (N,) bool.

    Raises:
        ConfigError: a weighting other than ``none`` without ``gen_pt_energy``.
    """
    pred, tgt = regression[has], target[has].float()
    if cfg.regression == "huber":
        per = F.huber_loss(pred, tgt, reduction="none", delta=cfg.huber_delta)
    else:
        per = F.mse_loss(pred, tgt, reduction="none")
    if cfg.regression_weighting == "none":
        pw = torch.ones_like(pred[:, 0])
    elif gen_pt_energy is None:
        raise ConfigError(
            f"loss.regression_weighting={cfg.regression_weighting!r} needs the true pT and E "
            "(pass gen_pt_energy)"
        )
    else:
        gpt, gen_e = (t[has].float() for t in gen_pt_energy)
        pw = particle_weights(cfg.regression_weighting, gpt, gen_e)
    rw = regression.new_tensor(cfg.regression_weights)  # (5,)
    return ((per * rw).sum(-1) * pw).sum(), pw.sum()


def mlpf_loss(
    logits: Tensor,
    charge_logits: Tensor,
    regression: Tensor,
    targets: tuple[Tensor, Tensor, Tensor, Tensor],
    cfg: LossConfig,
    class_weights: Tensor | None = None,
    *,
    gen_pt_energy: tuple[Tensor, Tensor] | None = None,
    element_energy: Tensor | None = None,
    reduce_fn: Callable[[Tensor], Tensor] | None = None,
    scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """Total MLPF loss and its parts.

    Args:
        logits: class logits (N, 6).
        charge_logits: logits of charge -1/0/+1 (N, 3).
        regression: predicted regression targets (N, 5).
        targets: ``(cls (N,) long, charge (N,) long in 0..2, regression (N, 5), has_particle (N,)
            bool)``, the fields of ``model.MLPFTargets``.
        cfg: loss settings.
        class_weights: (6,) weights of the class term, or None for unweighted.
        gen_pt_energy: true ``(pT, E)`` [GeV], each (N,), needed unless
            ``cfg.regression_weighting == "none"``.
        element_energy: measured energy (N,) [GeV] of each element (X column ``p|E``), needed
            when ``cfg.class_energy_power > 0``.
        reduce_fn: sums a tensor over ranks (DDP); None in a single process.
        scale: multiplies the loss (the world size under DDP, see the module docstring).

    Returns:
        ``(loss, {"loss_class", "loss_charge", "loss_regression", "accuracy"})``; the parts are
        the global values (not scaled), as floats.
    """
    cls, charge, reg_target, has = targets
    logits, charge_logits, regression = logits.float(), charge_logits.float(), regression.float()
    w = class_weights.to(logits.device, torch.float32) if class_weights is not None else None
    if cfg.class_energy_power > 0 and element_energy is None:
        raise ConfigError("loss.class_energy_power > 0 needs the elements' energies")
    w_el = (
        element_energy_weights(element_energy.to(logits.device), cfg.class_energy_power)
        if cfg.class_energy_power > 0 and element_energy is not None
        else None
    )
    cls_sum, cls_den = class_term(logits, cls, w, cfg, w_el)
    charge_sum, charge_den = charge_term(charge_logits, charge, cls)
    reg_sum, reg_den = regression_term(regression, reg_target, has, cfg, gen_pt_energy)

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
