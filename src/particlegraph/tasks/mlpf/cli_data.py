"""CLI actions: ``particlegraph mlpf generate`` (Pythia 8 + fast detector simulation)."""

from __future__ import annotations

from pathlib import Path

import typer

from particlegraph.bounds import MAX_EVENTS, MAX_PILEUP, MAX_POOL_EVENTS, MAX_SEED
from particlegraph.cli.common import (
    check_output_dir,
    check_range,
    friendly_errors,
    removed_on_failure,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the mlpf app."""
    app.command("generate")(generate_command)


@friendly_errors
def generate_command(
    process: str = typer.Option(
        "ttbar", help="ttbar, qcd, minbias, zee, zmumu, ztautau, wlnu or zprime_ttbar."
    ),
    events: int = typer.Option(..., "--events", help="Events in the whole dataset (all shards)."),
    pileup: float = typer.Option(0.0, "--pileup", help="Mean number of pile-up interactions."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed (same seed, same arrays)."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    shard: int = typer.Option(0, "--shard", help="This shard makes the files j with j % n == i."),
    num_shards: int = typer.Option(1, "--num-shards", help="Number of shards n."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or pkl (public .pkl.bz2)."),
    events_per_file: int = typer.Option(100, "--events-per-file", help="Events per file."),
    pool_size: int = typer.Option(
        2000, "--pool-size", help="Minimum-bias events in the pile-up pool."
    ),
    separate_ecal: bool = typer.Option(
        True,
        "--separate-ecal-towers/--merged-towers",
        help="ECAL cells and HCAL towers as separate elements (Delphes MLPF layout, default).",
    ),
    pythia: list[str] = typer.Option(
        [], "--pythia", help="Extra Pythia setting, repeatable (e.g. 'PhaseSpace:pTHatMin = 100')."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace existing files made with other settings."
    ),
) -> None:
    """Generate collider events (Pythia 8 + pile-up + CMS-like fast detector) as MLPF files."""
    from particlegraph.sim.detector import DetectorConfig
    from particlegraph.tasks.mlpf.generate import generate

    check_range("--events", events, 1, MAX_EVENTS)
    check_range("--pileup", pileup, 0, MAX_PILEUP, what="mean pile-up interactions")
    check_range("--pool-size", pool_size, 1, MAX_POOL_EVENTS, what="minimum-bias events")
    check_range("--seed", seed, 0, MAX_SEED)
    check_output_dir(out, "--out")
    with removed_on_failure(out):
        paths = generate(
            process, events, pileup, seed, out, shard=shard, num_shards=num_shards, fmt=fmt,
            events_per_file=events_per_file, pool_size=pool_size, pythia_settings=tuple(pythia),
            detector=DetectorConfig(separate_ecal_towers=separate_ecal), overwrite=overwrite,
        )  # fmt: skip
    typer.echo(f"{len(paths)} file(s) in {out} (shard {shard}/{num_shards})")
