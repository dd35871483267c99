"""Exception families. The CLI prints any of these as one line and exits with status 2.

Besides the toolkit's own exceptions, :func:`describe` turns the errors that the operating system
and third-party readers raise (permission denied, disk full, a damaged Parquet / ROOT / bz2 /
pickle file) into the same one-line form ``<path>: <what> (<what to do>)``.
"""

from __future__ import annotations

import errno
import os


class ParticlegraphError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, missing dependency)."""


class DataFileError(ParticlegraphError):
    """A data file is missing, unreadable or does not follow the expected layout."""


class ConfigError(ParticlegraphError):
    """A configuration value or command-line override is invalid."""


class MissingDependencyError(ParticlegraphError):
    """An optional dependency needed by this feature is not installed."""


class ResourceLimitError(DataFileError):
    """An input declares or expands to more data than the configured limit allows."""


def require(module: str, extra: str) -> object:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed; install it with: pip install 'particlegraph[{extra}]'"
        ) from err


def brief(err: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, shortened, for one-line error reports."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: errno -> (what happened, what to do), for the OS errors a user can cause and fix.
_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.EACCES: ("permission denied", "choose a folder you can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", "choose another path or fix its permissions"),
    errno.EEXIST: ("already exists", "remove it or choose another path"),
    errno.EISDIR: ("is a directory, expected a file", "give a file path"),
    errno.ENOTDIR: ("a part of this path is a file, not a directory", "choose another path"),
    errno.ENOENT: ("no such file or directory", "check the path"),
    errno.ENOSPC: ("no space left on the device", "free disk space or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free disk space or write elsewhere"),
    errno.EROFS: ("read-only file system", "write to another folder"),
    errno.ENAMETOOLONG: ("file name too long", "choose a shorter path"),
    errno.ENOTEMPTY: ("directory not empty", "empty it or choose another folder"),
    errno.EMFILE: ("too many open files", "raise the limit with ulimit -n"),
}


def describe_os_error(err: OSError) -> str:
    """``<path>: <what> (<what to do>)`` for an :class:`OSError` (no traceback needed)."""
    path = err.filename
    what, todo = _OS_ERRORS.get(err.errno or -1, (err.strerror or brief(err), ""))
    if err.errno not in _OS_ERRORS and err.strerror is None:
        todo = "check the path and the disk"
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    if path is not None and err.filename2 is not None:
        where = f"{os.fsdecode(path)} -> {os.fsdecode(err.filename2)}: "
    return f"{where}{what}" + (f" ({todo})" if todo else "")


def describe(err: BaseException) -> str | None:
    """One line for a user-fixable error, or ``None`` for an unexpected one (a bug).

    Handles :class:`ParticlegraphError`, :class:`OSError` (permissions, existing paths, a full
    disk), :class:`MemoryError`, and the reader errors of pyarrow, uproot, bz2 and pickle that
    escaped a reader's own handling.
    """
    import pickle

    if isinstance(err, ParticlegraphError):
        text = str(err)
        if "Original Traceback" in text:  # re-raised by a torch DataLoader worker
            last = text.strip().splitlines()[-1]
            text = last.split(": ", 1)[1] if ": " in last else last
        return text
    if isinstance(err, OSError) and err.errno is not None:
        return describe_os_error(err)
    if isinstance(err, MemoryError):
        return (
            "out of memory (read fewer events at once, e.g. a smaller --batch-size or "
            "--max-events, or raise the limit of the input check)"
        )
    if isinstance(err, pickle.UnpicklingError | EOFError):
        return f"not a readable pickle ({brief(err)}; the file is damaged or not an event file)"
    name = f"{type(err).__module__}.{type(err).__qualname__}"
    if name.startswith(("pyarrow.", "uproot.", "awkward.", "_bz2", "bz2", "zlib", "lzma")):
        return f"cannot read the input ({brief(err)}; the file is damaged or of another format)"
    if isinstance(err, OSError):  # no errno: usually a library's "corrupt file" OSError
        return f"cannot read the input ({brief(err)}; the file is damaged or of another format)"
    return None
