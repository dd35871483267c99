"""Atomic file writes: write to a temporary file in the same folder, then rename.

An interrupted process therefore never leaves a half-written dataset shard, checkpoint or report.
Temporary names carry the writer's host and process id, ``.<stem>.<pid>@<host>.<random>.tmp<suffix>``;
they are removed when the block fails, and a temporary file (or staging folder) left behind by a
process that was killed is swept the next time anything is written into that folder.

A full disk is reported as one :class:`OSError` (``ENOSPC``) naming the file being written,
whatever the writer raised: numpy and Python give ``ENOSPC`` without a file name, pyarrow an
``OSError`` with the errno in its text, torch a ``RuntimeError`` about a stream position.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: ``.<anything>.<pid>@<host>.<random>.tmp<anything>``: the names this module creates.
_TEMP_RE = re.compile(r"^\..*\.(\d+)@([^.]+)\.[^.]+\.tmp")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _tag() -> str:
    return f"{os.getpid()}@{_host()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files and staging folders of dead writers on this host in ``folder``.

    Only names made by this module are touched, and only when their process id is not running
    on this host (a writer on another host sharing the folder is left alone). Returns the paths
    removed. A folder that does not exist or cannot be listed is skipped silently.
    """
    folder = Path(folder)
    removed: list[Path] = []
    host = _host()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if m is None or m.group(2) != host or _alive(int(m.group(1))):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


#: Free bytes below which a failed write is taken for a full disk (a writer stops at its first
#: failed write, so the disk is then full to within its buffer).
FULL_BELOW = 64 * 1024
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Bytes an unprivileged writer may still use on ``folder``'s file system (None: unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def disk_full_error(err: BaseException, path: str | os.PathLike[str]) -> OSError | None:
    """``err`` as an ``OSError(ENOSPC, ..., path)`` when it comes from a full disk, else None.

    A disk-full ``OSError`` that already names a file is returned as it is.

    A full disk is recognised by its errno (also inside a library's message) or, for writers that
    hide it (torch), by less than :data:`FULL_BELOW` bytes left on ``path``'s file system.
    """
    if not isinstance(err, Exception) or isinstance(err, MemoryError):
        return None
    code = getattr(err, "errno", None) if isinstance(err, OSError) else None
    if code in _FULL_ERRNOS and isinstance(err, OSError) and err.filename is not None:
        return err  # it names its file already (an inner writer's, say): keep it
    text = str(err)
    if code not in _FULL_ERRNOS:
        if "No space left on device" in text or "[errno 28]" in text:
            code = errno.ENOSPC
        elif "Disk quota exceeded" in text:
            code = errno.EDQUOT
        else:
            free = free_bytes(Path(path).parent)
            if free is None or free >= FULL_BELOW:
                return None
            code = errno.ENOSPC
    return OSError(code, os.strerror(code), os.fspath(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file keeps the final suffix so libraries that infer the format from it work.
    It is removed when the block raises (or the process gets SIGTERM under the CLI). A full disk
    is raised as ``OSError(ENOSPC)`` naming ``path`` (:func:`disk_full_error`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path.parent)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.{_tag()}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except Exception as err:
            full = disk_full_error(err, path)  # asked before the partial file is removed
            if full is None or full is err:
                raise
            raise full from err
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def staging_dir(parent: str | os.PathLike[str], name: str) -> Iterator[Path]:
    """A hidden temporary folder in ``parent`` (created if needed), removed when the block ends.

    Move finished files out of it with :func:`os.replace` (same file system, so atomic).
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent)
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.{_tag()}.", suffix=".tmp"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _link(src: str, dst: str) -> None:
    """Hard-link ``src`` at ``dst`` (no data copied); copy where the file system cannot link."""
    try:
        os.link(src, dst)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        shutil.copy2(src, dst)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


@contextlib.contextmanager
def restored_on_failure(*paths: str | os.PathLike[str]) -> Iterator[None]:
    """Put ``paths`` (files or folders) back as they were if the block raises.

    For a command that updates several files of an existing folder (``mlpf evaluate`` into its
    run: ``metrics.json``, the figures, the page): a failure half-way, a full disk say, must not
    leave new files beside old ones. Before the block every existing path is hard-linked into a
    hidden staging folder beside it (folders file by file): no data is copied, so this works on
    a nearly full disk. If the block raises (an interruption too), each path is removed and its
    links are moved back; a path that did not exist is removed. Every write inside must replace
    files by rename (:func:`atomic_path`), never edit one in place, or the links would see it.
    """
    with contextlib.ExitStack() as stack:
        saved: list[tuple[Path, Path | None]] = []
        for target in map(Path, paths):
            if not os.path.lexists(target):
                saved.append((target, None))
                continue
            backup = stack.enter_context(staging_dir(target.parent, "restore")) / target.name
            if target.is_dir() and not target.is_symlink():
                shutil.copytree(target, backup, symlinks=True, copy_function=_link)
            else:
                _link(str(target), str(backup))
            saved.append((target, backup))
        try:
            yield
        except BaseException:
            for target, kept in saved:
                _remove(target)
                if kept is not None:
                    os.replace(kept, target)
            raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
