"""Shared CLI plumbing: one error path for every command, and progress that also works in a pipe.

:func:`friendly_errors` wraps a typer command so that anything the user can fix -- a
:class:`~particlegraph.errors.ParticlegraphError`, an operating-system error (permission denied,
the path exists, a folder where a file is expected, disk full), a damaged file that a third-party
reader (pyarrow, uproot, bz2, pickle) refused -- prints one line ``error: <path>: <what> (<what to
do>)`` on stderr and exits with status 2. The wrapper adds a ``--debug`` option to the command
(or set ``PARTICLEGRAPH_DEBUG=1``) that shows the full traceback instead. An unexpected exception
(a bug) prints one line that says so and exits with status 1.

:func:`progress` is a tqdm bar on a terminal and plain lines with totals, rate and ETA otherwise
(a pipe, a batch job's log), at most one line per ``interval`` seconds.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
import typer

from particlegraph.errors import brief, describe
from particlegraph.progress import PlainProgress as PlainProgress
from particlegraph.progress import progress as progress

F = TypeVar("F", bound=Callable[..., Any])

#: Environment variable that turns on tracebacks for every command (like ``--debug``).
DEBUG_ENV = "PARTICLEGRAPH_DEBUG"
#: Exit status of a user-fixable error (bad input, bad option, unwritable output).
EXIT_USER_ERROR = 2
#: Exit status of an unexpected error (a bug in particlegraph).
EXIT_BUG = 1


def _debug_requested(flag: bool) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")


def report_error(err: BaseException) -> int:
    """Print ``error: ...`` for ``err`` on stderr (one line) and return the exit status."""
    message = describe(err)
    if message is None:
        message = (
            f"internal error: {type(err).__name__}: {brief(err)} (this is a bug in particlegraph; "
            f"re-run with --debug for the traceback and report it)"
        )
        code = EXIT_BUG
    else:
        code = EXIT_USER_ERROR
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return code


def stopped_worker(err: BaseException) -> bool:
    """True for torch's error when a DataLoader worker was stopped by a signal.

    A batch system (``scancel``, ``timeout``) signals the whole process group: a worker can die
    before the main process handles its own SIGTERM, and the main process then sees this error.
    That is an interruption, not a bug.
    """
    text = str(err)
    return isinstance(err, RuntimeError) and "DataLoader worker" in text and "by signal" in text


def _interrupted() -> typer.Exit:
    """Print the interruption line; the exit (status 130) for the caller to raise."""
    print("error: interrupted (temporary files were removed)", file=sys.stderr)
    return typer.Exit(code=130)


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def friendly_errors(func: F) -> F:
    """Wrap a typer command: one ``error:`` line and exit status 2 instead of a traceback.

    Adds a ``--debug`` option (unless the command has its own ``debug`` parameter, which then
    receives the flag). SIGTERM is turned into :class:`KeyboardInterrupt` while the command
    runs, so ``finally`` blocks remove temporary files when a batch system stops the job.
    """
    try:  # typer reads Annotated[..., typer.Option(...)] from evaluated annotations
        sig = inspect.signature(func, eval_str=True)
    except Exception:  # a forward reference that cannot be resolved yet
        sig = inspect.signature(func)
    own_debug = "debug" in sig.parameters

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug", False)) if own_debug else bool(kwargs.pop("debug", False))
        previous = None
        try:
            previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread (e.g. inside a test runner's thread)
            previous = None
        try:
            return func(*args, **kwargs)
        except (typer.Exit, click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            if _debug_requested(debug):
                raise
            raise _interrupted() from None
        except Exception as err:
            if _debug_requested(debug):
                raise
            if stopped_worker(err):  # SIGTERM to the job's process group reached a worker first
                raise _interrupted() from None
            raise typer.Exit(code=report_error(err)) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    if not own_debug:
        option = typer.Option(False, "--debug", help="Show the full traceback of an error.")
        params = [*sig.parameters.values()]
        params.append(
            inspect.Parameter(
                "debug", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=bool
            )
        )
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        hints = {name: p.annotation for name, p in sig.parameters.items()}
        wrapper.__annotations__ = {**getattr(func, "__annotations__", {}), **hints, "debug": bool}
    return wrapper  # type: ignore[return-value]


def check_range(name: str, value: float | None, low: float | None = None, high: float | None = None,
                what: str = "") -> None:  # fmt: skip
    """Raise :class:`~particlegraph.errors.ConfigError` unless ``low <= value <= high``.

    Both bounds are inclusive. NaN and +-infinity are refused whatever the bounds (no option
    means anything at infinity). ``None`` values (an option left unset) pass. ``what`` says what the option means, for the
    message, e.g. ``check_range("--events", n, 1, what="events to evaluate")``.
    """
    from particlegraph.errors import ConfigError

    if value is None:
        return
    bad = (low is not None and value < low) or (high is not None and value > high)
    if bad or not math.isfinite(value):
        if low is not None and high is not None:
            want = f"between {_number(low)} and {_number(high)}"
        elif low is not None:
            want = f">= {_number(low)}"
        else:
            want = f"<= {_number(high)}"
        about = f" ({what})" if what else ""
        raise ConfigError(f"{name} must be {want}{about}, got {_number(value)}")


def _number(value: float | None) -> str:
    """Whole numbers with every digit (``%g`` would print 999999995 as 1e+09), grouped from
    10,000 on (``1000``, ``65,536``); ``0.99`` for the others."""
    if value is not None and math.isfinite(value) and float(value).is_integer():
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    return f"{value:g}"


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def _check_parent(path: Path, option: str) -> None:
    from particlegraph.errors import ConfigError

    anchor = _nearest_existing(path.parent)
    if not anchor.is_dir():
        raise ConfigError(f"{anchor}: is a file, not a folder (choose another path for {option})")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{anchor}: permission denied (choose a folder you can write to for {option})"
        )


def check_output_file(path: str | os.PathLike[str], option: str) -> None:
    """Fail early, before any work, when ``path`` cannot become a file.

    Refuses an existing folder and a parent that is a file or not writable, with a
    :class:`~particlegraph.errors.ConfigError` naming ``option``.
    """
    from particlegraph.errors import ConfigError

    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{path}: is a directory, expected a file (give a file path for {option})"
        )
    _check_parent(path, option)


def check_output_dir(path: str | os.PathLike[str], option: str) -> None:
    """Fail early when ``path`` cannot become a folder (an existing file, no write permission)."""
    from particlegraph.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file, expected a folder (give a folder for {option})")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(
                f"{path}: permission denied (choose a folder you can write to for {option})"
            )
        return
    _check_parent(path / "x", option)


def _topmost_new(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` (or ``path``) that does not exist yet, else None."""
    if path.exists():
        return None
    top = path
    for parent in path.parents:
        if parent.exists():
            break
        top = parent
    return top


@contextlib.contextmanager
def removed_on_failure(
    *paths: str | os.PathLike[str] | None, keep_if: Callable[[], bool] | None = None
) -> Iterator[None]:
    """Remove what the block created at ``paths`` (and their new parent folders) if it fails.

    Paths that already existed are left alone, so a failed command leaves the disk as it found
    it: no empty ``--out`` folder, no run folder holding only ``config.yaml``. An interruption
    (Ctrl-C, SIGTERM) removes nothing, so finished work can be resumed, and neither does a
    failure after ``keep_if()`` became true (e.g. a training run that wrote a checkpoint).
    """
    new = [top for p in paths if p is not None and (top := _topmost_new(Path(p))) is not None]
    try:
        yield
    except Exception:
        if keep_if is not None and keep_if():
            raise
        for top in new:
            if top.is_dir() and not top.is_symlink():
                shutil.rmtree(top, ignore_errors=True)
            elif top.exists():
                top.unlink(missing_ok=True)
        raise
