"""The one run folder: created after validation, never over another, opened by path or shipped name."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.outputs import OWNER_FILE, claim
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from particlegraph.train.run import (
    CONFIG_NAME,
    check_data,
    create_run,
    is_pretrained,
    open_run,
    pretrained_names,
)

#: A package made by the ``shipped`` fixture (the engine is tested without a task).
PKG = "pg_fake_task"


@dataclass(frozen=True)
class TinyConfig:
    epochs: int = 2  # passes over the data
    lr: float = 1e-3  # learning rate


def _trained(path: Path) -> None:
    save_checkpoint(checkpoint_path(path, "last"), {"model": {"w": torch.zeros(2)}})


def test_create_run_writes_identity_and_config(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "tabular", TinyConfig(), data={"process": "toy", "pileup": 0})
    assert (run.path / CONFIG_NAME).read_text().strip().splitlines() == ["epochs: 2", "lr: 0.001"]
    assert run.identity["command"] == "tabular train"
    assert run.data_settings == {"process": "toy", "pileup": 0}
    assert run.config(TinyConfig, ["epochs=5"]) == TinyConfig(epochs=5)


def test_create_run_refuses_a_trained_run_unless_resume_or_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "r"
    create_run(path, "tabular", TinyConfig())
    _trained(path)
    before = (path / CONFIG_NAME).read_text()
    with pytest.raises(ConfigError, match="already holds a tabular run; use --resume"):
        create_run(path, "tabular", TinyConfig(epochs=9))
    assert (path / CONFIG_NAME).read_text() == before  # refused before anything was written
    create_run(path, "tabular", TinyConfig(epochs=9), resume=True)
    assert "epochs: 9" in (path / CONFIG_NAME).read_text()
    create_run(path, "tabular", TinyConfig(epochs=1), overwrite=True)
    assert not checkpoint_path(path, "last").exists()


def test_create_run_never_replaces_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "mine"
    path.mkdir()
    (path / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(ConfigError, match="did not make; it is never replaced"):
            create_run(path, "mlpf", TinyConfig(), overwrite=overwrite)
    assert (path / "thesis.tex").read_text() == "precious"
    assert not (path / OWNER_FILE).exists()


def test_create_run_refuses_another_tasks_folder_and_a_file(tmp_path: Path) -> None:
    claim(tmp_path / "sample", "anomaly generate", {"process": "jetht"})
    (tmp_path / "sample" / "jetht_00000.parquet").write_bytes(b"events")
    for overwrite in (False, True):  # a dataset is never replaced by a train command
        with pytest.raises(ConfigError, match="output of `particlegraph anomaly generate`"):
            create_run(tmp_path / "sample", "anomaly", TinyConfig(), overwrite=overwrite)
    assert (tmp_path / "sample" / "jetht_00000.parquet").read_bytes() == b"events"
    claim(tmp_path / "other_run", "tabular train")
    with pytest.raises(ConfigError, match=r"not a anomaly run \(choose another --run, or pass"):
        create_run(tmp_path / "other_run", "anomaly", TinyConfig())
    create_run(tmp_path / "other_run", "anomaly", TinyConfig(), overwrite=True)  # a run: replaced
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        create_run(tmp_path / "f", "anomaly", TinyConfig())
    with pytest.raises(ConfigError, match="exclude each other"):
        create_run(tmp_path / "new", "anomaly", TinyConfig(), resume=True, overwrite=True)
    with pytest.raises(DataFileError, match="no such run folder"):
        create_run(tmp_path / "new", "anomaly", TinyConfig(), resume=True)


def test_resume_refuses_other_data(tmp_path: Path) -> None:
    path = tmp_path / "r"
    create_run(path, "mlpf", TinyConfig(), data={"pileup": 50, "separate_ecal": True})
    _trained(path)
    with pytest.raises(ConfigError, match="separate_ecal"):
        create_run(
            path, "mlpf", TinyConfig(), data={"pileup": 50, "separate_ecal": False}, resume=True
        )


def test_open_run_checks_the_task(tmp_path: Path) -> None:
    create_run(tmp_path / "r", "tracking", TinyConfig())
    assert open_run(tmp_path / "r", "tracking", PKG).task == "tracking"
    with pytest.raises(DataFileError, match="not a mlpf run"):
        open_run(tmp_path / "r", "mlpf", PKG)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFileError, match=r"no config\.yaml"):
        open_run(tmp_path / "empty", "mlpf", PKG)


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package ``pg_fake_task`` on sys.path shipping one trained run, ``toy_run``, plus folders
    that are no shipped names (a hidden one, one with a space) and a stray file."""
    pkg = tmp_path / "site" / PKG
    (pkg / "pretrained").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    create_run(pkg / "pretrained" / "toy_run", "tabular", TinyConfig())
    _trained(pkg / "pretrained" / "toy_run")
    (pkg / "pretrained" / ".hidden").mkdir()
    (pkg / "pretrained" / "two words").mkdir()
    (pkg / "pretrained" / "notes.txt").write_text("")
    create_run(tmp_path / "site" / "outside", "tabular", TinyConfig())  # a real run, not shipped
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, PKG, raising=False)  # each test imports its own copy
    return pkg


def test_pretrained_names_lists_only_the_shipped_run_folders(shipped: Path) -> None:
    assert pretrained_names(PKG) == ["toy_run"]
    assert pretrained_names("json") == []  # a package that ships none
    assert is_pretrained("pretrained:x") and not is_pretrained("runs/x")


@pytest.mark.parametrize(
    "name", ["../outside", "/etc", "x/../toy_run", "", "nope", ".hidden", "two words", "notes.txt"]
)
def test_pretrained_names_are_names_from_the_package(shipped: Path, name: str) -> None:
    with pytest.raises(ConfigError, match=r"never a path\); shipped: toy_run$"):
        open_run(f"pretrained:{name}", "tabular", PKG)


def test_pretrained_run_opens_and_writes_elsewhere(shipped: Path) -> None:
    run = open_run("pretrained:toy_run", "tabular", PKG)
    assert run.path == shipped / "pretrained" / "toy_run" and run.pretrained == "toy_run"
    assert run.output_dir == Path("runs") / "pretrained_toy_run"  # never the package folder
    assert load_checkpoint(run.checkpoint("best"))["model"]["w"].shape == (2,)  # best -> last
    with pytest.raises(DataFileError, match="not a mlpf run"):  # a shipped run of another task
        open_run("pretrained:toy_run", "mlpf", PKG)


def test_check_data_names_the_setting_and_ignores_unrecorded(tmp_path: Path) -> None:
    run = create_run(tmp_path / "r", "mlpf", TinyConfig(), data={"pileup": 50, "seed": 1})
    check_data(run, {"pileup": 50, "seed": 2}, ignore=("seed",))
    check_data(run, {"process": "qcd"})  # not recorded with the run: not compared
    with pytest.raises(ConfigError, match=r"pileup \(200\) differs"):
        check_data(run, {"pileup": 200})


class _Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.canary}",))


def test_a_checkpoint_with_a_pickle_payload_is_refused_and_never_runs(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "best.pt"
    torch.save({"model": {}, "extra": _Payload(canary)}, path)
    with pytest.raises(DataFileError, match=r"carries the object (posix|nt)\.system"):
        load_checkpoint(path)
    assert not canary.exists()


def test_resume_reads_the_checkpoint_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "r"
    create_run(path, "anomaly", TinyConfig())
    canary = tmp_path / "canary"
    checkpoint_path(path, "last").parent.mkdir()
    torch.save({"model": {}, "x": _Payload(canary)}, checkpoint_path(path, "last"))
    before = (path / CONFIG_NAME).read_text()
    with pytest.raises(DataFileError, match="carries the object"):
        create_run(path, "anomaly", TinyConfig(epochs=7), resume=True)
    assert (path / CONFIG_NAME).read_text() == before and not canary.exists()


def test_a_folder_of_particlegraph_outputs_takes_a_run_beside_them(tmp_path: Path) -> None:
    # the MLPF demo: RUN/data/{train,test} made by `mlpf generate`, then the run in RUN
    path = tmp_path / "demo"
    for part in ("train", "test"):
        claim(path / "data" / part, "mlpf generate", {"process": "ttbar"})
    create_run(path, "mlpf", TinyConfig(), overwrite=True)
    assert (path / "data" / "train" / OWNER_FILE).is_file()  # kept, never removed
    (path / "data" / "notes.txt").write_text("mine")  # a foreign file inside: refused again
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "data").mkdir()
    (legacy / "data" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="did not make"):
        create_run(legacy, "mlpf", TinyConfig())


def test_a_legacy_run_without_checkpoints_is_reused(tmp_path: Path) -> None:
    path = tmp_path / "old"
    path.mkdir()
    (path / CONFIG_NAME).write_text("epochs: 2\n")  # made before particlegraph.json existed
    create_run(path, "mlpf", TinyConfig(epochs=3))
    _trained(path)
    (path / OWNER_FILE).unlink()
    with pytest.raises(ConfigError, match="already holds a mlpf run"):
        create_run(path, "mlpf", TinyConfig())
