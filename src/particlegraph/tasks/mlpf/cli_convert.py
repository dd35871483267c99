"""CLI actions: ``particlegraph mlpf convert`` and ``particlegraph mlpf inspect``."""

from __future__ import annotations

from pathlib import Path

import typer

from particlegraph.cli.common import (
    check_range,
    friendly_errors,
    removed_on_failure,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the mlpf app."""
    app.command("convert")(convert_command)
    app.command("inspect")(inspect_command)


@friendly_errors
def convert_command(
    src: Path = typer.Argument(..., help="Input file or directory (.parquet, .pkl.bz2, .root)."),
    dst: Path = typer.Argument(
        ..., help="Output file (*.parquet or *.pkl.bz2: one file) or directory (shards)."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="parquet or pkl; for a directory output (default parquet)."
    ),
    events_per_file: int = typer.Option(100, "--events-per-file", help="Events per output shard."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    tree: str = typer.Option("Delphes", "--tree", help="TTree name in ROOT input."),
    no_validate: bool = typer.Option(
        False, "--no-validate", help="Skip the physics checks of the input (finite, ranges)."
    ),
) -> None:
    """Convert MLPF events: Parquet <-> public .pkl.bz2, Delphes ROOT -> either."""
    from particlegraph.tasks.mlpf.convert import convert
    from particlegraph.tasks.mlpf.delphes_root import RootReadOptions
    from particlegraph.tasks.mlpf.schema import reading

    check_range("--events-per-file", events_per_file, 1, 1_000_000)
    with reading(validate=not no_validate), removed_on_failure(dst):
        paths = convert(
            src, dst, fmt=fmt, events_per_file=events_per_file, overwrite=overwrite,
            root_options=RootReadOptions(tree=tree),
        )  # fmt: skip
    typer.echo(f"wrote {len(paths)} file(s) to {dst}")


@friendly_errors
def inspect_command(
    path: Path = typer.Argument(..., help="Dataset directory or one event file."),
    plots: Path | None = typer.Option(None, "--plots", help="Write validation PNGs here."),
    max_events: int | None = typer.Option(None, "--max-events", help="Stop after N events."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the summary as JSON."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a --json file or --plots folder inspect did not make."
    ),
    no_validate: bool = typer.Option(
        False, "--no-validate", help="Skip the physics checks of the input (finite, ranges)."
    ),
) -> None:
    """Summarise an MLPF dataset (events, elements, class fractions) and plot it."""
    from particlegraph.tasks.mlpf.inspect import format_summary, inspect

    check_range("--max-events", max_events, 1, what="events to read")
    summary = inspect(
        path, plots_dir=plots, max_events=max_events, json_out=json_out, overwrite=overwrite,
        validate=not no_validate,
    )  # fmt: skip
    typer.echo(format_summary(summary))
    if json_out is not None:
        typer.echo(f"summary: {json_out}")
