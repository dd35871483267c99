"""Benchmark: the dataset-scale relevance study (all outputs, streaming) on N events.

    .venv/bin/python bench/explain_dataset.py --run RUN --data DATA --events 100 --out DIR
    .venv/bin/python bench/explain_dataset.py --record DIR --time-log LOG   # a run made with
        /usr/bin/time -v particlegraph mlpf explain ... --outputs all --out DIR > LOG 2>&1

Runs ``particlegraph mlpf explain --outputs all`` in a child process (so its peak resident
memory is the child's own) and prints one JSON object: events, elements, wall seconds, CPU
seconds (user + system), events per second (wall and CPU), peak resident memory [MB], the
claims' verdicts, and projections of the wall time (at the measured events/s) and of the CPU
time for other sample sizes (``--project`` events:elements-per-event pairs; the projection
scales the CPU time per element, so it assumes the cost stays linear in the elements, which the
LRP engine is). Written to ``--json`` (default bench/results/explain_dataset_<events>.json).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from particlegraph.atomic import write_json

RESULTS = Path(__file__).resolve().parent / "results"


def _parse_time_log(text: str) -> dict:
    """Wall, CPU and peak memory from GNU time's ``-v`` report."""

    def grab(label: str) -> str:
        m = re.search(rf"{re.escape(label)}: (.+)", text)
        if m is None:
            raise SystemExit(f"'{label}' not found in the time log")
        return m.group(1).strip()

    parts = [float(p) for p in grab("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")]
    wall = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    cpu = float(grab("User time (seconds)")) + float(grab("System time (seconds)"))
    return {"wall_seconds": wall, "cpu_seconds": cpu,
            "peak_rss_mb": int(grab("Maximum resident set size (kbytes)")) / 1024}  # fmt: skip


def _result(out: Path, timing: dict, projections: list[str]) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    events, elements = summary["events"], summary["elements"]
    res = {
        "events": events,
        "elements": elements,
        "outputs": len(summary["outputs"]),
        **timing,
        "events_per_second": events / timing["wall_seconds"],
        "cpu_seconds_per_event": timing["cpu_seconds"] / events,
        "cpu_ms_per_element": 1e3 * timing["cpu_seconds"] / elements,
        "accuracy": summary["accuracy"],
        "claims": {c["claim"]: c["verdict"] for c in summary["claims"]},
        "progress": summary.get("progress"),
        "machine": "dev CPU, 2 cores, shared",
    }
    for item in projections:
        n_events, per_event = (float(v) for v in item.split(":"))
        cpu = res["cpu_ms_per_element"] * 1e-3 * n_events * per_event
        res[f"projected_cpu_hours_{int(n_events)}x{int(per_event)}"] = cpu / 3600
    return res


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--run", type=Path)
    p.add_argument("--data", type=Path)
    p.add_argument("--events", type=int, default=100)
    p.add_argument("--out", type=Path)
    p.add_argument("--flip-every", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--record", type=Path, help="summarise an existing study folder instead")
    p.add_argument("--time-log", type=Path, help="GNU time -v output of that run")
    p.add_argument("--project", action="append", default=[],
                   help="EVENTS:ELEMENTS_PER_EVENT to project the CPU time to")  # fmt: skip
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    if args.record is not None:
        if args.time_log is None:
            raise SystemExit("--record needs --time-log")
        out, timing = args.record, _parse_time_log(args.time_log.read_text())
    else:
        if args.run is None or args.data is None or args.out is None:
            raise SystemExit("give --run, --data and --out (or --record)")
        cmd = [sys.executable, "-m", "particlegraph.cli.main", "mlpf", "explain", "--run",
               str(args.run), "--data", str(args.data), "--events", str(args.events),
               "--outputs", "all", "--device", args.device, "--flip-every",
               str(args.flip_every), "--out", str(args.out)]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = args.out
        timing = {"wall_seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": usage.ru_maxrss / 1024}  # fmt: skip
    res = _result(out, timing, args.project)
    print(json.dumps(res))
    write_json(args.json or RESULTS / f"explain_dataset_{res['events']}.json", res)
    return res


if __name__ == "__main__":
    main()
