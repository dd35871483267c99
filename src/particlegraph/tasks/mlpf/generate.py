"""Dataset generation: Pythia 8 hard events + pile-up -> fast detector -> files of MLPF events.

Determinism: file ``j`` holds events ``j*events_per_file ...`` and is generated from random
streams derived only from ``(seed, j)`` (Pythia seed, pile-up draws, detector smearing); the
pile-up pool depends only on ``(seed, pool_size)``. A file is therefore identical, array for
array, whatever ``shard``/``num_shards`` split produced it; shard ``i`` of ``n`` makes the files
with ``j % n == i``. Files are written atomically and files that already exist are skipped, so an
interrupted run is resumed by running the same command again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import particlegraph
from particlegraph.errors import ConfigError
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import MLPFEvent
from particlegraph.sim.particles import concatenate
from particlegraph.sim.pileup import POOL_SETTINGS, MinBiasPool, load_or_build_pool, overlay
from particlegraph.sim.pythia import (
    PROCESSES,
    make_pythia,
    next_events,
    process_settings,
    pythia_seed,
)
from particlegraph.sim.simulate import simulate_event

FORMATS = {"parquet": ".parquet", "pkl": ".pkl.bz2"}
DEFAULT_POOL_SIZE = 2000
_STREAM_HARD, _STREAM_EVENT = 0, 1


def file_name(process: str, pileup: float, index: int, fmt: str = "parquet") -> str:
    """``{process}_pu{MU}_{index:05d}.parquet`` (or ``.pkl.bz2``)."""
    return f"{process}_pu{pileup:g}_{index:05d}{FORMATS[fmt]}"


def _validate(
    process: str, events: int, pileup: float, shard: int, num_shards: int, fmt: str,
    events_per_file: int, pool_size: int,
) -> None:  # fmt: skip
    if process not in PROCESSES:
        raise ConfigError(
            f"unknown process {process!r}; choose one of {', '.join(sorted(PROCESSES))}"
        )
    if events <= 0:
        raise ConfigError(f"--events must be a positive number of events, got {events}")
    if not (pileup >= 0 and math.isfinite(pileup)):
        raise ConfigError(
            f"--pileup must be a finite mean number of interactions >= 0, got {pileup}"
        )
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(
            f"--shard must be in [0, {num_shards}) with --num-shards >= 1, got {shard}"
        )
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if events_per_file <= 0:
        raise ConfigError(f"--events-per-file must be positive, got {events_per_file}")
    if pileup > 0 and pool_size <= 0:
        raise ConfigError(f"pool_size must be positive when pileup > 0, got {pool_size}")


def generate_file_events(
    process: str,
    num_events: int,
    pileup: float,
    seed: int,
    file_index: int,
    *,
    pool: MinBiasPool | None = None,
    detector: DetectorConfig | None = None,
    pythia_settings: Sequence[str] = (),
    on_event: Callable[[], None] | None = None,
) -> list[MLPFEvent]:
    """The ``num_events`` events of file ``file_index`` (in memory).

    Args:
        process: preset name (see :data:`~particlegraph.sim.pythia.PROCESSES`).
        num_events: events in this file.
        pileup: Poisson mean of overlaid minimum-bias events (0: none; needs ``pool`` if > 0).
        seed: dataset seed; with ``file_index`` it fixes every random number of the file.
        pool: minimum-bias pool for the overlay.
        detector: detector description (default :class:`DetectorConfig`).
        pythia_settings: extra Pythia settings appended to the preset.
        on_event: called after each event (progress bars).
    """
    cfg = detector or DetectorConfig()
    if pileup > 0 and pool is None:
        raise ConfigError("pileup > 0 needs a minimum-bias pool")
    pythia = make_pythia(
        process_settings(process, pythia_settings),
        pythia_seed(np.random.SeedSequence([seed, _STREAM_HARD, file_index])),
    )
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_EVENT, file_index]))
    out: list[MLPFEvent] = []
    chunk = 10  # Pythia batch size; does not change the random streams
    while len(out) < num_events:
        for hard in next_events(pythia, min(chunk, num_events - len(out))):
            dz = rng.normal(0.0, cfg.vertex_sigma_z)
            hard = hard._replace(vz=hard.vz + dz)
            parts = [hard]
            if pileup > 0 and pool is not None:
                pu, _ = overlay(pool, pileup, rng, cfg.vertex_sigma_z)
                parts.append(pu)
            out.append(simulate_event(concatenate(parts), cfg, rng))
            if on_event is not None:
                on_event()
    return out


def generate(
    process: str,
    events: int,
    pileup: float,
    seed: int,
    out: str | Path,
    shard: int = 0,
    num_shards: int = 1,
    fmt: str = "parquet",
    events_per_file: int = 100,
    pool_size: int = DEFAULT_POOL_SIZE,
    *,
    detector: DetectorConfig | None = None,
    pythia_settings: Sequence[str] = (),
    pileup_settings: Sequence[str] | None = None,
    pool_cache: bool | str | Path = True,
    progress: bool | None = None,
) -> list[Path]:
    """Generate this shard's files of a dataset and return their paths (existing ones included).

    Args:
        process: preset name: ttbar, qcd, minbias, zee, zmumu, ztautau, wlnu, zprime_ttbar.
        events: total events of the dataset (all shards together).
        pileup: Poisson mean number of pile-up interactions (0 allowed).
        seed: dataset seed.
        out: output directory.
        shard, num_shards: this process makes the files ``j`` with ``j % num_shards == shard``.
        fmt: ``parquet`` (particlegraph store) or ``pkl`` (public Delphes ``.pkl.bz2`` layout).
        events_per_file: events per file (the last file may hold fewer).
        pool_size: minimum-bias events in the pile-up pool.
        detector: detector description (default :class:`DetectorConfig`).
        pythia_settings: extra Pythia settings appended to the preset (e.g. a pTHatMin).
        pileup_settings: full Pythia settings of the pile-up pool (default: inelastic pp,
            :data:`~particlegraph.sim.pileup.POOL_SETTINGS`).
        pool_cache: keep the pool in ``out/.minbias_pool_*.npz`` and reuse it across runs and
            shards (True), in another folder (a path, e.g. shared by several datasets with the
            same seed), or not at all (False).
        progress: show a progress bar (default: when stderr is a terminal).
    """
    _validate(process, events, pileup, shard, num_shards, fmt, events_per_file, pool_size)
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    cfg = detector or DetectorConfig()
    out = Path(out)
    n_files = math.ceil(events / events_per_file)
    mine = [j for j in range(n_files) if j % num_shards == shard]
    paths = [out / file_name(process, pileup, j, fmt) for j in mine]
    todo = [(j, p) for j, p in zip(mine, paths, strict=True) if not p.exists()]
    if not todo:
        return paths
    disable = None if progress is None else not progress  # None: tqdm hides it off a terminal
    pool = None
    if pileup > 0:
        cache = out if pool_cache is True else (Path(pool_cache) if pool_cache else None)
        pool = load_or_build_pool(pool_size, seed, cache, pileup_settings, progress=progress)
    total = sum(min(events_per_file, events - j * events_per_file) for j, _ in todo)
    with tqdm(total=total, unit="ev", desc=f"{process} PU{pileup:g}", disable=disable) as bar:
        for j, path in todo:
            n = min(events_per_file, events - j * events_per_file)
            evs = generate_file_events(
                process, n, pileup, seed, j, pool=pool, detector=cfg,
                pythia_settings=pythia_settings, on_event=lambda: bar.update(1),
            )  # fmt: skip
            meta = _metadata(process, pileup, seed, j, n, pool_size, cfg, pythia_settings)
            if pileup > 0:
                meta["pileup_settings"] = list(pileup_settings or POOL_SETTINGS)
            _write(path, evs, meta, fmt)
    return paths


def _metadata(
    process: str, pileup: float, seed: int, index: int, n: int, pool_size: int,
    cfg: DetectorConfig, pythia_settings: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    return {
        "generator": "particlegraph.sim",
        "version": particlegraph.__version__,
        "process": process,
        "pythia_settings": list(process_settings(process, pythia_settings)),
        "pileup": pileup,
        "pool_size": pool_size if pileup > 0 else 0,
        "seed": seed,
        "file_index": index,
        "events": n,
        "detector": cfg.to_dict(),
    }


def _write(path: Path, events: list[MLPFEvent], meta: dict[str, Any], fmt: str) -> None:
    if fmt == "pkl":
        from particlegraph.tasks.mlpf.delphes_pkl import write_pkl

        write_pkl(path, events)
    else:
        from particlegraph.tasks.mlpf.store import write_events

        write_events(path, events, meta)
