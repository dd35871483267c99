"""mlpf explain and mlpf export check their outputs before any work and never replace inputs.

Each refusal exits 2 with one ``error:`` line and leaves every file as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mlpf_events import write_dataset
from mlpf_refusals import refused
from typer.testing import CliRunner

from particlegraph.cli.main import app
from particlegraph.outputs import claim, owner
from particlegraph.tasks.mlpf.model import MLPF

TINY = {"hidden": 8, "num_blocks": 1, "k": 4, "propagate_dim": 4, "space_dim": 2}


@pytest.fixture
def run_and_data(tmp_path: Path) -> tuple[Path, Path]:
    """A run folder (marked as made by ``mlpf train``) with a tiny MLPF, and 2 small events."""
    from particlegraph.config import dump_config
    from particlegraph.tasks.mlpf.train import CONFIG_NAME, run_config_from_dict
    from particlegraph.train.checkpoint import checkpoint_path, save_checkpoint

    data = write_dataset(tmp_path / "data", n_files=1, events_per_file=2, seed=3)
    cfg = run_config_from_dict({"model": TINY})
    torch.manual_seed(0)
    run = tmp_path / "run"
    claim(run, "mlpf train")
    dump_config(cfg, run / CONFIG_NAME)
    save_checkpoint(checkpoint_path(run, "last"), {"model": MLPF(cfg.model).state_dict()})
    return run, data


def explain_args(run: Path, data: Path, *extra: str) -> list[str]:
    return ["mlpf", "explain", "--run", str(run), "--data", str(data), "--events", "1",
            "--device", "cpu", "--no-figures", "--no-randomize", "--output", "pt",
            "--flip-events", "0", *extra]  # fmt: skip


def test_explain_never_writes_into_its_input_dataset(run_and_data, tmp_path: Path) -> None:
    run, data = run_and_data
    for out in (data, data / "explain"):
        for extra in ((), ("--overwrite",)):  # --overwrite cannot make it safe
            refused(explain_args(run, data, "--out", str(out), *extra), tmp_path, "input")


def test_explain_refuses_a_foreign_folder_unless_overwrite(run_and_data, tmp_path: Path) -> None:
    run, data = run_and_data
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    args = explain_args(run, data, "--out", str(foreign))
    refused(args, tmp_path, "holds files particlegraph did not make")
    res = CliRunner().invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (foreign / "thesis.tex").read_text() == "mine"  # written beside, never removed
    assert (foreign / "relmap_pt.npz").is_file()
    assert owner(foreign)["command"] == "mlpf explain"  # type: ignore[index]
    # the folder is now this command's own: a rerun needs no --overwrite
    assert CliRunner().invoke(app, args).exit_code == 0


def test_explain_into_a_run_folder_keeps_the_run(run_and_data, tmp_path: Path) -> None:
    """--overwrite lets explain write into another command's folder, never take it over."""
    from particlegraph.train.run import open_run

    run, data = run_and_data
    args = explain_args(run, data, "--out", str(run))
    refused(args, tmp_path, "was made by `particlegraph mlpf train`")
    res = CliRunner().invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (run / "relmap_pt.npz").is_file()
    assert owner(run)["command"] == "mlpf train"  # type: ignore[index]
    assert open_run(run, "mlpf", "particlegraph.tasks.mlpf").checkpoint("last").is_file()


def test_explain_refuses_bad_runs_and_checkpoints(run_and_data, tmp_path: Path) -> None:
    run, data = run_and_data
    refused(explain_args(run, data, "--checkpoint", "middle"), tmp_path, "--checkpoint")
    refused(explain_args(Path("pretrained:../run"), data), tmp_path, "never a path")
    refused(explain_args(tmp_path / "nope", data), tmp_path, "no such run folder")
    refused(explain_args(run, tmp_path / "nodata"), tmp_path, "no such dataset")
    refused(explain_args(run, data, "--neighbours", "0"), tmp_path, "--neighbours")
    study = explain_args(run, data, "--outputs", "pt", "--out", str(data / "study"))
    refused(study, tmp_path, "input")
    other = tmp_path / "trained"  # a run folder is no output of explain
    claim(other, "mlpf train")
    (other / "config.yaml").write_text("model: {}\n")
    refused([*study[:-1], str(other)], tmp_path, "mlpf train")


def test_explain_of_a_pretrained_run_writes_under_runs(run_and_data, tmp_path, monkeypatch):
    """``pretrained:NAME`` writes into ``runs/pretrained_NAME/`` (report included), never into
    the package or a folder named after the spec."""
    from particlegraph.tasks.mlpf import explain as mlpf_explain
    from particlegraph.train import run as run_module

    run, data = run_and_data
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(run_module, "_pretrained_path", lambda spec, pkg, task: (run, "tiny"))
    monkeypatch.setattr(mlpf_explain, "lrp_relevance", lambda rule: _zero_relevance)
    res = CliRunner().invoke(app, explain_args(Path("pretrained:tiny"), data))
    assert res.exit_code == 0, res.output
    out = tmp_path / "runs" / "pretrained_tiny"
    assert (out / "explain" / "summary.json").is_file() and (out / "index.html").is_file()
    assert not (tmp_path / "pretrained:tiny").exists()
    assert not (run / "explain").exists() and not (run / "index.html").exists()


def _zero_relevance(model, x, output, targets):
    """A relevance stand-in: each element's inputs, nothing else (cheap and conserving)."""
    from types import SimpleNamespace

    n = x.shape[0]
    idx = torch.arange(n)
    return SimpleNamespace(target=idx, source=idx, values=x.detach(), targets=idx,
                           explained=x.detach().sum(1), absorbed=torch.zeros(n),
                           num_elements=n)  # fmt: skip


def test_export_never_replaces_a_checkpoint_or_a_foreign_file(run_and_data, tmp_path) -> None:
    run, _ = run_and_data
    base = ["mlpf", "export", "--run", str(run), "--elements", "16"]
    ckpt = run / "checkpoints" / "last.pt"
    for target in (ckpt, run / "checkpoints" / "best.pt", run / "config.yaml"):
        for extra in ((), ("--overwrite",)):
            refused([*base, "--onnx", str(target), *extra], tmp_path, "input")
    foreign = tmp_path / "notes.onnx"
    foreign.write_bytes(b"not onnx")
    refused([*base, "--onnx", str(foreign)], tmp_path, "was not written by")
    refused([*base, "--onnx", str(tmp_path)], tmp_path, "is a directory")
    refused([*base, "--onnx", str(tmp_path / "m.onnx"), "--checkpoint", "x"], tmp_path, "best")
    refused([*base, "--onnx", str(tmp_path / "m.onnx"), "--which", "x"], tmp_path, "--which")
    refused([*base, "--onnx", str(tmp_path / "m.onnx"), "--exporter", "tf"], tmp_path, "tf")
    refused(["mlpf", "export", "--run", "pretrained:../run", "--onnx", str(tmp_path / "m.onnx")],
            tmp_path, "never a path")  # fmt: skip


def test_export_replaces_its_own_file_and_foreign_ones_with_overwrite(run_and_data, tmp_path):
    pytest.importorskip("onnxruntime")
    from particlegraph.tasks.mlpf.export import is_own_export, onnx_outputs

    run, _ = run_and_data
    target = tmp_path / "m.onnx"
    target.write_bytes(b"someone else's model")
    base = ["mlpf", "export", "--run", str(run), "--onnx", str(target), "--elements", "16"]
    assert not is_own_export(target)
    res = CliRunner().invoke(app, [*base, "--overwrite", "--which", "last"])  # deprecated alias
    assert res.exit_code == 0, res.output
    assert "--which is deprecated" in res.output
    assert is_own_export(target)
    first = onnx_outputs(target, np.ones((8, 12), np.float32))
    res = CliRunner().invoke(app, [*base, "--checkpoint", "last"])  # its own: no --overwrite
    assert res.exit_code == 0, res.output
    again = onnx_outputs(target, np.ones((8, 12), np.float32))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
