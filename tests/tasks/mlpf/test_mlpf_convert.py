"""convert / inspect: library functions and the CLI (exit status 2, nothing written on error)."""

from __future__ import annotations

import bz2
import json
import pickle
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from particlegraph.cli.main import app
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import delphes_pkl as delphes
from particlegraph.tasks.mlpf import store
from particlegraph.tasks.mlpf.convert import convert
from particlegraph.tasks.mlpf.inspect import inspect_dataset
from particlegraph.tasks.mlpf.schema import validation

runner = CliRunner()


@pytest.fixture(autouse=True)
def _random_arrays() -> Iterator[None]:
    """make_events draws random numbers, not physical events: these storage tests skip the
    physics checks (they are tested in tests/tasks/mlpf/test_mlpf_validation.py)."""
    with validation(False):
        yield


def make_events(seed: int, sizes: tuple[int, ...]) -> list[MLPFEvent]:
    """Events with valid class columns so inspect has something to count."""
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        X = rng.normal(size=(n, 12)).astype(np.float32)
        X[:, 0] = rng.integers(1, 3, size=n)
        ys = []
        for _ in range(2):
            y = rng.normal(size=(n, 7)).astype(np.float32)
            y[:, 0] = rng.integers(0, 6, size=n)
            y[:, 2] = rng.uniform(0.5, 50, size=n)
            ys.append(y)
        out.append(MLPFEvent(X, *ys))
    return out


def same(a: list[MLPFEvent], b: list[MLPFEvent]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x, y)
        for ea, eb in zip(a, b, strict=True)
        for x, y in zip(ea, eb, strict=True)
    )


def test_pkl_parquet_pkl_round_trip_is_exact(tmp_path: Path) -> None:
    src = tmp_path / "pkl"
    ev_a, ev_b = make_events(0, (5, 3, 0)), make_events(1, (4,))
    delphes.write_pkl(src / "a.pkl.bz2", ev_a)
    delphes.write_pkl(src / "b.pkl.bz2", ev_b)
    written = convert(src, tmp_path / "pq")
    assert [p.name for p in written] == ["a.parquet", "b.parquet"]
    assert store.read_metadata(written[0])["converted_from"] == [str(src / "a.pkl.bz2")]
    back = convert(tmp_path / "pq", tmp_path / "pkl2", fmt="pkl")
    assert [p.name for p in back] == ["a.pkl.bz2", "b.pkl.bz2"]
    assert same(delphes.read_pkl(back[0]), ev_a) and same(delphes.read_pkl(back[1]), ev_b)


def test_resharding_and_single_file_output(tmp_path: Path) -> None:
    events = make_events(2, (2, 2, 2, 2, 2))
    store.write_events(tmp_path / "in" / "x.parquet", events, {"seed": 9})
    parts = convert(tmp_path / "in", tmp_path / "out", fmt="pkl", events_per_file=2)
    assert [p.name for p in parts] == ["x_000.pkl.bz2", "x_001.pkl.bz2", "x_002.pkl.bz2"]
    assert same([e for p in parts for e in delphes.read_pkl(p)], events)
    single = convert(tmp_path / "out", tmp_path / "all.parquet")
    assert single == [tmp_path / "all.parquet"]
    assert same(store.read_events(single[0]), events)
    # parquet -> parquet keeps the source metadata
    again = convert(tmp_path / "in" / "x.parquet", tmp_path / "again")
    assert store.read_metadata(again[0])["source_metadata"] == {"seed": 9}


def test_existing_outputs_are_not_replaced_without_overwrite(tmp_path: Path) -> None:
    delphes.write_pkl(tmp_path / "a.pkl.bz2", make_events(3, (2,)))
    convert(tmp_path / "a.pkl.bz2", tmp_path / "out")
    with pytest.raises(DataFileError, match="already exists"):
        convert(tmp_path / "a.pkl.bz2", tmp_path / "out")
    convert(tmp_path / "a.pkl.bz2", tmp_path / "out", overwrite=True)
    with pytest.raises(ConfigError, match="contradicts"):
        convert(tmp_path / "a.pkl.bz2", tmp_path / "x.parquet", fmt="pkl")


def write_bad_inputs(folder: Path) -> dict[str, Path]:
    good = folder / "good.pkl.bz2"
    delphes.write_pkl(good, make_events(4, (3,)))
    truncated = folder / "truncated.pkl.bz2"
    truncated.write_bytes(good.read_bytes()[:40])
    ev = make_events(5, (3,))[0]
    wrong_keys = folder / "keys.pkl.bz2"
    wrong_keys.write_bytes(bz2.compress(pickle.dumps({"X": [ev.X], "y": [ev.ygen]})))
    wrong_cols = folder / "cols.pkl.bz2"
    data = {"X": [ev.X[:, :9]], "ygen": [ev.ygen], "ycand": [ev.ycand]}
    wrong_cols.write_bytes(bz2.compress(pickle.dumps(data)))
    not_root = folder / "fake.root"
    not_root.write_bytes(b"not a root file at all" * 10)
    empty = folder / "empty_dir"
    empty.mkdir()
    return {
        "missing": folder / "missing.pkl.bz2", "truncated": truncated, "keys": wrong_keys,
        "cols": wrong_cols, "root": not_root, "empty": empty,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"missing\.pkl\.bz2: no such file"),
        ("truncated", r"truncated\.pkl\.bz2: not a complete bz2 file"),
        ("keys", r"keys\.pkl\.bz2: missing key\(s\) ygen, ycand \(found: X, y\)"),
        ("cols", r"cols\.pkl\.bz2 \(event 0\): column X has shape \(3, 9\)"),
        ("root", r"fake\.root: not a readable ROOT file"),
        ("empty", r"empty_dir: no .* event files found"),
    ],
)
def test_cli_bad_input_exit_2_one_line_nothing_written(
    tmp_path: Path, case: str, message: str
) -> None:
    inputs = write_bad_inputs(tmp_path / "in")
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, ["mlpf", "convert", str(inputs[case]), str(out)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no staging left


def test_cli_convert_directory_with_one_bad_file_writes_nothing(tmp_path: Path) -> None:
    inputs = write_bad_inputs(tmp_path / "in")
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(tmp_path / "in" / "good.pkl.bz2", folder / "a.pkl.bz2")
    shutil.copy(inputs["truncated"], folder / "b.pkl.bz2")
    result = runner.invoke(app, ["mlpf", "convert", str(folder), str(tmp_path / "out")])
    assert result.exit_code == 2 and "b.pkl.bz2" in result.stderr
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_inspect_counts_and_plots(tmp_path: Path) -> None:
    events = make_events(6, (10, 20, 30))
    store.write_events(tmp_path / "data" / "a.parquet", events[:2], {})
    delphes.write_pkl(tmp_path / "data" / "b.pkl.bz2", events[2:])
    summary = inspect_dataset(tmp_path / "data", plots_dir=tmp_path / "plots")
    assert summary["events"] == 3 and summary["files"] == 2
    assert summary["elements_per_event"] == {"mean": 20.0, "min": 10, "max": 30}
    n_trk = sum(int((e.X[:, 0] == 2).sum()) for e in events)
    assert summary["track_fraction"] == pytest.approx(n_trk / 60)
    ygen_cls = np.concatenate([e.ygen[:, 0] for e in events])
    assert summary["ygen_class_fractions"]["photon"] == pytest.approx(np.mean(ygen_cls == 3))
    conf = np.array(summary["confusion_ygen_ycand"])
    assert conf.sum() == 60 and conf.sum(axis=1)[3] == (ygen_cls == 3).sum()
    names = sorted(Path(p).name for p in summary["plots"])
    assert names == ["confusion.png", "eta.png", "multiplicity.png", "pt.png"]
    for p in summary["plots"]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(summary)  # serialisable
    assert inspect_dataset(tmp_path / "data", max_events=2)["events"] == 2


def test_cli_inspect_prints_summary(tmp_path: Path) -> None:
    store.write_events(tmp_path / "a.parquet", make_events(7, (4, 6)), {})
    result = runner.invoke(
        app, ["mlpf", "inspect", str(tmp_path), "--json", str(tmp_path / "s.json")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "events: 2" in result.stdout
        and "elements per event: mean 5.0, min 4, max 6" in result.stdout
    )
    assert json.loads((tmp_path / "s.json").read_text())["events"] == 2
    bad = runner.invoke(app, ["mlpf", "inspect", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")
