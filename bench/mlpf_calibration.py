"""Does the energy calibration (and a re-chosen operating point) help? Decided on validation events.

    python bench/mlpf_calibration.py --run pretrained:ttbar_pu50_medium \
        --data runs/fresh/val_ttbar_pu50 [--check-data runs/fresh/val2_ttbar_pu50] \
        [--reselect-operating-point] --out-dir runs/fresh/calib \
        --out bench/results/mlpf_calibration_validation.json

``--out-dir`` becomes a complete run folder (config, weights, operating point, calibration.json)
that ``bench/mlpf_physics.py --run OUT_DIR`` evaluates on the test sets:

1. with ``--reselect-operating-point`` the class offsets are chosen again on ``--data`` (the
   procedure of ``mlpf train``: most efficiency at fake rates no worse than the baseline's);
2. the calibration (:mod:`particlegraph.tasks.mlpf.calibration`) is learned on ``--data`` at
   that operating point;
3. the original run and the new folder are evaluated on ``--check-data`` (other validation
   events; without it the second half of the ``--data`` files, the fit then using the first
   half only), every target with its bootstrap error and the paired MLPF - baseline difference.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import emit, machine
from mlpf_physics import evaluate_on, headline, target_rows
from particlegraph.tasks.mlpf.calibrate import calibrate_run
from particlegraph.tasks.mlpf.operating_point import load_operating_point, select_operating_point
from particlegraph.tasks.mlpf.store import resolve_files
from particlegraph.tasks.mlpf.train import load_model, resolve_run_dir


def copy_run(source: Path, dest: Path) -> Path:
    """Copy the run folder ``source`` (config, operating point, best weights) into ``dest``."""
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "checkpoints").mkdir(parents=True)
    for f in ("config.yaml", "operating_point.json"):
        if (source / f).is_file():
            shutil.copy(source / f, dest / f)
    best = source / "checkpoints" / "best.pt"
    shutil.copy(
        best if best.is_file() else source / "checkpoints" / "last.pt", dest / "checkpoints"
    )
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True, help="run directory or pretrained:NAME")
    ap.add_argument("--data", required=True, help="validation events to fit on")
    ap.add_argument("--check-data", help="other validation events to decide on")
    ap.add_argument("--reselect-operating-point", action="store_true")
    ap.add_argument("--out-dir", required=True, help="the new run folder")
    ap.add_argument("--out")
    args = ap.parse_args()
    source = resolve_run_dir(args.run)
    files = resolve_files(Path(args.data))
    if args.check_data:
        fit_files, check_files = files, resolve_files(Path(args.check_data))
    elif len(files) >= 2:
        fit_files, check_files = files[: len(files) // 2], files[len(files) // 2 :]
    else:
        raise SystemExit("need --check-data or at least two --data files to split")
    new = copy_run(source, Path(args.out_dir))
    work = new.parent / f"{new.name}_check"
    results = {}

    def check(name: str, run: Path) -> None:
        m = evaluate_on(run, check_files, work / name, None, False, True)
        results[name] = {"targets": target_rows(m), "headline": headline(m), "events": m["events"],
                         "operating_point": m["operating_point"],
                         "calibration": m["calibration"]}  # fmt: skip

    check("original", source)
    if args.reselect_operating_point:
        select_operating_point(load_model(new)[0], fit_files, new, max_events=None)
        check("operating point", new)
    calibrate_run(new, fit_files, max_events=None, device="cpu", progress=False, out_dir=new)
    check("operating point + calibration" if args.reselect_operating_point else "calibration", new)
    op = load_operating_point(new)
    emit(
        {
            "run": args.run,
            "new_run": str(new),
            "reselected_operating_point": args.reselect_operating_point,
            "operating_point": None if op is None else list(op.class_offsets),
            "offset_max_pt_gev": None if op is None else op.offset_max_pt_gev,
            "fit_files": [str(f) for f in fit_files],
            "check_files": [str(f) for f in check_files],
            "results": results,
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
