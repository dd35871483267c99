"""The MLPF explanation's vocabulary: output names, the relevance function, settings, folders.

Shared by :mod:`.explain` (the workflow), :mod:`.explain_compute` and :mod:`.explain_writer`, so
that neither of those imports the workflow module back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from particlegraph.cli.common import check_range
from particlegraph.errors import ConfigError
from particlegraph.explain.lrp.output import parse_output
from particlegraph.sim.elements import CLASS_NAMES
from particlegraph.tasks.mlpf.model import MLPF_OUTPUTS

#: Every class logit and every regression output.
DEFAULT_OUTPUTS = (
    *(f"class:{name}" for name in CLASS_NAMES),
    "pt",
    "eta",
    "sin_phi",
    "cos_phi",
    "energy",
)
RULES = ("epsilon", "gamma", "zplus")
#: The command that writes an explanation folder (its owner mark).
COMMAND = "mlpf explain"

#: ``relevance_fn(model, x, output, targets) -> SparseRelevance``-like (see rmaps.as_pairs),
#: with ``targets`` (T,) long or None for every element.
RelevanceFn = Callable[[nn.Module, Tensor, str, Tensor | None], Any]


def output_column(name: str) -> tuple[str, int]:
    """``(head, column)`` of an output name in the model's grammar (:data:`MLPF_OUTPUTS`):
    ``class:<class name or index>``, ``charge:-1|0|+1``, ``pt``, ``eta``, ``sin_phi``,
    ``cos_phi``, ``energy``; the same parser as the LRP engine's.
    """
    spec = parse_output(name, MLPF_OUTPUTS)
    return spec.head, spec.index


def output_values(out: Any, name: str) -> Tensor:
    """(N,) value of output ``name`` for every element from an ``MLPFOutput``."""
    kind, col = output_column(name)
    head: Tensor = {"class": out.logits, "charge": out.charge_logits, "regression": out.regression}[
        kind
    ]
    return head[:, col]


def lrp_relevance(rule: Any = "epsilon", chunk_size: int | None = None) -> RelevanceFn:
    """Relevance function backed by the LRP engine (:func:`particlegraph.explain.lrp.explain_event`).

    ``rule`` is a rule name (one rule for every layer) or an LRP ``Rule`` / ``Composite`` object.
    """
    if isinstance(rule, str) and rule not in RULES:
        raise ConfigError(f"unknown LRP rule {rule!r}; choose one of {', '.join(RULES)}")
    from particlegraph.explain import lrp

    def fn(model: nn.Module, x: Tensor, output: str, targets: Tensor | None) -> Any:
        spec = lrp.parse_output(output, MLPF_OUTPUTS)
        return lrp.explain_event(
            model, x, None, output=spec, targets=targets, composite=rule, chunk_size=chunk_size
        )

    return fn


def slug(name: str) -> str:
    """File-name form of an output name: ``class:neutral_hadron`` -> ``neutral_hadron``,
    ``charge:+1`` -> ``charge_plus1``, ``energy`` -> ``energy``."""
    key = name.strip().lower().replace("+", "plus").replace("-", "minus")
    key = key.removeprefix("class:")
    return re.sub(r"[^a-z0-9]+", "_", key).strip("_")


def relevant_targets(
    name: str, true_class: np.ndarray, max_targets: int | None = None, seed: int = 0
) -> np.ndarray:
    """Elements whose output is measured in flipping / randomisation (module docstring).

    At most ``max_targets`` of them, drawn at random (seeded) and sorted, when more qualify.
    """
    kind, col = output_column(name)
    chosen = (
        np.flatnonzero(true_class == col) if kind == "class" else np.flatnonzero(true_class != 0)
    )
    if chosen.size == 0:
        chosen = np.arange(true_class.size)
    if max_targets is not None and chosen.size > max_targets:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, max_targets, replace=False))
    return chosen


@dataclass(frozen=True)
class ExplainSettings:
    """What :func:`~particlegraph.tasks.mlpf.explain_compute.explain_events` computes (validated on construction).

    Attributes:
        outputs: output neurons in the model's grammar (duplicates dropped, order kept).
        events: number of events explained, from the start of the dataset.
        num_neighbours: K, neighbours per relevance map after the element itself.
        flip_events: events (from the first) whose flipping curves are averaged.
        randomize: run the cascading model-randomisation test on the first event.
        check_targets: at most this many measured targets per event in flipping and
            randomisation (seeded random subset; None: all), which bounds their LRP cost.
        panels: keep the first event's single-element maps and event display (for figures).
        seed: seed of the random flipping orders, target subsets and re-initialisation.
    """

    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    events: int = 10
    num_neighbours: int = 8
    flip_events: int = 1
    randomize: bool = True
    check_targets: int | None = 256
    panels: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("--events", self.events, 1, what="events to explain")
        check_range(
            "--neighbours", self.num_neighbours, 1, 1000, what="neighbours per relevance map"
        )
        check_range("--flip-events", self.flip_events, 0, what="events in the flipping curves")
        check_range("--check-targets", self.check_targets, 1, what="elements measured per event")
        outputs = tuple(dict.fromkeys(self.outputs))  # unique, order kept
        if not outputs:
            raise ConfigError("give at least one output to explain")
        for name in outputs:
            output_column(name)
        object.__setattr__(self, "outputs", outputs)


def output_folder(
    run_dir: str | Path, out_dir: str | Path | None = None, default: str = "explain"
) -> Path:
    """Where an explanation goes: ``out_dir``, else ``RUN/<default>`` (for ``pretrained:NAME``
    ``runs/pretrained_NAME/<default>``: the package folder is never written into)."""
    if out_dir is not None:
        return Path(out_dir)
    from particlegraph.tasks.mlpf.train import PACKAGE
    from particlegraph.train.run import open_run

    return open_run(run_dir, "mlpf", PACKAGE).output_dir / default
