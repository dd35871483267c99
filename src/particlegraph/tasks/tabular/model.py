"""MLP classifier for the tabular task: standardised inputs -> hidden layers -> sigmoid output."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from particlegraph.errors import ConfigError

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
}


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of :class:`MLPClassifier`."""

    n_inputs: int = 3  # observables per event
    hidden: tuple[int, ...] = (100,)  # units per hidden layer
    activation: str = "tanh"  # a smooth activation keeps second derivatives meaningful

    def __post_init__(self) -> None:
        if self.n_inputs < 1:
            raise ConfigError(f"n_inputs must be positive, got {self.n_inputs}")
        if any(h < 1 for h in self.hidden):
            raise ConfigError(f"hidden sizes must be positive, got {self.hidden}")
        if self.activation not in _ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; choose from {sorted(_ACTIVATIONS)}"
            )


class MLPClassifier(nn.Module):
    """Binary classifier ``p(signal | x)``.

    The input standardisation ``z = (x - mean) / std`` is part of the model (buffers set with
    :meth:`set_standardization`), so the model takes raw observables; :meth:`logit_z` /
    :meth:`prob_z` expose the network on standardised inputs, the space in which Taylor
    coefficients of different observables are comparable (Wunsch et al., arXiv:1803.08782).

    Shapes:
        input (B, n_inputs) -> :meth:`forward` logits (B,).
    """

    mean: Tensor  # (n_inputs,) buffer
    std: Tensor  # (n_inputs,) buffer

    def __init__(self, cfg: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ClassifierConfig()
        layers: list[nn.Module] = []
        width = self.cfg.n_inputs
        for h in self.cfg.hidden:
            layers += [nn.Linear(width, h), _ACTIVATIONS[self.cfg.activation]()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.register_buffer("mean", torch.zeros(self.cfg.n_inputs))
        self.register_buffer("std", torch.ones(self.cfg.n_inputs))

    def set_standardization(self, mean: Tensor, std: Tensor) -> None:
        """Store per-input mean and std (n_inputs,) used to standardise raw inputs."""
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ConfigError(
                f"standardisation needs shape ({self.cfg.n_inputs},), got {tuple(mean.shape)}"
            )
        if bool((std <= 0).any()):
            raise ConfigError("standardisation std must be positive for every input")
        self.mean.copy_(mean)
        self.std.copy_(std)

    def standardize(self, x: Tensor) -> Tensor:
        """Raw (B, F) -> standardised (B, F)."""
        return (x - self.mean) / self.std

    def logit_z(self, z: Tensor) -> Tensor:
        """Logit (B,) from standardised inputs (B, F)."""
        out: Tensor = self.net(z)
        return out[:, 0]

    def prob_z(self, z: Tensor) -> Tensor:
        """Signal probability (B,) from standardised inputs (B, F)."""
        return torch.sigmoid(self.logit_z(z))

    def forward(self, x: Tensor) -> Tensor:
        """Logit (B,) from raw inputs (B, F); the sigmoid is applied by :meth:`prob`/the loss."""
        return self.logit_z(self.standardize(x))

    def prob(self, x: Tensor) -> Tensor:
        """Signal probability (B,) from raw inputs (B, F): the network output."""
        return torch.sigmoid(self.forward(x))
