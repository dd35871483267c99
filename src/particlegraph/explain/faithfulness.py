"""Faithfulness checks for relevance scores: flipping curves and the model-randomisation test.

Flipping ("pixel flipping", Samek et al. 2017, IEEE TNNLS 28, 2660, arXiv:1509.06321) removes
input units in order of decreasing relevance and records how much the explained output drops;
a faithful explanation makes the output drop faster than removing the same units in a random
order. Units are whole detector elements (rows of ``X``), input features (columns of ``X``) or
single (element, feature) cells. A removed unit is replaced by a baseline:

* ``"zero"`` (default): the value 0. For the element-type column this gives type 0, which the
  MLPF input encoding maps to an all-zero one-hot, i.e. "no element".
* ``"mean"``: the per-feature mean over the elements of the event being explained.
* a tensor of shape (F,): one value per feature.

The elements stay in the graph, so the graph size is fixed along the curve; a learned kNN graph
(GravNet) may still rewire around replaced elements, as it would for a real change of input.

The model-randomisation sanity test (Adebayo et al. 2018, "Sanity checks for saliency maps",
arXiv:1810.03292) re-initialises the layers one after another, cascading from the output towards
the input, recomputes the relevance and reports the Spearman rank correlation with the relevance
of the trained model. An explanation that does not change when the weights are destroyed does not
explain the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import scipy.stats
import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError

Unit = Literal["element", "feature", "cell"]
Baseline = Literal["zero", "mean"] | Tensor
#: ``output_fn(x) -> Tensor``: the explained output(s) for input ``x`` (N, F); reduced by a mean.
OutputFn = Callable[[Tensor], Tensor]
#: ``relevance_fn(model, x) -> array``: relevance of a fixed shape for a model and an input.
RelevanceFn = Callable[[nn.Module, Tensor], Any]

DEFAULT_FRACTIONS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class FlippingCurve:
    """Output drop versus fraction of units removed, relevance order against random order.

    Attributes:
        unit: what was removed ("element", "feature" or "cell").
        fractions: (S,) fraction of units removed at each step, from 0 to 1.
        relevance: (S,) output drop ``f(x) - f(x_removed)`` (mean over the explained outputs)
            when the most relevant units are removed first.
        random: (S,) the same for a random order, averaged over ``num_random`` permutations.
        random_std: (S,) standard deviation of the random-order drop over the permutations.
        by: "signed" (order by relevance, measure the drop) or "absolute" (order by |relevance|,
            measure |change|).
    """

    unit: str
    fractions: np.ndarray
    relevance: np.ndarray
    random: np.ndarray
    random_std: np.ndarray
    by: str = "signed"

    @property
    def auc_gap(self) -> float:
        """Area between the relevance-order and random-order curves (trapezoid over fractions).

        Positive when the relevance ranks the units better than chance; in units of the output.
        """
        return _trapezoid(self.relevance - self.random, self.fractions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "unit": self.unit,
            "by": self.by,
            "fractions": self.fractions.tolist(),
            "relevance": self.relevance.tolist(),
            "random": self.random.tolist(),
            "random_std": self.random_std.tolist(),
            "auc_gap": self.auc_gap,
        }


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def _baseline_values(x: Tensor, baseline: Baseline) -> Tensor:
    """(F,) replacement value per feature."""
    if isinstance(baseline, Tensor):
        if baseline.shape != (x.shape[1],):
            raise ConfigError(
                f"flipping baseline has shape {tuple(baseline.shape)}; expected ({x.shape[1]},)"
            )
        return baseline.to(device=x.device, dtype=x.dtype)
    if baseline == "zero":
        return torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
    if baseline == "mean":
        return x.mean(dim=0)
    raise ConfigError(f"unknown flipping baseline {baseline!r}; use 'zero', 'mean' or a tensor")


def unit_scores(scores: np.ndarray | Tensor, unit: Unit) -> np.ndarray:
    """Collapse (N, F) cell relevance to one score per unit.

    Returns (N,) for "element" (sum over features), (F,) for "feature" (sum over elements) and
    (N * F,) for "cell" (row-major).
    """
    s = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, np.float64)
    if s.ndim != 2:
        raise ConfigError(f"flipping scores must have shape (N, F); got {s.shape}")
    if unit == "element":
        result: np.ndarray = s.sum(axis=1)
        return result
    if unit == "feature":
        total: np.ndarray = s.sum(axis=0)
        return total
    if unit == "cell":
        return s.reshape(-1)
    raise ConfigError(f"unknown flipping unit {unit!r}; use 'element', 'feature' or 'cell'")


def _removal_mask(order: np.ndarray, count: int, unit: Unit, shape: tuple[int, int]) -> Tensor:
    """(N, F) bool mask of the cells removed when the first ``count`` units of ``order`` go."""
    chosen = torch.as_tensor(order[:count], dtype=torch.long)
    mask = torch.zeros(shape, dtype=torch.bool)
    if unit == "element":
        mask[chosen] = True
    elif unit == "feature":
        mask[:, chosen] = True
    else:
        mask.view(-1)[chosen] = True
    return mask


@torch.no_grad()
def _drop_curve(
    output_fn: OutputFn,
    x: Tensor,
    order: np.ndarray,
    counts: np.ndarray,
    unit: Unit,
    base: Tensor,
    reference: float,
    absolute: bool,
    cache: dict[int, float],
) -> np.ndarray:
    """Output drop after removing the first ``counts`` units of ``order``.

    ``cache`` holds values that do not depend on the order (nothing or everything removed), so
    each is computed once per curve family.
    """
    num_units = order.size
    drops = np.empty(len(counts))
    for i, count in enumerate(counts):
        count = int(count)
        if count in (0, num_units) and count in cache:
            value = cache[count]
        else:
            mask = _removal_mask(order, count, unit, (x.shape[0], x.shape[1])).to(x.device)
            x_removed = torch.where(mask, base.expand_as(x), x)
            value = float(output_fn(x_removed).double().mean())
            if count in (0, num_units):
                cache[count] = value
        drop = reference - value
        drops[i] = abs(drop) if absolute else drop
    return drops


def flipping_curve(
    output_fn: OutputFn,
    x: Tensor,
    scores: np.ndarray | Tensor,
    *,
    unit: Unit = "element",
    fractions: Sequence[float] | np.ndarray = DEFAULT_FRACTIONS,
    baseline: Baseline = "zero",
    by: Literal["signed", "absolute"] = "signed",
    num_random: int = 3,
    seed: int = 0,
) -> FlippingCurve:
    """Remove units most-relevant-first and in random order; record the output drop.

    Args:
        output_fn: maps an input (N, F) to the explained output(s), any shape; the mean is used
            (e.g. the neutral-hadron logit of a set of target elements).
        x: (N, F) input of one event.
        scores: (N, F) relevance of each input cell for that output (e.g. a
            :class:`SparseRelevance` summed over target elements).
        unit: "element" removes rows, "feature" removes columns, "cell" single entries.
        fractions: fractions of units removed at each step, in [0, 1].
        baseline: replacement for removed cells, see the module docstring.
        by: "signed" orders by decreasing relevance and records ``f(x) - f(x')``; "absolute"
            orders by decreasing |relevance| and records ``|f(x) - f(x')|``.
        num_random: number of random permutations averaged for the reference curve.
        seed: seed of the random permutations.

    Returns:
        A :class:`FlippingCurve`; its ``auc_gap`` is positive for a faithful explanation.
    """
    if x.ndim != 2 or tuple(np.shape(scores)) != tuple(x.shape):
        raise ConfigError(
            f"flipping needs x (N, F) and scores of the same shape; got {tuple(x.shape)} "
            f"and {tuple(np.shape(scores))}"
        )
    if by not in ("signed", "absolute"):
        raise ConfigError(f"unknown flipping order {by!r}; use 'signed' or 'absolute'")
    if num_random < 1:
        raise ConfigError(f"num_random must be at least 1; got {num_random}")
    frac = np.asarray(fractions, dtype=np.float64)
    if frac.ndim != 1 or frac.size < 2 or np.any(np.diff(frac) <= 0) or frac[0] < 0 or frac[-1] > 1:
        raise ConfigError(f"flipping fractions must increase within [0, 1]; got {frac.tolist()}")
    per_unit = unit_scores(scores, unit)
    num_units = per_unit.size
    counts = np.rint(frac * num_units).astype(np.int64)
    base = _baseline_values(x, baseline)
    absolute = by == "absolute"
    key = np.abs(per_unit) if absolute else per_unit
    order = np.argsort(-key, kind="stable")
    with torch.no_grad():
        reference = float(output_fn(x).double().mean())
    cache = {0: reference}
    relevance = _drop_curve(output_fn, x, order, counts, unit, base, reference, absolute, cache)
    rng = np.random.default_rng(seed)
    randoms = np.empty((num_random, counts.size))
    for r in range(num_random):
        perm = rng.permutation(num_units)
        randoms[r] = _drop_curve(output_fn, x, perm, counts, unit, base, reference, absolute, cache)
    return FlippingCurve(
        unit=unit,
        fractions=frac,
        relevance=relevance,
        random=randoms.mean(axis=0),
        random_std=randoms.std(axis=0),
        by=by,
    )


# --- model-randomisation test ------------------------------------------------------------------


@dataclass(frozen=True)
class RandomizationResult:
    """Rank correlation of relevance with that of the trained model, per cascading step.

    Attributes:
        steps: (L + 1,) labels; step 0 is the trained model, step i has ``layers[:i]`` reset.
        spearman: (L + 1,) Spearman correlation of the signed relevance with step 0.
        spearman_abs: (L + 1,) the same for |relevance| (Adebayo et al. report both).
    """

    steps: tuple[str, ...]
    spearman: np.ndarray
    spearman_abs: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "steps": list(self.steps),
            "spearman": [_json_float(v) for v in self.spearman],
            "spearman_abs": [_json_float(v) for v in self.spearman_abs],
        }


def _json_float(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def spearman(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """Spearman rank correlation of two arrays of equal size (flattened), ties get mean ranks.

    ``scipy.stats.spearmanr``; NaN (without scipy's warning) when either array is constant or
    holds fewer than 2 values.
    """
    a_np = _to_flat_numpy(a)
    b_np = _to_flat_numpy(b)
    if a_np.shape != b_np.shape:
        raise ConfigError(f"spearman needs arrays of equal size; got {a_np.size} and {b_np.size}")
    if a_np.size < 2 or np.all(a_np == a_np[0]) or np.all(b_np == b_np[0]):
        return float("nan")
    return float(scipy.stats.spearmanr(a_np, b_np).statistic)


def _to_flat_numpy(a: Any) -> np.ndarray:
    if isinstance(a, Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64).reshape(-1)


def cascading_layers(model: nn.Module) -> list[str]:
    """Default randomisation order: parametrised children, from the output towards the input.

    Children are taken in registration order and reversed (models here register their layers
    in forward order); ``ModuleList`` children are expanded into their items, so each
    message-passing block is one step, while a head (an MLP) is reset as a whole.
    """
    names: list[str] = []
    for name, child in model.named_children():
        if not any(True for _ in child.parameters()):
            continue
        if isinstance(child, nn.ModuleList):
            names.extend(
                f"{name}.{sub}"
                for sub, m in child.named_children()
                if any(True for _ in m.parameters())
            )
        else:
            names.append(name)
    return names[::-1]


def reinitialize(module: nn.Module, generator_seed: int) -> int:
    """Re-initialise every submodule of ``module`` that has ``reset_parameters``.

    Returns the number of submodules reset. BatchNorm running statistics are reset too.
    """
    torch.manual_seed(generator_seed)
    count = 0
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
            count += 1
        reset_stats = getattr(sub, "reset_running_stats", None)
        if callable(reset_stats):
            reset_stats()
    return count


def randomization_test(
    model: nn.Module,
    relevance_fn: RelevanceFn,
    x: Tensor,
    *,
    layers: Sequence[str] | None = None,
    seed: int = 0,
) -> RandomizationResult:
    """Cascading model-randomisation test (Adebayo et al. 2018, arXiv:1810.03292).

    Args:
        model: the trained model; it is not modified (a deep copy is randomised).
        relevance_fn: ``relevance_fn(model, x)`` returning relevance of a fixed shape (e.g. the
            (N, F) source-feature relevance of one output summed over target elements). The
            shape must not depend on the weights, so sparse outputs must be densified first.
        x: the input passed to ``relevance_fn``.
        layers: module names (as in ``model.named_modules()``) reset cumulatively in this order;
            default :func:`cascading_layers` (output first).
        seed: seed of the re-initialisation (step i uses ``seed + i``).

    Returns:
        A :class:`RandomizationResult`; step 0 has correlation 1 by construction.
    """
    names = list(layers) if layers is not None else cascading_layers(model)
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ConfigError(f"randomisation layers not found in the model: {', '.join(missing)}")
    was_training = model.training
    model.eval()
    try:
        reference = _to_flat_numpy(relevance_fn(model, x))
    finally:
        model.train(was_training)
    randomized = copy.deepcopy(model).eval()
    random_modules = dict(randomized.named_modules())
    rho = [spearman(reference, reference)]
    rho_abs = [spearman(np.abs(reference), np.abs(reference))]
    for i, name in enumerate(names, start=1):
        reinitialize(random_modules[name], seed + i)
        current = _to_flat_numpy(relevance_fn(randomized, x))
        rho.append(spearman(reference, current))
        rho_abs.append(spearman(np.abs(reference), np.abs(current)))
    return RandomizationResult(
        steps=("trained", *names),
        spearman=np.asarray(rho),
        spearman_abs=np.asarray(rho_abs),
    )
