"""The shipped pretrained model: small, loads by name, evaluates with its operating point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlpf_events import write_dataset

from particlegraph.errors import ConfigError
from particlegraph.tasks.mlpf.calibration import load_calibration
from particlegraph.tasks.mlpf.model import MLPF
from particlegraph.tasks.mlpf.operating_point import load_operating_point
from particlegraph.tasks.mlpf.train import (
    load_model,
    pretrained_names,
    resolve_run_dir,
    run_output_dir,
)

NAME = "ttbar_pu50_medium"


def test_pretrained_model_is_shipped_small_and_loads() -> None:
    assert NAME in pretrained_names()
    path = resolve_run_dir(f"pretrained:{NAME}")
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert size < 1_000_000  # package data budget
    model, cfg = load_model(f"pretrained:{NAME}")
    assert isinstance(model, MLPF) and not model.training
    assert cfg.loss.regression_weighting in ("energy", "pt_bins", "none")
    op = load_operating_point(path)
    assert op is not None and len(op.class_offsets) == 6
    # the energy calibration learned on validation events ships with it (issue 20)
    cal = load_calibration(path)
    assert cal is not None and set(cal.points) == {"neutral_hadron", "photon"}
    assert cal.events >= 100
    # shipped as float16 weights (package budget), loaded as float32, with the link inputs
    raw = torch.load(path / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert {v.dtype for v in raw["model"].values() if v.is_floating_point()} == {torch.float16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.cfg.link_features
    # a trained head is no longer the identity correction
    assert float(model.reg_head[-1].weight.detach().abs().sum()) > 0.0


def test_pretrained_model_evaluates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from particlegraph.cli.main import app

    data = write_dataset(tmp_path / "data", n_files=1, events_per_file=3, seed=5)
    monkeypatch.chdir(tmp_path)
    run = f"pretrained:{NAME}"
    args = ["mlpf", "evaluate", "--run", run, "--data", str(data), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--no-figures"])
    assert result.exit_code == 0, result.output
    out = tmp_path / run_output_dir(run)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["events"] == 3
    op = load_operating_point(resolve_run_dir(run))
    assert op is not None
    assert metrics["operating_point"]["class_offsets"] == list(op.class_offsets)
    assert metrics["calibration"]["events"] == load_calibration(resolve_run_dir(run)).events  # type: ignore[union-attr]
    no_cal = CliRunner().invoke(app, [*args, "--no-figures", "--no-calibration"])
    assert no_cal.exit_code == 0, no_cal.output
    assert json.loads((out / "metrics.json").read_text())["calibration"] is None
    assert "diagnostics" in metrics and "mlpf" in metrics["diagnostics"]


def test_unknown_pretrained_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match=NAME):
        resolve_run_dir("pretrained:nope")
    with pytest.raises(ConfigError, match="never a path"):  # a path is never a shipped name
        resolve_run_dir(f"pretrained:../pretrained/{NAME}")
    assert run_output_dir("runs/x") == Path("runs/x")
    assert run_output_dir(f"pretrained:{NAME}") == Path("runs") / f"pretrained_{NAME}"


def test_pretrained_weights_predict_finite_values() -> None:
    model, _ = load_model(f"pretrained:{NAME}")
    x = torch.zeros(40, 12)
    x[:, 0] = 2.0
    x[:, 1] = torch.linspace(0.5, 50.0, 40)
    x[:, 4] = 1.0
    x[:, 5] = x[:, 1]
    with torch.no_grad():
        out = model(x)
    assert torch.isfinite(out.regression).all() and torch.isfinite(out.logits).all()


def test_pretrained_model_explains_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from particlegraph.cli.main import app

    pytest.importorskip("onnx")
    data = write_dataset(tmp_path / "data", n_files=1, events_per_file=1, seed=6)
    monkeypatch.chdir(tmp_path)
    run = f"pretrained:{NAME}"
    args = ["mlpf", "explain", "--run", run, "--data", str(data), "--events", "1"]
    args += ["--output", "energy", "--no-figures", "--no-randomize", "--check-targets", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / run_output_dir(run) / "explain" / "summary.json").is_file()
    onnx = tmp_path / "model.onnx"
    result = CliRunner().invoke(app, ["mlpf", "export", "--run", run, "--onnx", str(onnx)])
    assert result.exit_code == 0, result.output
    assert onnx.is_file()
