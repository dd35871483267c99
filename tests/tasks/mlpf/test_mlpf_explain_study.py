"""The dataset-scale relevance study: shards + merge == one run, resume == uninterrupted, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mlpf_events import write_dataset
from typer.testing import CliRunner

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.explain.aggregate import RelevanceStudy
from particlegraph.tasks.mlpf import explain_study
from particlegraph.tasks.mlpf.explain_study import STUDY_OUTPUTS, merge, parse_outputs, study
from particlegraph.tasks.mlpf.findings import findings_section
from particlegraph.tasks.mlpf.model import MLPF

#: Outputs of the tests: the two of the quoted claims and one regression.
OUTS = "class:electron,class:neutral_hadron,energy"
TINY = {"hidden": 8, "num_blocks": 1, "k": 4, "propagate_dim": 4, "space_dim": 2}


@pytest.fixture(scope="module")
def run_and_data(tmp_path_factory) -> tuple[Path, Path]:
    """A run directory with a tiny random MLPF and 2 files x 3 synthetic events."""
    from particlegraph.config import dump_config
    from particlegraph.tasks.mlpf.train import CONFIG_NAME, run_config_from_dict
    from particlegraph.train.checkpoint import checkpoint_path, save_checkpoint

    tmp = tmp_path_factory.mktemp("study")
    data = write_dataset(tmp / "data", n_files=2, events_per_file=3, seed=4)
    cfg = run_config_from_dict({"model": TINY})
    torch.manual_seed(0)
    run = tmp / "run"
    dump_config(cfg, run / CONFIG_NAME)
    save_checkpoint(checkpoint_path(run, "last"), {"model": MLPF(cfg.model).state_dict()})
    return run, data


def _arrays(folder: Path, name: str) -> dict[str, np.ndarray]:
    return RelevanceStudy.load(folder / name).arrays


def test_parse_outputs() -> None:
    assert parse_outputs("all") == STUDY_OUTPUTS and len(STUDY_OUTPUTS) == 12
    assert parse_outputs("pt, class:photon,pt") == ("pt", "class:photon")
    with pytest.raises(ConfigError, match="unknown output"):
        parse_outputs("mass")


def test_shards_merge_equal_one_run_and_resume(run_and_data, tmp_path: Path) -> None:
    run, data = run_and_data
    whole = study(run, data, events=5, outputs=OUTS, out_dir=tmp_path / "one", device="cpu",
                  save_every=2, flip_every=2, check_targets=8)  # fmt: skip
    assert whole["events"] == 5 and whole["progress"]["events_this_call"] == 5
    ref = _arrays(tmp_path / "one", "state_shard0of1.npz")
    assert ref["flip_count"].sum() == 3 * 2 * 3  # events 0, 2, 4 of the shard, both units
    # the finished study joins the run's report: claims and findings table, study page linked
    page = (run / "index.html").read_text()
    assert "Relevance findings" in page and whole["claims"][0]["claim"].split()[0] in page
    for i in range(2):
        study(run, data, events=5, outputs=OUTS, out_dir=tmp_path / "sh", shard=i, num_shards=2,
              device="cpu", flip_every=0)  # fmt: skip
    merged = merge(tmp_path / "sh")
    assert merged["events"] == 5 and merged["elements"] == whole["elements"]
    acc = RelevanceStudy.load(tmp_path / "sh" / "state_shard0of2.npz").merge(
        RelevanceStudy.load(tmp_path / "sh" / "state_shard1of2.npz")
    )
    for key, arr in ref.items():
        if not key.startswith("flip"):
            assert np.array_equal(acc.arrays[key], arr), key
    assert merged["findings"] == whole["findings"] and merged["claims"] == whole["claims"]
    # an interrupted run (stopped after its first save) resumes to the same state
    part = study(run, data, events=5, outputs=OUTS, out_dir=tmp_path / "res", device="cpu",
                 save_every=2, flip_every=2, check_targets=8, max_seconds=0.0)  # fmt: skip
    assert part["progress"]["events_done"] == 1
    again = study(run, data, events=5, outputs=OUTS, out_dir=tmp_path / "res", device="cpu",
                  save_every=2, flip_every=2, check_targets=8)  # fmt: skip
    assert again["progress"]["events_this_call"] == 4
    for key, arr in _arrays(tmp_path / "res", "state_shard0of1.npz").items():
        assert np.array_equal(arr, ref[key]), key
    out = tmp_path / "one"
    assert (out / "findings.html").read_text().count("<tr>") > 2
    assert (out / "study_neutral_hadron.npz").stat().st_size > 0
    on_disk = json.loads((out / "summary.json").read_text())
    assert {c["verdict"] for c in on_disk["claims"]} <= {
        "confirmed",
        "not confirmed",
        "undetermined",
    }
    section = findings_section(out)
    assert section is not None and section.rows and len(section.rows[0]) == 6


def test_bad_settings_are_refused(run_and_data, tmp_path: Path) -> None:
    run, data = run_and_data
    with pytest.raises(ConfigError, match="shard"):
        study(run, data, events=2, shard=2, num_shards=2, out_dir=tmp_path)
    study(run, data, events=1, outputs="pt", out_dir=tmp_path, device="cpu")
    with pytest.raises(ConfigError, match="other settings"):
        study(run, data, events=1, outputs="eta", out_dir=tmp_path, device="cpu")
    with pytest.raises(DataFileError, match="no study states"):
        merge(tmp_path / "empty")
    with pytest.raises(ConfigError, match="rule"):
        study(run, data, events=1, rule="lrp0", out_dir=tmp_path / "r")


def test_cli_study_and_merge(run_and_data, tmp_path: Path) -> None:
    from particlegraph.cli.main import app

    run, data = run_and_data
    runner = CliRunner()
    base = ["mlpf", "explain", "--run", str(run), "--data", str(data), "--events", "3",
            "--out", str(tmp_path), "--device", "cpu", "--num-shards", "2"]  # fmt: skip
    for i in range(2):
        res = runner.invoke(app, [*base, "--outputs", "class:photon,energy", "--shard", str(i)])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*base, "--merge"])
    assert res.exit_code == 0, res.output
    assert "study of 3 events" in res.output and "eta_outer" in res.output
    res = runner.invoke(app, [*base, "--outputs", "mass"])
    assert res.exit_code == 2 and "error:" in res.output
    assert explain_study.state_path(tmp_path, 1, 2).exists()
