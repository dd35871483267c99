"""The tracking pages: RUN/index.html from a run's files, OUT/index.html from metrics.json."""

from __future__ import annotations

import json

import yaml

from particlegraph.report.run_index import missing_targets, page_targets
from particlegraph.tasks.tracking.report import pm, write_evaluation_page, write_run_page


def _history(path, losses):
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [{"epoch": i + 1, "train_loss": a, "val_loss": b} for i, (a, b) in enumerate(losses)]
    path.write_text(json.dumps({"records": records, "best_epoch": 2}))


def test_run_page_links_config_histories_and_the_chosen_build(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"fit": {"epochs": 2}, "thresholds": [0.5]}))
    scan = [
        {"threshold": t, "mode": "cc", "score": s} for t, s in ((0.3, 0.4), (0.5, 0.7), (0.7, 0.55))
    ]
    info = {"pipeline": "layerpair", "train_events": [1, 2, 3], "val_events": [4],
            "build": {"threshold": 0.5, "mode": "cc"}, "build_scan": scan, "gnn_best_epoch": 2}  # fmt: skip
    (run / "run.json").write_text(json.dumps(info))
    (run / "model.pt").write_bytes(b"")
    _history(run / "gnn" / "history.json", [(1.0, 0.9), (0.5, 0.6)])
    _history(run / "filter" / "history.json", [(2.0, 1.9)])
    page = write_run_page(run)
    assert page == run / "index.html" and missing_targets(page) == []
    linked = {p.relative_to(run).as_posix() for p in page_targets(page)}
    assert {"training_curves.png", "config.yaml", "run.json", "model.pt", "gnn/history.json",
            "filter/history.json"} <= linked  # fmt: skip
    assert "module_map.json" not in linked  # listed, but this run has none
    text = page.read_text()
    # the chosen setting's validation score is the best of the scan (0.7, not the last 0.55)
    assert "<td>validation TrackML score of that choice</td><td>0.7</td>" in text
    assert "<td>training events</td><td>3</td>" in text and "fit.epochs" in text


def test_evaluation_page_numbers_carry_their_standard_errors(tmp_path):
    out = tmp_path / "eval"
    (out / "events").mkdir(parents=True)
    run = tmp_path / "run"
    run.mkdir()
    (run / "index.html").write_text("<html></html>")
    methods = {
        # the exercise's summary: std over 5 events without Bessel -> error 0.1 / sqrt(4) = 0.05
        "gnn": {"score": {"mean": 0.8, "std": 0.1}, "fake_rate_pt1": {"mean": 0.25, "std": 0.02}},
        # the default pipeline's: the standard error is stored
        "layerpair_gnn": {"kind": "learned", "score": {"mean": 0.5, "std": 0.3, "sem": 0.02}},
    }
    summary = {"events": 5, "run": str(run), "data": "test", "methods": methods,
               "graph": {"edge_efficiency": {"mean": 0.99, "std": 0.0}}}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(summary))
    page = write_evaluation_page(out, summary)
    assert missing_targets(page) == []
    linked = {p.resolve() for p in page_targets(page)}
    assert {out / "metrics.json", out / "events", run / "index.html"} <= linked
    text = page.read_text()
    assert "<td>gnn</td><td>0.8000 \u00b1 0.0500</td>" in text
    assert "<td>0.2500 \u00b1 0.0100</td>" in text  # 0.02 / sqrt(4)
    assert "<td>layerpair_gnn</td><td>0.5000 \u00b1 0.0200</td>" in text
    # one event: no spread, the mean alone; a missing number: a dash
    assert pm({"mean": 0.5, "std": 0.0}, 1) == "0.5000" and pm(None, 3) == "\u2013"
