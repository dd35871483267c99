"""Dataset generation: Pythia 8 hard events + pile-up -> fast detector -> files of MLPF events.

Determinism: file ``j`` holds events ``j*events_per_file ...`` and is generated from random
streams derived only from ``(seed, j)`` (Pythia seed, pile-up draws, detector smearing); the
pile-up pool depends only on ``(seed, pool_size)``. A file is therefore identical, array for
array, whatever ``shard``/``num_shards`` split produced it; shard ``i`` of ``n`` makes the files
with ``j % n == i``. Files are written atomically and files that already exist are skipped, so an
interrupted run is resumed by running the same command again.

Dataset identity: every file stores its generation settings (Parquet key-value metadata, or a
``particlegraph`` key in a ``.pkl.bz2`` dict). An existing file is reused only when its settings
equal this run's; otherwise :func:`generate` raises a :class:`ConfigError` naming the setting
that differs (``--seed``, ``--events-per-file``, ``--separate-ecal-towers`` ...), or with
``overwrite=True`` regenerates it (atomically, file by file) and removes this shard's files
beyond the new end of the dataset.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import particlegraph
from particlegraph.errors import ConfigError
from particlegraph.outputs import Output, check_settings, claim, guard_outputs, owner, writer_lock
from particlegraph.sim.collisions import (
    check_generation,
    pileup_pool,
    run_units,
    shard_plan,
    unit_collisions,
)
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import MLPFEvent
from particlegraph.sim.pileup import POOL_SETTINGS, MinBiasPool
from particlegraph.sim.pythia import PROCESSES, process_settings
from particlegraph.sim.simulate import simulate_event

log = logging.getLogger(__name__)

FORMATS = {"parquet": ".parquet", "pkl": ".pkl.bz2"}
#: Stored setting -> the option that sets it, for the message when a re-run differs.
SETTING_OPTIONS = {
    "seed": "--seed", "events_per_file": "--events-per-file", "process": "--process",
    "pileup": "--pileup", "events": "--events (events in this file)", "detector": "the detector",
    "pool_size": "--pool-size", "pythia_settings": "--pythia (or the process preset)",
    "pileup_settings": "the pile-up settings", "file_index": "the file index",
    "generator": "the generator",
}  # fmt: skip
#: Stored keys that do not change the arrays (not compared).
_NOT_COMPARED = ("version",)
#: The command that makes MLPF datasets (the folder marker's owner).
COMMAND = "mlpf generate"
#: Folder-level settings (which files make up the dataset) -> the option that sets them.
_DATASET_OPTIONS = {"process": "--process", "pileup": "--pileup", "format": "--format"}
DEFAULT_POOL_SIZE = 2000


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
    check_generation(events, pileup, 0, shard, num_shards)
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if events_per_file <= 0:
        raise ConfigError(f"--events-per-file must be positive, got {events_per_file}")
    if events_per_file > 1_000_000:
        raise ConfigError(f"--events-per-file must be at most 1,000,000, got {events_per_file}")
    if pileup > 0 and pool_size <= 0:
        raise ConfigError(f"pool_size must be positive when pileup > 0, got {pool_size}")


def mlpf_detector() -> DetectorConfig:
    """The default detector of MLPF datasets: ECAL cells and HCAL towers as separate elements.

    As the Delphes card of the public MLPF sample; the photon fraction of ttbar PU 200 is 19.8 %
    instead of 12.7 % with merged towers (Delphes: 26 %), see docs/generation.md.
    """
    return DetectorConfig(separate_ecal_towers=True)


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
        detector: detector description (default :func:`mlpf_detector`: separate ECAL cells).
        pythia_settings: extra Pythia settings appended to the preset.
        on_event: called after each event (progress bars).
    """
    cfg = detector or mlpf_detector()
    rng, crossings = unit_collisions(
        process_settings(process, pythia_settings), seed, file_index, pileup=pileup, pool=pool,
        vertex_sigma_z=cfg.vertex_sigma_z, n=num_events,
    )  # fmt: skip
    out: list[MLPFEvent] = []
    for particles in crossings:
        out.append(simulate_event(particles, cfg, rng))
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
    overwrite: bool = False,
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
        detector: detector description (default :func:`mlpf_detector`: separate ECAL cells).
        pythia_settings: extra Pythia settings appended to the preset (e.g. a pTHatMin).
        pileup_settings: full Pythia settings of the pile-up pool (default: inelastic pp,
            :data:`~particlegraph.sim.pileup.POOL_SETTINGS`).
        pool_cache: keep the pool in ``out/.minbias_pool_*.npz`` and reuse it across runs and
            shards (True), in another folder (a path, e.g. shared by several datasets with the
            same seed), or not at all (False).
        progress: show progress (default and True: a bar on a terminal, plain lines with the
            total and ETA in a pipe; False: nothing).
        overwrite: regenerate existing files whose stored settings differ from this run's
            (default: refuse with a :class:`ConfigError` naming the setting).

    Raises:
        ConfigError: a bad argument, or existing files made with other settings.
    """
    _validate(process, events, pileup, shard, num_shards, fmt, events_per_file, pool_size)
    if seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    out = Path(out)
    guard_outputs(COMMAND, [Output(out, "dir", "--out")], overwrite=overwrite)
    dataset = {"process": process, "pileup": pileup, "format": fmt}
    try:  # every check reads only: a refused run leaves the folder as it found it
        same = check_settings(out, COMMAND, dataset, _DATASET_OPTIONS)
    except ConfigError:
        if not overwrite:
            raise
        same = False
    args = (
        process, events, pileup, seed, out, shard, num_shards, fmt, events_per_file, pool_size,
        detector or mlpf_detector(), pythia_settings, pileup_settings, pool_cache, progress,
        overwrite,
    )  # fmt: skip
    if same:
        _generate_files(*args, dry_run=True)  # the per-file settings, before the lock is taken
    with writer_lock(out, COMMAND, key=f"shard-{shard}-of-{num_shards}"):
        if not same:
            _remove(_dataset_files(out, (owner(out) or {}).get("settings", {})))
            claim(out, COMMAND, dataset)
        return _generate_files(*args)  # checked again: another writer may have finished


def _dataset_files(out: Path, settings: dict[str, Any]) -> list[Path]:
    """The event files of the dataset described by a folder marker's settings."""
    try:
        pattern = file_name(settings["process"], settings["pileup"], 0, settings["format"])
    except (KeyError, TypeError):
        return []
    return sorted(out.glob(pattern.replace("_00000", "_[0-9][0-9][0-9][0-9][0-9]")))


def _generate_files(
    process: str, events: int, pileup: float, seed: int, out: Path, shard: int, num_shards: int,
    fmt: str, events_per_file: int, pool_size: int, cfg: DetectorConfig,
    pythia_settings: Sequence[str], pileup_settings: Sequence[str] | None,
    pool_cache: bool | str | Path, progress: bool | None, overwrite: bool, dry_run: bool = False,
) -> list[Path]:  # fmt: skip
    """:func:`generate` once its options are checked and the folder is locked (``dry_run``: only
    check the existing files' settings)."""
    n_files = math.ceil(events / events_per_file)
    mine = shard_plan(n_files, shard, num_shards)
    paths = [out / file_name(process, pileup, j, fmt) for j in mine]
    expected = {
        j: _metadata(process, pileup, seed, j, min(events_per_file, events - j * events_per_file),
                     pool_size, cfg, pythia_settings, events_per_file, pileup_settings)
        for j in mine
    }  # fmt: skip
    todo = []
    for j, path in zip(mine, paths, strict=True):
        if not path.exists():
            todo.append((j, path))
            continue
        differs = setting_difference(read_settings(path), expected[j])
        if differs is None:
            continue
        if not overwrite:
            raise ConfigError(
                f"{path}: exists with other generation settings: {differs} (choose another "
                "--out, or pass --overwrite to replace the data)"
            )
        todo.append((j, path))
    stale = _stale_files(out, process, pileup, fmt, n_files, shard, num_shards)
    if stale and not overwrite:
        raise ConfigError(
            f"{stale[0]}: exists beyond the {n_files} file(s) of this dataset (it was generated "
            "with more --events or fewer --events-per-file; choose another --out, or pass "
            "--overwrite to replace the data)"
        )
    if dry_run:
        return paths
    if not todo:
        _remove(stale)
        return paths
    cache = out if pool_cache is True else (Path(pool_cache) if pool_cache else None)
    pool = pileup_pool(pileup, pool_size, seed, cache, pileup_settings, progress=progress)
    total = sum(min(events_per_file, events - j * events_per_file) for j, _ in todo)

    def make(unit: tuple[int, Path], tick: Callable[[], None]) -> None:
        j, path = unit
        evs = generate_file_events(
            process, expected[j]["events"], pileup, seed, j, pool=pool, detector=cfg,
            pythia_settings=pythia_settings, on_event=tick,
        )  # fmt: skip
        _write(path, evs, expected[j], fmt)

    run_units(todo, make, total=total, desc=f"{process} PU{pileup:g}", progress=progress)
    _remove(stale)
    return paths


def _stale_files(
    out: Path, process: str, pileup: float, fmt: str, n_files: int, shard: int, num_shards: int
) -> list[Path]:
    """This shard's files of the same dataset name with an index >= ``n_files``."""
    stale = []
    j = n_files
    while j % num_shards != shard:
        j += 1
    # indices are contiguous in a generated folder: stop at the first missing one
    while (out / file_name(process, pileup, j, fmt)).exists():
        stale.append(out / file_name(process, pileup, j, fmt))
        j += num_shards
    return stale


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def read_settings(path: str | Path) -> dict[str, Any]:
    """The generation settings stored in one generated file (``{}`` when it has none)."""
    path = Path(path)
    if path.name.endswith(FORMATS["pkl"]):
        from particlegraph.tasks.mlpf.delphes_pkl import read_pkl_metadata

        return read_pkl_metadata(path)
    from particlegraph.tasks.mlpf.store import read_metadata

    return read_metadata(path)


def setting_difference(stored: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """``None`` when ``stored`` matches ``expected``, else a phrase naming the first difference.

    Keys in :data:`_NOT_COMPARED` (the package version) are ignored; nested dicts (the detector)
    are compared key by key so the message names e.g. ``detector.separate_ecal_towers``.
    """
    if not stored:
        return "the file has no generation settings (made by another tool or an older version)"
    order = [k for k in SETTING_OPTIONS if k in expected] + [
        k for k in expected if k not in SETTING_OPTIONS
    ]  # the options a user changes most often are named first
    for key in order:
        want = expected[key]
        if key in _NOT_COMPARED:
            continue
        have = stored.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            for sub, w in want.items():
                if _norm(have.get(sub)) != _norm(w):
                    opt = (
                        "--separate-ecal-towers/--merged-towers"
                        if sub == "separate_ecal_towers"
                        else key
                    )
                    return f"{key}.{sub} ({opt}) was {_short(have.get(sub))}, now {_short(w)}"
            continue
        if _norm(have) != _norm(want):
            return f"{key} ({SETTING_OPTIONS.get(key, key)}) was {_short(have)}, now {_short(want)}"
    if stored.get("version") != expected.get("version"):
        log.warning("reusing files made by particlegraph %s", stored.get("version"))
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _norm(value: Any) -> Any:
    """JSON round trip: tuples become lists, so stored and fresh settings compare equal."""
    import json

    return json.loads(json.dumps(value))


def _metadata(
    process: str, pileup: float, seed: int, index: int, n: int, pool_size: int,
    cfg: DetectorConfig, pythia_settings: Sequence[str], events_per_file: int,
    pileup_settings: Sequence[str] | None,
) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {
        "generator": "particlegraph.sim",
        "version": particlegraph.__version__,
        "process": process,
        "pythia_settings": list(process_settings(process, pythia_settings)),
        "pileup": pileup,
        "pool_size": pool_size if pileup > 0 else 0,
        "seed": seed,
        "events_per_file": events_per_file,
        "file_index": index,
        "events": n,
        "detector": cfg.to_dict(),
    }
    if pileup > 0:
        meta["pileup_settings"] = list(pileup_settings or POOL_SETTINGS)
    return meta


def _write(path: Path, events: list[MLPFEvent], meta: dict[str, Any], fmt: str) -> None:
    if fmt == "pkl":
        from particlegraph.tasks.mlpf.delphes_pkl import write_pkl

        write_pkl(path, events, metadata=meta)
    else:
        from particlegraph.tasks.mlpf.store import write_events

        write_events(path, events, meta)
