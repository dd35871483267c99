"""Classifier, training through the shared loop, the explain analysis and the CLI (tabular)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from particlegraph.cli.main import app
from particlegraph.config import load_config
from particlegraph.errors import ConfigError
from particlegraph.report.run_index import missing_targets, page_targets
from particlegraph.tasks.tabular import demo, explain, generate, train
from particlegraph.tasks.tabular.model import ClassifierConfig, MLPClassifier
from particlegraph.tasks.tabular.train import TabularRunConfig, load_run


def test_classifier_default_architecture_and_standardisation():
    m = MLPClassifier()
    linears = [mod for mod in m.net if isinstance(mod, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(3, 100), (100, 1)]
    assert isinstance(m.net[1], torch.nn.Tanh)
    m.set_standardization(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 2.0]))
    x = torch.tensor([[3.0, 2.0, 1.0]])
    torch.testing.assert_close(m.standardize(x), torch.tensor([[1.0, 0.0, -1.0]]))
    torch.testing.assert_close(m.prob(x), torch.sigmoid(m.logit_z(m.standardize(x))))
    with pytest.raises(ConfigError, match="unknown activation"):
        ClassifierConfig(activation="sigmoidish")
    with pytest.raises(ConfigError, match="positive"):
        m.set_standardization(torch.zeros(3), torch.zeros(3))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small quick training on the toy and its analysis (shared by the tests below)."""
    root = tmp_path_factory.mktemp("tab")
    data = generate.generate(root / "events.data", events=6000, seed=2)
    summary = train.train(data, root / "run", epochs=5, seed=0, batch_size=64, lr=1e-2)
    two = train.train(data, root / "run2", epochs=3, features=(0, 1), seed=0, lr=1e-2)
    expl = explain.explain(root / "run", out=root / "explain", heatmap_run=two["run_dir"], bins=20)
    return root, summary, expl


def test_training_writes_curves_checkpoints_and_taylor_evolution(trained, assert_png):
    root, summary, _ = trained
    run = root / "run"
    assert summary["epochs"] == 5
    curves = json.loads((run / "training_curves.json").read_text())
    assert len(curves["train_loss"]) == 5 and len(curves["val_accuracy"]) == 5
    assert curves["val_loss"][-1] < curves["val_loss"][0]  # it learned something
    assert_png(run / "training_curves.png")
    assert (run / "checkpoints" / "best.pt").is_file()
    evo = json.loads((run / "taylor_evolution.json").read_text())
    assert evo["epoch"] == list(range(1, 6)) and len(evo["t_obs1,obs2"]) == 5
    model, cfg = load_run(run)
    assert cfg.features == (0, 1, 2) and cfg.data.endswith("events.data")
    assert isinstance(model, MLPClassifier) and not model.training


def test_observable3_coefficients_are_smallest_by_a_clear_margin(trained):
    root, _, _ = trained
    tc = json.loads((root / "explain" / "taylor_coefficients.json").read_text())
    t1 = np.asarray(tc["first_order"])
    t2 = np.asarray(tc["second_order"])
    assert t1.shape == (3,) and t2.shape == (3, 3)
    np.testing.assert_allclose(t2, t2.T)
    assert t1[2] < 0.25 * min(t1[0], t1[1])
    with_obs3 = [t2[2, 2], t2[0, 2], t2[1, 2]]
    without = [t2[0, 0], t2[1, 1], t2[0, 1]]
    assert max(with_obs3) < 0.5 * min(without)
    # obs2 acts through |obs2|: its second-order self term is among the largest coefficients
    assert t2[1, 1] > 0.5 * max(t1)
    ranked = [r["coefficient"] for r in tc["ranked"]]
    assert ranked[-1] in ("t_obs3", "t_obs3,obs3", "t_obs1,obs3", "t_obs2,obs3")


def test_explain_outputs_roc_gradients_and_heatmaps(trained):
    root, _, expl = trained
    out = root / "explain"
    roc = json.loads((out / "roc.json").read_text())["auc"]
    assert set(roc) == {"obs1", "obs2", "obs3", "|obs2|", "network"}
    assert roc["network"] > roc["obs1"] > 0.75 and roc["|obs2|"] > roc["obs2"] + 0.15
    grads = json.loads((out / "gradients.json").read_text())
    assert grads["mean_gradient"][0] > 0  # more obs1 -> more signal-like
    assert grads["mean_abs_gradient"][2] < 0.25 * grads["mean_abs_gradient"][0]
    heat = np.load(out / "heatmaps.npz")
    assert heat["output"].shape == (20, 20) and heat["d_xy"].shape == (20, 20)
    assert np.all((heat["output"] > 0) & (heat["output"] < 1))
    for name in (
        "taylor_matrix",
        "taylor_ranking",
        "taylor_evolution",
        "roc",
        "observables",
        "heatmaps",
        "gradients",
    ):
        assert name in expl["figures"], name


def test_run_and_explanation_pages_link_files_that_exist(trained):
    root, summary, expl = trained
    run_page = root / "run" / "index.html"
    assert missing_targets(run_page) == []
    linked = {p.relative_to(root / "run").as_posix() for p in page_targets(run_page)}
    assert {"training_curves.png", "config.yaml", "history.json", "training_curves.json",
            "taylor_evolution.json", "checkpoints/best.pt"} <= linked  # fmt: skip
    text = run_page.read_text()
    assert "fit.epochs" in text and f"<td>best epoch</td><td>{summary['best_epoch']}</td>" in text
    page = root / "explain" / "index.html"
    assert missing_targets(page) == []
    linked = {p.name for p in page_targets(page)}
    assert {Path(f).name for f in expl["figures"].values()} <= linked
    assert {"roc.json", "taylor_coefficients.json", "summary.json", "heatmaps.npz"} <= linked
    network_auc = json.loads((root / "explain" / "roc.json").read_text())["auc"]["network"]
    assert f"<td>network</td><td>{network_auc:.4g}</td>" in page.read_text()


def test_heatmap_derivatives_agree_with_finite_differences(trained):
    from particlegraph.tasks.tabular.analysis import heatmap_derivatives

    model, _ = load_run(trained[0] / "run2")
    model = model.double()
    xs, ys, gd = heatmap_derivatives(model, (-1.0, 1.0), (-1.0, 1.0), bins=5)
    pts = torch.tensor([[xs[1], ys[3]]], dtype=torch.float64)
    h = 1e-5
    for k, deriv in ((0, gd.d_x), (1, gd.d_y)):
        e = torch.zeros(1, 2, dtype=torch.float64)
        e[0, k] = h
        fd = ((model.prob(pts + e) - model.prob(pts - e)) / (2 * h)).item()
        assert deriv[3, 1].item() == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_cli_generate_and_bad_file_exits_2_with_one_line(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ev.parquet"
    res = runner.invoke(
        app, ["tabular", "generate", "--events", "50", "--seed", "1", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert out.is_file()
    bad = tmp_path / "bad.data"
    bad.write_text("1 2 3 0\n1 2 3 9\n")
    res = runner.invoke(app, ["tabular", "train", "--data", str(bad), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "bad.data:2" in lines[0]
    res = runner.invoke(
        app,
        ["tabular", "train", "--data", str(out), "--out", str(tmp_path / "r"), "--features", "1,4"],
    )
    assert res.exit_code == 2 and "observable numbers 1, 2, 3" in res.output


def test_cli_quoted_epochs_override_comes_back_as_an_integer(tmp_path):
    """``--set fit.epochs='2'`` (YAML string) trains 2 epochs and is stored as the integer 2;
    ``'2.5'`` is refused before anything is written."""
    data = generate.generate(tmp_path / "toy.data", events=300, seed=1)
    runner = CliRunner()
    base = ["tabular", "train", "--data", str(data), "--batch-size", "64"]
    res = runner.invoke(app, [*base, "--run", str(tmp_path / "r"), "--set", "fit.epochs='2'"])
    assert res.exit_code == 0, res.output
    assert "trained 2 epochs" in res.output
    cfg = load_config(TabularRunConfig, tmp_path / "r" / "config.yaml")
    assert cfg.fit.epochs == 2 and type(cfg.fit.epochs) is int
    assert "epochs: 2\n" in (tmp_path / "r" / "config.yaml").read_text()  # not '2'
    res = runner.invoke(app, [*base, "--run", str(tmp_path / "r2"), "--set", "fit.epochs='2.5'"])
    assert res.exit_code == 2 and "fit.epochs" in res.output and "must be an integer" in res.output
    assert not (tmp_path / "r2").exists()


def test_resume_continues_bit_for_bit(tmp_path):
    data = generate.generate(tmp_path / "ev.data", events=1200, seed=1)
    train.train(data, tmp_path / "a", epochs=3, seed=0)
    train.train(data, tmp_path / "b", epochs=2, seed=0)
    res = CliRunner().invoke(
        app,
        [
            "tabular",
            "train",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "b"),
            "--resume",
            "--set",
            "fit.epochs=3",
        ],
    )
    assert res.exit_code == 0, res.output
    ha = json.loads((tmp_path / "a" / "history.json").read_text())["records"]
    hb = json.loads((tmp_path / "b" / "history.json").read_text())["records"]
    assert len(hb) == 3
    for key in ("val_loss", "train_accuracy", "taylor_t_obs1", "taylor_t_obs2,obs2"):
        assert [r[key] for r in ha] == [r[key] for r in hb], key
    evo = json.loads((tmp_path / "b" / "taylor_evolution.json").read_text())
    assert evo["epoch"] == [1, 2, 3]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    start = time.perf_counter()
    s = demo.demo(tmp_path / "demo")
    wall = time.perf_counter() - start
    tc = json.loads((tmp_path / "demo" / "taylor_coefficients.json").read_text())
    assert len(tc["first_order"]) == 3 and np.shape(tc["second_order"]) == (3, 3)
    assert json.loads((tmp_path / "demo" / "roc.json").read_text())["auc"]["network"] > 0.85
    page = tmp_path / "demo" / "index.html"  # the explanation, both runs' curves and pages
    assert missing_targets(page) == []
    linked = {p.relative_to(tmp_path / "demo").as_posix() for p in page_targets(page)}
    assert {"run_3obs/index.html", "run_2obs/training_curves.png", "heatmaps.png"} <= linked
    # the reported duration is the demo's own wall time (not a threshold: a consistency check)
    assert 0 < s["seconds"] <= wall


def test_train_accepts_the_shipped_config_by_name(tmp_path):
    from particlegraph.config import shipped_configs
    from particlegraph.tasks.tabular.train import CONFIG_NAME, TabularRunConfig

    assert "default" in shipped_configs(train.PACKAGE)
    data = generate.generate(tmp_path / "toy.data", events=400, seed=3)
    s = train.train(
        data, tmp_path / "run", features=(0, 1), config="default", overrides=["fit.epochs=2"]
    )
    assert s["epochs"] == 2
    cfg = load_config(TabularRunConfig, tmp_path / "run" / CONFIG_NAME)
    assert cfg.features == (0, 1) and cfg.model.n_inputs == 2 and cfg.model.hidden == (100,)
    assert cfg.data == str(data)
    with pytest.raises(ConfigError, match="neither a file nor a shipped config"):
        train.train(data, tmp_path / "run2", config="no_such_config")
