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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from particlegraph.cli.common import removed_on_failure
from particlegraph.errors import DataFileError
from particlegraph.tasks.mlpf.explain_outputs import (
    COMMAND as COMMAND,
)
from particlegraph.tasks.mlpf.explain_outputs import (  # the workflow's vocabulary
    DEFAULT_OUTPUTS as DEFAULT_OUTPUTS,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    RULES as RULES,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    ExplainSettings as ExplainSettings,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    RelevanceFn as RelevanceFn,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    lrp_relevance as lrp_relevance,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    output_column as output_column,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    output_folder as output_folder,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    output_values as output_values,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    relevant_targets as relevant_targets,
)
from particlegraph.tasks.mlpf.explain_outputs import (
    slug as slug,
)


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
    from particlegraph.outputs import Output, claim_unowned, guard_outputs
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
        claim_unowned(out, COMMAND)
        result = explain_events(
            model, iter_events(data), settings, rule=rule, relevance_fn=relevance_fn,
            device=dev, source=(str(run_dir), str(data)),
        )  # fmt: skip
        return write_explanation(result, out, figures=figures, report_dir=run.output_dir)
