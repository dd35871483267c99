"""tabular evaluate: AUC against the curve-based reference, the cut chosen on training rows,
paired bootstrap errors, and the command's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.metrics.roc import rank_auc
from particlegraph.tasks.tabular import evaluate, generate, train
from particlegraph.tasks.tabular.evaluate import compute_evaluation, cut_directions


class _Constant:
    """A stand-in model: predict() returns the first input column (a known score)."""

    def eval(self) -> None: ...


def test_cut_direction_and_best_cut_come_from_the_training_rows(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    n = 4000
    y = (rng.random(n) < 0.5).astype(int)
    x = rng.normal(size=(n, 3))
    x[:, 2] -= 1.5 * y  # obs3 LOW for signal: its cut must point downwards
    x[:, 0] += 0.3 * y
    assert cut_directions(x, y)["obs3"] == -1.0 and cut_directions(x, y)["obs1"] == 1.0
    monkeypatch.setattr(evaluate, "predict", lambda model, xs: xs[:, 0])  # network = obs1
    res = compute_evaluation(
        _Constant(), x[:2000], y[:2000], x[2000:], y[2000:], features=(0, 1, 2)
    )
    assert res.best_cut == "obs3"
    assert res.auc["obs3"] == pytest.approx(rank_auc(-x[2000:, 2], y[2000:]))
    assert res.auc["network"] == pytest.approx(res.auc["obs1"])  # the same score
    assert res.difference == pytest.approx(res.auc["network"] - res.auc["obs3"])
    # the paired error is below the quadrature sum of the two errors only if they correlate;
    # here obs1 and obs3 are independent: paired ~ quadrature within 30 %
    quad = np.hypot(res.auc_error["network"], res.auc_error["obs3"])
    assert 0.7 * quad < res.difference_error < 1.3 * quad
    # binomial-scale error of an AUC on 2,000 events: about 0.01, not 0 and not 0.1
    assert 0.003 < res.auc_error["obs3"] < 0.03


def test_evaluate_writes_metrics_page_and_refuses_a_foreign_out(tmp_path) -> None:
    data = generate.generate(tmp_path / "toy.data", events=1500, seed=3)
    train.train(data, tmp_path / "run", epochs=3, seed=0, lr=1e-2)
    m = evaluate.evaluate(tmp_path / "run")
    out = tmp_path / "run" / "evaluation"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["best_cut"] == m["best_cut"] and on_disk["test_events"] == m["test_events"]
    assert 0.5 < m["auc"]["network"]["value"] <= 1.0
    assert (out / "roc.png").stat().st_size > 0 and (out / "index.html").is_file()
    assert evaluate.evaluate(tmp_path / "run", out=out)["auc"] == m["auc"]  # its own folder: rerun
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError):
        evaluate.evaluate(tmp_path / "run", out=tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
