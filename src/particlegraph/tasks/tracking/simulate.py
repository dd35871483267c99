"""Events for the tracking task: Pythia 8 hard process + pile-up -> silicon hits -> TrackML files.

Determinism: chunk ``j`` of ``CHUNK`` consecutive events is generated from random streams derived
only from ``(seed, j)`` (Pythia seed, pile-up draws, detector randomness); the minimum-bias pool
depends only on ``(seed, pool_size)``. An event's files are therefore the same whatever
``shard``/``num_shards`` split made them; shard ``i`` of ``n`` makes the chunks with
``j % n == i``. Event ids start at ``first_event_id`` (TrackML's start at 1000). Existing events
are skipped, so an interrupted run resumes by running the same command again.

The output folder follows the run contract (:mod:`particlegraph.outputs`): it is claimed with the
settings that decide its events (process, pile-up, seed, first event id and a hash of the
detector); a folder made by something else, or by ``tracking generate`` with other settings, is
refused unless ``overwrite`` (which then removes the old events first); each shard holds a writer
lock while it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.outputs import Output, check_settings, claim, guard_outputs, writer_lock
from particlegraph.sim.collisions import (
    check_generation,
    file_sizes,
    pileup_pool,
    run_units,
    shard_plan,
    unit_collisions,
)
from particlegraph.sim.conversions import convert_photons
from particlegraph.sim.particles import Particles, concatenate
from particlegraph.sim.pileup import MinBiasPool
from particlegraph.sim.pythia import PROCESSES, process_settings
from particlegraph.sim.silicon import SiliconConfig, SiliconHits, simulate_hits
from particlegraph.tasks.tracking.score import hit_weights
from particlegraph.tasks.tracking.trackml import TrackMLEvent, event_prefix, write_event

#: Particles produced further than this from the beam line [mm] are secondaries and weigh 0 in
#: the score, as in the challenge's truth files (issue 18); the innermost layer is at 32 mm.
SECONDARY_RADIUS = 10.0
#: The command that makes tracking samples (the folder marker's owner).
COMMAND = "tracking generate"
#: Folder-level settings -> the option that sets them (for messages).
_DATASET_OPTIONS = {
    "process": "--process", "pileup": "--pileup", "seed": "--seed",
    "first_event_id": "--first-event-id", "detector": "detector settings",
}  # fmt: skip
_KINDS = ("hits", "cells", "truth", "particles")
#: Events per Pythia instance / random stream.
CHUNK = 10
#: Minimum-bias events in the pile-up pool (as the MLPF task).
DEFAULT_POOL_SIZE = 2000


def build_event(
    particles: Particles, cfg: SiliconConfig, rng: np.random.Generator, event_id: int
) -> TrackMLEvent:
    """Simulate the hits of one event's particles and return it in the TrackML layout.

    Photons convert in the layers first (when ``cfg.conversions``): the e+ e- pairs are added
    to the event's particles. Hits are shuffled (their order carries no truth) and numbered
    1..H; particle ids are 1..P over the simulated charged particles; the truth carries the
    TrackML weights (0 for secondaries produced beyond ``SECONDARY_RADIUS``).
    """
    if cfg.conversions:
        pairs, _parent = convert_photons(particles, cfg, rng)
        particles = concatenate([particles, pairs])
    hits, sim = simulate_hits(particles, cfg, rng)
    p = particles.select(sim)
    perm = rng.permutation(hits.size)
    hits = SiliconHits(*(f[perm] for f in hits))
    h = hits.size
    hit_id = np.arange(1, h + 1, dtype=np.int64)
    particle_id = np.where(hits.particle >= 0, hits.particle + 1, 0).astype(np.int64)
    idx = np.maximum(hits.particle, 0)
    primary = np.hypot(p.vx, p.vy) <= SECONDARY_RADIUS
    pt = np.where((hits.particle >= 0) & primary[idx], p.pt[idx], 0.0)
    vz = np.where(hits.particle >= 0, p.vz[idx], 0.0)
    weight = hit_weights(particle_id, hits.tz, vz, pt)
    nhits = np.bincount(idx[hits.particle >= 0], minlength=p.size)
    # cells: cell_count rows per hit, channels counted from the hit's local position
    rep = np.repeat(np.arange(h), hits.cell_count)
    within = np.arange(rep.size) - np.repeat(
        np.cumsum(hits.cell_count) - hits.cell_count, hits.cell_count
    )
    ch0 = (np.floor((np.arctan2(hits.y, hits.x) + np.pi) * 1e3).astype(np.int64))[rep] + within
    ch1 = np.floor(np.abs(hits.z)).astype(np.int64)[rep]
    value = (hits.charge_value / hits.cell_count)[rep]
    return TrackMLEvent(
        event_id=event_id,
        hits={
            "hit_id": hit_id, "x": hits.x, "y": hits.y, "z": hits.z,
            "volume_id": hits.volume_id, "layer_id": hits.layer_id, "module_id": hits.module_id,
        },
        cells={"hit_id": hit_id[rep], "ch0": ch0, "ch1": ch1, "value": value},
        truth={
            "hit_id": hit_id, "particle_id": particle_id, "tx": hits.tx, "ty": hits.ty,
            "tz": hits.tz, "tpx": hits.tpx, "tpy": hits.tpy, "tpz": hits.tpz, "weight": weight,
        },
        particles={
            "particle_id": np.arange(1, p.size + 1, dtype=np.int64),
            "vx": p.vx, "vy": p.vy, "vz": p.vz, "px": p.px, "py": p.py, "pz": p.pz,
            "q": np.rint(p.charge).astype(np.int64), "nhits": nhits,
        },
    )  # fmt: skip


def generate_chunk(
    process: str,
    chunk: int,
    event_ids: Sequence[int],
    pileup: float,
    seed: int,
    cfg: SiliconConfig,
    pool: MinBiasPool | None,
    on_event: Callable[[], None] | None = None,
) -> list[TrackMLEvent]:
    """The events of chunk ``chunk`` listed in ``event_ids`` (0-based indices in the sample).

    The chunk's crossings come from :func:`~particlegraph.sim.collisions.unit_collisions`; each
    event's detector draws come from its own generator, seeded from the chunk's stream, so an
    event is the same whichever other events of the chunk are made (resume).
    """
    first = chunk * CHUNK
    wanted = set(event_ids)
    last = max(wanted, default=first - 1)  # the chunk's events after the last wanted are not made
    rng, crossings = unit_collisions(
        process_settings(process), seed, chunk, pileup=pileup, pool=pool,
        vertex_sigma_z=cfg.vertex_sigma_z, n=last + 1 - first, chunk=CHUNK,
    )  # fmt: skip
    out = []
    for i, particles in enumerate(crossings):
        ev_rng = np.random.default_rng(rng.integers(2**63))
        if first + i in wanted:
            out.append(build_event(particles, cfg, ev_rng, first + i))
            if on_event is not None:
                on_event()
    return out


def generate(
    out: str | Path,
    process: str = "ttbar",
    events: int = 10,
    pileup: float = 0.0,
    seed: int = 0,
    *,
    first_event_id: int = 1000,
    shard: int = 0,
    num_shards: int = 1,
    detector: SiliconConfig | None = None,
    pool_size: int = DEFAULT_POOL_SIZE,
    pool_cache: str | Path | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
) -> list[int]:
    """Write ``events`` TrackML events (hits, cells, truth, particles CSV) into ``out``.

    Args:
        out: output folder.
        process: Pythia preset (ttbar, qcd, minbias, ...).
        events: number of events of the whole sample (all shards).
        pileup: Poisson mean of the overlaid minimum-bias interactions (0, 50, 200, ...).
        seed: sample seed. first_event_id: id of the first event.
        shard, num_shards: this call makes the chunks j with j % num_shards == shard.
        detector: the tracker (default :class:`SiliconConfig`).
        pool_size: minimum-bias events in the pile-up pool.
        pool_cache: folder for the pool file (default ``out``).
        overwrite: write into a folder made by something else or with other settings (the old
            events of a ``tracking generate`` folder are removed first).

    Returns:
        The ids of this shard's events (existing ones included).
    """
    if process not in PROCESSES:
        raise ConfigError(
            f"unknown process {process!r}; choose one of {', '.join(sorted(PROCESSES))}"
        )
    check_generation(events, pileup, seed, shard, num_shards)
    cfg = detector or SiliconConfig()
    out = Path(out)
    guard_outputs(COMMAND, [Output(out, "dir", "--out")], overwrite=overwrite)
    dataset = {
        "process": process, "pileup": pileup, "seed": seed, "first_event_id": first_event_id,
        "detector": detector_hash(cfg),
    }  # fmt: skip
    _same_sample(out, dataset, overwrite)  # read-only: a refused run leaves the folder untouched
    with writer_lock(out, COMMAND, key=f"shard-{shard}-of-{num_shards}"):
        same = _same_sample(out, dataset, overwrite)  # again: another writer may have claimed it
        if not same and out.is_dir():  # (guard_outputs let it through: empty, or --overwrite)
            for path in out.glob("event*-*.csv*"):
                if path.name.split("-")[-1].split(".")[0] in _KINDS:
                    path.unlink()
        claim(out, COMMAND, dataset)
        return _generate_events(
            out, process, events, pileup, seed, first_event_id, shard, num_shards, cfg,
            pool_size, pool_cache, progress,
        )  # fmt: skip


def _same_sample(out: Path, dataset: dict[str, object], overwrite: bool) -> bool:
    """Whether ``out`` holds this sample already; another sample is refused unless ``overwrite``."""
    try:
        return check_settings(out, COMMAND, dataset, _DATASET_OPTIONS)
    except ConfigError:
        if not overwrite:
            raise
        return False


def detector_hash(cfg: SiliconConfig) -> str:
    """12 hex digits that change with any detector setting."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _generate_events(
    out: Path, process: str, events: int, pileup: float, seed: int, first_event_id: int,
    shard: int, num_shards: int, cfg: SiliconConfig, pool_size: int,
    pool_cache: str | Path | None, progress: bool | None,
) -> list[int]:  # fmt: skip
    """:func:`generate` once the options are checked and the folder is claimed and locked."""
    ids: list[int] = []
    todo: list[tuple[int, list[int]]] = []
    sizes = file_sizes(events, CHUNK)
    for j in shard_plan(len(sizes), shard, num_shards):
        local = range(j * CHUNK, j * CHUNK + sizes[j])
        ids.extend(first_event_id + i for i in local)
        missing = [i for i in local if not _complete(out, first_event_id + i)]
        if missing:
            todo.append((j, missing))
    if not todo:
        return ids
    cache = Path(pool_cache) if pool_cache is not None else out
    pool = pileup_pool(pileup, pool_size, seed, cache, progress=progress)

    def make(unit: tuple[int, list[int]], tick: Callable[[], None]) -> None:
        j, missing = unit
        for ev in generate_chunk(process, j, missing, pileup, seed, cfg, pool, on_event=tick):
            ev.event_id += first_event_id
            write_event(out, ev)  # all four files at once (particles last)

    total = sum(len(m) for _, m in todo)
    run_units(todo, make, total=total, desc=f"{process} PU{pileup:g}", progress=progress)
    return ids


def _complete(out: Path, event_id: int) -> bool:
    """Whether all four files of event ``event_id`` are in ``out``."""
    prefix = event_prefix(event_id)
    return all((out / f"{prefix}-{kind}.csv").exists() for kind in _KINDS)
