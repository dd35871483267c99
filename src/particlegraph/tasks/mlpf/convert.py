"""Convert MLPF event files between formats: Parquet <-> public ``.pkl.bz2``, Delphes ROOT -> both.

The input format is taken from each file's suffix (``.parquet``, ``.pkl.bz2``, ``.root``); the
output format from the destination's suffix (one output file) or from ``fmt`` (a directory of
shards). Everything is written into a hidden staging folder next to the destination and moved
into place only when every input was read, so bad input leaves nothing behind.

The destination is checked before any reading (:func:`particlegraph.outputs.guard_outputs`): it
never equals or lies inside the input, and a destination folder holds one dataset. A folder that
another command made (``mlpf generate``), that holds files particlegraph did not make, or that
holds the conversion of another source or into another format is refused unless ``overwrite``;
then the old dataset's event files are removed (only in a folder particlegraph made) when the new
ones move in, so two datasets never mix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from particlegraph.atomic import staging_dir
from particlegraph.cli.common import progress
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.outputs import Output, check_settings, claim, guard_outputs, owner
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import delphes_pkl as delphes
from particlegraph.tasks.mlpf import store
from particlegraph.tasks.mlpf.delphes_root import RootReadOptions, check_branches, iter_root

PathLike = str | os.PathLike[str]
ROOT_SUFFIX = ".root"
#: The command that writes converted datasets (the destination folder's owner mark).
COMMAND = "mlpf convert"
#: Commands whose folders hold one dataset, replaced as a whole by ``--overwrite``.
DATASET_MAKERS = (COMMAND, "mlpf generate")
FORMATS = {"parquet": store.PARQUET_SUFFIX, "pkl": store.PKL_SUFFIX}
FORMATS_SUFFIXES = tuple(FORMATS.values())
INPUT_SUFFIXES = (store.PARQUET_SUFFIX, store.PKL_SUFFIX, ROOT_SUFFIX)


def file_format(path: PathLike) -> str:
    """``"parquet"``, ``"pkl"`` or ``"root"`` from the file name, else :class:`DataFileError`."""
    name = Path(path).name
    if name.endswith(store.PARQUET_SUFFIX):
        return "parquet"
    if name.endswith(store.PKL_SUFFIX):
        return "pkl"
    if name.endswith(ROOT_SUFFIX):
        return "root"
    raise DataFileError(f"{path}: unknown event file type; expected .parquet, .pkl.bz2 or .root")


def stem(path: PathLike) -> str:
    """File name without its event-file suffix (``a.pkl.bz2`` -> ``a``)."""
    name = Path(path).name
    for suffix in INPUT_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def input_files(src: PathLike) -> list[Path]:
    """One event file, or the sorted event files (Parquet, pkl.bz2, ROOT) of a directory."""
    src = Path(src)
    if src.is_dir():
        files = sorted(
            p for p in src.iterdir() if p.is_file() and not p.name.startswith(".")
            and p.name.endswith(INPUT_SUFFIXES)
        )  # fmt: skip
        if not files:
            raise DataFileError(f"{src}: no .parquet, .pkl.bz2 or .root event files found")
        return files
    if not src.is_file():
        raise DataFileError(f"{src}: no such file or directory")
    file_format(src)
    return [src]


def _read(path: Path, root_options: RootReadOptions) -> Iterator[MLPFEvent]:
    kind = file_format(path)
    if kind == "root":
        yield from iter_root(path, root_options)
    elif kind == "pkl":
        yield from delphes.read_pkl(path)
    else:
        yield from store.read_events(path)


def _chunks(events: Iterator[MLPFEvent], size: int) -> Iterator[list[MLPFEvent]]:
    chunk: list[MLPFEvent] = []
    for ev in events:
        chunk.append(ev)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write(path: Path, events: list[MLPFEvent], metadata: dict[str, Any]) -> None:
    if path.name.endswith(store.PKL_SUFFIX):
        delphes.write_pkl(path, events)
    else:
        store.write_events(path, events, metadata)


def convert(
    src: PathLike,
    dst: PathLike,
    fmt: str | None = None,
    events_per_file: int = 100,
    overwrite: bool = False,
    root_options: RootReadOptions | None = None,
) -> list[Path]:
    """Convert event files and return the paths written.

    Args:
        src: one event file or a directory of them (``.parquet``, ``.pkl.bz2``, ``.root``).
        dst: an output file (``*.parquet`` or ``*.pkl.bz2``: every event goes into it) or a
            directory (one output per ``events_per_file`` events of each input, named after
            the input: ``a.pkl.bz2`` -> ``a.parquet``, or ``a_000.parquet``, ``a_001``... when
            an input holds more events than fit one file).
        fmt: ``"parquet"`` or ``"pkl"``; for a directory destination (default parquet), or a
            check on a file destination.
        events_per_file: events per output file in directory mode (100 = public layout).
        overwrite: replace existing output files instead of refusing.
        root_options: settings of the Delphes ROOT reader.

    Raises:
        DataFileError: missing or bad input, or an output that exists (without ``overwrite``);
            nothing is written then.
        ConfigError: an unknown ``fmt`` or one that contradicts the destination suffix.
    """
    dst = Path(dst)
    opts = root_options or RootReadOptions()
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}; choose parquet or pkl")
    if events_per_file < 1:
        raise ConfigError(f"events_per_file must be >= 1, got {events_per_file}")
    single = dst.name.endswith((store.PARQUET_SUFFIX, store.PKL_SUFFIX))
    if single:
        dst_fmt = "parquet" if dst.name.endswith(store.PARQUET_SUFFIX) else "pkl"
        if fmt is not None and fmt != dst_fmt:
            raise ConfigError(f"--format {fmt} contradicts the output name {dst.name}")
    else:
        if dst.exists() and not dst.is_dir():
            raise DataFileError(f"{dst}: exists and is not a directory")
        dst_fmt = fmt or "parquet"
    files = input_files(src)
    identity, replace = _check_destination(Path(src), dst, single, dst_fmt, overwrite)
    for path in files:  # cheap checks first, so a bad ROOT file fails before any work
        if file_format(path) == "root":
            check_branches(path, opts.tree)

    with staging_dir(dst.parent, dst.name) as staging:
        staged: list[tuple[Path, Path]] = []  # (staged file, final path)
        if single:
            events: list[MLPFEvent] = []
            for path in progress(files, desc="convert", unit="file"):
                events.extend(_read(path, opts))
            meta = _metadata(files)
            tmp = staging / dst.name
            _write(tmp, events, meta)
            staged.append((tmp, dst))
        else:
            suffix = FORMATS[dst_fmt]
            for path in progress(files, desc="convert", unit="file"):
                parts = []
                for k, chunk in enumerate(_chunks(_read(path, opts), events_per_file)):
                    tmp = staging / f"{stem(path)}_{k:03d}{suffix}"
                    _write(tmp, chunk, _metadata([path]))
                    parts.append(tmp)
                if len(parts) == 1:  # one output per input keeps the input's name
                    staged.append((parts[0], dst / f"{stem(path)}{suffix}"))
                else:
                    staged += [(p, dst / p.name) for p in parts]
        finals = _move_into_place(staged, replace, overwrite, src)
    if identity is not None and (owner(dst) or {}).get("command", COMMAND) in DATASET_MAKERS:
        claim(dst, COMMAND, identity)  # never over the mark of a run or another output
    return finals


def _move_into_place(
    staged: list[tuple[Path, Path]], replace: list[Path], overwrite: bool, src: PathLike
) -> list[Path]:
    """Move every staged file to its final path (refusing collisions and, without
    ``overwrite``, existing files); first remove ``replace``, the folder's previous dataset."""
    finals = [final for _, final in staged]
    if len(set(finals)) != len(finals):
        raise DataFileError(f"{src}: several inputs share a name; outputs would collide")
    clash = [f for f in finals if f.exists()]
    if clash and not overwrite:
        raise DataFileError(f"{clash[0]}: already exists (use --overwrite to replace it)")
    for final in finals:
        final.parent.mkdir(parents=True, exist_ok=True)
    for old in replace:
        if old not in finals:
            old.unlink(missing_ok=True)
    for tmp, final in staged:
        os.replace(tmp, final)
    return finals


def _check_destination(
    src: Path, dst: Path, single: bool, fmt: str, overwrite: bool
) -> tuple[dict[str, str] | None, list[Path]]:
    """Refuse a destination that would replace the input or mix two datasets (module docstring).

    Returns the dataset identity to mark a destination folder with (None for one output file)
    and, with ``overwrite``, the event files of the folder's previous dataset to remove.
    """
    if single:
        # only the input rule here: an existing file is refused by the clash check (same
        # message as before), and --overwrite replaces it
        guard_outputs(COMMAND, [Output(dst, "file", "DST", own=lambda _: True)], [src])
        return None, []
    guard_outputs(COMMAND, [Output(dst, "dir", "DST")], [src], overwrite=overwrite)
    identity = {"format": fmt, "source": str(src.resolve())}
    mark = owner(dst)
    try:
        if check_settings(dst, COMMAND, identity, {"format": "--format", "source": "SRC"}):
            return identity, []
    except ConfigError:
        if not overwrite:
            raise
    if overwrite and mark is not None and mark["command"] in DATASET_MAKERS:
        # a dataset particlegraph made: replaced as a whole
        old = [p for p in dst.iterdir() if p.is_file() and p.name.endswith(FORMATS_SUFFIXES)]
        return identity, sorted(old)
    return identity, []


def _metadata(sources: list[Path]) -> dict[str, Any]:
    """Metadata of a converted shard: its sources, plus the source metadata of Parquet input."""
    meta: dict[str, Any] = {"converted_from": [str(p) for p in sources]}
    if len(sources) == 1 and file_format(sources[0]) == "parquet":
        meta["source_metadata"] = store.read_metadata(sources[0])
    return meta
