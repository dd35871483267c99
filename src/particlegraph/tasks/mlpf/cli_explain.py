"""CLI action: ``particlegraph mlpf explain`` (LRP relevance maps, figures, faithfulness)."""

from __future__ import annotations

from pathlib import Path

import typer

from particlegraph.cli.common import (
    check_output_dir,
    check_range,
    friendly_errors,
    removed_on_failure,
)
from particlegraph.errors import DataFileError


def register(app: typer.Typer) -> None:
    """Add this module's commands to the mlpf app."""
    app.command("explain")(explain_command)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


@friendly_errors
def explain_command(
    run: Path = typer.Option(
        ..., "--run", help="Training run directory (runs/NAME) or pretrained:<name>."
    ),
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
    check_targets: int = typer.Option(
        256, "--check-targets", help="Most elements measured per event in flipping/randomisation."
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the PNG figures."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/explain)."),
    outputs: str | None = typer.Option(
        None,
        "--outputs",
        help="Dataset study: 'all' (12 outputs) or a comma list; streams --events events "
        "through constant-memory accumulators into --out (default RUN/explain_study).",
    ),
    shard: int = typer.Option(0, "--shard", help="Study: this process's shard i."),
    num_shards: int = typer.Option(1, "--num-shards", help="Study: number of shards n."),
    merge: bool = typer.Option(
        False, "--merge", help="Study: add the shard states in --out and write the results."
    ),
    save_every: int = typer.Option(
        10, "--save-every", help="Study: save the state every N events."
    ),
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
    from particlegraph.tasks.mlpf.explain import DEFAULT_OUTPUTS, explain
    from particlegraph.tasks.mlpf.schema import reading

    check_range("--events", events, 1, what="events to explain")
    check_range("--neighbours", neighbours, 1, 1000, what="neighbours per relevance map")
    check_range("--flip-events", flip_events, 0, what="events in the flipping curves")
    check_range("--check-targets", check_targets, 1, what="elements measured per event")
    from particlegraph.tasks.mlpf.train import resolve_run_dir, run_output_dir

    if not resolve_run_dir(run).is_dir():  # pretrained:<name> resolves to the package folder
        raise DataFileError(
            f"{run}: no such run directory (train one with: particlegraph mlpf train)"
        )
    if outputs is not None or merge:
        _study(run, data, events, outputs, rule, device, which, neighbours, check_targets, out,
               shard, num_shards, merge, save_every, flip_every, max_seconds)  # fmt: skip
        return
    folder = out if out is not None else run_output_dir(run) / "explain"
    check_output_dir(folder, "--out")
    with reading(validate=not no_validate), removed_on_failure(folder):
        summary = explain(
            run, data, events=events, outputs=tuple(output) or DEFAULT_OUTPUTS, rule=rule,
            device=device, which=which, num_neighbours=neighbours, flip_events=flip_events,
            randomize=randomize, figures=figures, check_targets=check_targets, out_dir=out,
        )  # fmt: skip
    typer.echo(
        f"explained {summary['events']} event(s), {summary['elements']} elements, "
        f"{len(summary['outputs'])} output(s) in {summary['seconds']:.1f} s -> {folder}"
    )
    for name, entry in summary["outputs"].items():
        cons = entry["conservation"]
        gaps = " ".join(
            f"{unit}-flip gap {_fmt(entry[f'flipping_{unit}']['auc_gap'])}"
            for unit in ("element", "feature")
            if f"flipping_{unit}" in entry
        )
        rho = entry.get("randomization", {}).get("spearman", [])
        last = f" rho(all reset) {_fmt(rho[-1])}" if rho else ""
        typer.echo(
            f"  {name}: conservation rel. err mean {_fmt(cons['mean_rel_err'])} "
            f"max {_fmt(cons['max_rel_err'])}, absorbed {_fmt(cons['mean_absorbed_share'])}; "
            f"{gaps}{last}"
        )


def _study(
    run: Path, data: Path, events: int, outputs: str | None, rule: str, device: str, which: str,
    neighbours: int, check_targets: int, out: Path | None, shard: int, num_shards: int,
    merge: bool, save_every: int, flip_every: int, max_seconds: float | None,
) -> None:  # fmt: skip
    import logging

    from particlegraph.tasks.mlpf import explain_study
    from particlegraph.tasks.mlpf.train import run_output_dir

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = out if out is not None else run_output_dir(run) / "explain_study"
    if merge:
        summary = explain_study.merge(folder)
    else:
        summary = explain_study.study(
            run, data, events=events, outputs=outputs or "all", rule=rule, device=device,
            shard=shard, num_shards=num_shards, out_dir=folder, which=which,
            num_neighbours=neighbours, save_every=save_every, flip_every=flip_every,
            check_targets=check_targets, max_seconds=max_seconds,
        )  # fmt: skip
    progress = summary.get("progress")
    if progress is not None:
        typer.echo(
            f"shard {progress['shard']}/{progress['num_shards']}: {progress['events_done']}/"
            f"{progress['events_planned']} events, {progress['events_this_call']} in "
            f"{progress['seconds_this_call']:.1f} s -> {progress['state']}"
        )
    if "claims" in summary:
        typer.echo(f"study of {summary['events']} events, {summary['elements']} elements -> "
                   f"{folder / 'summary.json'}, {folder / 'findings.html'}")  # fmt: skip
        for claim in summary["claims"]:
            share = f" (share {100 * claim['share']:.2f} %)" if "share" in claim else ""
            typer.echo(f"  {claim['claim']}: {claim['verdict']}{share}")
