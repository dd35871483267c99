"""The shared error path and the plain-line progress of every command."""

from __future__ import annotations

import errno
import io
import pickle
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from particlegraph.cli.common import (
    PlainProgress,
    check_range,
    friendly_errors,
    removed_on_failure,
)
from particlegraph.errors import ConfigError, DataFileError, describe


def _app(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @friendly_errors
    def run(path: str = typer.Option("x", "--path")) -> None:
        raise exc

    return app


def test_os_and_reader_errors_become_one_line_with_advice():
    cases = {
        PermissionError(errno.EACCES, "Permission denied", "/data/out"): "error: /data/out: "
        "permission denied (choose a folder you can write to, or fix its permissions)",
        IsADirectoryError(errno.EISDIR, "Is a directory", "/x"): "error: /x: is a directory",
        OSError(errno.ENOSPC, "No space left", "/x/f"): "error: /x/f: no space left on the device",
        pickle.UnpicklingError("bad"): "error: not a readable pickle",
        DataFileError("f: bad\nsecond line"): "error: f: bad second line",
    }
    for exc, start in cases.items():
        result = CliRunner().invoke(_app(exc), [])
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(start), result.stderr
        assert result.stderr.count("\n") == 1


def test_a_bug_says_so_and_exits_1():
    result = CliRunner().invoke(_app(ZeroDivisionError("division by zero")), [])
    assert result.exit_code == 1
    assert "internal error: ZeroDivisionError" in result.stderr and "--debug" in result.stderr


def test_debug_option_is_added_and_reraises():
    result = CliRunner().invoke(_app(DataFileError("f: bad")), ["--debug"])
    assert isinstance(result.exception, DataFileError)


def test_torch_worker_messages_keep_only_the_cause():
    text = "Caught DataFileError in DataLoader worker process 0.\nOriginal Traceback (most recent " \
        "call last):\n  File ...\nparticlegraph.errors.DataFileError: f (event 1): bad"  # fmt: skip
    assert describe(DataFileError(text)) == "f (event 1): bad"


def test_removed_on_failure_removes_only_what_is_new(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    new = tmp_path / "a" / "b"
    try:
        with removed_on_failure(old, new):
            new.mkdir(parents=True)
            (old / "keep").write_text("x")
            raise RuntimeError
    except RuntimeError:
        pass
    assert not (tmp_path / "a").exists() and (old / "keep").exists()


def test_plain_progress_prints_totals_and_eta():
    out = io.StringIO()
    bar = PlainProgress(total=10, desc="generate", unit="ev", interval=0.0, file=out)
    bar.update(4)
    bar.close()
    first = out.getvalue().splitlines()[0]
    assert first.startswith("generate: 4/10 ev (40%)") and "ETA" in first
    quiet = io.StringIO()
    with PlainProgress(total=3, interval=3600, file=quiet) as p:
        p.update(3)
    assert quiet.getvalue() == ""  # a job shorter than the interval prints nothing


def test_interruptions_and_kept_work_are_not_removed(tmp_path):
    out = tmp_path / "run"
    for exc, keep_if in ((KeyboardInterrupt, None), (RuntimeError, lambda: True)):
        try:
            with removed_on_failure(out, keep_if=keep_if):
                out.mkdir()
                raise exc
        except (KeyboardInterrupt, RuntimeError):
            pass
        assert out.is_dir()
        out.rmdir()


def test_sigterm_removes_temporary_files_and_exits_130(tmp_path):
    """A batch system's SIGTERM runs the finally blocks: no hidden temporary file is left."""
    import os
    import signal

    from particlegraph.atomic import atomic_path

    app = typer.Typer()

    @app.command()
    @friendly_errors
    def run(out: str = typer.Option(..., "--out")) -> None:
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGTERM)

    result = CliRunner().invoke(app, ["--out", str(tmp_path / "a.txt")])
    assert result.exit_code == 130
    assert result.stderr.startswith("error: interrupted")
    assert list(tmp_path.iterdir()) == []


def test_a_data_loader_worker_stopped_by_a_signal_is_an_interruption(tmp_path):
    """``timeout``/``scancel`` signal the process group; a worker may die first."""
    app = typer.Typer()

    @app.command()
    @friendly_errors
    def run(kind: str = typer.Option(..., "--kind")) -> None:
        if kind == "worker":
            raise RuntimeError("DataLoader worker (pid 27887) is killed by signal: Terminated. ")
        raise RuntimeError("something else")

    result = CliRunner().invoke(app, ["--kind", "worker"])
    assert result.exit_code == 130
    assert result.stderr.startswith("error: interrupted")
    result = CliRunner().invoke(app, ["--kind", "other"])
    assert result.exit_code == 1 and "internal error" in result.stderr


def test_annotated_options_keep_their_names_and_help():
    """``from __future__ import annotations`` + Annotated: the wrapper must not hide typer's
    metadata (an option without a default would otherwise become a positional argument)."""
    app = typer.Typer()

    @app.command()
    @friendly_errors
    def run(out: Annotated[Path, typer.Option("--out", help="Output folder.")]) -> None:
        typer.echo(f"out={out}")

    result = CliRunner().invoke(app, ["--out", "x"])
    assert result.exit_code == 0 and "out=x" in result.output, result.output
    assert "Output folder." in CliRunner().invoke(app, ["--help"]).output


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [(1, 1, 10), (10, 1, 10), (1, 1, None), (10, None, 10), (0.0, 0.0, 0.99), (0.99, 0.0, 0.99),
     (None, 1, 10), (-(10**9), None, 0)],
)  # fmt: skip
def test_check_range_accepts_its_inclusive_edges(value, low, high):
    check_range("--n", value, low, high)


@pytest.mark.parametrize(
    ("value", "low", "high", "want"),
    [(0, 1, 10, "between 1 and 10"), (11, 1, 10, "between 1 and 10"),
     (0.9999, 1, None, ">= 1"), (10.0001, None, 10, "<= 10"), (1.0, 0.0, 0.99, "between 0 and 0.99"),
     (float("nan"), 1, 10, "between 1 and 10"), (float("inf"), 1, None, ">= 1"),
     (float("-inf"), None, 0, "<= 0")],
)  # fmt: skip
def test_check_range_refuses_one_step_outside(value, low, high, want):
    with pytest.raises(ConfigError) as info:
        check_range("--n", value, low, high, what="things")
    assert str(info.value).startswith(f"--n must be {want} (things), got ")
