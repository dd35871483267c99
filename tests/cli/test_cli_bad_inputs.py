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
    Case("convert-dst-is-src", "mlpf convert {good} {good}", r"DST is also an input .*; write elsewhere"),
    Case("convert-unwritable", "mlpf convert {good} {unwritable}/x",
         r"permission denied|not permitted|read-only"),
    Case("convert-events-per-file-0", "mlpf convert {good} {out} --events-per-file 0",
         r"--events-per-file must be between 1 and 1,000,000"),
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
    Case("explain-no-run", "mlpf explain --run {out} " + GOOD, r"no such run folder"),
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
    # a sample folder holds one sample: another seed is refused before anything is written
    Case("anomaly-generate-other-seed", "anomaly generate --out {anomaly_generated} --sample zerobias "
         "--events 2 --seed 2 --set pileup=0", r"zerobias: .* another --seed \(1, now 2\)"),
    Case("anomaly-generate-foreign", "anomaly generate --out {foreign} --sample zerobias --events 2",
         r"holds files particlegraph did not make"),
    Case("anomaly-inspect-missing", "anomaly inspect {root}/none", r"none"),
    Case("anomaly-train-missing-data", "anomaly train --data {root}/none --out {out}", r"none"),
    Case("anomaly-evaluate-no-run", "anomaly evaluate --run {out} --background b={good} "
         "--signal s={good} --out {out}-eval", r"{out}"),
    Case("anomaly-explain-no-run", "anomaly explain --run {out} --sample s={good} --out {out}-x",
         r"{out}"),
    # --- tracking ------------------------------------------------------------------------------
    Case("tracking-generate-num-shards-0", "tracking generate --num-shards 0 --out {out}",
         r"--num-shards must be >= 1"),
    Case("tracking-generate-other-seed", "tracking generate --out {tracking_generated} --seed 2",
         r"another --seed \(1, now 2\)"),
    Case("tracking-generate-foreign", "tracking generate --out {foreign}", r"holds files particlegraph did not make"),
    Case("tracking-convert-junk", "tracking convert {file} --out {out}", r"not a readable tracks.pickle"),
    Case("tracking-inspect-missing", "tracking inspect {root}/none", r"none is not a directory"),
    Case("tracking-evaluate-no-run", "tracking evaluate --run {out} --data {good} --out {out}-e",
         r"not a finished tracking run"),
    Case("tracking-explain-no-run", "tracking explain --run {out} --data {good} --out {out}-x",
         r"not a finished tracking run"),
    Case("tracking-demo-events-0", "tracking demo --events 0 --out {out}", r"--events must be between 1"),
    # anomaly demo generates its samples before it writes anything (about 20 s): a slow row
    Case("anomaly-demo-out-is-file", "anomaly demo --out {file}", r"a_file.txt", slow=True),
]  # fmt: skip

# --- option ranges where a value can exhaust the machine (particlegraph.bounds), every task ---
_BETWEEN = r"must be between"
_PAYLOAD_LATE = r"carries the object posix.mkdir, not only weights; refused without loading it"
RANGES = [
    # mlpf
    Case("mlpf-generate-pileup-1e5", "mlpf generate --events 2 --pileup 100000 --out {out}",
         r"--pileup must be between 0 and 1000 \(mean pile-up interactions\), got 100,000"),
    Case("mlpf-generate-pileup-neg", "mlpf generate --events 2 --pileup -1 --out {out}", r"--pileup " + _BETWEEN),
    Case("mlpf-generate-pileup-nan", "mlpf generate --events 2 --pileup nan --out {out}", r"--pileup .*got nan"),
    Case("mlpf-generate-pileup-inf", "mlpf generate --events 2 --pileup inf --out {out}", r"--pileup .*got inf"),
    Case("mlpf-generate-events-2e7", "mlpf generate --events 20000000 --out {out}", r"--events " + _BETWEEN),
    Case("mlpf-generate-events-neg", "mlpf generate --events -5 --out {out}", r"--events " + _BETWEEN),
    Case("mlpf-generate-pool-0", "mlpf generate --events 2 --pileup 10 --pool-size 0 --out {out}",
         r"--pool-size " + _BETWEEN),
    Case("mlpf-generate-pool-1e6", "mlpf generate --events 2 --pileup 10 --pool-size 1000000 --out {out}",
         r"--pool-size " + _BETWEEN),
    Case("mlpf-generate-seed-neg", "mlpf generate --events 2 --seed -1 --out {out}", r"--seed " + _BETWEEN),
    Case("mlpf-train-batch-2e8", "mlpf train --data {good} --run {out} --set data.batch_size=200000000",
         r"data.batch_size must be between 1 and 65,536"),
    Case("mlpf-train-lr-inf", "mlpf train --data {good} --run {out} --set fit.lr=inf",
         r"fit.lr must be a finite number > 0, got inf"),
    Case("mlpf-train-lr-0", "mlpf train --data {good} --run {out} --set fit.lr=0", r"fit.lr must be"),
    Case("mlpf-train-tower-reference", "mlpf train --data {good} --run {out} "
         "--set model.tower_reference=tracks", r"tower_reference must be one of"),
    Case("mlpf-train-class-energy-power-neg", "mlpf train --data {good} --run {out} "
         "--set loss.class_energy_power=-1", r"loss.class_energy_power must be >= 0"),
    Case("mlpf-train-init-from-missing", "mlpf train --data {good} --run {out} "
         "--set init_from={root}/none", r"none/config.yaml does not exist"),
    Case("mlpf-train-epochs-quoted-float", "mlpf train --data {good} --run {out} --set fit.epochs='3.5'",
         r"fit.epochs .*must be an integer"),
    Case("mlpf-train-epochs-0", "mlpf train --data {good} --run {out} --set fit.epochs=0",
         r"fit.epochs must be >= 1"),
    Case("mlpf-calibrate-payload", "mlpf calibrate --run {evil_mlpf} --data {good} --out {out}", _PAYLOAD_LATE),
    Case("mlpf-calibrate-events-0", "mlpf calibrate --run {run} --data {good} --events 0 --out {out}", r"--events"),
    Case("mlpf-calibrate-linked-negative", "mlpf calibrate --run {run} --data {good} --linked-neutrals -1 --out {out}", r"--linked-neutrals must be >= 0"),
    Case("mlpf-calibrate-linked-nan", "mlpf calibrate --run {run} --data {good} --linked-neutrals nan --out {out}", r"--linked-neutrals must be a finite"),
    Case("mlpf-calibrate-linked-mode", "mlpf calibrate --run {run} --data {good} --linked-neutrals 4 --linked-mode all --out {out}", r"--linked-mode must be one of fill, replace|--linked-mode must be one of replace, fill"),
    Case("mlpf-calibrate-pretrained-dotdot", "mlpf calibrate --run pretrained:../x --data {good} --out {out}",
         r"no pretrained mlpf model of that name"),
    Case("mlpf-evaluate-batch-0", "mlpf evaluate --run {run} --data {good} --batch-size 0", r"--batch-size"),
    Case("mlpf-demo-pileup-1e5", "mlpf demo --pileup 100000 --out {out}", r"--pileup " + _BETWEEN),
    # tracking
    Case("tracking-generate-pileup-1e5", "tracking generate --pileup 100000 --out {out}", r"--pileup " + _BETWEEN),
    Case("tracking-generate-pileup-neg", "tracking generate --pileup -1 --out {out}", r"--pileup " + _BETWEEN),
    Case("tracking-generate-pileup-nan", "tracking generate --pileup nan --out {out}", r"--pileup .*got nan"),
    Case("tracking-generate-events-0", "tracking generate --events 0 --out {out}", r"--events " + _BETWEEN),
    Case("tracking-generate-events-2e7", "tracking generate --events 20000000 --out {out}", r"--events " + _BETWEEN),
    Case("tracking-generate-first-id-neg", "tracking generate --first-event-id -5 --out {out}",
         r"--first-event-id " + _BETWEEN),
    Case("tracking-generate-first-id-10-digits", "tracking generate --events 10 --first-event-id 999999995 "
         "--out {out}", r"--first-event-id must be between 0 and 999,999,990 \(ids up to 999,999,999\), got 999,999,995"),
    Case("tracking-generate-pool-0", "tracking generate --pileup 5 --pool-size 0 --out {out}",
         r"--pool-size " + _BETWEEN),
    Case("tracking-generate-pool-1e6", "tracking generate --pileup 5 --pool-size 1000000 --out {out}",
         r"--pool-size " + _BETWEEN),
    Case("tracking-generate-seed-neg", "tracking generate --seed -1 --out {out}", r"--seed " + _BETWEEN),
    Case("tracking-convert-first-id-neg", "tracking convert {file} --first-event-id -5 --out {out}",
         r"--first-event-id " + _BETWEEN),
    Case("tracking-inspect-max-events-neg", "tracking inspect {root} --max-events -1", r"--max-events must be >= 0"),
    Case("tracking-evaluate-max-events-neg", "tracking evaluate --run {out} --data {good} --out {out}-e "
         "--max-events -1", r"--max-events must be >= 0"),
    Case("tracking-evaluate-tune-events-0", "tracking evaluate --run {out} --data {good} --out {out}-e "
         "--tune-events 0", r"--tune-events must be >= 1"),
    Case("tracking-explain-hit-neg", "tracking explain --run {out} --data {good} --out {out}-x --hit -1",
         r"--hit must be >= 0"),
    Case("tracking-explain-event-neg", "tracking explain --run {out} --data {good} --out {out}-x --event -5",
         r"--event must be >= 0"),
    Case("tracking-explain-lrp-eps-neg", "tracking explain --run {out} --data {good} --out {out}-x --lrp-eps -0.1",
         r"--lrp-eps must be >= 0"),
    Case("tracking-demo-pileup-5000", "tracking demo --pileup 5000 --out {out}", r"--pileup " + _BETWEEN),
    Case("tracking-demo-test-events-0", "tracking demo --test-events 0 --out {out}", r"--test-events " + _BETWEEN),
    Case("tracking-train-batch-2e8", "tracking train --data {trackml} --run {out} --config exercise "
         "--set batch_size=200000000", r"batch_size must be between 1 and 65,536"),
    Case("tracking-train-outlier-neg", "tracking train --data {trackml} --run {out} "
         "--config pileup200 --set outlier_mm=-1", r"outlier_mm must be >= 0"),
    Case("tracking-train-follow-min-hits-2", "tracking train --data {trackml} --run {out} "
         "--config pileup200 --set follow_min_hits=2", r"build.follow_min_hits must be >= 3"),
    Case("tracking-train-lr-inf", "tracking train --data {trackml} --run {out} --set fit.lr=inf",
         r"fit.lr must be a finite number > 0"),
    Case("tracking-train-exercise-lr-inf", "tracking train --data {trackml} --run {out} --config exercise "
         "--set stage1.fit.lr=inf", r"fit.lr must be a finite number > 0"),
    # anomaly
    Case("anomaly-generate-events-neg", "anomaly generate --out {out} --events -3", r"--events " + _BETWEEN),
    Case("anomaly-generate-events-2e7", "anomaly generate --out {out} --events 20000000", r"--events " + _BETWEEN),
    Case("anomaly-generate-seed-neg", "anomaly generate --out {out} --seed -1", r"--seed " + _BETWEEN),
    Case("anomaly-generate-shard-2-of-2", "anomaly generate --out {out} --shard 2 --num-shards 2",
         r"--shard must be between 0 and 1"),
    Case("anomaly-generate-pileup-1e5", "anomaly generate --out {out} --set pileup=100000",
         r"pileup must be between 0 and 1000"),
    Case("anomaly-generate-pool-1e7", "anomaly generate --out {out} --set pool_size=10000000",
         r"pool_size must be at most 100,000"),
    Case("anomaly-inspect-max-events-neg", "anomaly inspect {root} --max-events -1", r"--max-events must be >= 0"),
    Case("anomaly-train-epochs-neg", "anomaly train --data {root}/none --out {out} --epochs -1", r"--epochs " + _BETWEEN),
    Case("anomaly-train-max-events-neg", "anomaly train --data {root}/none --out {out} --max-events -5",
         r"--max-events must be >= 0"),
    Case("anomaly-train-first-event-neg", "anomaly train --data {root}/none --out {out} --first-event -1",
         r"--first-event must be >= 0"),
    Case("anomaly-train-seed-neg", "anomaly train --data {root}/none --out {out} --seed -1", r"--seed " + _BETWEEN),
    Case("anomaly-explain-events-0", "anomaly explain --run {out} --sample s={good} --out {out}-x --events 0",
         r"--events " + _BETWEEN),
    Case("anomaly-explain-class-events-neg", "anomaly explain --run {out} --sample s={good} --out {out}-x "
         "--class-events -1", r"--class-events " + _BETWEEN),
    Case("anomaly-demo-events-0", "anomaly demo --out {out} --events 0", r"--events " + _BETWEEN),
    Case("anomaly-demo-epochs-0", "anomaly demo --out {out} --epochs 0", r"--epochs " + _BETWEEN),
    # tabular
    Case("tabular-generate-events-1", "tabular generate --out {out}.data --events 1", r"--events " + _BETWEEN),
    Case("tabular-generate-events-1e8", "tabular generate --out {out}.data --events 100000000", r"--events " + _BETWEEN),
    Case("tabular-generate-seed-neg", "tabular generate --out {out}.data --seed -1", r"--seed " + _BETWEEN),
    Case("tabular-generate-test-fraction", "tabular generate --out {out}.data --test-fraction 1.5",
         r"--test-fraction " + _BETWEEN),
    Case("tabular-train-epochs-0", "tabular train --data {tabular_good} --out {out} --epochs 0", r"--epochs " + _BETWEEN),
    Case("tabular-train-batch-2e8", "tabular train --data {tabular_good} --out {out} --batch-size 200000000",
         r"--batch-size " + _BETWEEN),
    Case("tabular-train-set-batch-2e8", "tabular train --data {tabular_good} --out {out} --set batch_size=200000000",
         r"batch_size must be between 1 and 65,536"),
    Case("tabular-train-lr-inf", "tabular train --data {tabular_good} --out {out} --lr inf",
         r"fit.lr must be a finite number > 0, got inf"),
    Case("tabular-train-lr-0", "tabular train --data {tabular_good} --out {out} --lr 0", r"fit.lr must be"),
    Case("tabular-train-seed-neg", "tabular train --data {tabular_good} --out {out} --seed -1", r"--seed " + _BETWEEN),
    Case("tabular-explain-bins-0", "tabular explain --run {out} --bins 0", r"--bins must be between 2 and 2000"),
    Case("tabular-explain-bins-1e5", "tabular explain --run {out} --bins 100000", r"--bins " + _BETWEEN),
    Case("tabular-demo-events-5", "tabular demo --out {out} --events 5", r"--events " + _BETWEEN),
    Case("tabular-demo-epochs-0", "tabular demo --out {out} --epochs 0", r"--epochs " + _BETWEEN),
]  # fmt: skip
CASES += RANGES

# --- the run contract (issue 17): code never runs on load, nothing is lost, nothing stale ------
_PAYLOAD = r"carries the object posix.mkdir, not only weights; refused without loading it"
_INPUT = r"is also an input|lies inside the input"
_NOT_OURS = r"not by `particlegraph|did not make|was not written by"
CONTRACT = [
    # a checkpoint carrying a pickle payload (os.mkdir of {canary}) is refused and never runs
    Case("mlpf-evaluate-payload", "mlpf evaluate --run {evil_mlpf} --data {good} --no-figures", _PAYLOAD),
    Case("mlpf-explain-payload", "mlpf explain --run {evil_mlpf} --data {good} --out {out} --no-figures", _PAYLOAD),
    Case("mlpf-export-payload", "mlpf export --run {evil_mlpf} --onnx {out}.onnx", _PAYLOAD),
    Case("mlpf-train-resume-payload", "mlpf train --data {good} --run {evil_mlpf} --resume --set fit.epochs=9",
         _PAYLOAD),
    Case("tabular-explain-payload", "tabular explain --run {evil_tabular} --out {out}", _PAYLOAD),
    Case("tabular-explain-last-payload", "tabular explain --run {evil_tabular} --out {out} --checkpoint last",
         _PAYLOAD),
    Case("tabular-train-resume-payload", "tabular train --data {tabular_toy} --run {evil_tabular} --resume "
         "--set fit.epochs=3", _PAYLOAD),
    # pretrained:NAME is a name from the package's list, never a path
    Case("mlpf-evaluate-pretrained-dotdot", "mlpf evaluate --run pretrained:../../../run --data {good}",
         r"no pretrained mlpf model of that name \(a name, never a path\)"),
    Case("mlpf-explain-pretrained-abs", "mlpf explain --run pretrained:{run} --data {good} --out {out}",
         r"no pretrained mlpf model of that name"),
    # mlpf evaluate --out: never into an input, never into what it did not make
    Case("mlpf-evaluate-out-is-data", "mlpf evaluate --run {run} --data {good} --out {good}", _INPUT),
    Case("mlpf-evaluate-out-in-data", "mlpf evaluate --run {run} --data {good} --out {good}/eval", _INPUT),
    Case("mlpf-evaluate-out-checkpoints", "mlpf evaluate --run {run} --data {good} --out {run}/checkpoints",
         _INPUT),
    Case("mlpf-evaluate-out-foreign", "mlpf evaluate --run {run} --data {good} --out {foreign}", _NOT_OURS),
    Case("mlpf-evaluate-out-other-run", "mlpf evaluate --run {run} --data {good} --out {tabular_run}",
         r"was made by `particlegraph tabular train`, not by `particlegraph mlpf evaluate`"),
    Case("mlpf-evaluate-out-is-file", "mlpf evaluate --run {run} --data {good} --out {file}",
         r"is a file, expected a folder"),
    Case("mlpf-evaluate-out-payload", "mlpf evaluate --run {evil_mlpf} --data {good} --out {out} --no-figures",
         _PAYLOAD),
    Case("mlpf-export-pretrained-unknown", "mlpf export --run pretrained:nope --onnx {out}.onnx",
         r"no pretrained mlpf model of that name.*shipped: ttbar_pu50_medium"),
    Case("tabular-explain-pretrained-dotdot", "tabular explain --run pretrained:../tabular_run --out {out}",
         r"no pretrained tabular model of that name.*shipped: none"),
    Case("tabular-explain-pretrained-abs", "tabular explain --run pretrained:{tabular_run} --out {out}",
         r"no pretrained tabular model of that name"),
    # a run of another task, or a folder that is no run
    Case("tabular-explain-mlpf-run", "tabular explain --run {run} --out {out}",
         r"is the output of `particlegraph mlpf train`, not a tabular run"),
    Case("tabular-explain-foreign-run", "tabular explain --run {foreign} --out {out}", r"is not a tabular run"),
    Case("tabular-explain-run-is-file", "tabular explain --run {file} --out {out}", r"no such run folder"),
    Case("tabular-train-resume-mlpf-run", "tabular train --data {tabular_toy} --run {run} --resume",
         r"is the output of `particlegraph mlpf train`, not a tabular run"),
    Case("tabular-train-resume-missing", "tabular train --data {tabular_toy} --run {out} --resume",
         r"no such run folder"),
    Case("tabular-explain-checkpoint-worst", "tabular explain --run {tabular_run} --out {out} --checkpoint worst",
         r"--checkpoint must be 'best' or 'last', got 'worst'"),
    # nothing is lost: outputs never replace inputs or what the command did not make
    Case("tabular-train-into-run", "tabular train --data {tabular_toy} --run {tabular_run} --epochs 2",
         r"already holds a tabular run; use --resume to continue it, --overwrite to replace it"),
    Case("tabular-train-into-foreign", "tabular train --data {tabular_toy} --run {foreign}", _NOT_OURS),
    Case("tabular-train-into-foreign-overwrite", "tabular train --data {tabular_toy} --run {foreign} --overwrite",
         r"never replaced, not even with --overwrite"),
    Case("tabular-train-into-mlpf-run", "tabular train --data {tabular_toy} --run {run}", _NOT_OURS),
    Case("tabular-train-resume-overwrite", "tabular train --data {tabular_toy} --run {tabular_run} --resume "
         "--overwrite", r"--resume and --overwrite exclude each other"),
    Case("tabular-train-run-is-data", "tabular train --data {tabular_toy} --run {tabular_toy}", _INPUT),
    Case("tabular-train-run-is-file", "tabular train --data {tabular_toy} --run {file}", r"is a file, expected a folder"),
    Case("tabular-generate-over-foreign", "tabular generate --out {foreign_file} --events 100",
         r"exists and was not written by `particlegraph tabular generate`.*--overwrite"),
    Case("tabular-generate-over-folder", "tabular generate --out {foreign} --events 100",
         r"is a folder, expected a file"),
    Case("tabular-generate-bad-suffix", "tabular generate --out {out}.csv --events 100", r"unknown suffix '.csv'"),
    Case("tabular-explain-out-is-data", "tabular explain --run {tabular_run} --data {tabular_toy} "
         "--out {tabular_toy}", _INPUT),
    Case("tabular-explain-out-foreign", "tabular explain --run {tabular_run} --out {foreign}", _NOT_OURS),
    Case("tabular-explain-out-is-file", "tabular explain --run {tabular_run} --out {file}", r"is a file, expected a folder"),
    Case("tabular-demo-out-foreign", "tabular demo --out {foreign} --events 100", _NOT_OURS),
    Case("tabular-demo-again", "tabular demo --out {tabular_demo} --events 100",
         r"holds an earlier tabular demo \(pass --overwrite to replace it"),
    # bad data for tabular train / explain: one line, no run folder left behind
    Case("tabular-train-nan", "tabular train --data {tabular_data} --run {out}", r"non-finite"),
    Case("tabular-train-inf", "tabular train --data {tabular_inf} --run {out}", r"non-finite"),
    Case("tabular-train-only-test-rows", "tabular train --data {tabular_only_test} --run {out}",
         r"no train rows \(labels 0/1\)"),
    Case("tabular-train-one-class", "tabular train --data {tabular_one_class} --run {out}",
         r"train rows must hold both signal and background"),
    Case("tabular-train-label-7", "tabular train --data {tabular_label7} --run {out}", r"label '7' is not one of"),
    Case("tabular-train-five-columns", "tabular train --data {tabular_five_cols} --run {out}",
         r"expected 4 whitespace-separated columns"),
    Case("tabular-train-words", "tabular train --data {tabular_words} --run {out}", r"non-numeric value"),
    Case("tabular-train-bad-suffix", "tabular train --data {tabular_bad_suffix} --run {out}", r"unknown suffix"),
    Case("tabular-train-parquet-junk", "tabular train --data {truncated_parquet} --run {out}",
         r"cannot read Parquet file"),
    Case("tabular-explain-no-test-rows", "tabular explain --run {tabular_run} --data {tabular_no_test} --out {out}",
         r"no test rows \(labels 2/3\)"),
    Case("tabular-evaluate-no-run", "tabular evaluate --run {out}", r"{out}"),
    Case("tabular-evaluate-payload", "tabular evaluate --run {evil_tabular} --out {out}", _PAYLOAD),
    Case("tabular-evaluate-pretrained-dotdot", "tabular evaluate --run pretrained:../tabular_run --out {out}",
         r"no pretrained tabular model of that name"),
    Case("tabular-evaluate-mlpf-run", "tabular evaluate --run {run} --out {out}",
         r"is the output of `particlegraph mlpf train`, not a tabular run"),
    Case("tabular-evaluate-checkpoint-worst", "tabular evaluate --run {tabular_run} --out {out} --checkpoint worst",
         r"--checkpoint must be 'best' or 'last', got 'worst'"),
    Case("tabular-evaluate-out-is-data", "tabular evaluate --run {tabular_run} --data {tabular_toy} "
         "--out {tabular_toy}", _INPUT),
    Case("tabular-evaluate-out-foreign", "tabular evaluate --run {tabular_run} --out {foreign}", _NOT_OURS),
    Case("tabular-evaluate-no-test-rows", "tabular evaluate --run {tabular_run} --data {tabular_no_test} --out {out}",
         r"no test rows \(labels 2/3\)"),
    Case("tabular-evaluate-missing-data", "tabular evaluate --run {tabular_run} --data {root}/none.data --out {out}",
         r"none.data does not exist"),
    Case("tabular-explain-missing-data", "tabular explain --run {tabular_run} --data {root}/none.data --out {out}",
         r"none.data does not exist"),
    Case("tabular-train-unknown-key", "tabular train --data {tabular_toy} --run {out} --set fit.epoch=3",
         r"unknown key\(s\) \['epoch'\]"),
    Case("tabular-train-unknown-config", "tabular train --data {tabular_toy} --run {out} --config nope",
         r"neither a file nor a shipped config"),
    Case("tabular-train-features-4", "tabular train --data {tabular_toy} --run {out} --features 1,4",
         r"--features takes observable numbers 1, 2, 3"),
    Case("tabular-train-epochs-quoted-float", "tabular train --data {tabular_toy} --run {out} --set fit.epochs='2.5'",
         r"fit.epochs .*must be an integer"),
]  # fmt: skip
CASES += CONTRACT

# --- cases written while other branches rewrote these commands (tracking, anomaly, mlpf
# train/evaluate); kept apart for that history, never xfail, and all pass since the merge.
PENDING = [
    # regressed when tracking merged: the --run folder is claimed before --data is checked
    Case("tracking-train-missing-data", "tracking train --data {root}/none --run {out}",
         r"none is not a directory"),
    # refused with the right line, but after claiming the folder and taking its lock (mtimes change)
    Case("generate-other-seed", "mlpf generate --process minbias --events 2 --events-per-file 2 "
         "--seed 2 --out {generated}", r"seed \(--seed\) was 1, now 2.*--overwrite"),
    Case("tracking-evaluate-payload", "tracking evaluate --run {evil_tracking} --data {trackml} --out {out}", _PAYLOAD),
    Case("tracking-evaluate-out-is-data", "tracking evaluate --run pretrained:ttbar_pu50 --data {trackml} --out {trackml}",
         _INPUT),
    Case("tracking-evaluate-out-foreign", "tracking evaluate --run pretrained:ttbar_pu50 --data {trackml} --out {foreign}",
         _NOT_OURS),
    Case("tracking-explain-out-is-data", "tracking explain --run pretrained:ttbar_pu50 --data {trackml} --out {trackml}",
         _INPUT),
    Case("tracking-explain-out-foreign", "tracking explain --run pretrained:ttbar_pu50 --data {trackml} --out {foreign}",
         _NOT_OURS),
    Case("tracking-explain-payload", "tracking explain --run {evil_tracking} --data {trackml} --out {out}", _PAYLOAD),
    Case("tracking-train-resume-payload", "tracking train --data {trackml} --run {evil_tracking_resume} --resume", _PAYLOAD),
    Case("anomaly-evaluate-payload", "anomaly evaluate --run {evil_anomaly} --background b={anomaly_sample} "
         "--signal s={anomaly_sample} --out {out}", _PAYLOAD),
    Case("anomaly-explain-out-is-sample", "anomaly explain --run {evil_anomaly} --sample s={anomaly_sample} "
         "--out {anomaly_sample}", _INPUT),
    Case("anomaly-explain-out-foreign", "anomaly explain --run {evil_anomaly} --sample s={anomaly_sample} "
         "--out {foreign}", _NOT_OURS),
    Case("anomaly-explain-payload", "anomaly explain --run {evil_anomaly} --sample s={anomaly_sample} --out {out}", _PAYLOAD),
    Case("anomaly-train-resume-payload", "anomaly train --data {anomaly_sample} --run {evil_anomaly_resume} --resume", _PAYLOAD),
    Case("tracking-evaluate-pretrained-dotdot", "tracking evaluate --run pretrained:../x --data {trackml} --out {out}",
         r"no pretrained tracking model of that name"),
    Case("anomaly-evaluate-pretrained-dotdot", "anomaly evaluate --run pretrained:../x --background b={anomaly_sample} "
         "--signal s={anomaly_sample} --out {out}", r"no pretrained anomaly model of that name"),
    Case("tracking-evaluate-tabular-run", "tracking evaluate --run {tabular_run} --data {trackml} --out {out}",
         r"is the output of `particlegraph tabular train`, not a tracking run"),
    Case("anomaly-evaluate-tabular-run", "anomaly evaluate --run {tabular_run} --background b={anomaly_sample} "
         "--signal s={anomaly_sample} --out {out}", r"is the output of `particlegraph tabular train`, not a anomaly run"),
    Case("tracking-convert-into-sample", "tracking convert {file} --out {trackml}", _NOT_OURS),
    Case("anomaly-evaluate-out-in-sample", "anomaly evaluate --run {evil_anomaly} --background b={anomaly_sample} "
         "--signal s={anomaly_sample} --out {anomaly_sample}/eval", _INPUT),
    Case("tracking-train-into-foreign", "tracking train --data {trackml} --run {foreign_tracking}", _NOT_OURS),
    Case("anomaly-train-into-foreign", "anomaly train --data {anomaly_sample} --run {foreign_anomaly}", _NOT_OURS),
    Case("mlpf-train-into-tabular-run", "mlpf train --data {good} --run {tabular_run}",
         r"output of `particlegraph tabular train`, not a mlpf run"),
    Case("mlpf-calibrate-no-run", "mlpf calibrate --run {out} --data {good}", r"no such run folder"),
    Case("tracking-train-max-edges-2e9", "tracking train --data {trackml} --run {out} --set max_edges=2000000000",
         r"max_edges must be between"),
    Case("anomaly-inspect-plot-is-folder", "anomaly inspect {anomaly_sample} --plot {foreign}", r"is a folder|is a directory"),
    # these replaced their input on this branch (exit 0): they run on copies, not the shared world
    Case("mlpf-export-onto-checkpoint", "mlpf export --run {run_copy} --onnx {run_copy}/checkpoints/best.pt",
         _NOT_OURS + "|" + _INPUT),
    Case("mlpf-inspect-json-onto-shard", "mlpf inspect {good_copy} --json {good_copy}/events_000.parquet",
         _NOT_OURS + "|" + _INPUT),
]  # fmt: skip
CASES += PENDING


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
    assert not world["canary"].exists(), "a pickle payload ran"


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
    assert commands - covered == set()


def test_debug_shows_the_traceback(world):
    result = CliRunner().invoke(app, ["mlpf", "inspect", str(world["class17"]), "--debug"])
    assert result.exit_code != 0 and result.exception is not None
    assert "class id 17" in str(result.exception)


def test_no_validate_reads_unphysical_files(world):
    result = CliRunner().invoke(app, ["mlpf", "inspect", str(world["class17"]), "--no-validate"])
    assert result.exit_code == 0, result.output
