"""``anomaly generate``: the samples' events, made with the generation skeleton of ``sim/``.

File ``j`` of sample ``name`` is unit ``j`` of :mod:`particlegraph.sim.collisions` with the seed
stream ``crc32(name)``: its Pythia seed, vertices, pile-up draws and detector randomness depend
only on ``(seed, name, j)``, so any ``--shard i --num-shards n`` split makes the same files, and
existing files are skipped (an interrupted run resumes by running the same command again). A
triggered sample clusters jets a chunk of 20 crossings at a time and keeps those passing HT.

The output follows the run contract (:mod:`particlegraph.outputs`): ``out`` and ``out/<name>``
are claimed for ``anomaly generate``, the sample folder with the settings that decide its events
(:func:`sample_identity`); another sample identity in the same folder is refused unless
``overwrite`` (which removes the old sample's files first), and each shard holds a writer lock on
the sample folder while it writes.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from particlegraph.errors import ConfigError
from particlegraph.outputs import (
    Output,
    check_settings,
    claim,
    claim_unowned,
    guard_outputs,
    writer_lock,
)
from particlegraph.sim.collisions import (
    check_generation,
    file_sizes,
    pileup_pool,
    run_units,
    shard_plan,
    unit_collisions,
)
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.pileup import MinBiasPool
from particlegraph.sim.pythia import process_settings
from particlegraph.sim.simulate import simulate_event
from particlegraph.tasks.anomaly.samples import (
    SamplesConfig,
    SampleSpec,
    jet_summary,
    pf_candidates,
    write_candidates,
)

#: The command that makes samples (the owner in the folder markers of ``out`` and ``out/<name>``).
COMMAND = "anomaly generate"
#: Sample identity key -> the option or setting that changes it (for messages).
_SAMPLE_OPTIONS = {
    "events": "--events", "seed": "--seed", "pileup": "pileup (--set pileup=...)",
    "pool_size": "pool_size (--set pool_size=...)", "keep": "keep (--set keep=...)",
    "events_per_file": "events_per_file (--set events_per_file=...)",
}  # fmt: skip


def _stream(name: str) -> int:
    return zlib.crc32(name.encode())  # stable across runs and Python versions


def generate_file(
    name: str,
    spec: SampleSpec,
    cfg: SamplesConfig,
    num_events: int,
    seed: int,
    file_index: int,
    pool: MinBiasPool | None,
    detector: DetectorConfig | None = None,
    on_event: Callable[[], None] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """``num_events`` triggered events of file ``file_index``; returns (rows, events tried)."""
    det = detector or DetectorConfig()
    chunk = 10 if spec.ht_min <= 0 else 20
    rng, crossings = unit_collisions(
        process_settings(spec.process, spec.pythia_settings), seed, file_index,
        pileup=cfg.pileup, pool=pool, vertex_sigma_z=det.vertex_sigma_z, chunk=chunk,
        stream=_stream(name),
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    tried = 0
    limit = num_events * cfg.max_tries_factor
    while len(rows) < num_events:
        if tried >= limit:
            raise ConfigError(
                f"sample {name}: only {len(rows)} of {tried} events passed HT >= {spec.ht_min} "
                "GeV; lower ht_min or raise the preset's PhaseSpace:pTHatMin"
            )
        # the trigger needs jets, clustered a chunk at a time
        ycands = [simulate_event(p, det, rng).ycand for p in itertools.islice(crossings, chunk)]
        tried += chunk
        jets = jet_summary(ycands)
        for y, js in zip(ycands, jets, strict=True):
            if js[0] < spec.ht_min or len(rows) >= num_events:
                continue
            row = pf_candidates(y, cfg.keep)
            row.update(ht=js[0], lead_jet_pt=js[1], lead_jet_mass=js[2], n_jets=int(js[3]))
            rows.append(row)
            if on_event is not None:
                on_event()
    return rows, tried


def sample_identity(
    name: str, spec: SampleSpec, cfg: SamplesConfig, events: int, seed: int
) -> dict[str, Any]:
    """The settings that decide a sample folder's events (stored in its folder marker)."""
    return {
        "sample": name, "process": spec.process,
        "pythia_settings": list(process_settings(spec.process, spec.pythia_settings)),
        "ht_min": spec.ht_min, "label": spec.label, "events": events, "seed": seed,
        "pileup": cfg.pileup, "pool_size": cfg.pool_size, "keep": cfg.keep,
        "events_per_file": cfg.events_per_file, "max_tries_factor": cfg.max_tries_factor,
    }  # fmt: skip


def _check_sample(
    name: str, cfg: SamplesConfig, out: Path, events: int | None, seed: int, shard: int,
    num_shards: int, overwrite: bool,
) -> tuple[int, dict[str, Any], bool]:  # fmt: skip
    """Check one sample's options and folder, read-only: (events, identity, folder holds it)."""
    spec = cfg.spec(name)
    n_total = spec.events if events is None else events
    check_generation(n_total, cfg.pileup, seed, shard, num_shards)
    folder = out / name
    guard_outputs(COMMAND, [Output(out, "dir", "--out"), Output(folder, "dir", "--out")],
                  overwrite=overwrite)  # fmt: skip
    identity = sample_identity(name, spec, cfg, n_total, seed)
    try:
        same = check_settings(folder, COMMAND, identity, _SAMPLE_OPTIONS)
    except ConfigError:
        if not overwrite:
            raise
        same = False
    return n_total, identity, same


def generate_samples(
    names: Sequence[str],
    cfg: SamplesConfig,
    out: str | Path,
    *,
    events: int | None = None,
    seed: int = 0,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool | None = None,
    overwrite: bool = False,
) -> dict[str, list[Path]]:
    """Generate this shard's files of every sample in ``names`` under ``out/<name>/``.

    Every sample's options and folder are checked before the first event is made, so a refused
    run writes nothing. Returns each sample's file paths (existing ones included).
    """
    out = Path(out)
    for name in names:
        _check_sample(name, cfg, out, events, seed, shard, num_shards, overwrite)
    return {
        name: generate_sample(name, cfg, out, events=events, seed=seed, shard=shard,
                              num_shards=num_shards, progress=progress, overwrite=overwrite)
        for name in names
    }  # fmt: skip


def generate_sample(
    name: str,
    cfg: SamplesConfig,
    out: str | Path,
    *,
    events: int | None = None,
    seed: int = 0,
    shard: int = 0,
    num_shards: int = 1,
    progress: bool | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Generate this shard's files of sample ``name`` under ``out/<name>/``; returns all its paths.

    The folder ``out/<name>`` is claimed for ``anomaly generate`` with the sample's identity
    (:func:`sample_identity`); the same command again resumes (existing files are kept), one
    with another identity is refused unless ``overwrite`` (which removes the old sample's files
    first). A shard holds a writer lock on the folder while it writes, so a second writer of the
    same shard is refused.

    Raises:
        ConfigError: a bad option, a folder that is not this sample's, or a second writer.
    """
    out = Path(out)
    n_total, identity, same = _check_sample(
        name, cfg, out, events, seed, shard, num_shards, overwrite
    )
    folder = out / name
    claim_unowned(out, COMMAND)  # before the lock: a second writer then sees whose folder it is
    with writer_lock(folder, COMMAND, key=f"shard-{shard}-of-{num_shards}"):
        if not same:
            for old in folder.glob(f"{name}_[0-9]*.parquet"):
                old.unlink()
            claim(folder, COMMAND, identity)
        return _generate_files(name, cfg, out, n_total, seed, shard, num_shards, progress)


def _generate_files(
    name: str, cfg: SamplesConfig, out: Path, n_total: int, seed: int, shard: int,
    num_shards: int, progress: bool | None,
) -> list[Path]:  # fmt: skip
    """:func:`generate_sample` once the folder is checked, claimed and locked."""
    spec = cfg.spec(name)
    sizes = file_sizes(n_total, cfg.events_per_file)
    paths = [out / name / f"{name}_{j:05d}.parquet" for j in range(len(sizes))]
    todo = [j for j in shard_plan(len(sizes), shard, num_shards) if not paths[j].exists()]
    if not todo:
        return paths
    pool = pileup_pool(cfg.pileup, cfg.pool_size, seed, out, progress=progress)

    def make(j: int, tick: Callable[[], None]) -> None:
        rows, tried = generate_file(name, spec, cfg, sizes[j], seed, j, pool, on_event=tick)
        meta = {
            "sample": name, "process": spec.process, "label": spec.label,
            "pythia_settings": list(process_settings(spec.process, spec.pythia_settings)),
            "ht_min": spec.ht_min, "trigger_efficiency": len(rows) / max(tried, 1),
            "pileup": cfg.pileup, "pool_size": cfg.pool_size, "keep": cfg.keep,
            "seed": seed, "file_index": j, "events": len(rows),
        }  # fmt: skip
        write_candidates(paths[j], rows, meta)

    run_units(todo, make, total=sum(sizes[j] for j in todo), desc=name, progress=progress)
    return paths
