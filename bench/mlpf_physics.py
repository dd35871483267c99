"""MLPF vs the rule-based baseline on unseen events: generate, train, evaluate, summarise.

    python bench/mlpf_physics.py --train-events 2500 --test-events 500 --pileup 50 \
        --config small --workers 2 --train-timeout 3600 --work runs/physics [--set fit.epochs=20] [--out FILE]

Generation runs ``--workers`` shard processes side by side (``--shard i --num-shards n``). Training runs
under a wall-clock cap: checkpoints are written atomically after every epoch, so a capped run still
leaves its best model, which is then evaluated. Prints one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import emit, machine

CLI = [sys.executable, "-m", "particlegraph.cli.main", "mlpf"]
HEADLINE_CLASSES = ("charged_hadron", "neutral_hadron", "photon")


def generate(
    out: Path, events: int, pileup: float, seed: int, workers: int, per_file: int
) -> float:
    """Generate with ``workers`` shard processes; return events per second."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                *CLI,
                "generate",
                "--process",
                "ttbar",
                "--events",
                str(events),
                "--pileup",
                str(pileup),
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--shard",
                str(i),
                "--num-shards",
                str(workers),
                "--events-per-file",
                str(per_file),
            ],
            stdout=subprocess.DEVNULL,
        )
        for i in range(workers)
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit(f"generation into {out} failed")
    return events / (time.perf_counter() - t0)


def headline(metrics: dict) -> dict:
    """The numbers the MLPF issue asks for, for both algorithms."""
    out = {}
    for algo in ("mlpf", "baseline"):
        m = metrics[algo]
        out[algo] = {
            **{f"efficiency_{c}": m["efficiency"][c] for c in HEADLINE_CLASSES},
            **{f"fake_rate_{c}": m["fake_rate"][c] for c in HEADLINE_CLASSES},
            "jet_pt_resolution": m["jet_pt_resolution"],
            "jet_pt_response": m.get("jet_pt_response"),
            "met_resolution": m["met_resolution"],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-events", type=int, default=2500)
    ap.add_argument("--test-events", type=int, default=500)
    ap.add_argument("--pileup", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--config", default="small")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--events-per-file", type=int, default=50)
    ap.add_argument("--train-timeout", type=float, default=3600.0, help="seconds")
    ap.add_argument("--work", default="runs/physics")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out")
    args = ap.parse_args()

    work = Path(args.work)
    train_dir, test_dir, run = work / "train", work / "test", work / "run"
    gen_train = generate(
        train_dir, args.train_events, args.pileup, args.seed, args.workers, args.events_per_file
    )
    gen_test = generate(
        test_dir,
        args.test_events,
        args.pileup,
        args.seed + 7919,
        args.workers,
        args.events_per_file,
    )

    from particlegraph.train.loop import History

    train_cmd = [*CLI, "train", "--data", str(train_dir), "--config", str(args.config),
                 "--run", str(run)] + [a for o in args.overrides for a in ("--set", o)]  # fmt: skip
    t0 = time.perf_counter()
    try:
        subprocess.run(train_cmd, check=True, timeout=args.train_timeout)
        capped = False
    except subprocess.TimeoutExpired:
        capped = True  # the best checkpoint of the finished epochs is evaluated below
    train_seconds = time.perf_counter() - t0
    history = History.load(run)
    subprocess.run([*CLI, "evaluate", "--run", str(run), "--data", str(test_dir)], check=True)
    metrics = json.loads((run / "metrics.json").read_text())

    emit(
        {
            "train_events": args.train_events,
            "test_events": args.test_events,
            "pileup": args.pileup,
            "config": args.config,
            "overrides": args.overrides,
            "generation_events_per_s": {
                "train": gen_train,
                "test": gen_test,
                "workers": args.workers,
            },
            "train_seconds": train_seconds,
            "train_capped_by_timeout": capped,
            "epochs_done": len(history.records),
            "best_epoch": history.best_epoch,
            "headline": headline(metrics),
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
