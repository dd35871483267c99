"""LRP rules as small declarative objects, and a composite that picks one rule per layer.

Every rule here has the same shape (Montavon et al. 2019, "Layer-wise relevance propagation:
an overview", doi:10.1007/978-3-030-28954-6_10): with modified weights ``W'`` and bias ``b'``,

    z'_k = sum_j a_j W'_kj + b'_k,      R_j = a_j sum_k W'_kj R_k / (z'_k + eps sign(z'_k)),

so once the forward activations ``a`` are fixed the rule is a LINEAR map of the upper relevance
``R_k``. The share ``R_k (b'_k + eps sign z'_k) / (z'_k + eps sign z'_k)`` is absorbed (not passed
down); the engine reports it so conservation can be checked exactly.

- :class:`Epsilon` (``W' = W``): LRP-epsilon, LRP-0 for ``eps = 0``.
- :class:`Gamma` (``W' = W + gamma W+``, ``b' = b + gamma b+``): favours positive contributions;
  meant for layers whose inputs are non-negative (after ReLU).
- :class:`ZPlus` (``W' = W+``, ``b' = 0``): the z+ rule, for non-negative inputs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from particlegraph.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """Base class. ``eps`` (>= 0) stabilises the denominator: ``z' + eps sign(z')``."""

    eps: float = 1e-6

    def __post_init__(self) -> None:
        if not self.eps >= 0:
            raise ConfigError(f"LRP rule {type(self).__name__}: eps must be >= 0, got {self.eps}")

    def modify(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Modified ``(W', b')`` used in numerator and denominator; ``b'`` None means no bias."""
        return weight, bias


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon: ``R_j = a_j sum_k W_kj R_k / (z_k + eps sign z_k)``."""


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma: weights ``W + gamma W+`` and bias ``b + gamma b+`` (gamma >= 0)."""

    gamma: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.gamma >= 0:
            raise ConfigError(f"LRP rule Gamma: gamma must be >= 0, got {self.gamma}")

    def modify(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        w = weight + self.gamma * weight.clamp(min=0)
        b = None if bias is None else bias + self.gamma * bias.clamp(min=0)
        return w, b


@dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z+: only positive weights, bias ignored."""

    def modify(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return weight.clamp(min=0), None


def stabilize(z: Tensor, eps: float) -> Tensor:
    """``z + eps sign(z)`` with ``sign(0) = +1``, so the result is 0 only when ``eps = 0``."""
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)


_RULES = {"epsilon": Epsilon, "gamma": Gamma, "zplus": ZPlus, "z+": ZPlus}


def rule_from_name(name: str, **params: float) -> Rule:
    """``"epsilon"`` / ``"gamma"`` / ``"zplus"`` (or ``"z+"``) with keyword parameters."""
    key = name.strip().lower()
    if key not in _RULES:
        raise ConfigError(f"unknown LRP rule {name!r}; choose one of epsilon, gamma, zplus")
    try:
        return _RULES[key](**params)
    except TypeError as err:
        raise ConfigError(f"bad parameters {params} for LRP rule {name!r}: {err}") from err


@dataclass(frozen=True)
class Composite:
    """Chooses a rule per layer: the first ``(pattern, rule)`` whose pattern matches wins.

    A pattern is a shell-style glob (``fnmatch``) matched against the layer name as traced
    (e.g. ``"encoder.0"``, ``"blocks.1.lin_out"``, ``"blocks.0.aggregate"``, ``"class_head.*"``)
    or against the layer kind (``"linear"`` or ``"aggregation"``).

    Example: ``Composite([("encoder.*", Gamma(gamma=0.25)), ("aggregation", Epsilon())])``.
    """

    rules: Sequence[tuple[str, Rule]] = ()
    default: Rule = field(default_factory=Epsilon)

    def __post_init__(self) -> None:
        for item in self.rules:
            if len(item) != 2 or not isinstance(item[1], Rule):
                raise ConfigError(f"Composite rules must be (pattern, Rule) pairs, got {item!r}")

    def rule_for(self, name: str, kind: str) -> Rule:
        """The rule for the layer called ``name`` of kind ``"linear"`` or ``"aggregation"``."""
        for pattern, rule in self.rules:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(kind, pattern):
                return rule
        return self.default


def as_composite(rule: Rule | Composite | str | None) -> Composite:
    """Accept a Composite, a single Rule, a rule name or None (epsilon everywhere)."""
    if rule is None:
        return Composite()
    if isinstance(rule, Composite):
        return rule
    if isinstance(rule, Rule):
        return Composite(default=rule)
    if isinstance(rule, str):
        return Composite(default=rule_from_name(rule))
    raise ConfigError(f"expected an LRP Rule, Composite or rule name, got {type(rule).__name__}")
