"""The shipped pile-up model: small, loads by name, evaluates a TrackML folder from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tracking_events import write_events
from typer.testing import CliRunner

from particlegraph.tasks.tracking.cli import app
from particlegraph.tasks.tracking.demo import PRETRAINED
from particlegraph.tasks.tracking.learned import TRACKING_PACKAGE, load_layerpair_run
from particlegraph.train.run import open_run, pretrained_names


def test_pretrained_run_is_shipped_small_and_trained_at_pileup():
    assert PRETRAINED in pretrained_names(TRACKING_PACKAGE)
    path = open_run(f"pretrained:{PRETRAINED}", "tracking", TRACKING_PACKAGE).path
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert size < 1_000_000  # package-data budget
    run = load_layerpair_run(f"pretrained:{PRETRAINED}")
    assert not run.model.training and run.model.filter is not None
    assert run.info["trained_on"]["pileup"] >= 50  # a pile-up model
    assert run.cfg.edge_target == "particle" and run.map.num_pairs > 100
    raw = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in raw["model"].values())  # weights only
    # the reproducing command ships beside the weights
    assert "tracking train" in (path / "README.md").read_text()


def test_pretrained_run_evaluates_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    data = tmp_path / "data"
    write_events(data, 2, 40)
    monkeypatch.chdir(tmp_path)  # the run's training data is not here
    out = tmp_path / "eval"
    args = ["evaluate", "--run", f"pretrained:{PRETRAINED}", "--data", str(data), "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    # alone: classical methods are never tuned on the evaluated events
    assert set(m["methods"]) == {"layerpair_gnn"} and m["tuned_on"] == "no classical methods"
    assert m["events"] == 2 and m["methods"]["layerpair_gnn"]["score"]["mean"] > 0.5
