"""Multi-layer perceptron built from plain modules that the LRP engine understands."""

from __future__ import annotations

import itertools

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """Activation module by name (relu, elu, tanh, gelu, silu)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


class MLP(nn.Sequential):
    r"""``[Linear -> (BatchNorm1d) -> activation -> (Dropout)] x (L-1) -> Linear [-> activation]``.

    Args:
        in_dim: input features.
        hidden: width of the hidden layers.
        out_dim: output features.
        num_layers: number of Linear layers (>= 1).
        activation: name from :data:`ACTIVATIONS`.
        norm: ``"batch"`` adds BatchNorm1d after each hidden Linear, ``"none"`` nothing.
        dropout: dropout probability after each hidden activation.
        final_activation: apply the activation after the last Linear too (for encoders).

    Shapes:
        (N, in_dim) -> (N, out_dim)
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        out_dim: int,
        num_layers: int = 2,
        activation: str = "elu",
        norm: str = "batch",
        dropout: float = 0.0,
        final_activation: bool = False,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', got {norm!r}")
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            layers.append(nn.Linear(a, b))
            last = i == num_layers - 1
            if not last:
                if norm == "batch":
                    layers.append(nn.BatchNorm1d(b))
                layers.append(make_activation(activation))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
            elif final_activation:
                layers.append(make_activation(activation))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
