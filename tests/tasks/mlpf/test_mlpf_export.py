"""CLI ``mlpf train`` / ``mlpf export`` and the ONNX export checked with onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlpf_events import make_events, write_dataset
from typer.testing import CliRunner

from particlegraph.cli.main import app
from particlegraph.errors import ConfigError
from particlegraph.tasks.mlpf.export import (
    DenseGravNetConv,
    ExportableMLPF,
    export_onnx,
    onnx_outputs,
)
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig
from particlegraph.tasks.mlpf.train import load_model

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("aggr", ["sum", "mean", "max"])
def test_dense_gravnet_equals_sparse_model(aggr: str) -> None:
    torch.manual_seed(0)
    model = MLPF(MLPFConfig(hidden=16, propagate_dim=8, k=5, num_blocks=2, aggr=aggr)).eval()
    x = torch.from_numpy(make_events(1, seed=4)[0].X)
    with torch.no_grad():
        ref = model(x)
        dense = ExportableMLPF(model)(x)
    for r, d in zip(ref, dense, strict=True):
        torch.testing.assert_close(d, r, rtol=1e-5, atol=1e-6)
    # the wrapper swapped blocks in its own copy only
    assert not any(isinstance(b, DenseGravNetConv) for b in model.blocks)


def test_cli_train_export_and_onnxruntime(tmp_path) -> None:
    data = write_dataset(tmp_path / "data", n_files=3, events_per_file=3, seed=1)
    run = tmp_path / "run"
    runner = CliRunner()
    sets = ["model.hidden=16", "model.propagate_dim=8", "model.k=4", "model.num_blocks=1"]
    args = ["mlpf", "train", "--data", str(data), "--run", str(run), "--val-fraction", "0.34"]
    for s in [*sets, "fit.epochs=1", "fit.device=cpu", "data.batch_size=3"]:
        args += ["--set", s]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "config.yaml" in res.output
    assert (run / "checkpoints" / "best.pt").is_file()

    onnx_path = tmp_path / "mlpf.onnx"
    res = runner.invoke(
        app, ["mlpf", "export", "--run", str(run), "--onnx", str(onnx_path), "--elements", "40"]
    )
    assert res.exit_code == 0, res.output
    assert "onnxruntime matches torch" in res.output

    # an event of another size than the traced one, from the dataset's generator
    model, _ = load_model(run)
    x = torch.from_numpy(make_events(1, seed=77)[0].X)
    got = onnx_outputs(onnx_path, x)
    with torch.no_grad():
        ref = model(x)
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r.numpy(), rtol=1e-4, atol=1e-5)


def test_cli_errors_are_one_line(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    res = CliRunner().invoke(
        app, ["mlpf", "train", "--data", str(tmp_path / "empty"), "--run", str(tmp_path / "r")]
    )
    assert res.exit_code == 2
    assert "error:" in res.output
    res = CliRunner().invoke(
        app, ["mlpf", "export", "--run", str(tmp_path / "nope"), "--onnx", str(tmp_path / "m.onnx")]
    )
    assert res.exit_code == 2
    assert "no such run folder" in res.output  # the one run loader's message
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow  # the torch.export-based exporter takes ~10-30 s on 2 shared cores
def test_dynamo_exporter_matches_torch(tmp_path) -> None:
    torch.manual_seed(3)
    model = MLPF(MLPFConfig(hidden=16, propagate_dim=8, k=4, num_blocks=2, aggr="max")).eval()
    result = export_onnx(model, tmp_path / "m.onnx", elements=32, exporter="dynamo")
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    x = torch.from_numpy(make_events(1, seed=12)[0].X)
    with torch.no_grad():
        ref = model(x)
    for g, r in zip(onnx_outputs(tmp_path / "m.onnx", x), ref, strict=True):
        np.testing.assert_allclose(g, r.numpy(), rtol=1e-4, atol=1e-5)


def test_unknown_exporter_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="exporter"):
        export_onnx(MLPF(MLPFConfig(hidden=8, k=2)), tmp_path / "m.onnx", exporter="tflite")
