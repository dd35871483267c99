"""``particlegraph tabular ...``: signal/background MLP with gradient and Taylor analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from particlegraph.bounds import MAX_BATCH_SIZE, MAX_BINS, MAX_EVENTS, MAX_SEED
from particlegraph.cli.common import check_range, friendly_errors, removed_on_failure
from particlegraph.errors import ConfigError

app = typer.Typer(
    help="Tabular signal/background MLP and its Taylor analysis.", no_args_is_help=True
)


def _features(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` (1-based observable numbers) -> (0, 1, 2)."""
    try:
        nums = tuple(int(t) - 1 for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(
            f"--features must look like 1,2,3 (observable numbers), got {text!r}"
        ) from None
    if not nums or any(not 0 <= n < 3 for n in nums):
        raise ConfigError(f"--features takes observable numbers 1, 2, 3 (e.g. 1,2), got {text!r}")
    return nums


@app.command()
@friendly_errors
def generate(
    out: Path = typer.Option(
        ..., "--out", help="output file, .data (events.data text) or .parquet"
    ),
    events: int = typer.Option(20_000, "--events", help="events in total (train + test)"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    test_fraction: float = typer.Option(0.5, "--test-fraction", help="share labelled 2/3 (test)"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace an existing file that tabular generate did not write"
    ),
) -> None:
    """Generate the three-observable toy: obs1 separates, obs2 through |obs2|, obs3 not at all."""
    from particlegraph.tasks.tabular.generate import generate as run

    check_range("--events", events, 2, MAX_EVENTS, what="events in total")
    check_range("--seed", seed, 0, MAX_SEED)
    check_range("--test-fraction", test_fraction, 0.0, 1.0)
    with removed_on_failure(out):
        path = run(out, events=events, seed=seed, test_fraction=test_fraction, overwrite=overwrite)
    typer.echo(f"wrote {events} events to {path}")


@app.command()
@friendly_errors
def train(
    data: Path = typer.Option(..., "--data", help="data file (.data or .parquet)"),
    out: Path = typer.Option(..., "--run", "--out", help="run folder (--out: its former name)"),
    epochs: int = typer.Option(30, "--epochs"),
    features: str = typer.Option("1,2,3", "--features", help="observables used, 1-based"),
    lr: float = typer.Option(1e-3, "--lr", help="Adam learning rate"),
    batch_size: int = typer.Option(128, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or auto"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the run in --run"),
    override: list[str] = typer.Option([], "--set", help="config override key=value (repeatable)"),
    config: str | None = typer.Option(
        None,
        "--config",
        help="run config YAML or shipped name (default); replaces --epochs/--lr/--batch-size/"
        "--seed/--device",
    ),
) -> None:
    """Train the MLP classifier (BCE, Adam, 25 % validation) and save loss/accuracy curves."""
    from particlegraph.tasks.tabular.train import train as run

    check_range("--epochs", epochs, 1, 100_000)
    check_range("--batch-size", batch_size, 1, MAX_BATCH_SIZE, what="events per step")
    check_range("--seed", seed, 0, MAX_SEED)
    with removed_on_failure(out):
        s = run(
            data, out, epochs=epochs, features=_features(features), lr=lr, batch_size=batch_size,
            seed=seed, device=device, resume=resume, overwrite=overwrite, overrides=list(override),
            config=config,
        )  # fmt: skip
    typer.echo(
        f"trained {s['epochs']} epochs in {s['seconds']:.1f} s (best epoch {s['best_epoch']}, "
        f"val accuracy {s['val_accuracy']:.3f}); run directory {s['run_dir']}"
    )


@app.command()
@friendly_errors
def explain(
    run_dir: Path = typer.Option(..., "--run", help="trained run directory"),
    data: Path | None = typer.Option(None, "--data", help="data file (default: the run's)"),
    out: Path | None = typer.Option(None, "--out", help="output folder (default RUN/explain)"),
    heatmap_run: Path | None = typer.Option(
        None, "--heatmap-run", help="two-observable run for the heat maps (trained if absent)"
    ),
    bins: int = typer.Option(100, "--bins", help="heat-map grid points per axis"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="write into an --out that tabular explain did not make"
    ),
) -> None:
    """Gradients, Taylor coefficients (+ evolution), ROC curves, observable matrix, heat maps."""
    from particlegraph.tasks.tabular.explain import explain as run

    check_range("--bins", bins, 2, MAX_BINS, what="heat-map grid points per axis")
    folder = out if out is not None else run_dir / "explain"
    with removed_on_failure(folder if run_dir.is_dir() else None):
        s = run(run_dir, data=data, out=out, heatmap_run=heatmap_run, bins=bins,
                checkpoint=checkpoint, overwrite=overwrite)  # fmt: skip
    _print_summary(s)


@app.command()
@friendly_errors
def evaluate(
    run_dir: Path = typer.Option(..., "--run", help="trained run directory"),
    data: Path | None = typer.Option(None, "--data", help="data file (default: the run's)"),
    out: Path | None = typer.Option(None, "--out", help="output folder (default RUN/evaluation)"),
    checkpoint: str = typer.Option("best", "--checkpoint", help="best or last"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="write into an --out that tabular evaluate did not make"
    ),
) -> None:
    """Test AUC of the network beside the best one-line cut (chosen on training rows), with errors."""
    from particlegraph.tasks.tabular.evaluate import evaluate as run

    folder = out if out is not None else run_dir / "evaluation"
    with removed_on_failure(folder if run_dir.is_dir() else None):
        m = run(run_dir, data=data, out=out, checkpoint=checkpoint, overwrite=overwrite)
    d = m["network_minus_best_cut"]
    net = m["auc"]["network"]
    typer.echo(f"{m['test_events']} test events: network AUC {net['value']:.4f} ± {net['error']:.4f}; "
               f"network - {m['best_cut']} cut: {d['value']:+.4f} ± {d['error']:.4f}")  # fmt: skip


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(..., "--out", help="output folder (must not hold earlier runs)"),
    events: int = typer.Option(20_000, "--events"),
    epochs: int = typer.Option(30, "--epochs"),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier demo in --out"),
) -> None:
    """Generate, train (3 and 2 observables) and explain, end to end in under two minutes on CPU."""
    from particlegraph.tasks.tabular.demo import demo as run

    check_range("--events", events, 100, MAX_EVENTS, what="events in total")
    check_range("--epochs", epochs, 1, 100_000)
    check_range("--seed", seed, 0, MAX_SEED)
    with removed_on_failure(out):
        s = run(out, events=events, epochs=epochs, seed=seed, overwrite=overwrite)
    _print_summary(s)
    typer.echo(f"done in {s['seconds']:.1f} s")


def _print_summary(s: dict[str, Any]) -> None:
    auc = ", ".join(f"{k} {v:.3f}" for k, v in s["auc"].items())
    typer.echo(f"ROC AUC: {auc}")
    top = ", ".join(f"{r['coefficient']} {r['value']:.3g}" for r in s["taylor_ranked"])
    typer.echo(f"Taylor coefficients <|t|> (ranked): {top}")
    typer.echo("figures:")
    for name, path in s["figures"].items():
        typer.echo(f"  {name:18s} {path}")
