"""Paired difference of the learned method between two physics summaries of the same events.

    python bench/tracking_paired.py NEW.json OLD.json OUT.json

Per metric and per stage time: mean and standard error over the events both files hold of NEW
minus OLD (a building change evaluated on the same test events as before, say). Prints one line
per quantity and writes OUT.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from common import emit
from particlegraph.tasks.tracking.eval_summary import LEARNED, stats

METRICS = ("score", "efficiency_pt1", "fake_rate_pt1", "duplicate_rate_pt1", "efficiency_pt0.5",
           "perfect_efficiency_pt1")  # fmt: skip
TIMES = ("total_s", "filter_s", "gnn_s", "graph_s", "build_s")


def learned_records(path: str) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    summary = json.loads(Path(path).read_text())
    recs = {r["event_id"]: r for r in summary["records"] if LEARNED in r["metrics"]}
    return summary, recs


def main() -> None:
    new, old, out = sys.argv[1:4]
    a, ra = learned_records(new)
    b, rb = learned_records(old)
    ids = sorted(set(ra) & set(rb))
    diff: dict[str, dict[str, float]] = {}
    for key, get in [(k, lambda r, k=k: r["metrics"][LEARNED][k]) for k in METRICS] + [
        (k, lambda r, k=k: r["times"][k]) for k in TIMES
    ]:
        diff[key] = stats([get(ra[i]) - get(rb[i]) for i in ids])
        print(key, round(diff[key]["mean"], 4), "+-", round(diff[key]["sem"], 4), file=sys.stderr)
    res = {"new": new, "old": old, "event_ids": ids, "new_build": a["build"],
           "old_build": b["build"], "difference_new_minus_old": diff}  # fmt: skip
    emit(res, out)


if __name__ == "__main__":
    main()
