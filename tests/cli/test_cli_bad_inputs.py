"""Every CLI command through a table of bad inputs: exit 2, one ``error:`` line, nothing on disk.

One row per (command, bad input). A new command (the tracking and anomaly tasks) joins the
table with one row per case: ``Case(name, argv, match)`` where ``argv`` is built from the paths
of :func:`cli_inputs.make_world` (``{good}``, ``{run}``, ``{nan}``, ``{file}``, ``{out}`` ...:
``{out}`` is a fresh path under the world folder that must still not exist afterwards).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from cli_inputs import TEST_LIMITS, make_world

from particlegraph.cli.main import app


@dataclass(frozen=True)
class Case:
    """One bad invocation: ``argv`` with ``{name}`` placeholders, and a regex the line matches."""

    name: str
    argv: str
    match: str
    slow: bool = False  # marked @pytest.mark.slow (the command does seconds of work first)


GOOD = "--data {good}"
CASES = [
    # --- mlpf generate -----------------------------------------------------------------------
    Case("generate-other-seed", "mlpf generate --process minbias --events 2 --events-per-file 2 "
         "--seed 2 --out {generated}", r"seed \(--seed\) was 1, now 2.*--overwrite"),
    Case("generate-num-shards-0", "mlpf generate --events 2 --num-shards 0 --out {out}",
         r"--num-shards must be >= 1"),
    Case("generate-events-per-file-0", "mlpf generate --events 2 --events-per-file 0 --out {out}",
         r"--events-per-file must be positive"),
    Case("generate-out-is-file", "mlpf generate --events 2 --out {file}", r"is a file, expected a folder"),
    Case("generate-unwritable", "mlpf generate --events 2 --out {unwritable}/data",
         r"permission denied|not permitted|read-only"),
    # --- mlpf inspect --------------------------------------------------------------------------
    Case("inspect-nan", "mlpf inspect {nan}", r"event 1\): X row 3 column pt is nan.*--no-validate"),
    Case("inspect-inf", "mlpf inspect {inf}", r"event 1\): ygen row 2 column pt is inf"),
    Case("inspect-negative-energy", "mlpf inspect {negative_energy}", r"ygen row 2 energy is negative"),
    Case("inspect-class-17", "mlpf inspect {class17}", r"ygen row 0 has class id 17; expected 0..5"),
    Case("inspect-class-minus-2", "mlpf inspect {class_minus2}", r"ycand row 1 has class id -2"),
    Case("inspect-type-9", "mlpf inspect {type9}", r"X row 0 has element type 9; expected 1 or 2"),
    Case("inspect-not-unit", "mlpf inspect {not_unit}", r"sin_phi/cos_phi is not a unit vector"),
    Case("inspect-json-dir", "mlpf inspect {good} --json {good}", r"is a directory, expected a file"),
    Case("inspect-max-events-neg", "mlpf inspect {good} --max-events -1", r"--max-events must be >= 1"),
    Case("inspect-bz2-bomb", "mlpf inspect {bomb}", r"bomb.pkl.bz2: expands to more than 2 MB"),
    Case("inspect-nested-pickle", "mlpf inspect {nested}", r"shared references expand to more than 524,288 values"),
    Case("inspect-strings", "mlpf inspect {strings}", r"column X holds <U1 values, expected numbers"),
    Case("inspect-many-rows", "mlpf inspect {many_rows}", r"declares 60 rows, more than the limit of 50"),
    Case("inspect-truncated-parquet", "mlpf inspect {truncated_parquet}", r"not a readable Parquet file"),
    Case("inspect-truncated-bz2", "mlpf inspect {truncated_bz2}", r"not a complete bz2 file"),
    Case("inspect-missing", "mlpf inspect {root}/nothing", r"no such file"),
    Case("inspect-plots-is-file", "mlpf inspect {good} --plots {file}", r"is a file, expected a folder"),
    # --- mlpf convert --------------------------------------------------------------------------
    Case("convert-truncated-root", "mlpf convert {truncated_root} {out}", r"truncated or damaged"),
    Case("convert-junk-root", "mlpf convert {junk_root} {out}", r"not a readable ROOT file"),
    Case("convert-class-17", "mlpf convert {class17} {out}", r"class id 17"),
    Case("convert-dst-exists", "mlpf convert {good} {good}", r"already exists \(use --overwrite"),
    Case("convert-unwritable", "mlpf convert {good} {unwritable}/x",
         r"permission denied|not permitted|read-only"),
    Case("convert-events-per-file-0", "mlpf convert {good} {out} --events-per-file 0",
         r"--events-per-file must be between 1 and 1e\+06"),
    # --- mlpf train ----------------------------------------------------------------------------
    Case("train-class-17", "mlpf train --data {class17} --run {out} --val-fraction 0", r"class id 17"),
    Case("train-nan", "mlpf train --data {nan} --run {out} --val-fraction 0", r"is nan"),
    Case("train-resume-without-checkpoint", "mlpf train " + GOOD + " --run {run_nockpt} --resume",
         r"no checkpoint to resume"),
    Case("train-resume-corrupt-checkpoint", "mlpf train " + GOOD + " --run {run_corrupt} --resume "
         "--set fit.epochs=9", r"last.pt cannot be read"),
    Case("train-run-is-file", "mlpf train " + GOOD + " --run {file}", r"is a file, expected a folder"),
    Case("train-val-fraction", "mlpf train " + GOOD + " --run {out} --val-fraction 1.5",
         r"--val-fraction must be between 0 and 0.99"),
    Case("train-missing-data", "mlpf train --data {root}/none --run {out}", r"none: no such file"),
    # --- mlpf evaluate -------------------------------------------------------------------------
    Case("evaluate-nan", "mlpf evaluate --run {run} --data {nan} --no-figures", r"is nan"),
    Case("evaluate-negative-energy", "mlpf evaluate --run {run} --data {negative_energy}",
         r"energy is negative"),
    Case("evaluate-events-0", "mlpf evaluate --run {run} " + GOOD + " --events 0", r"--events must be >= 1"),
    Case("evaluate-no-run", "mlpf evaluate --run {out} " + GOOD, r"{out}"),
    # --- mlpf explain --------------------------------------------------------------------------
    Case("explain-neighbours-0", "mlpf explain --run {run} " + GOOD + " --neighbours 0",
         r"--neighbours must be between 1 and 1000"),
    Case("explain-out-is-file", "mlpf explain --run {run} " + GOOD + " --out {file}",
         r"is a file, expected a folder"),
    Case("explain-class-17", "mlpf explain --run {run} --data {class17} --out {out} --no-figures",
         r"class id 17"),
    Case("explain-no-run", "mlpf explain --run {out} " + GOOD, r"no such run directory"),
    # --- mlpf export ---------------------------------------------------------------------------
    Case("export-elements-0", "mlpf export --run {run} --onnx {out}.onnx --elements 0",
         r"--elements must be between 1"),
    Case("export-onnx-dir", "mlpf export --run {run} --onnx {good}", r"is a directory, expected a file"),
    Case("export-unwritable", "mlpf export --run {run} --onnx {unwritable}/m.onnx",
         r"permission denied|not permitted|read-only"),
    # --- mlpf demo -----------------------------------------------------------------------------
    Case("demo-train-events-0", "mlpf demo --train-events 0 --out {out}", r"--train-events must be >= 5"),
    Case("demo-out-is-file", "mlpf demo --out {file}", r"is a file, expected a folder"),
    # --- tabular -------------------------------------------------------------------------------
    Case("tabular-train-missing-data", "tabular train --data {root}/none.data --out {out}", r"none.data"),
    Case("tabular-explain-no-run", "tabular explain --run {out}", r"{out}"),
    Case("tabular-demo-out-is-file", "tabular demo --out {file} --events 100", r"a_file.txt"),
    # --- anomaly -------------------------------------------------------------------------------
    Case("anomaly-generate-num-shards-0", "anomaly generate --out {out} --num-shards 0", r"shard"),
    Case("anomaly-inspect-missing", "anomaly inspect {root}/none", r"none"),
    Case("anomaly-train-missing-data", "anomaly train --data {root}/none --out {out}", r"none"),
    Case("anomaly-evaluate-no-run", "anomaly evaluate --run {out} --background b={good} "
         "--signal s={good} --out {out}-eval", r"{out}"),
    Case("anomaly-explain-no-run", "anomaly explain --run {out} --sample s={good} --out {out}-x",
         r"{out}"),
    # --- tracking ------------------------------------------------------------------------------
    Case("tracking-generate-num-shards-0", "tracking generate --num-shards 0 --out {out}",
         r"--num-shards >= 1"),
    Case("tracking-convert-junk", "tracking convert {file} --out {out}", r"not a readable tracks.pickle"),
    Case("tracking-inspect-missing", "tracking inspect {root}/none", r"none is not a directory"),
    Case("tracking-train-missing-data", "tracking train --data {root}/none --run {out}",
         r"none is not a directory"),
    Case("tracking-evaluate-no-run", "tracking evaluate --run {out} --data {good} --out {out}-e",
         r"not a finished tracking run"),
    Case("tracking-explain-no-run", "tracking explain --run {out} --data {good} --out {out}-x",
         r"not a finished tracking run"),
    Case("tracking-demo-events-0", "tracking demo --events 0 --out {out}", r"--events must be >= 1"),
    # anomaly demo generates its samples before it writes anything (about 20 s): a slow row
    Case("anomaly-demo-out-is-file", "anomaly demo --out {file}", r"a_file.txt", slow=True),
]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_world(tmp_path_factory.mktemp("world"))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` (hidden temporary files included) with size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if p.is_file() else 0, st.st_mtime_ns)
    return out


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in CASES]
)
def test_bad_input_gives_one_error_line_and_exit_2(world, case, monkeypatch):
    for key, value in TEST_LIMITS.items():
        monkeypatch.setenv(key, value)
    paths = {k: str(v) for k, v in world.items()} | {"out": str(world["root"] / f"out-{case.name}")}
    argv = [part.format(**paths) for part in case.argv.split()]
    before = snapshot(world["root"])
    result = CliRunner().invoke(app, argv)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    import re

    assert re.search(case.match.format(**paths), lines[0]), lines[0]
    assert snapshot(world["root"]) == before, "the failed command changed the disk"


def test_every_command_has_a_row():
    """A command without a bad-input row fails here, so new tasks' commands join the table."""
    import typer.main

    click_app = typer.main.get_command(app)
    commands = {
        f"{group} {name}"
        for group, sub in click_app.commands.items()  # type: ignore[attr-defined]
        for name in sub.commands
    }
    covered = {" ".join(c.argv.split()[:2]) for c in CASES}
    exempt = {"tabular generate"}  # takes no input file; its options are all plain numbers
    assert commands - covered - exempt == set()


def test_debug_shows_the_traceback(world):
    result = CliRunner().invoke(app, ["mlpf", "inspect", str(world["class17"]), "--debug"])
    assert result.exit_code != 0 and result.exception is not None
    assert "class id 17" in str(result.exception)


def test_no_validate_reads_unphysical_files(world):
    result = CliRunner().invoke(app, ["mlpf", "inspect", str(world["class17"]), "--no-validate"])
    assert result.exit_code == 0, result.output
