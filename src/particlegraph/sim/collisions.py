"""The generation skeleton shared by every task: bunch crossings, the shard plan, the pile-up pool.

A task's generator is this skeleton plus its own detector and file format. A dataset is cut
into units ``j`` (a file of MLPF events or of anomaly candidates; a chunk of ``CHUNK`` TrackML
events, each written to its own files), and every random number of unit ``j`` derives from the
dataset seed and ``j`` only:

    todo = [j for j in shard_plan(n_units, shard, num_shards) if unit j is not complete]
    pool = pileup_pool(pileup, pool_size, seed, cache)     # None without pile-up

    def make(j, tick):                                     # one unit
        rng, crossings = unit_collisions(settings, seed, j, pileup=..., pool=pool,
                                         vertex_sigma_z=..., n=file_sizes(...)[j])
        for particles in crossings:
            event = my_detector(particles, rng)            # the task's own simulation
            tick()
        write_my_file(j, events)                           # atomically

    run_units(todo, make, total=events_to_make, desc="ttbar PU200", progress=progress)

Every random number of a crossing comes from ``rng`` in a fixed order (the hard vertex, then the
pile-up draws), and the consumer's own draws on ``rng`` happen between two crossings because the
stream is lazy; so a unit's content depends only on its seeds, whatever the shard split.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from particlegraph.bounds import MAX_PILEUP as MAX_PILEUP  # the bound lives in bounds.py
from particlegraph.errors import ConfigError
from particlegraph.sim.particles import Particles, concatenate
from particlegraph.sim.pileup import MinBiasPool, load_or_build_pool, overlay
from particlegraph.sim.pythia import make_pythia, next_events, pythia_seed

#: Seed-sequence streams of a unit without a ``stream`` key: Pythia's, then the event stream's.
STREAM_HARD, STREAM_EVENT = 0, 1
_Unit = TypeVar("_Unit")


def collisions(
    pythia: Any,
    rng: np.random.Generator,
    *,
    pileup: float,
    pool: MinBiasPool | None,
    vertex_sigma_z: float,
    n: int | None = None,
    chunk: int = 10,
) -> Iterator[Particles]:
    """Bunch crossings: a hard event, its vertex smeared along z, plus Poisson(``pileup``) pool events.

    Args:
        pythia: a seeded Pythia instance (:func:`~particlegraph.sim.pythia.make_pythia`).
        rng: the event stream's generator (vertex z, pile-up draws; the caller's detector too).
        pileup: Poisson mean of overlaid minimum-bias interactions (0: none).
        pool: the minimum-bias pool (needed when ``pileup > 0``).
        vertex_sigma_z: Gaussian spread of the luminous region along the beam [mm].
        n: crossings to make (None: endless; stop by leaving the loop).
        chunk: Pythia batch size (does not change the events).

    Yields:
        The crossing's particles, hard event first (vertices in mm).
    """
    if pileup > 0 and pool is None:
        raise ConfigError("pileup > 0 needs a minimum-bias pool")
    done = 0
    while n is None or done < n:
        batch = chunk if n is None else min(chunk, n - done)
        for hard in next_events(pythia, batch):
            hard = hard._replace(vz=hard.vz + rng.normal(0.0, vertex_sigma_z))
            parts = [hard]
            if pileup > 0 and pool is not None:
                parts.append(overlay(pool, pileup, rng, vertex_sigma_z)[0])
            done += 1
            yield concatenate(parts)


def check_generation(events: int, pileup: float, seed: int, shard: int, num_shards: int) -> None:
    """Refuse generation options that are wrong or would exhaust the machine, in one sentence."""
    if events <= 0:
        raise ConfigError(f"--events must be a positive number of events, got {events}")
    if not (math.isfinite(pileup) and 0 <= pileup <= MAX_PILEUP):
        raise ConfigError(
            f"--pileup must be a mean number of interactions between 0 and {MAX_PILEUP:g}, "
            f"got {pileup}"
        )
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    if num_shards < 1:
        raise ConfigError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise ConfigError(
            f"--shard must be in 0..{num_shards - 1} (--num-shards {num_shards}), got {shard}"
        )


def shard_plan(n_files: int, shard: int, num_shards: int) -> list[int]:
    """The file indices ``j`` that shard ``shard`` of ``num_shards`` makes: ``j % num_shards == shard``."""
    return [j for j in range(n_files) if j % num_shards == shard]


def file_sizes(events: int, events_per_file: int) -> list[int]:
    """Events in each file of a dataset of ``events`` (the last file may hold fewer)."""
    n_files = math.ceil(events / events_per_file)
    return [min(events_per_file, events - j * events_per_file) for j in range(n_files)]


def pileup_pool(
    pileup: float,
    pool_size: int,
    seed: int,
    cache: Path | None,
    settings: Sequence[str] | None = None,
    progress: bool | None = None,
) -> MinBiasPool | None:
    """The minimum-bias pool of a dataset (None without pile-up), cached in ``cache``."""
    if pileup <= 0:
        return None
    if pool_size <= 0:
        raise ConfigError(f"pool_size must be positive when pileup > 0, got {pool_size}")
    return load_or_build_pool(pool_size, seed, cache, settings, progress=progress)


def unit_seeds(
    seed: int, index: int, stream: int | None = None
) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The seed sequences of unit ``index`` of a dataset: (Pythia's, the event stream's).

    Without ``stream`` they are ``[seed, STREAM_HARD, index]`` and ``[seed, STREAM_EVENT, index]``
    (MLPF files, TrackML chunks); with one (a dataset holding several samples under one seed,
    such as the anomaly samples keyed by a hash of their name) they are the two children of
    ``[seed, stream, index]``. Either way they depend on nothing else, so any shard split makes
    the same unit.
    """
    if stream is None:
        return (
            np.random.SeedSequence([seed, STREAM_HARD, index]),
            np.random.SeedSequence([seed, STREAM_EVENT, index]),
        )
    hard, event = np.random.SeedSequence([seed, stream, index]).spawn(2)
    return hard, event


def unit_collisions(
    settings: Sequence[str],
    seed: int,
    index: int,
    *,
    pileup: float,
    pool: MinBiasPool | None,
    vertex_sigma_z: float,
    n: int | None = None,
    chunk: int = 10,
    stream: int | None = None,
) -> tuple[np.random.Generator, Iterator[Particles]]:
    """The event stream of unit ``index``: its generator and its lazy :func:`collisions`.

    Args:
        settings: the Pythia settings of the hard process (a preset plus extras).
        seed, index, stream: the unit's seeds (:func:`unit_seeds`).
        pileup, pool, vertex_sigma_z, n, chunk: as in :func:`collisions`.

    Returns:
        ``(rng, crossings)``: the task's detector draws on ``rng`` between two crossings.
    """
    hard, event = unit_seeds(seed, index, stream)
    pythia = make_pythia(list(settings), pythia_seed(hard))
    rng = np.random.default_rng(event)
    crossings = collisions(
        pythia, rng, pileup=pileup, pool=pool, vertex_sigma_z=vertex_sigma_z, n=n, chunk=chunk
    )
    return rng, crossings


def run_units(
    units: Sequence[_Unit],
    make: Callable[[_Unit, Callable[[], None]], None],
    *,
    total: int,
    desc: str,
    progress: bool | None = None,
) -> None:
    """Make ``units`` one after the other under one progress counter of ``total`` events.

    ``make(unit, tick)`` generates and writes one unit and calls ``tick()`` after each event
    (a bar on a terminal, plain lines with an ETA in a pipe, nothing with ``progress=False``).
    """
    from particlegraph.progress import progress as counter

    with counter(total=total, unit="ev", desc=desc, enabled=progress) as bar:
        for unit in units:
            make(unit, lambda: bar.update(1))
