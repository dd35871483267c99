"""The default pipeline (layer-pair graph, interaction network, track building) end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tracking_events import write_events
from typer.testing import CliRunner

from particlegraph.report.run_index import missing_targets, page_targets
from particlegraph.tasks.tracking.cli import app
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.graphs import event_data, sectors
from particlegraph.tasks.tracking.learned import load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.score import trackml_score

TINY = ["train_events=3", "val_events=1", "fit.epochs=2", "model.hidden=8", "model.iterations=2",
        "thresholds=[0.5]", "modes=[cc]", "model.filter_hidden=8"]  # fmt: skip


def _write_events(folder, n_events=5, n_particles=30):
    write_events(folder, n_events, n_particles)


@pytest.mark.slow
def test_train_evaluate_explain_default(tmp_path):
    data = tmp_path / "data"
    _write_events(data)
    runner = CliRunner()
    args = ["train", "--data", str(data), "--run", str(tmp_path / "run")]
    for o in [*TINY, "outlier_mm=5.0"]:
        args += ["--set", o]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    build = info["build"]
    assert info["pipeline"] == "layerpair" and (build["threshold"], build["mode"]) == (0.5, "cc")
    # the config's cleanup reaches the chosen building (the other cuts stay off)
    assert (build["outlier_mm"], build["min_hits"], build["min_edge_score"]) == (5.0, 0, 0.0)
    out = tmp_path / "eval"
    r = runner.invoke(app, ["evaluate", "--run", str(tmp_path / "run"), "--data", str(data),
                            "--out", str(out), "--max-events", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["methods"]["layerpair_gnn"]["kind"] == "learned"
    assert {m["methods"][k]["kind"] for k in ("helix_dbscan", "track_follower")} == {"classical"}
    # the reported score is the score of the pipeline's tracks, recomputed
    run = load_layerpair_run(tmp_path / "run")
    scores = []
    for ev in load_events(data, m["event_ids"]):
        tid = reconstruct_event(run, ev)[0]
        scores.append(trackml_score(ev.particle_id.numpy(), ev.weight.numpy(), tid))
    assert np.mean(scores) == pytest.approx(m["methods"]["layerpair_gnn"]["score"]["mean"])
    assert 0.5 < m["graph"]["graph_edge_efficiency"]["mean"] <= 1.0
    for page in (tmp_path / "run" / "index.html", out / "index.html"):
        assert page.is_file() and missing_targets(page) == []
    assert {"training_curves.png", "module_map.json", "history.json"} <= {
        p.name for p in page_targets(tmp_path / "run" / "index.html")
    }
    r = runner.invoke(app, ["explain", "--run", str(tmp_path / "run"), "--data", str(data),
                            "--out", str(tmp_path / "ex")])  # fmt: skip
    assert r.exit_code == 0, r.output
    ex = json.loads((tmp_path / "ex" / "explain.json").read_text())
    assert ex["method"] == "gradient_x_input" and len(ex["hits"]) == 2


def test_sectors_cover_every_edge(tmp_path):
    data = tmp_path / "data"
    _write_events(data, n_events=2, n_particles=60)
    evs = load_events(data)
    from particlegraph.tasks.tracking.graphs import truth_sample
    from particlegraph.tasks.tracking.module_map import learn_map

    d = event_data(evs[1], learn_map([truth_sample(evs[0])], min_count=1))
    parts = sectors(d, max_edges=max(d.edge_index.shape[1] // 3, 1), overlap=0.05)
    assert len(parts) >= 3
    assert sum(int(p.y.sum()) for p in parts) >= int(d.y.sum())  # overlaps only add

    # every edge is in some sector: compare edges by their hit positions
    def key(g):
        ends = torch.cat([g.x[g.edge_index[0], :4], g.x[g.edge_index[1], :4]], 1)
        return {tuple(v) for v in ends.tolist()}

    assert key(d) <= set().union(*(key(p) for p in parts))


def test_particle_target_labels_every_same_particle_edge(tmp_path):
    from particlegraph.errors import ConfigError
    from particlegraph.tasks.tracking.graphs import truth_sample
    from particlegraph.tasks.tracking.learned import LayerPairRunConfig, target_data
    from particlegraph.tasks.tracking.module_map import learn_map

    data = tmp_path / "data"
    _write_events(data, n_events=2, n_particles=40)
    evs = load_events(data)
    m = learn_map([truth_sample(evs[0])], min_count=1)
    cons = target_data(evs[1], m, "consecutive")
    part = target_data(evs[1], m, "particle")
    assert torch.equal(cons.edge_index, part.edge_index)
    pid = evs[1].particle_id
    i, j = part.edge_index
    for e in range(0, i.numel(), 7):  # a slow reference, edge by edge
        same = int(pid[i[e]]) == int(pid[j[e]]) != 0
        assert bool(part.y[e]) == same
        if cons.y[e] > 0:  # a consecutive pair is a same-particle pair
            assert part.y[e] > 0
    assert part.y.sum() > cons.y.sum()  # skip edges (holes, overlaps) are true too
    assert torch.all((part.edge_pt > 0) == (part.y > 0))
    with pytest.raises(ConfigError, match="edge_target"):
        LayerPairRunConfig(edge_target="neighbours")
