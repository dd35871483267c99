"""Explain a trained MLPF run on a few events: the output grammar, the settings, the workflow.

:func:`explain` is what ``particlegraph mlpf explain`` runs. It checks every option, opens the run
(``PATH`` or ``pretrained:NAME``, :func:`particlegraph.train.run.open_run`) and declares its output
folder with the output guard before any work, then computes and writes in two separate steps:

* :func:`~particlegraph.tasks.mlpf.explain_compute.explain_events` computes: for each requested
  output neuron (a class logit such as ``class:neutral_hadron`` or a regression output such as
  ``pt``) it explains every element of each event with LRP and returns an
  :class:`~particlegraph.tasks.mlpf.explain_result.Explanation` (mean relevance maps per true
  class, feature-share histograms, conservation figures, flipping curves, the
  model-randomisation test and the first event's panels), drawing nothing;
* :func:`~particlegraph.tasks.mlpf.explain_writer.write_explanation` turns that result into the
  files of ``OUT/`` (default ``RUN/explain/``) and the run report's explanation section.

Flipping and randomisation measure the mean output over the "relevant" targets of an output
(:func:`relevant_targets`): the elements whose true class is that class for a class logit (all
elements when there are none), the elements with a true particle for a regression or charge
output; at most ``check_targets`` of them (a seeded random subset).

The dataset-scale study lives in :mod:`.explain_study`, its findings in :mod:`.findings`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from particlegraph.cli.common import check_range, removed_on_failure
from particlegraph.errors import ConfigError, DataFileError
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
    head = {"class": out.logits, "charge": out.charge_logits, "regression": out.regression}[kind]
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


def explain(
    run_dir: str | Path,
    data: str | Path,
    events: int = 10,
    outputs: Sequence[str] = DEFAULT_OUTPUTS,
    rule: Any = "epsilon",
    device: str = "auto",
    *,
    which: str = "best",
    num_neighbours: int = 8,
    flip_events: int = 1,
    randomize: bool = True,
    figures: bool = True,
    check_targets: int | None = 256,
    out_dir: str | Path | None = None,
    relevance_fn: RelevanceFn | None = None,
    seed: int = 0,
    overwrite: bool = False,
    validate: bool = True,
) -> dict[str, Any]:
    """Explain the model of ``run_dir`` on the first ``events`` events of ``data`` into files.

    Checks every option and the output folder first (:func:`particlegraph.outputs.guard_outputs`:
    an ``out_dir`` inside ``data``, or one holding files ``mlpf explain`` did not make, is refused
    unless ``overwrite``), then
    :func:`~particlegraph.tasks.mlpf.explain_compute.explain_events` and
    :func:`~particlegraph.tasks.mlpf.explain_writer.write_explanation`.

    Args:
        run_dir: a training run folder or ``pretrained:<name>``.
        data: a dataset folder or event file (Parquet shards or Delphes ``.pkl.bz2``).
        events, outputs, num_neighbours, flip_events, randomize, check_targets, seed: see
            :class:`ExplainSettings`.
        rule, relevance_fn: see :func:`~.explain_compute.explain_events`.
        device: ``auto``, ``cpu`` or ``cuda``.
        which: checkpoint, ``best`` (falls back to ``last``) or ``last``.
        figures: write the PNG figures (the summary and ``.npz`` arrays are always written).
        out_dir: where to write (default ``RUN/explain``; ``runs/pretrained_<name>/explain``).
        overwrite: write into an existing folder that ``mlpf explain`` did not make.
        validate: run the physics checks of the input events.

    Returns:
        The summary written to ``summary.json``.
    """
    from particlegraph.device import resolve_device
    from particlegraph.outputs import Output, claim, guard_outputs, owner
    from particlegraph.tasks.mlpf.explain_compute import explain_events
    from particlegraph.tasks.mlpf.explain_writer import write_explanation
    from particlegraph.tasks.mlpf.export import check_checkpoint
    from particlegraph.tasks.mlpf.schema import reading
    from particlegraph.tasks.mlpf.store import iter_events
    from particlegraph.tasks.mlpf.train import PACKAGE, load_model
    from particlegraph.train.run import open_run

    settings = ExplainSettings(
        outputs=tuple(outputs), events=events, num_neighbours=num_neighbours,
        flip_events=flip_events, randomize=randomize, check_targets=check_targets,
        panels=figures, seed=seed,
    )  # fmt: skip
    check_checkpoint(which)
    if relevance_fn is None:
        lrp_relevance(rule)  # an unknown rule fails here, before any work
    run = open_run(run_dir, "mlpf", PACKAGE)
    if not Path(data).exists():
        raise DataFileError(f"{data}: no such dataset folder or event file (--data)")
    out = output_folder(run_dir, out_dir)
    inputs = (data, run.checkpoint(which), run.config_path)
    guard_outputs(COMMAND, [Output(out, "dir", "--out")], inputs, overwrite=overwrite)
    model, _ = load_model(run.path, which=which)
    dev = resolve_device(device)
    with reading(validate), removed_on_failure(out):
        if (owner(out) or {}).get("command", COMMAND) == COMMAND:
            claim(out, COMMAND)  # never over another command's mark: a run stays a run
        result = explain_events(
            model, iter_events(data), settings, rule=rule, relevance_fn=relevance_fn,
            device=dev, source=(str(run_dir), str(data)),
        )  # fmt: skip
        return write_explanation(result, out, figures=figures, report_dir=run.output_dir)
