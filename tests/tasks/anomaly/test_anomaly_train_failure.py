"""A failed ``anomaly train`` leaves no run (no lone config.yaml); one with a checkpoint stays."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from particlegraph.cli.main import app
from particlegraph.tasks.anomaly import train as anomaly_train


def _train(data: Path, run: Path, *extra: str) -> Any:
    argv = ["anomaly", "train", "--data", str(data), "--run", str(run), "--epochs", "1", *extra]
    return CliRunner().invoke(app, argv)


def _one_error_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, (result.exit_code, result.output)
    assert lines[0].startswith("error: ")
    return lines[0]


def test_bad_data_is_refused_before_the_run_is_created(
    tmp_path: Path, sample_dir: Callable[..., Path]
) -> None:
    data = sample_dir("bkg", n_events=10)
    line = _one_error_line(_train(data, tmp_path / "run", "--first-event", "50"))
    assert "too few to hold out a validation set" in line
    assert not (tmp_path / "run").exists()


def test_a_failure_after_create_run_removes_the_new_run(
    tmp_path: Path, sample_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_run wrote particlegraph.json and config.yaml; the fit then fails (a full disk)."""
    made: list[Path] = []

    def fit(*args: Any, **kwargs: Any) -> Any:
        run_dir = Path(args[5])
        made.extend(sorted(p.name for p in run_dir.iterdir()))  # type: ignore[misc]
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "checkpoints"))

    monkeypatch.setattr(anomaly_train, "fit", fit)
    data = sample_dir("bkg", n_events=40)
    line = _one_error_line(_train(data, tmp_path / "run"))
    assert "no space left on the device" in line
    assert "config.yaml" in made  # the failure came after the run was created ...
    assert not (tmp_path / "run").exists()  # ... and the run went with it


def test_a_run_with_a_checkpoint_is_kept_for_resume(
    tmp_path: Path, sample_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sample_dir("bkg", n_events=40)
    run = tmp_path / "run"
    real = anomaly_train.calibrate

    def calibrate(*args: Any) -> Any:  # after the checkpoints, before calibration.json
        raise OSError(errno.ENOSPC, "No space left on device", str(run / "calibration.json"))

    monkeypatch.setattr(anomaly_train, "calibrate", calibrate)
    _one_error_line(_train(data, run))
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.pt").is_file()
    monkeypatch.setattr(anomaly_train, "calibrate", real)
    result = _train(data, run, "--resume")
    assert result.exit_code == 0, result.output
    assert (run / "calibration.json").is_file()
