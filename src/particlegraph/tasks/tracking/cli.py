"""``particlegraph tracking ...``: generate | convert | inspect | train | evaluate | explain | demo."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from particlegraph.bounds import MAX_EVENT_ID, MAX_EVENTS, MAX_PILEUP, MAX_POOL_EVENTS, MAX_SEED
from particlegraph.cli.common import check_range, friendly_errors, removed_on_failure

app = typer.Typer(
    help="Tracking: group silicon-tracker hits into tracks (layer-pair graph + interaction network; "
    "the exercise's metric learning + GNN + DBSCAN as --config exercise).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]


#: The package of the shipped runs (``--run pretrained:NAME``).
PACKAGE = "particlegraph.tasks.tracking"


def _check_out(command: str, path: Path, option: str, inputs: list[Path], overwrite: bool) -> None:
    """Refuse an output folder that is an input or another command's (nothing is written)."""
    from particlegraph.outputs import Output, guard_outputs

    guard_outputs(command, [Output(path, "dir", option)], inputs, overwrite=overwrite)


def _claim(path: Path, command: str) -> None:
    """Mark the output folder as ``command``'s: call it after every check has passed."""
    from particlegraph.outputs import claim

    claim(path, command)


def _finished(run: Path) -> None:
    """One line if ``run`` is not a finished tracking run (before any output is claimed)."""
    from particlegraph.errors import DataFileError

    for name in ("config.yaml", "model.pt", "run.json"):
        if not (run / name).is_file():
            raise DataFileError(f"{run} is not a finished tracking run (no {name}); run "
                                "'particlegraph tracking train' first")  # fmt: skip


def _open_finished(spec: Path) -> Path:
    """The folder of the finished tracking run ``spec`` (``PATH`` or ``pretrained:NAME``).

    Opened with :func:`~particlegraph.train.run.open_run` (refuses unknown names and runs of
    another task), and its weights read safely (``weights_only``: a checkpoint carrying objects
    is refused before anything runs or is written).
    """
    from particlegraph.outputs import owner
    from particlegraph.train.checkpoint import load_checkpoint
    from particlegraph.train.run import is_pretrained, open_run

    if not is_pretrained(spec) and owner(spec) is None:
        _finished(spec)  # a missing or unmarked folder: "not a finished tracking run (no ...)"
    path = open_run(str(spec), "tracking", PACKAGE).path
    _finished(path)
    load_checkpoint(path / "model.pt")
    return path


def _check_resume(run: Path) -> None:
    """``train --resume``: ``run`` must be a tracking run whose every checkpoint reads safely."""
    from particlegraph.errors import ConfigError
    from particlegraph.train.checkpoint import load_checkpoint
    from particlegraph.train.run import open_run

    path = open_run(str(run), "tracking", PACKAGE).path
    checkpoints = sorted(path.rglob("*.pt"))
    if not checkpoints:
        raise ConfigError(f"{path}: no checkpoint to resume (train without --resume first)")
    for ckpt in checkpoints:  # model.pt, <stage>/checkpoints/{last,best}.pt
        load_checkpoint(ckpt)


def _check_data(data: Path) -> None:
    """One line unless ``data`` is a folder of TrackML events."""
    from particlegraph.tasks.tracking.trackml import list_events

    list_events(data)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _check_generate(events: int, pileup: float, seed: int, first_id: int, pool: int) -> None:
    """The ranges of ``tracking generate``'s options (one line, before anything is written)."""
    check_range("--events", events, 1, MAX_EVENTS)
    check_range("--pileup", pileup, 0, MAX_PILEUP, what="mean pile-up interactions")
    check_range("--seed", seed, 0, MAX_SEED)
    last = MAX_EVENT_ID - events + 1  # file names hold nine digits
    check_range("--first-event-id", first_id, 0, last, what=f"ids up to {MAX_EVENT_ID:,}")
    check_range("--pool-size", pool, 1, MAX_POOL_EVENTS, what="minimum-bias events")


@app.command()
@friendly_errors
def generate(
    out: Out,
    process: Annotated[
        str, typer.Option(help="Pythia preset (ttbar, qcd, minbias, ...).")
    ] = "ttbar",
    events: Annotated[int, typer.Option(help="Events of the whole sample.")] = 10,
    pileup: Annotated[float, typer.Option(help="Mean pile-up (0, 50, 200, ...).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sample seed.")] = 0,
    first_event_id: Annotated[int, typer.Option(help="Id of the first event.")] = 1000,
    shard: Annotated[int, typer.Option(help="This shard (0-based).")] = 0,
    num_shards: Annotated[int, typer.Option(help="Number of shards.")] = 1,
    pool_size: Annotated[int, typer.Option(help="Minimum-bias events in the pile-up pool.")] = 2000,
    pool_cache: Annotated[
        Path | None, typer.Option(help="Folder of the pool file (default: --out).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Write into a folder made otherwise; its old events are removed."),
    ] = False,
) -> None:
    """Simulate events (Pythia + pile-up + TrackML-like tracker) as TrackML CSV files."""
    from particlegraph.outputs import holds_only_marks
    from particlegraph.tasks.tracking.simulate import generate as gen

    _check_generate(events, pileup, seed, first_event_id, pool_size)
    # a failure (a full disk) keeps the complete events for a resume; a new --out with nothing
    # in it but the folder marker goes
    with removed_on_failure(out, keep_if=lambda: not holds_only_marks(out)):
        ids = gen(out, process, events, pileup, seed, first_event_id=first_event_id, shard=shard,
                  num_shards=num_shards, pool_size=pool_size, pool_cache=pool_cache,
                  overwrite=overwrite)  # fmt: skip
    typer.echo(f"{len(ids)} events in {out}")


@app.command()
@friendly_errors
def convert(
    input: Annotated[Path, typer.Argument(help="The exercise's tracks.pickle.")],
    out: Out,
    first_event_id: Annotated[int, typer.Option(help="Id of the first event.")] = 1000,
    overwrite: Annotated[
        bool, typer.Option(help="Write into an existing --out that another command made.")
    ] = False,
) -> None:
    """Convert the exercise's tracks.pickle into TrackML CSV events."""
    from particlegraph.tasks.tracking.notebook import read_tracks_pickle, sample_to_event
    from particlegraph.tasks.tracking.trackml import write_events

    check_range("--first-event-id", first_event_id, 0, MAX_EVENT_ID)
    _check_out("tracking convert", out, "--out", [input], overwrite)
    samples = read_tracks_pickle(input)
    write_events(out, (sample_to_event(s, first_event_id + i) for i, s in enumerate(samples)))
    _claim(out, "tracking convert")  # after the events: a failed convert leaves no marked folder
    typer.echo(f"{len(samples)} events written to {out}")


@app.command()
@friendly_errors
def inspect(
    data: Annotated[Path, typer.Argument(help="Folder of TrackML event files.")],
    max_events: Annotated[int, typer.Option(help="Events to read (0 = all).")] = 0,
) -> None:
    """Hits, particles, noise and hits per particle of a TrackML folder."""
    from particlegraph.tasks.tracking.trackml import list_events, read_event

    check_range("--max-events", max_events, 0, what="events to read; 0 = all")
    ids = list_events(data)
    ids = ids[:max_events] if max_events > 0 else ids
    hits, parts, noise, per = [], [], [], []
    for i in ids:
        ev = read_event(data, i)
        hits.append(ev.num_hits)
        if ev.truth is not None and ev.particles is not None:
            noise.append(float(np.mean(ev.truth["particle_id"] == 0)))
            nh = ev.particles["nhits"]
            parts.append(int((nh > 0).sum()))
            per.append(float(nh[nh > 0].mean()) if (nh > 0).any() else 0.0)
    typer.echo(f"{len(ids)} events in {data}")
    typer.echo(f"hits per event: {np.mean(hits):.0f} (min {min(hits)}, max {max(hits)})")
    if parts:
        typer.echo(f"particles with hits per event: {np.mean(parts):.0f}")
        typer.echo(f"noise fraction: {np.mean(noise):.3f}; hits per particle: {np.mean(per):.2f}")


@app.command()
@friendly_errors
def train(
    data: Annotated[Path, typer.Option(help="Folder of TrackML training events.")],
    run: Annotated[Path, typer.Option(help="Run directory.")],
    config: Annotated[
        str,
        typer.Option(
            help="YAML file or packaged config: default, demo (layer-pair + interaction network); "
            "exercise (= notebook), exercise_wide, exercise_demo (the exercise's pipeline)."
        ),
    ] = "default",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override, e.g. fit.epochs=5.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --run.")] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --run that another command made.")
    ] = False,
) -> None:
    """Train the pipeline of --config and tune its track building on validation events."""
    from particlegraph.tasks.tracking.runconfig import load_tracking_config
    from particlegraph.tasks.tracking.train import train as train_pipeline

    _logging()
    cfg = load_tracking_config(config, [f"data={data}", *(set_ or [])])
    _check_data(data)
    _check_out("tracking train", run, "--run", [data], overwrite)
    if resume:
        _check_resume(run)
    # a failed first attempt leaves nothing; one that wrote a checkpoint keeps it for --resume
    with removed_on_failure(run, keep_if=lambda: any(run.rglob("*.pt"))):
        _claim(run, "tracking train")
        info = train_pipeline(cfg, run, resume=resume)
    scan = info.get("build_scan") or info["dbscan_scan"]
    best = max(scan, key=lambda r: r["score"])
    chosen = f"{info['build']}" if "build" in info else f"DBSCAN {info['dbscan']}"
    typer.echo(f"trained {run}: validation TrackML score {best['score']:.3f} with {chosen}")
    typer.echo(f"report: {run / 'index.html'}")


@app.command()
@friendly_errors
def evaluate(
    run: Annotated[Path, typer.Option(help="Trained run directory or pretrained:NAME.")],
    data: Annotated[Path, typer.Option(help="Folder of TrackML test events.")],
    out: Out,
    max_events: Annotated[int, typer.Option(help="Events to evaluate (0 = all).")] = 0,
    tune_data: Annotated[
        Path | None, typer.Option(help="Re-tune every DBSCAN on the first events of this folder.")
    ] = None,
    tune_events: Annotated[int, typer.Option(help="Events of --tune-data used.")] = 2,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing --out that another command made.")
    ] = False,
) -> None:
    """Score the pipeline and the baselines; write metrics.json and index.html (and for the
    exercise's pipeline TrackML CSVs and figures)."""
    from particlegraph.allocator import keep_freed_memory
    from particlegraph.tasks.tracking.evaluate import evaluate as evaluate_pipeline
    from particlegraph.tasks.tracking.report import pm

    check_range("--max-events", max_events, 0, what="events to evaluate; 0 = all")
    check_range("--tune-events", tune_events, 1, what="events of --tune-data")
    _logging()
    run = _open_finished(run)
    _check_data(data)
    if tune_data is not None:
        _check_data(tune_data)
    _check_out("tracking evaluate", out, "--out", [run, data], overwrite)
    keep_freed_memory()  # graphs at pile-up: reuse freed temporaries (2-3x faster, see there)
    with removed_on_failure(out):  # a failed evaluation (a full disk, say) leaves no --out
        _claim(out, "tracking evaluate")
        m = evaluate_pipeline(run, data, out, max_events=max_events, tune_data=tune_data,
                              tune_events=tune_events)  # fmt: skip
    n = int(m["events"])
    for name, v in m["methods"].items():
        kind = f" ({v['kind']})" if "kind" in v else ""
        typer.echo(f"{name:16s}{kind} score {pm(v['score'], n)}  eff(pT>1) "
                   f"{v['efficiency_pt1']['mean']:.3f}  fake {v['fake_rate_pt1']['mean']:.3f}")  # fmt: skip
    typer.echo(f"metrics: {out / 'metrics.json'}; report: {out / 'index.html'}")


@app.command()
@friendly_errors
def explain(
    run: Annotated[Path, typer.Option(help="Trained run directory or pretrained:NAME.")],
    data: Annotated[Path, typer.Option(help="Folder of TrackML events.")],
    out: Out,
    event: Annotated[int | None, typer.Option(help="Event id (default: the first).")] = None,
    hit: Annotated[int | None, typer.Option(help="Hit index to explain.")] = None,
    partner: Annotated[int | None, typer.Option(help="Second hit of the explained pair.")] = None,
    edge: Annotated[int | None, typer.Option(help="Edge to explain (default pipeline).")] = None,
    lrp_eps: Annotated[
        float,
        typer.Option(help="LRP-epsilon stabiliser of the edge explanation (default pipeline)."),
    ] = 1e-6,
    overwrite: Annotated[
        bool, typer.Option(help="Write into an existing --out that another command made.")
    ] = False,
) -> None:
    """Default pipeline: gradient x input and LRP of an edge score. Exercise's pipeline: LRP of
    a hit's refined embedding and gradient x input of a pair distance."""
    from particlegraph.tasks.tracking.explain import explain as explain_event

    for name, value in (
        ("--event", event),
        ("--hit", hit),
        ("--partner", partner),
        ("--edge", edge),
    ):
        check_range(name, value, 0)
    check_range("--lrp-eps", lrp_eps, 0)
    run = _open_finished(run)
    _check_data(data)
    _check_out("tracking explain", out, "--out", [run, data], overwrite)
    with removed_on_failure(out):  # a failure (a bad event id, a full disk) leaves no new --out
        _claim(out, "tracking explain")
        r = explain_event(run, data, out, event_id=event, hit=hit, partner=partner, edge=edge,
                          lrp_eps=lrp_eps)  # fmt: skip
    if "edge" in r:
        typer.echo(f"edge {r['edge']} (hits {r['hits']}, score {r['score']:.3f}): "
                   f"{r['node_relevance_share_on_particle']:.2f} of the gradient x input on its "
                   f"particle's hits; {out / 'explain.json'}")  # fmt: skip
        lrp = r["lrp"]
        typer.echo(f"LRP-epsilon: {lrp['node_relevance_share_on_particle']:.2f} of the hit "
                   f"relevance on its particle's hits, {lrp['receptive_field']['hits']} hits in "
                   f"the receptive field, conservation error {lrp['conservation_rel_err']:.2g}")  # fmt: skip
        return
    typer.echo(f"hit {r['target_hit']}: {r['lrp']['receptive_field']} hits in the receptive field, "
               f"{r['lrp']['same_particle_share']:.2f} of the relevance on its own particle; "
               f"conservation error {r['lrp']['conservation_error']:.2g}; {out / 'explain.json'}")  # fmt: skip


@app.command()
@friendly_errors
def demo(
    out: Out = Path("tracking_demo"),
    events: Annotated[int, typer.Option(help="Training + validation events.")] = 24,
    test_events: Annotated[int, typer.Option(help="Unseen test events.")] = 4,
    pileup: Annotated[float, typer.Option(help="Mean pile-up.")] = 0.0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override.")] = None,
    config: Annotated[
        str, typer.Option(help="demo (default pipeline) or exercise_demo, or a YAML file.")
    ] = "demo",
) -> None:
    """Generate, train, evaluate and explain on a small sample (minutes on a CPU)."""
    from particlegraph.tasks.tracking.demo import run_demo

    check_range("--events", events, 1, MAX_EVENTS, what="training + validation events")
    check_range("--test-events", test_events, 1, MAX_EVENTS)
    check_range("--pileup", pileup, 0, MAX_PILEUP, what="mean pile-up interactions")
    _logging()
    m = run_demo(out, events=events, test_events=test_events, pileup=pileup, overrides=set_,
                 config=config)  # fmt: skip
    for name, v in m["methods"].items():
        typer.echo(f"{name:16s} TrackML score {v['score']['mean']:.3f}")
    typer.echo(f"results: {out / 'eval'}")
