"""Does the energy calibration help? Decided on validation events only.

    python bench/mlpf_calibration.py --run pretrained:ttbar_pu50_medium \
        --data runs/fresh/val_ttbar_pu50 --out-dir runs/fresh/calib \
        --out bench/results/mlpf_calibration_validation.json

The validation files are split in two halves: the calibration is learned on the first
(:func:`particlegraph.tasks.mlpf.calibrate.calibrate_run`), and the run is evaluated on the
second with and without it (the targets of ``bench/mlpf_physics.py``, each with its bootstrap
error and the paired MLPF - baseline difference). The calibration learned on *all* validation
files is written to ``--out-dir/calibration.json`` for the test sets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import emit, machine
from mlpf_physics import evaluate_on, headline, target_rows
from particlegraph.tasks.mlpf.calibrate import calibrate_run
from particlegraph.tasks.mlpf.store import resolve_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--run", required=True, help="run directory or pretrained:NAME")
    ap.add_argument("--data", required=True, help="validation dataset (never the test events)")
    ap.add_argument("--out-dir", required=True, help="where calibration.json (all files) goes")
    ap.add_argument("--work", default=None, help="scratch folder (default: OUT_DIR/work)")
    ap.add_argument("--out")
    args = ap.parse_args()
    files = resolve_files(Path(args.data))
    if len(files) < 2:
        raise SystemExit("need at least two validation files to split")
    half = len(files) // 2
    fit_files, check_files = files[:half], files[half:]
    work = Path(args.work or Path(args.out_dir) / "work")
    work.mkdir(parents=True, exist_ok=True)
    cal_half, _ = calibrate_run(args.run, fit_files, max_events=None, device="cpu",
                                progress=False, out_dir=work / "half")  # fmt: skip
    results = {}
    for name, cal in (("uncalibrated", None), ("calibrated", work / "half")):
        m = evaluate_on(args.run, check_files, work / f"eval_{name}", None, False, True, cal)
        results[name] = {"targets": target_rows(m), "headline": headline(m),
                         "events": m["events"]}  # fmt: skip
    cal_all, path = calibrate_run(args.run, files, max_events=None, device="cpu",
                                  progress=False, out_dir=args.out_dir)  # fmt: skip
    emit(
        {
            "run": args.run,
            "fit_files": [str(f) for f in fit_files],
            "check_files": [str(f) for f in check_files],
            "calibration_half": {"events": cal_half.events, "points": cal_half.points},
            "calibration_all": {
                "events": cal_all.events,
                "points": cal_all.points,
                "file": str(path),
            },
            "results": results,
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
