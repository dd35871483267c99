"""CLI action ``particlegraph mlpf train`` (``export`` lives in :mod:`.cli_export`).

It only parses arguments and calls :func:`particlegraph.tasks.mlpf.train.train`. It also
works under ``torchrun`` (one process per rank; only rank 0 prints and writes files).
"""

from __future__ import annotations

from pathlib import Path

import typer

from particlegraph.cli.common import (
    check_output_dir,
    check_range,
    friendly_errors,
    removed_on_failure,
)


def register(app: typer.Typer) -> None:
    """Add ``train`` to the mlpf app."""

    @app.command("train")
    @friendly_errors
    def train(
        data: Path = typer.Option(..., "--data", help="Dataset directory (*.parquet / *.pkl.bz2)."),
        config: Path | None = typer.Option(
            None, "--config", help="Run config YAML, e.g. configs/mlpf/small.yaml."
        ),
        run: Path = typer.Option(
            ...,
            "--run",
            "--run-dir",
            help="Run directory, e.g. runs/small (under torchrun write --run-dir: torchrun "
            "takes --run for its own --run-path).",
        ),
        resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace an existing MLPF run in --run (only a run)."
        ),
        overrides: list[str] = typer.Option(
            [], "--set", help="Override a config value: --set model.hidden=32 (repeatable)."
        ),
        val_fraction: float | None = typer.Option(
            None,
            "--val-fraction",
            help="Fraction of files kept for validation (data.val_fraction).",
        ),
        no_validate: bool = typer.Option(
            False, "--no-validate", help="Skip the physics checks of the input (finite, ranges)."
        ),
    ) -> None:
        """Train MLPF; writes config.yaml, history.{json,csv} and checkpoints/ into --run."""
        from particlegraph.allocator import keep_freed_memory
        from particlegraph.tasks.mlpf.schema import reading
        from particlegraph.tasks.mlpf.train import train as run_training
        from particlegraph.train.distributed import cleanup_distributed, dist_info

        check_range("--val-fraction", val_fraction, 0.0, 0.99, what="fraction of files")
        check_output_dir(run, "--run")

        sets = list(overrides)
        if val_fraction is not None:
            sets.append(f"data.val_fraction={val_fraction}")
        # every step frees and re-allocates the same large GravNet temporaries: about 10 % more
        # events/s on 2 CPU cores (9.3 -> 10.2, system time 4 s -> 1 s; docs/benchmarks.md)
        keep_freed_memory()
        try:
            keep = (run / "checkpoints" / "last.pt").exists  # a checkpoint is worth resuming
            with reading(validate=not no_validate), removed_on_failure(run, keep_if=keep):
                hist = run_training(
                    data, config, run, overrides=sets, resume=resume, overwrite=overwrite
                )
            if dist_info().is_main:
                best = hist.best_loss
                typer.echo(
                    f"trained {len(hist.records)} epoch(s); best epoch {hist.best_epoch} "
                    f"(loss {best:.4g})" + ("; stopped early" if hist.stopped_early else "")
                )
                typer.echo(f"run directory:  {run}")
                typer.echo(f"  config:       {run / 'config.yaml'}")
                typer.echo(f"  history:      {run / 'history.json'}, {run / 'history.csv'}")
                typer.echo(f"  checkpoints:  {run / 'checkpoints' / 'best.pt'}, last.pt")
        finally:
            cleanup_distributed()
