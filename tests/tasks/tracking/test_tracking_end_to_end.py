"""The tracking commands end to end on a few particle-gun events (no Pythia), and their errors."""

from __future__ import annotations

import json

import pytest
from tracking_events import write_events
from typer.testing import CliRunner

from particlegraph.report.run_index import missing_targets, page_targets
from particlegraph.tasks.tracking.cli import app
from particlegraph.tasks.tracking.score import trackml_score
from particlegraph.tasks.tracking.trackml import read_event, read_submission

TINY = [
    "model.embed_hidden=16", "model.embed_layers=1", "model.gnn_hidden=8", "model.edge_hidden=8",
    "model.gnn_layers=2", "stage1.fit.epochs=1", "stage2.fit.epochs=1", "stage1.fit.device=cpu",
    "stage2.fit.device=cpu", "val_events=1", "batch_size=2", "eps_grid=[0.1]", "min_samples_grid=[1]",
]  # fmt: skip


def _write_events(folder, n_events=4, n_particles=25):
    write_events(folder, n_events, n_particles)


@pytest.mark.slow
def test_train_evaluate_explain(tmp_path, assert_png):
    data = tmp_path / "data"
    _write_events(data)
    runner = CliRunner()
    r = runner.invoke(app, ["inspect", str(data)])
    assert r.exit_code == 0 and "4 events" in r.output
    args = [
        "train",
        "--data",
        str(data),
        "--run",
        str(tmp_path / "run"),
        "--config",
        "exercise_demo",
    ]
    for o in TINY:
        args += ["--set", o]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["dbscan"] == {"eps": 0.1, "min_samples": 1}
    out = tmp_path / "eval"
    r = runner.invoke(
        app,
        [
            "evaluate",
            "--run",
            str(tmp_path / "run"),
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-events",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["methods"]) == {"raw_dbscan", "unrolled_dbscan", "stage1_dbscan", "gnn"}
    # the run's page and the evaluation's, every link and image on them present
    for page in (tmp_path / "run" / "index.html", out / "index.html"):
        assert page.is_file() and missing_targets(page) == []
    linked = {p.name for p in page_targets(out / "index.html")}
    assert {"metrics.json", "event_display.png", "efficiency.png", "index.html"} <= linked
    for fig in ("event_display.png", "embedding.png", "efficiency.png"):
        assert_png(out / "figures" / fig)
    # the written TrackML files give back the reported score
    ev = read_event(out / "events", 1000)
    assert ev.truth is not None
    for name in ("gnn", "unrolled_dbscan"):
        suffix = "" if name == "gnn" else f"-{name}"
        tid = read_submission(
            out / "events" / f"event000001000-submission{suffix}.csv", ev.hits["hit_id"]
        )
        s = trackml_score(ev.truth["particle_id"], ev.truth["weight"].astype(float), tid)
        assert s == pytest.approx(m["methods"][name]["score"]["mean"], abs=1e-5)
    r = runner.invoke(
        app,
        [
            "explain",
            "--run",
            str(tmp_path / "run"),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "ex"),
        ],
    )
    assert r.exit_code == 0, r.output
    ex = json.loads((tmp_path / "ex" / "explain.json").read_text())
    assert ex["lrp"]["conservation_error"] < 1e-3
    assert_png(tmp_path / "ex" / "explain_display.png")


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["inspect", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "error:" in r.output and "not a directory" in r.output
    (tmp_path / "event000001000-hits.csv").write_text("hit_id,x\n1,2\n")
    r = runner.invoke(app, ["inspect", str(tmp_path)])
    assert r.exit_code == 2 and "column 'y' missing" in r.output
    r = runner.invoke(
        app,
        ["evaluate", "--run", str(tmp_path), "--data", str(tmp_path), "--out", str(tmp_path / "o")],
    )
    assert r.exit_code == 2 and "not a finished tracking run" in r.output
    r = runner.invoke(
        app, ["train", "--data", str(tmp_path), "--run", str(tmp_path / "r"), "--config", "nope"]
    )
    assert r.exit_code == 2 and "shipped config" in r.output
    r = runner.invoke(app, ["convert", str(tmp_path / "x.pickle"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "tracks.pickle" in r.output
