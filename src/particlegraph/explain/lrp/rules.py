"""LRP rules as small declarative objects, and a composite that picks one rule per layer.

Every rule here has the same shape (Montavon et al. 2019, "Layer-wise relevance propagation:
an overview", doi:10.1007/978-3-030-28954-6_10): with modified weights ``W'`` and bias ``b'``,

    z'_k = sum_j a_j W'_kj + b'_k,      R_j = a_j sum_k W'_kj R_k / (z'_k + eps sign(z'_k)),

so once the forward activations ``a`` are fixed the rule is a LINEAR map of the upper relevance
``R_k``. The share ``R_k (b'_k + eps sign z'_k) / (z'_k + eps sign z'_k)`` is absorbed (not passed
down); the engine reports it so conservation can be checked exactly.

- :class:`Epsilon` (``W' = W``): LRP-epsilon, LRP-0 for ``eps = 0``.
- :class:`Gamma`: favours positive contributions ``a_j W_kj > 0`` by the factor ``1 + gamma``.
- :class:`ZPlus`: keeps only the positive contributions, bias ignored.

Signed inputs. Montavon et al. state gamma and z+ for non-negative activations (after a ReLU),
where "positive contribution" and "positive weight" are the same thing. Applied literally to a
negative input they favour NEGATIVE contributions instead (one Linear with inputs (-1, -1) and
weights (1, -1.2) gave R = (5.0, -4.8) where epsilon gives (-1, 1.2)). Here both rules use the
generalised, sign-aware form, which acts on the contributions ``c_kj = a_j W_kj`` whatever the
sign of ``a_j``: the input is split as ``a = a+ + a-`` and the negative part gets its own
modified weight ``W'-`` (:meth:`Rule.modify_negative`),

    z'_kj = a+_j W'_kj + a-_j W'-_kj        (where z_k >= 0),

using ``c+ = a+ W+ + a- W-`` and ``c- = a+ W- + a- W+``. A rule with ``mirror = True`` (gamma)
is applied to the mirror image where the unmodified output ``z_k = sum_j c_kj + b_k`` is
negative: it then favours the contributions of the output's sign (``a+`` gets ``W'-``, ``a-``
gets ``W'``, the bias ``modify_negative(b)``). On non-negative inputs ``a- = 0`` and z+ is
exactly the textbook rule (``W' = W+``); gamma is the textbook rule wherever ``z_k >= 0`` (so on
every neuron that carries relevance in a ReLU network) and its mirror image where ``z_k < 0``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from particlegraph.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """Base class. ``eps`` (>= 0) stabilises the denominator: ``z' + eps sign(z')``."""

    eps: float = 1e-6
    #: Where ``z_k < 0``, swap the weights of ``a+`` and ``a-`` (see the module docstring).
    mirror: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.eps >= 0:
            raise ConfigError(f"LRP rule {type(self).__name__}: eps must be >= 0, got {self.eps}")

    def modify(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Modified ``(W', b')`` for the non-negative part of the inputs; ``b'`` None: no bias."""
        return weight, bias

    def modify_negative(self, weight: Tensor) -> Tensor | None:
        """Modified weight ``W'-`` for the negative part of the inputs (same shape as ``W``).

        None means "the same as :meth:`modify`": the rule is linear in the input and needs no
        split (epsilon). The bias counts as a positive input (a constant 1); a mirrored rule
        uses ``modify_negative(bias)`` where ``z_k < 0``.
        """
        return None


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon: ``R_j = a_j sum_k W_kj R_k / (z_k + eps sign z_k)``."""


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma, sign-aware: contributions of the output's sign are scaled by ``1 + gamma``.

    With ``c_kj = a_j W_kj`` and the unmodified output ``z_k = sum_j c_kj + b_k``:

        z_k >= 0:  z'_kj = c_kj + gamma max(c_kj, 0),  b'_k = b_k + gamma max(b_k, 0)
        z_k <  0:  z'_kj = c_kj + gamma min(c_kj, 0),  b'_k = b_k + gamma min(b_k, 0)

    implemented as ``W' = W + gamma W+`` on ``a+`` and ``W'- = W + gamma W-`` on ``a-``
    (swapped where ``z_k < 0``). gamma >= 0; gamma = 0 is LRP-epsilon. On non-negative inputs
    with ``z_k >= 0`` this is the textbook rule ``W + gamma W+``; where ``z_k < 0`` the textbook
    rule moved ``z'_k`` towards 0 (and past it: max |R| 135 against 0.96 for epsilon on an
    untrained ELU MLPF), the mirror image moves it away. Hence ``|z'_k| >= |z_k|`` and every
    share ``|z'_kj / z'_k|`` is at most ``(1 + gamma) / gamma``. Edge cases: ``z_k = 0`` counts
    as positive (as in the ``eps sign`` stabiliser); inputs equal to 0 contribute nothing.
    Worked example: inputs (-1, -1), weights (1, -1.2), no bias: c = (-1, 1.2), z = 0.2 > 0,
    z' = -1 + 1.5 = 0.5, R = (-1, 1.5) * 0.2 / 0.5 = (-0.4, 0.6): the signs of epsilon's
    (-1, 1.2) and the same total (the literal rule gave (5.0, -4.8)).
    """

    mirror: ClassVar[bool] = True

    gamma: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.gamma >= 0:
            raise ConfigError(f"LRP rule Gamma: gamma must be >= 0, got {self.gamma}")

    def modify(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        w = weight + self.gamma * weight.clamp(min=0)
        b = None if bias is None else bias + self.gamma * bias.clamp(min=0)
        return w, b

    def modify_negative(self, weight: Tensor) -> Tensor:
        return weight + self.gamma * weight.clamp(max=0)


@dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z+, sign-aware: ``z'_kj = max(c_kj, 0)`` with ``c_kj = a_j W_kj``, bias ignored.

    Implemented as ``W' = W+`` on ``a+`` and ``W'- = W-`` on ``a-``, whatever the sign of
    ``z_k`` (not mirrored). On non-negative inputs it is the textbook ``W' = W+``. Every input
    receives a share of ``R_k`` with the sign of ``R_k``, in proportion to its positive
    contribution. Edge case: an output without positive contributions has ``z'_k = 0``; nothing
    is passed down and ``R_k`` is reported as absorbed (``eps`` makes the denominator ``eps``;
    with ``eps = 0``, 0/0 := 0).
    """

    def modify(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        return weight.clamp(min=0), None

    def modify_negative(self, weight: Tensor) -> Tensor:
        return weight.clamp(max=0)


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
        result: Rule = _RULES[key](**params)
        return result
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
