"""mlpf inspect --json never replaces a shard; mlpf convert never mixes two datasets in a folder.

Each refusal exits 2 with one ``error:`` line and leaves every file as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlpf_events import make_events, write_dataset
from mlpf_refusals import refused
from typer.testing import CliRunner

from particlegraph.cli.main import app
from particlegraph.outputs import claim, owner
from particlegraph.tasks.mlpf import store
from particlegraph.tasks.mlpf.convert import COMMAND as CONVERT
from particlegraph.tasks.mlpf.inspect import COMMAND as INSPECT
from particlegraph.tasks.mlpf.inspect import is_own_summary


def test_inspect_json_never_replaces_a_shard(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", n_files=2, events_per_file=2, seed=1)
    shard = sorted(data.glob("*.parquet"))[0]
    for extra in ((), ("--overwrite",)):  # a shard is an input: never replaced
        refused(["mlpf", "inspect", str(data), "--json", str(shard), *extra], tmp_path, "input")
        refused(["mlpf", "inspect", str(shard), "--json", str(shard), *extra], tmp_path, "input")
    other = tmp_path / "elsewhere.parquet"  # not an input, but not inspect's either
    other.write_bytes(shard.read_bytes())
    refused(["mlpf", "inspect", str(data), "--json", str(other)], tmp_path, "not written by")
    notes = tmp_path / "plots"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    refused(["mlpf", "inspect", str(data), "--plots", str(notes)], tmp_path, "did not make")


def test_inspect_json_beside_the_shards_and_its_own_rerun(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", n_files=2, events_per_file=2, seed=1)
    summary = data / "summary.json"  # inside the dataset folder, but no shard: allowed
    args = ["mlpf", "inspect", str(data), "--json", str(summary)]
    assert CliRunner().invoke(app, args).exit_code == 0
    written = json.loads(summary.read_text())
    assert written["command"] == INSPECT and written["events"] == 4
    assert is_own_summary(summary)
    assert CliRunner().invoke(app, [*args, "--max-events", "3"]).exit_code == 0  # its own file
    assert json.loads(summary.read_text())["events"] == 3
    assert len(store.list_event_files(data)) == 2  # the dataset still reads as 2 shards


def test_convert_never_writes_into_its_input(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", n_files=2, events_per_file=2, seed=1)
    for extra in ((), ("--overwrite",)):
        refused(["mlpf", "convert", str(data), str(data), "--format", "pkl", *extra],
                tmp_path, "input")  # fmt: skip
        refused(["mlpf", "convert", str(data), str(data / "all.parquet"), *extra],
                tmp_path, "input")  # fmt: skip


def test_convert_refuses_a_folder_holding_another_dataset(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", n_files=1, events_per_file=2, seed=1)
    b = write_dataset(tmp_path / "b", n_files=1, events_per_file=3, seed=2)
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["mlpf", "convert", str(a), str(out)]).exit_code == 0
    assert owner(out)["command"] == CONVERT  # type: ignore[index]
    refused(["mlpf", "convert", str(b), str(out)], tmp_path, "another SRC")
    refused(["mlpf", "convert", str(a), str(out), "--format", "pkl"], tmp_path, "another --format")
    generated = tmp_path / "generated"
    generated.mkdir()
    claim(generated, "mlpf generate", {"process": "ttbar"})
    store.write_events(generated / "ttbar_pu0_00000.parquet", make_events(2, seed=3), {})
    refused(["mlpf", "convert", str(a), str(generated)], tmp_path, "mlpf generate")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    refused(["mlpf", "convert", str(a), str(foreign)], tmp_path, "did not make")


def test_convert_overwrite_replaces_the_old_dataset_as_a_whole(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", n_files=2, events_per_file=2, seed=1)
    b = write_dataset(tmp_path / "b", n_files=1, events_per_file=3, seed=2)
    out = tmp_path / "out"
    assert CliRunner().invoke(app, ["mlpf", "convert", str(a), str(out)]).exit_code == 0
    (out / "notes.txt").write_text("mine")
    res = CliRunner().invoke(app, ["mlpf", "convert", str(b), str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    # only b's events are left (a's shards removed), other files are kept
    assert [p.name for p in store.list_event_files(out)] == [p.name for p in sorted(b.iterdir())
                                                             if p.suffix == ".parquet"]  # fmt: skip
    assert sum(len(store.read_events(p)) for p in store.list_event_files(out)) == 3
    assert (out / "notes.txt").read_text() == "mine"
    assert owner(out)["settings"]["source"] == str(b.resolve())  # type: ignore[index]


def test_demo_checks_its_configuration_before_generating(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = ["mlpf", "demo", "--out", str(out), "--train-events", "5", "--test-events", "1",
            "--pileup", "0", "--set", "model.bogus=1"]  # fmt: skip
    refused(args, tmp_path, "unknown key(s) ['bogus']")
    assert not out.exists()  # no event was generated


def test_convert_overwrite_into_another_commands_folder_keeps_its_mark(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", n_files=1, events_per_file=2, seed=1)
    run = tmp_path / "run"
    claim(run, "mlpf train", {})
    (run / "config.yaml").write_text("model: {}\n")
    refused(["mlpf", "convert", str(a), str(run)], tmp_path, "mlpf train")
    res = CliRunner().invoke(app, ["mlpf", "convert", str(a), str(run), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert owner(run)["command"] == "mlpf train"  # type: ignore[index]
    assert (run / "config.yaml").read_text() == "model: {}\n"
    assert len(store.list_event_files(run)) == 1
