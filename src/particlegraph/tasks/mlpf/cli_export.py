"""CLI action: ``particlegraph mlpf export`` (a trained MLPF to ONNX, checked with onnxruntime).

It only parses options and calls :func:`particlegraph.tasks.mlpf.export.export_run`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from particlegraph.cli.common import friendly_errors


def register(app: typer.Typer) -> None:
    """Add ``export`` to the mlpf app."""
    app.command("export")(export_command)


@friendly_errors
def export_command(
    run: Path = typer.Option(..., "--run", help="Run folder (runs/NAME) or pretrained:<name>."),
    onnx: Path = typer.Option(..., "--onnx", help="Output .onnx file."),
    which: str = typer.Option("best", "--checkpoint", help="best (falls back to last) or last."),
    old_which: str | None = typer.Option(
        None, "--which", hidden=True, help="Deprecated spelling of --checkpoint."
    ),
    elements: int = typer.Option(
        256, "--elements", help="Size of the synthetic event used to trace and check."
    ),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare with onnxruntime."),
    exporter: str = typer.Option(
        "auto", "--exporter", help="auto, torchscript (fast) or dynamo (torch.export based)."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing file that mlpf export did not write."
    ),
) -> None:
    """Export a trained MLPF to ONNX (one event in, class/charge/regression out)."""
    from particlegraph.tasks.mlpf.export import check_checkpoint, export_run

    if old_which is not None:
        which = check_checkpoint(old_which, "--which")
        typer.echo("note: --which is deprecated; write --checkpoint", err=True)
    result = export_run(
        run, onnx, which=which, elements=elements, check=check, exporter=exporter,
        overwrite=overwrite,
    )  # fmt: skip
    typer.echo(f"wrote {result.path}")
    if result.max_abs_diff is not None:
        typer.echo(
            f"onnxruntime matches torch on a {result.elements}-element event "
            f"(max abs diff {result.max_abs_diff:.2e})"
        )
