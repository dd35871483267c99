"""The tracking commands check everything before they write: bounds, runs, checkpoints."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from particlegraph.errors import ConfigError
from particlegraph.outputs import claim
from particlegraph.tasks.tracking.cli import app
from particlegraph.tasks.tracking.learned import MAX_EDGES_PER_STEP, LayerPairRunConfig


def _data(folder):
    """A folder the event listing accepts (the commands refuse before reading an event)."""
    folder.mkdir()
    (folder / "event000001000-hits.csv").write_text("hit_id,x,y,z,volume_id,layer_id,module_id\n")
    return folder


def _tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.mark.parametrize("key", ["max_edges", "filter_max_edges"])
def test_edges_per_step_are_bounded_on_both_sides(key):
    LayerPairRunConfig(**{key: MAX_EDGES_PER_STEP})  # the bound itself is allowed
    LayerPairRunConfig(**{key: 100})
    for bad in (MAX_EDGES_PER_STEP + 1, 99):
        with pytest.raises(ConfigError, match=f"{key} must be between 100 and 50,000,000"):
            LayerPairRunConfig(**{key: bad})


def test_resume_without_a_checkpoint_is_refused_unwritten(tmp_path):
    data = _data(tmp_path / "data")
    run = tmp_path / "run"
    claim(run, "tracking train")  # a run whose training stopped before its first checkpoint
    (run / "config.yaml").write_text("pipeline: layerpair\n")
    before = _tree(tmp_path)
    r = CliRunner().invoke(app, ["train", "--data", str(data), "--run", str(run), "--resume"])
    assert r.exit_code == 2 and "no checkpoint to resume" in r.output, r.output
    assert _tree(tmp_path) == before


def test_evaluate_refuses_another_tasks_run_before_claiming_out(tmp_path):
    data = _data(tmp_path / "data")
    run = tmp_path / "mlpf_run"
    claim(run, "mlpf train")
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app, ["evaluate", "--run", str(run), "--data", str(data), "--out", str(out)]
    )
    assert r.exit_code == 2 and "is the output of `particlegraph mlpf train`" in r.output, r.output
    assert not out.exists()
