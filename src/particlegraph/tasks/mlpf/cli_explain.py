"""CLI action: ``particlegraph mlpf explain`` (LRP relevance maps, figures, faithfulness).

It only parses options and calls :func:`particlegraph.tasks.mlpf.explain.explain` (a few events,
figures) or, with ``--outputs``/``--merge``, :mod:`particlegraph.tasks.mlpf.explain_study`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from particlegraph.cli.common import friendly_errors


def register(app: typer.Typer) -> None:
    """Add this module's commands to the mlpf app."""
    app.command("explain")(explain_command)


@friendly_errors
def explain_command(
    run: Path = typer.Option(..., "--run", help="Run folder (runs/NAME) or pretrained:<name>."),
    data: Path = typer.Option(..., "--data", help="Dataset directory or event file."),
    events: int = typer.Option(10, "--events", help="Number of events to explain."),
    output: list[str] = typer.Option(
        [],
        "--output",
        help="Output neuron, repeatable: class:<name> (e.g. class:neutral_hadron) or pt, eta, "
        "sin_phi, cos_phi, energy. Default: every class logit and regression output.",
    ),
    rule: str = typer.Option("epsilon", "--rule", help="LRP rule: epsilon, gamma or zplus."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    which: str = typer.Option("best", "--checkpoint", help="best (falls back to last) or last."),
    neighbours: int = typer.Option(8, "--neighbours", help="Neighbours per relevance map."),
    flip_events: int = typer.Option(1, "--flip-events", help="Events in the flipping curves."),
    randomize: bool = typer.Option(
        True, "--randomize/--no-randomize", help="Run the model-randomisation test."
    ),
    check_targets: int = typer.Option(256, "--check-targets", help="Most elements measured."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the PNG figures."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/explain)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into an existing --out that mlpf explain did not make."
    ),
    outputs: str | None = typer.Option(
        None,
        "--outputs",
        help="Dataset study: 'all' (12 outputs) or a comma list; streams --events events "
        "through constant-memory accumulators into --out (default RUN/explain_study).",
    ),
    shard: int = typer.Option(0, "--shard", help="Study: this process's shard i."),
    num_shards: int = typer.Option(1, "--num-shards", help="Study: number of shards n."),
    merge: bool = typer.Option(False, "--merge", help="Study: add the shard states in --out."),
    save_every: int = typer.Option(10, "--save-every", help="Study: save every N events."),
    flip_every: int = typer.Option(
        0, "--flip-every", help="Study: flipping curves on every N-th event (0: none)."
    ),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="Study: stop after this wall time (rerun to resume)."
    ),
    no_validate: bool = typer.Option(
        False, "--no-validate", help="Skip the physics checks of the input (finite, ranges)."
    ),
) -> None:
    """Explain a trained MLPF with LRP: relevance maps, event display, faithfulness, summary.

    With --outputs (or --merge) run the dataset-scale study instead: every requested output of
    every element of --events events, resumable, shardable (--shard/--num-shards, then --merge).
    """
    from particlegraph.tasks.mlpf import explain_study
    from particlegraph.tasks.mlpf.explain import DEFAULT_OUTPUTS, explain, output_folder
    from particlegraph.tasks.mlpf.explain_writer import format_summary

    if merge:
        folder = explain_study.study_folder(run, out)
        lines = explain_study.format_summary(explain_study.merge(folder), folder)
    elif outputs is not None:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        folder = explain_study.study_folder(run, out)
        summary = explain_study.study(
            run, data, events=events, outputs=outputs, rule=rule, device=device, shard=shard,
            num_shards=num_shards, out_dir=folder, which=which, num_neighbours=neighbours,
            save_every=save_every, flip_every=flip_every, check_targets=check_targets,
            max_seconds=max_seconds, overwrite=overwrite, validate=not no_validate,
        )  # fmt: skip
        lines = explain_study.format_summary(summary, folder)
    else:
        summary = explain(
            run, data, events=events, outputs=tuple(output) or DEFAULT_OUTPUTS, rule=rule,
            device=device, which=which, num_neighbours=neighbours, flip_events=flip_events,
            randomize=randomize, figures=figures, check_targets=check_targets, out_dir=out,
            overwrite=overwrite, validate=not no_validate,
        )  # fmt: skip
        lines = format_summary(summary, output_folder(run, out))
    for line in lines:
        typer.echo(line)
