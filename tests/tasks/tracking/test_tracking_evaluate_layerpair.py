"""The default pipeline's evaluation: statistics by hand, resuming, method subsets, merging."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from tracking_events import write_events

import particlegraph.tasks.tracking.evaluate_layerpair as ev_mod
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.tasks.tracking.dataset import load_events
from particlegraph.tasks.tracking.demo import PRETRAINED
from particlegraph.tasks.tracking.edge_model import EdgeClassifier, EdgeModelConfig
from particlegraph.tasks.tracking.eval_summary import LEARNED, merge_summaries, stats
from particlegraph.tasks.tracking.evaluate_layerpair import evaluate_layerpair_run
from particlegraph.tasks.tracking.learned import _init_from, load_layerpair_run, reconstruct_event
from particlegraph.tasks.tracking.score import trackml_score

RUN = f"pretrained:{PRETRAINED}"


def test_stats_by_hand():
    s = stats([1.0, 2.0, 3.0, float("nan")])
    assert s["n"] == 3 and s["mean"] == pytest.approx(2.0)
    assert s["std"] == pytest.approx(math.sqrt(2 / 3))
    assert s["sem"] == pytest.approx(1.0 / math.sqrt(3))  # sample std 1, over sqrt(3)
    assert math.isnan(stats([])["mean"]) and math.isnan(stats([5.0])["sem"])


def test_init_from_refuses_a_missing_or_foreign_run(tmp_path):
    model = EdgeClassifier(EdgeModelConfig(hidden=8, iterations=1))
    with pytest.raises(DataFileError, match="not a finished tracking run"):
        _init_from(model, tmp_path)
    from particlegraph.train.checkpoint import save_checkpoint

    other = EdgeClassifier(EdgeModelConfig(hidden=4, iterations=1))
    save_checkpoint(tmp_path / "model.pt", {"model": other.state_dict()})
    with pytest.raises(DataFileError, match="no interaction network of this shape"):
        _init_from(model, tmp_path)


def test_init_from_a_shipped_model_copies_its_interaction_network():
    from particlegraph.train.checkpoint import load_checkpoint
    from particlegraph.train.run import open_run

    model = EdgeClassifier(EdgeModelConfig(hidden=32, iterations=6, filter_hidden=64))
    _init_from(model, "pretrained:ttbar_pu50")
    path = open_run("pretrained:ttbar_pu50", "tracking", "particlegraph.tasks.tracking").path
    shipped = load_checkpoint(path / "model.pt")["model"]
    own = model.state_dict()
    gnn = [k for k in shipped if k.startswith("gnn.")]
    assert gnn and all(torch.equal(own[k], shipped[k].to(own[k].dtype)) for k in gnn)


# --- resume, method subsets and merging on tiny events with the shipped run -------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Three evaluated events and one tuning event (30 pions each)."""
    root = tmp_path_factory.mktemp("tiny")
    write_events(root / "data", 3, 30)
    write_events(root / "tune", 1, 30)
    return root / "data", root / "tune"


def _evaluate(tiny: tuple[Path, Path], **kw: Any) -> dict[str, Any]:
    data, tune = tiny
    return evaluate_layerpair_run(RUN, data, tune_data=tune, tune_events=1, show_progress=False,
                                  **kw)  # fmt: skip


def _untimed(s: dict[str, Any]) -> str:
    """The summary without anything measured in seconds, as canonical JSON (NaN == NaN)."""
    s = json.loads(json.dumps(s))
    s.pop("times")
    for m in s["methods"].values():
        m.pop("time_s")
    for r in s["records"]:
        r.pop("times")
    return json.dumps(s, sort_keys=True)


def test_resume_reuses_finished_events_and_equals_an_uninterrupted_run(tiny, tmp_path, monkeypatch):
    methods = [LEARNED, "track_follower"]
    full = _evaluate(tiny, methods=methods)
    calls: list[tuple[int, str]] = []
    real = ev_mod._run_method

    def interrupted(run, ev, name, tuner, rec):
        if (rec["event_id"], name) == (full["event_ids"][2], "track_follower"):
            raise KeyboardInterrupt  # killed by a timeout in the third event's second method
        calls.append((rec["event_id"], name))
        real(run, ev, name, tuner, rec)

    partial = tmp_path / "partial.json"
    monkeypatch.setattr(ev_mod, "_run_method", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _evaluate(tiny, methods=methods, partial=partial)
    saved = json.loads(partial.read_text())
    assert saved["complete"] is False and saved["event_ids"] == full["event_ids"]
    assert saved["methods"]["track_follower"]["events"] == 2
    assert saved["methods"][LEARNED]["events"] == 3
    calls.clear()

    def counted(run, ev, name, tuner, rec):
        calls.append((rec["event_id"], name))
        real(run, ev, name, tuner, rec)

    monkeypatch.setattr(ev_mod, "_run_method", counted)
    resumed = _evaluate(tiny, methods=methods, partial=partial, resume=True)
    third = full["event_ids"][2]
    assert calls == [(third, "track_follower")]  # only what the interrupted job had not done
    assert resumed["complete"] is True
    assert _untimed(resumed) == _untimed(full)
    assert json.loads(partial.read_text()) == json.loads(json.dumps(resumed))
    # another data folder or other events: refused, nothing recomputed
    with pytest.raises(ConfigError, match="planned_event_ids differs"):
        _evaluate(tiny, methods=methods, partial=partial, resume=True, max_events=2)
    with pytest.raises(ConfigError, match="tune_events differs"):
        evaluate_layerpair_run(RUN, tiny[0], tune_data=tiny[1], tune_events=2, methods=methods,
                               partial=partial, resume=True, show_progress=False)  # fmt: skip


def test_merge_of_method_subsets_equals_all_methods(tiny):
    full = _evaluate(tiny, classical_events=2)
    learned = _evaluate(tiny, methods=[LEARNED])
    classical = _evaluate(tiny, methods=["raw_dbscan", "helix_dbscan", "track_follower"],
                          classical_events=2)  # fmt: skip
    assert set(learned["methods"]) == {LEARNED} and LEARNED not in classical["methods"]
    assert classical["events"] == 2 and learned["tuned_on"] == "no classical methods"
    merged = merge_summaries(learned, classical)
    assert _untimed(merged) == _untimed(full)
    assert list(merged["methods"]) == [LEARNED, "raw_dbscan", "helix_dbscan", "track_follower"]
    d = merged["paired_difference_learned_minus"]["track_follower"]
    a, b = full["per_event_score"][LEARNED][:2], full["per_event_score"]["track_follower"]
    assert d["events"] == 2 and d["score"]["mean"] == pytest.approx((a[0] - b[0] + a[1] - b[1]) / 2)
    # the learned numbers are those of the pipeline's own reconstruction, recomputed
    run = load_layerpair_run(RUN)
    for i, s in zip(full["event_ids"], full["per_event_score"][LEARNED], strict=True):
        ev = load_events(tiny[0], [i])[0]
        tid = reconstruct_event(run, ev)[0]
        assert trackml_score(ev.particle_id.numpy(), ev.weight.numpy(), tid) == s


def test_unknown_or_untunable_methods_are_refused(tiny, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unknown methods"):
        _evaluate(tiny, methods=["hough"])
    monkeypatch.chdir(tmp_path)  # the shipped run's training data is not here
    with pytest.raises(ConfigError, match="give tune_data"):
        evaluate_layerpair_run(RUN, tiny[0], methods=["track_follower"], show_progress=False)
