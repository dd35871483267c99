"""The tabular task on the engine's run contract: what it accepts (its own outputs) and refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.outputs import owner
from particlegraph.tasks.tabular import explain, generate, train
from particlegraph.tasks.tabular.data import is_generated_toy, read_metadata, read_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("contract")
    data = generate.generate(root / "toy.data", events=600, seed=4)
    train.train(data, root / "run", epochs=2, seed=0)
    return data, root / "run"


def test_generate_replaces_its_own_file_only(tmp_path: Path) -> None:
    for suffix in (".data", ".parquet"):
        path = generate.generate(tmp_path / f"t{suffix}", events=50, seed=1)
        assert is_generated_toy(path) and read_metadata(path)["seed"] == 1
        generate.generate(path, events=60, seed=2)  # its own file: replaced
        assert read_metadata(path)["seed"] == 2 and len(read_table(path).x) == 60
    foreign = tmp_path / "mine.data"
    foreign.write_text("0.1 0.2 0.3 1\n")
    with pytest.raises(ConfigError, match="was not written by `particlegraph tabular generate`"):
        generate.generate(foreign, events=50)
    assert foreign.read_text() == "0.1 0.2 0.3 1\n"
    generate.generate(foreign, events=50, overwrite=True)
    assert is_generated_toy(foreign)


def test_the_metadata_line_is_skipped_by_numpy(tmp_path: Path) -> None:
    path = generate.generate(tmp_path / "t.data", events=40, seed=3)
    table = np.loadtxt(path)
    np.testing.assert_allclose(table[:, :3], read_table(path).x, rtol=1e-6)


def test_a_run_records_its_command_and_data(trained: tuple[Path, Path]) -> None:
    _, run = trained
    mark = owner(run)
    assert mark is not None and mark["command"] == "tabular train"
    assert mark["settings"]["data"] == {"observables": ["obs1", "obs2", "obs3"]}


def test_train_refuses_then_overwrites(trained: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = trained
    run = tmp_path / "r"
    train.train(data, run, epochs=1, seed=0)
    before = (run / "config.yaml").read_bytes()
    with pytest.raises(ConfigError, match="already holds a tabular run"):
        train.train(data, run, epochs=2, seed=1)
    assert (run / "config.yaml").read_bytes() == before  # refused before anything was written
    s = train.train(data, run, epochs=2, seed=1, overwrite=True)
    assert s["epochs"] == 2 and b"seed: 1" in (run / "config.yaml").read_bytes()


def test_explain_last_checkpoint_and_rerun_into_its_own_out(trained: tuple[Path, Path]) -> None:
    data, run = trained
    out = run.parent / "expl"
    kw = {"data": data, "out": out, "bins": 4, "heatmap_epochs": 1}
    first = explain.explain(run, checkpoint="last", **kw)
    again = explain.explain(run, checkpoint="best", **kw)  # its own folder: accepted
    assert owner(out)["command"] == "tabular explain"  # type: ignore[index]
    assert first["auc"]["obs1"] == pytest.approx(again["auc"]["obs1"])  # the observables' AUC
    assert json.loads((out / "summary.json").read_text())["heatmaps"]["bins"] == 4


def test_resume_of_a_missing_run_is_one_line(trained: tuple[Path, Path], tmp_path: Path) -> None:
    from particlegraph.errors import DataFileError

    with pytest.raises(DataFileError, match="no such run folder"):
        train.train(trained[0], tmp_path / "none", resume=True)
    assert not (tmp_path / "none").exists()
