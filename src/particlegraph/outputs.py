"""The output guard: every command declares what it writes, and nothing it did not make is replaced.

The same three rules hold in every task, checked by :func:`guard_outputs` before any work starts:

1. An output that equals an input or lies inside an input folder is refused
   always: ``--overwrite`` cannot make it safe, because the command would destroy what it reads.
2. An output that exists and is not an artefact this command may write into is refused unless
   ``overwrite=True`` (``--overwrite``, which means the same in every task). A folder is such an
   artefact when it is empty or when its :data:`OWNER_FILE` names one of the commands the
   :class:`Output` accepts; a file is one when the output's ``own`` check recognises it.
3. A folder being written holds a lock (:func:`writer_lock`): a second writer is refused with one
   line while the first is alive; the lock of a process that died is taken over.

Commands that make a folder mark it with :func:`claim` (command, task and the settings that
identify its content), so a later run knows whether the folder is its own and whether it holds the
same thing (:func:`check_settings` names the first setting that differs).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import particlegraph
from particlegraph.atomic import disk_full_error, write_json
from particlegraph.errors import ConfigError

#: The marker of a folder made by a particlegraph command (inside the folder).
OWNER_FILE = "particlegraph.json"
#: The lock file of a folder being written.
LOCK_FILE = ".particlegraph.lock"


@dataclass(frozen=True)
class Output:
    """One thing a command writes.

    Attributes:
        path: the file or folder.
        kind: ``"dir"`` (a folder the command fills) or ``"file"``.
        option: the option that named it, for messages (``--out``).
        accepts: commands whose folders this command may write into (default: itself only).
        own: for a file, recognises an existing file as this command's own artefact.
    """

    path: Path
    kind: Literal["file", "dir"] = "dir"
    option: str = "--out"
    accepts: tuple[str, ...] = ()
    own: Callable[[Path], bool] | None = field(default=None, compare=False)


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def owner(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The content of ``folder``'s :data:`OWNER_FILE`, or None when there is none (or it is bad)."""
    path = Path(folder) / OWNER_FILE
    try:
        data = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "command" in data else None


def _visible_entries(folder: Path) -> list[Path]:
    return [
        p for p in folder.iterdir() if p.name not in (LOCK_FILE,) and not p.name.startswith(".")
    ]


def _check_one(out: Output, command: str, overwrite: bool) -> None:
    path = Path(out.path)
    if not path.exists():
        return
    if out.kind == "file":
        if path.is_dir():
            raise ConfigError(
                f"{path}: is a folder, expected a file (give a file path for {out.option})"
            )
        if overwrite or (out.own is not None and out.own(path)):
            return
        raise ConfigError(
            f"{path}: exists and was not written by `particlegraph {command}` (choose another "
            f"{out.option}, or pass --overwrite to replace it)"
        )
    if not path.is_dir():
        raise ConfigError(f"{path}: is a file, expected a folder (give a folder for {out.option})")
    mark = owner(path)
    accepted = out.accepts or (command,)
    if mark is not None and mark["command"] in accepted:
        return
    if not _visible_entries(path) or overwrite:
        return
    what = (
        f"was made by `particlegraph {mark['command']}`"
        if mark
        else "holds files particlegraph did not make"
    )
    raise ConfigError(
        f"{path}: {what}, not by `particlegraph {command}` (choose another {out.option}, "
        "or pass --overwrite to write into it anyway)"
    )


def guard_outputs(
    command: str,
    outputs: Iterable[Output],
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    overwrite: bool = False,
) -> None:
    """Refuse, before any work, outputs that would replace what ``command`` did not make.

    Args:
        command: the command, as a user types it after ``particlegraph`` (``"mlpf evaluate"``).
        outputs: what the command writes.
        inputs: files and folders it reads (never written, whatever ``overwrite`` says).
        overwrite: the command's ``--overwrite``.

    Raises:
        ConfigError: one sentence naming the path, the reason and what to do.
    """
    ins = [(Path(p), _resolved(p)) for p in inputs]
    for out in outputs:
        target = _resolved(out.path)
        for shown, source in ins:
            if target == source:
                raise ConfigError(
                    f"{out.path}: {out.option} is also an input ({shown}); write elsewhere"
                )
            if _inside(target, source) and source.is_dir():
                raise ConfigError(
                    f"{out.path}: {out.option} lies inside the input {shown}; write elsewhere "
                    "(an input folder is never written into)"
                )
        _check_one(out, command, overwrite)


def claim(
    folder: str | os.PathLike[str], command: str, settings: Mapping[str, Any] | None = None
) -> None:
    """Mark ``folder`` (created if needed) as made by ``command``, with the settings of its content."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(
        folder / OWNER_FILE,
        {
            "command": command,
            "version": particlegraph.__version__,
            "settings": dict(settings or {}),
        },
    )


def holds_only_marks(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` (searched recursively) holds no file but :data:`OWNER_FILE` markers.

    A failed ``generate`` that made such a folder removes it: nothing was made there, and no
    other writer's lock or file is in it.
    """
    try:
        return all(p.name == OWNER_FILE for p in Path(folder).rglob("*") if not p.is_dir())
    except OSError:
        return False


def claim_unowned(folder: str | os.PathLike[str], command: str) -> None:
    """:func:`claim` ``folder`` for ``command`` unless another command's mark is there.

    An explanation written into a run folder (``--out RUN`` with ``--overwrite``) leaves the run a
    run: its ``particlegraph.json`` keeps naming ``<task> train``.
    """
    mark = owner(folder)
    if mark is None or mark["command"] == command:
        claim(folder, command)


def check_settings(
    folder: str | os.PathLike[str],
    command: str,
    settings: Mapping[str, Any],
    options: Mapping[str, str] | None = None,
) -> bool:
    """Whether ``folder`` already holds ``command``'s output made with these ``settings``.

    Returns False for a folder without a marker of ``command``.

    Raises:
        ConfigError: the folder holds ``command``'s output made with other settings; the message
            names the first setting that differs (and the option that sets it, from ``options``).
    """
    mark = owner(folder)
    if mark is None or mark["command"] != command:
        return False
    old = mark.get("settings", {})
    new = json.loads(json.dumps(dict(settings)))  # the JSON form, as it was stored
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            name = (options or {}).get(key, key)
            raise ConfigError(
                f"{folder}: holds the output of `particlegraph {command}` made with another "
                f"{name} ({old.get(key)!r}, now {new.get(key)!r}); choose another folder or pass "
                "--overwrite to replace it"
            )
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike[str], command: str, key: str = "") -> Iterator[None]:
    """Hold ``folder/.particlegraph.lock`` while the block writes into ``folder``.

    ``key`` names a part of the folder that writers may fill side by side (a generation shard,
    ``"shard-3-of-8"``): the lock is then ``.particlegraph-<key>.lock``.

    Raises:
        ConfigError: another live process holds the lock (a second ``generate`` into the same
            folder); a lock left by a dead process on this host is taken over.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / (LOCK_FILE if not key else LOCK_FILE.replace(".lock", f"-{key}.lock"))
    me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                held = json.loads(lock.read_text())
            except (OSError, ValueError):
                held = {}
            same_host = held.get("host") == me["host"]
            if same_host and isinstance(held.get("pid"), int) and not _alive(held["pid"]):
                lock.unlink(missing_ok=True)  # its writer died: take it over
                continue
            raise ConfigError(
                f"{folder}: is being written by `particlegraph {held.get('command', '?')}` "
                f"(process {held.get('pid', '?')} on {held.get('host', '?')}); wait for it to "
                f"finish, or remove {lock} if that process is gone"
            ) from None
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
        except OSError as err:  # a full disk: never leave an empty lock that blocks every writer
            lock.unlink(missing_ok=True)
            full = disk_full_error(err, lock)
            if full is None or full is err:
                raise
            raise full from None
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
