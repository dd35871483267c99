"""``particlegraph mlpf evaluate``: MLPF vs the rule-based baseline on held-out events."""

from __future__ import annotations

from pathlib import Path

import typer

from particlegraph.cli.common import check_range, friendly_errors
from particlegraph.train.run import check_checkpoint


def register(app: typer.Typer) -> None:
    """Add this module's commands to the mlpf app."""
    app.command("evaluate")(evaluate_command)
    app.command("calibrate")(calibrate_command)


@friendly_errors
def evaluate_command(
    run: Path = typer.Option(
        ..., "--run", help="Run directory written by `mlpf train`, or pretrained:<name>."
    ),
    data: Path = typer.Option(
        ..., "--data", help="Held-out dataset directory or shard (.parquet / .pkl.bz2)."
    ),
    events: int | None = typer.Option(
        None, "--events", "-n", help="Evaluate at most this many events (default: all)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", help="Events per forward pass."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    figures: bool = typer.Option(
        True, "--figures/--no-figures", help="Write the PNG plots (off: metrics and tables only)."
    ),
    no_validate: bool = typer.Option(
        False, "--no-validate", help="Skip the physics checks of the input (finite, ranges)."
    ),
    calibration: bool = typer.Option(
        True,
        "--calibration/--no-calibration",
        help="Apply the run's calibration.json (from `mlpf calibrate`) when it has one.",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for metrics, plots and index.html (default: the run's folder)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Write into an --out folder that `mlpf evaluate` did not make."
    ),
) -> None:
    """Evaluate a trained run: metrics.json, plots in OUT/evaluation/, OUT/index.html (OUT: the run)."""
    from particlegraph.tasks.mlpf.evaluate import evaluate, evaluation_folder, format_summary
    from particlegraph.tasks.mlpf.schema import reading

    check_checkpoint(checkpoint)
    check_range("--events", events, 1, what="events to evaluate")
    check_range("--batch-size", batch_size, 1, 100_000, what="events per forward pass")
    with reading(validate=not no_validate):
        metrics = evaluate(
            run, data, max_events=events, device=device, batch_size=batch_size,
            which=checkpoint, figures=figures, use_calibration=calibration, out_dir=out,
            overwrite=overwrite,
        )  # fmt: skip
    typer.echo(format_summary(metrics))
    folder = evaluation_folder(run, out)  # runs/pretrained_<name> for --run pretrained:<name>
    typer.echo(f"\nmetrics: {folder / 'metrics.json'}")
    plots = f" (plots in {folder / 'evaluation'})" if figures else ""
    typer.echo(f"report:  {folder / 'index.html'}{plots}")


@friendly_errors
def calibrate_command(
    run: Path = typer.Option(
        ..., "--run", help="Run directory written by `mlpf train`, or pretrained:<name>."
    ),
    data: Path = typer.Option(
        ..., "--data", help="VALIDATION dataset directory or shard (never the test events)."
    ),
    events: int = typer.Option(300, "--events", "-n", help="Validation events to learn from."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for calibration.json (default: the run's output folder)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a calibration.json this command did not write."
    ),
    linked_neutrals: float | None = typer.Option(
        None,
        "--linked-neutrals",
        help="Also learn the neutrals of HCAL towers with linked tracks (linked_neutrals.json), "
        "keeping those above this energy [GeV]; evaluate applies them after the calibration.",
    ),
    linked_mode: str = typer.Option(
        "fill",
        "--linked-mode",
        help="fill: only the towers MLPF calls no particle; replace: every linked HCAL tower.",
    ),
    linked_min_tower: float = typer.Option(
        0.0, "--linked-min-tower", help="Towers below this energy [GeV] are left to MLPF."
    ),
) -> None:
    """Learn the run's neutral-particle energy calibration on validation events (calibration.json)."""
    from particlegraph.tasks.mlpf.calibrate import (
        calibrate_run,
        fit_linked_run,
        guard_linked_output,
    )
    from particlegraph.tasks.mlpf.linked_neutrals import check_mode, check_threshold

    check_checkpoint(checkpoint)
    check_range("--events", events, 1, what="validation events")
    if linked_neutrals is not None:
        check_threshold(linked_neutrals, "--linked-neutrals")
        check_mode(linked_mode, "--linked-mode")
        check_threshold(linked_min_tower, "--linked-min-tower")
        guard_linked_output(run, data, out, overwrite)
    cal, path = calibrate_run(
        run, data, max_events=events, which=checkpoint, device=device, out_dir=out,
        overwrite=overwrite,
    )  # fmt: skip
    for name, regions in cal.points.items():
        typer.echo(f"{name}: " + ", ".join(f"{len(p)} points" for p in regions)
                   + f" per |eta| region {list(cal.eta_edges)}")  # fmt: skip
    typer.echo(f"calibration: {path} ({cal.events} validation events)")
    if linked_neutrals is not None:
        step, lpath = fit_linked_run(
            run, data, linked_neutrals, max_events=events, which=checkpoint, device=device,
            out_dir=out, overwrite=overwrite, mode=linked_mode, min_tower_gev=linked_min_tower,
        )  # fmt: skip
        typer.echo(
            f"linked-tower neutrals: {lpath} ({step.towers} towers of {step.events} validation "
            f"events, kept above {step.threshold_gev:g} GeV, mode {step.mode})"
        )
