"""``particlegraph anomaly ...``: generate | inspect | train | evaluate | explain | demo."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from particlegraph.bounds import MAX_EVENTS, MAX_SEED
from particlegraph.cli.common import (
    check_output_file,
    check_range,
    friendly_errors,
    removed_on_failure,
)

app = typer.Typer(
    help="Anomaly detection with graph autoencoders on the 40 leading PF candidates.",
    no_args_is_help=True,
)


@app.command()
@friendly_errors
def generate(
    out: Path = typer.Option(..., "--out", help="output folder (one sub-folder per sample)"),
    sample: list[str] = typer.Option([], "--sample", help="sample name (repeatable); default all"),
    events: int = typer.Option(0, "--events", help="events per sample; 0 = the config's"),
    seed: int = typer.Option(0, "--seed"),
    shard: int = typer.Option(0, "--shard"),
    num_shards: int = typer.Option(1, "--num-shards"),
    config: str = typer.Option("samples", "--config", help="YAML file or packaged 'samples'"),
    override: list[str] = typer.Option([], "--set", help="config override key=value"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a sample made with other settings (its files only)."
    ),
) -> None:
    """Generate zerobias / jetht / BSM-like samples as PF-candidate Parquet files."""
    from particlegraph.config import apply_overrides
    from particlegraph.outputs import holds_only_marks
    from particlegraph.tasks.anomaly.configs import read_config
    from particlegraph.tasks.anomaly.generate import generate_samples
    from particlegraph.tasks.anomaly.samples import samples_config_from_dict

    check_range("--events", events, 0, MAX_EVENTS, what="events per sample; 0 = the config's")
    check_range("--seed", seed, 0, MAX_SEED)
    check_range("--num-shards", num_shards, 1, 100_000)
    check_range("--shard", shard, 0, num_shards - 1, what="0-based, below --num-shards")
    cfg = samples_config_from_dict(apply_overrides(read_config(config), list(override)))
    # a failure (a full disk) keeps the complete files and the pile-up pool for a resume; a new
    # --out with nothing in it but the folder markers goes
    with removed_on_failure(out, keep_if=lambda: not holds_only_marks(out)):
        made = generate_samples(list(sample or cfg.samples), cfg, out, events=events or None,
                                seed=seed, shard=shard, num_shards=num_shards, overwrite=overwrite)  # fmt: skip
    for name, paths in made.items():
        typer.echo(f"{name}: {len(paths)} files in {out / name}")


@app.command()
@friendly_errors
def inspect(
    data: list[Path] = typer.Argument(..., help="sample folders or files"),
    plot: Path = typer.Option(None, "--plot", help="write leading-pT spectra to this PNG"),
    max_events: int = typer.Option(0, "--max-events", help="0 = all"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --plot file."),
) -> None:
    """Print PF candidates per event, leading-pT quantiles and HT of each sample (JSON)."""
    from particlegraph.outputs import Output, guard_outputs
    from particlegraph.tasks.anomaly.summary import inspect_sample, plot_leading_pt

    check_range("--max-events", max_events, 0, what="events to read; 0 = all")
    if plot is not None:  # before any work: never a folder, never an input, never a foreign file
        check_output_file(plot, "--plot")
        guard_outputs(
            "anomaly inspect", [Output(plot, "file", "--plot")], data, overwrite=overwrite
        )
    for d in data:
        typer.echo(json.dumps(inspect_sample(d, max_events or None)))
    if plot is not None:
        plot_leading_pt({d.name: d for d in data}, plot, max_events or None)
        typer.echo(f"wrote {plot}")


@app.command()
@friendly_errors
def train(
    data: Path = typer.Option(..., "--data", help="background sample folder/file or exercise .pt"),
    out: Path = typer.Option(..., "--run", "--out", help="run folder (--out: the old name)"),
    model: str = typer.Option("node-ae", "--model", help="gae-seed | gae | node-ae"),
    config: str = typer.Option(None, "--config", help="YAML run config (default: the model's)"),
    epochs: int = typer.Option(0, "--epochs", help="0 = the config's"),
    seed: int = typer.Option(0, "--seed"),
    max_events: int = typer.Option(
        0, "--max-events", help="training + validation events; 0 = config"
    ),
    first_event: int = typer.Option(0, "--first-event"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --run"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run"),
    override: list[str] = typer.Option([], "--set", help="config override key=value"),
) -> None:
    """Train one model on background events through the engine's loop (checkpoints, resume)."""
    from particlegraph.tasks.anomaly.train import make_run_config
    from particlegraph.tasks.anomaly.train import train as run_training

    check_range("--epochs", epochs, 0, 100_000, what="0 = the config's")
    check_range("--max-events", max_events, 0, what="0 = the config's")
    check_range("--first-event", first_event, 0)
    check_range("--seed", seed, 0, MAX_SEED)
    sets = [f"fit.seed={seed}", f"first_event={first_event}"]
    sets += [f"fit.epochs={epochs}"] if epochs else []
    sets += [f"max_events={max_events}"] if max_events else []
    cfg = make_run_config(model, data, [*sets, *override], config)
    # a failed first attempt leaves no run; one that wrote a checkpoint keeps it for --resume
    with removed_on_failure(out, keep_if=(out / "checkpoints" / "last.pt").is_file):
        _, hist = run_training(cfg, out, resume=resume, overwrite=overwrite)
    typer.echo(
        f"trained {len(hist.records)} epochs (best {hist.best_epoch}, val loss {hist.best_loss:.4g}); run in {out}"
    )


@app.command()
@friendly_errors
def evaluate(
    run: list[Path] = typer.Option(
        ..., "--run", help="run directory (repeatable; seeds are grouped)"
    ),
    background: str = typer.Option(..., "--background", help="name=path[:start[:stop]]"),
    signal: list[str] = typer.Option(..., "--signal", help="name=path[:start[:stop]] (repeatable)"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    reference: str = typer.Option(
        None,
        "--reference",
        help="name=path[:start[:stop]]: background events that are neither training nor test "
        "events; fits the trivial density and the HT calibrations (enables the ht-calibrated "
        "and ht-matched protocols)",
    ),
    boot: int = typer.Option(100, "--boot", help="bootstrap resamplings of the errors"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --out"),
) -> None:
    """Learned and trivial scores, ROC metrics with the seed spread, gains, sculpting, report."""
    from particlegraph.outputs import Output, claim, guard_outputs
    from particlegraph.tasks.anomaly.evaluate import evaluate as run_eval
    from particlegraph.tasks.anomaly.evaluate import parse_sample
    from particlegraph.tasks.anomaly.report import markdown_table, write_evaluation

    refs = [parse_sample(x) for x in [background, *signal, *([reference] if reference else [])]]
    command = "anomaly evaluate"
    guard_outputs(command, [Output(out, "dir", "--out")], [*run, *(r.path for r in refs)],
                  overwrite=overwrite)  # fmt: skip
    ev = run_eval(
        list(run),
        parse_sample(background),
        [parse_sample(s) for s in signal],
        reference=parse_sample(reference) if reference else None,
        n_boot=boot,
    )
    with removed_on_failure(out):  # a failed write (a full disk, say) leaves no --out
        claim(out, command, {"background": background, "signals": list(signal)})
        report = write_evaluation(ev, out)
    typer.echo(markdown_table(ev))
    typer.echo(f"report: {report}")


@app.command()
@friendly_errors
def explain(
    run: Path = typer.Option(..., "--run", help="run directory"),
    sample: list[str] = typer.Option(..., "--sample", help="name=path[:start[:stop]] (repeatable)"),
    out: Path = typer.Option(..., "--out", help="output folder"),
    events: int = typer.Option(3, "--events", help="highest-scoring events explained per sample"),
    class_events: int = typer.Option(200, "--class-events", help="events in the per-type averages"),
    lrp: bool = typer.Option(True, "--lrp/--no-lrp", help="LRP of the latent through the encoder"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="write into an --out of another command"
    ),
) -> None:
    """Per-particle / per-edge contributions, gradients, LRP, eta-phi displays, per-type averages."""
    from particlegraph.tasks.anomaly.explain import explain as run_explain

    check_range("--events", events, 1, 10_000, what="events explained per sample")
    check_range("--class-events", class_events, 0, MAX_EVENTS, what="events in the averages")
    with removed_on_failure(out):  # a failure (bad sample, full disk) leaves no new --out
        report = run_explain(run, sample, out, n_events=events, n_class_events=class_events,
                             lrp=lrp, overwrite=overwrite)  # fmt: skip
    typer.echo(f"report: {report}")


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/anomaly_demo"), "--out", help="output folder"),
    events: int = typer.Option(400, "--events", help="QCD (jetht) background events"),
    epochs: int = typer.Option(3, "--epochs"),
) -> None:
    """End to end on a small scale: QCD background + two signals, three models beside the
    trivial scores, evaluate (plain and HT-calibrated), explain."""
    from particlegraph.tasks.anomaly.demo import run_demo

    check_range("--events", events, 1, MAX_EVENTS, what="background events per sample")
    check_range("--epochs", epochs, 1, 100_000)
    report = run_demo(out, events=events, epochs=epochs)
    typer.echo((report.parent / "metrics.md").read_text())  # trivial scores beside learned ones
    typer.echo(f"report: {report}")
