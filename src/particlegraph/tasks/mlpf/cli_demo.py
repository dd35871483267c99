"""CLI action ``particlegraph mlpf demo``: the flagship end to end on a small generated sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from particlegraph.cli.common import check_output_dir, check_range, friendly_errors


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the ``mlpf`` app."""

    @app.command("demo")
    @friendly_errors
    def demo_cmd(
        out: Annotated[
            Path, typer.Option(help="Run directory (data, model, metrics, plots).")
        ] = Path("runs/demo"),
        train_events: Annotated[int, typer.Option(help="Training events.")] = 300,
        test_events: Annotated[int, typer.Option(help="Held-out events.")] = 100,
        pileup: Annotated[float, typer.Option(help="Mean pileup.")] = 50.0,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        config: Annotated[str, typer.Option(help="Config file or shipped name.")] = "demo",
        device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="Config override key=value (repeatable).")
        ] = None,
    ) -> None:
        """Generate ttbar with pileup, train MLPF, evaluate it against the baseline and explain it."""
        from particlegraph.tasks.mlpf.demo import demo

        check_range("--train-events", train_events, 5, what="at least 5: one file per fold")
        check_range("--test-events", test_events, 1)
        check_range("--pileup", pileup, 0, 1000)
        check_range("--seed", seed, 0)
        check_output_dir(out, "--out")
        demo(
            out,
            train_events=train_events,
            test_events=test_events,
            pileup=pileup,
            seed=seed,
            config=config,
            device=device,
            overrides=tuple(set_ or ()),
            say=typer.echo,
        )
