"""The result of an explanation: relevance over (target element, source element, input feature),
for one output neuron (:class:`SparseRelevance`) or several (:class:`MultiRelevance`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from particlegraph.errors import ConfigError


@dataclass
class SparseRelevance:
    """Relevance of one output neuron, for T explained (target) elements, as P non-zero pairs.

    Attributes:
        target: (P,) long, element id of the explained element of each pair.
        source: (P,) long, element id whose input features receive the relevance.
        values: (P, F) relevance per raw input column (F = 12 for MLPF) of the source element.
        targets: (T,) long, the explained element ids, in the order the entries are sorted by.
        explained: (T,) the explained output value at each target (what LRP distributes).
        absorbed: (T,) relevance absorbed by biases and the epsilon stabiliser.
        num_elements: N, the number of elements in the event (or batch).
        layers: optional per-layer balance ``{layer name: (T, 3) [relevance in (from above),
            relevance out (passed down), absorbed]}``, filled by the engine on request.

    Pairs are sorted by target (in ``targets`` order), then by source; a pair appears once.
    Conservation: ``per_target_total() + absorbed == explained`` up to round-off.
    """

    target: Tensor
    source: Tensor
    values: Tensor
    targets: Tensor
    explained: Tensor
    absorbed: Tensor
    num_elements: int
    layers: dict[str, Tensor] | None = field(default=None, repr=False)

    @property
    def num_pairs(self) -> int:
        return int(self.target.shape[0])

    def _positions(self) -> Tensor:
        """(P,) position of each pair's target within ``targets``."""
        lookup = torch.full((self.num_elements,), -1, dtype=torch.long, device=self.target.device)
        lookup[self.targets] = torch.arange(len(self.targets), device=self.target.device)
        return lookup[self.target]

    def to_dense(self) -> Tensor:
        """(T, N, F) dense relevance; row t belongs to ``targets[t]``. O(T N F) memory."""
        t, f = len(self.targets), self.values.shape[1]
        dense = torch.zeros(
            t, self.num_elements, f, dtype=self.values.dtype, device=self.values.device
        )
        dense[self._positions(), self.source] = self.values
        return dense

    def per_target_total(self) -> Tensor:
        """(T,) sum of all input relevance of each target."""
        out = torch.zeros(len(self.targets), dtype=self.values.dtype, device=self.values.device)
        return out.index_add_(0, self._positions(), self.values.sum(dim=1))

    def per_source(self, target: int) -> tuple[Tensor, Tensor]:
        """Sources (S,) and their relevance (S, F) for the explained element id ``target``."""
        if not bool((self.targets == target).any()):
            raise ConfigError(f"element {target} was not explained (not in targets)")
        mask = self.target == target
        return self.source[mask], self.values[mask]

    def conservation_error(self) -> Tensor:
        """(T,) ``|sum R + absorbed - explained| / max(|explained|, tiny)`` per target."""
        resid = (self.per_target_total() + self.absorbed - self.explained).abs()
        tiny = torch.finfo(self.values.dtype).tiny
        return resid / self.explained.abs().clamp(min=tiny)

    def to(self, device: torch.device | str) -> SparseRelevance:
        """A copy on ``device``."""
        layers = None if self.layers is None else {k: v.to(device) for k, v in self.layers.items()}
        return SparseRelevance(
            self.target.to(device), self.source.to(device), self.values.to(device),
            self.targets.to(device), self.explained.to(device), self.absorbed.to(device),
            self.num_elements, layers,
        )  # fmt: skip


@dataclass
class MultiRelevance:
    """Relevance of O output neurons of one event, explained together: an output axis.

    Attributes:
        target, source: (P,) long, as in :class:`SparseRelevance`; the pair set is shared by the
            outputs (the union of their receptive fields; a pair may be zero for some outputs).
        values: (P, O, F) relevance of each pair for each output.
        targets: (T,) long, the explained element ids.
        explained: (T, O) explained value of each output at each target.
        absorbed: (T, O) relevance absorbed by biases and the epsilon stabiliser.
        num_elements: N.
        layers: optional ``{layer name: (T, O, 3)}`` per-layer balance.

    ``output(o)`` is the :class:`SparseRelevance` of output ``o``; it equals a one-output
    explanation of the same neuron up to float round-off.
    """

    target: Tensor
    source: Tensor
    values: Tensor
    targets: Tensor
    explained: Tensor
    absorbed: Tensor
    num_elements: int
    layers: dict[str, Tensor] | None = field(default=None, repr=False)
    names: tuple[str, ...] = ()

    @property
    def num_outputs(self) -> int:
        return int(self.values.shape[1])

    def output(self, o: int) -> SparseRelevance:
        """The relevance of output ``o`` alone (views, no copy of the pair indices)."""
        if not 0 <= o < self.num_outputs:
            raise ConfigError(f"output index {o} out of range ({self.num_outputs} outputs)")
        layers = None if self.layers is None else {k: v[:, o] for k, v in self.layers.items()}
        return SparseRelevance(
            self.target, self.source, self.values[:, o], self.targets, self.explained[:, o],
            self.absorbed[:, o], self.num_elements, layers,
        )  # fmt: skip
