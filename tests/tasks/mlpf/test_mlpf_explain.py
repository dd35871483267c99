"""The explanation workflow end to end on a tiny randomly initialised MLPF."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from particlegraph.errors import ConfigError
from particlegraph.explain import faithfulness
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf import explain as mlpf_explain
from particlegraph.tasks.mlpf.explain import (
    explain,
    output_column,
    output_values,
    relevant_targets,
    slug,
)
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig
from particlegraph.tasks.mlpf.store import write_events


@dataclass
class DenseRelevance:
    """SparseRelevance stand-in built from gradient x input (dense, tiny events only)."""

    target: torch.Tensor
    source: torch.Tensor
    values: torch.Tensor
    targets: torch.Tensor
    explained: torch.Tensor
    absorbed: torch.Tensor
    num_elements: int


def gradient_relevance(model: nn.Module, x: torch.Tensor, output: str, targets) -> DenseRelevance:
    x = x.clone().requires_grad_(True)
    values = output_values(model(x), output)
    tgts = torch.arange(x.shape[0]) if targets is None else torch.as_tensor(targets).cpu()
    # One batched backward pass: row i of the Jacobian is d values[tgts[i]] / d x.
    seeds = torch.eye(x.shape[0], dtype=values.dtype)[tgts]
    (g,) = torch.autograd.grad(values, x, grad_outputs=seeds, is_grads_batched=True)
    dense = (g * x).detach()  # (T, N, 12)
    t_idx, s_idx = torch.nonzero(dense.abs().sum(-1) > 0, as_tuple=True)
    return DenseRelevance(
        target=tgts[t_idx], source=s_idx, values=dense[t_idx, s_idx], targets=tgts,
        explained=values.detach()[tgts], absorbed=torch.zeros(len(tgts)), num_elements=x.shape[0],
    )  # fmt: skip


def make_event(rng: np.random.Generator, n: int) -> MLPFEvent:
    x = np.zeros((n, 12), np.float32)
    track = rng.uniform(size=n) < 0.5
    x[:, 0] = np.where(track, 2, 1)
    x[:, 1] = rng.exponential(5.0, n)
    x[:, 2] = rng.uniform(-2.5, 2.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    x[:, 3], x[:, 4] = np.sin(phi), np.cos(phi)
    x[:, 5] = x[:, 1] * np.cosh(x[:, 2])
    x[~track, 6] = 0.4 * x[~track, 5]
    x[~track, 7] = 0.6 * x[~track, 5]
    x[track, 6] = x[track, 2]
    x[track, 9] = rng.choice([-1, 1], track.sum())
    y = np.zeros((n, 7), np.float32)
    y[:, 0] = np.where(track, 1, rng.choice([0, 2, 3], n))
    keep = y[:, 0] > 0
    y[keep, 2:7] = x[keep][:, [1, 2, 3, 4, 5]]
    return MLPFEvent(x, y, y.copy())


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny matrices: intra-op threads only add contention on a shared 2-core machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = {"hidden": 8, "num_blocks": 1, "k": 4, "propagate_dim": 4, "space_dim": 2}


@pytest.fixture
def run_and_data(tmp_path):
    """A run directory holding a tiny randomly initialised MLPF, and two small events."""
    from particlegraph.config import dump_config
    from particlegraph.tasks.mlpf.train import CONFIG_NAME, run_config_from_dict
    from particlegraph.train.checkpoint import checkpoint_path, save_checkpoint

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    write_events(data / "shard_000.parquet", [make_event(rng, 24), make_event(rng, 18)], {})
    cfg = run_config_from_dict({"model": TINY})
    torch.manual_seed(0)
    model = MLPF(cfg.model)
    # an untrained regression head is the identity (zero last layer); give it weights, as training
    # would, so the regression outputs have input relevance to explain
    torch.nn.init.normal_(model.reg_head[-1].weight, std=0.3)
    run = tmp_path / "run"
    dump_config(cfg, run / CONFIG_NAME)
    save_checkpoint(checkpoint_path(run, "last"), {"model": model.state_dict()})
    return run, data


def test_output_names():
    assert output_column("class:neutral_hadron") == ("class", 2)
    assert output_column("energy") == ("regression", 4)
    assert output_column("charge:+1") == ("charge", 2)
    assert slug("class:neutral_hadron") == "neutral_hadron"
    assert slug("charge:+1") == "charge_plus1" != slug("charge:-1")
    true = np.array([0, 2, 1, 2, 0, 3])
    np.testing.assert_array_equal(relevant_targets("class:neutral_hadron", true), [1, 3])
    np.testing.assert_array_equal(relevant_targets("class:muon", true), np.arange(6))  # none
    np.testing.assert_array_equal(relevant_targets("energy", true), [1, 2, 3, 5])
    subset = relevant_targets("energy", true, max_targets=2, seed=1)
    assert subset.size == 2 and set(subset) <= {1, 2, 3, 5} and np.all(np.diff(subset) > 0)
    with pytest.raises(ConfigError, match="unknown output"):
        output_column("mass")
    with pytest.raises(ConfigError, match="unknown class"):
        output_column("class:gluon")


def test_explain_writes_figures_and_summary(run_and_data, assert_png):
    run, data = run_and_data
    outputs = ("class:photon",)
    summary = explain(run, data, events=2, outputs=outputs, device="cpu",
                      num_neighbours=3, relevance_fn=gradient_relevance)  # fmt: skip
    out = run / "explain"
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["events"] == summary["events"] == 2
    assert summary["elements"] == 42
    for name in outputs:
        s = slug(name)
        for f in (f"relmap_single_{s}.png", f"relmap_avg_{s}.png", f"feature_hist_{s}.png",
                  f"relmap_{s}.npz"):  # fmt: skip
            if f.endswith(".png"):
                assert_png(out / f)
            else:
                assert np.load(out / f).files  # a readable npz archive with arrays
        entry = on_disk["outputs"][name]
        # Every element of both events is averaged into exactly one class map.
        assert sum(sum(v) for v in entry["class_counts"].values()) == 42
        rnd = entry["randomization"]
        assert rnd["steps"][0] == "trained" and rnd["spearman"][0] == pytest.approx(1.0)
        layers = faithfulness.cascading_layers(MLPF(MLPFConfig(**TINY)))
        assert rnd["steps"] == ["trained", *layers]
        assert entry["flipping_element"]["fractions"][0] == 0.0
        assert entry["flipping_element"]["relevance"][0] == pytest.approx(0.0)
        # The stand-in has no absorbed share.
        assert entry["conservation"]["mean_absorbed_share"] == 0.0
    for f in ("event_display.png", "flipping_element.png", "flipping_feature.png",
              "randomization.png"):  # fmt: skip
        assert_png(out / f)
    arrays = np.load(out / "relmap_photon.npz")
    assert arrays["mean"].shape == (6, 2, 4, 12)
    assert int(arrays["count"].sum()) == 42
    assert set(summary["files"]) <= {p.name for p in out.iterdir()}
    assert summary["timing_s"]["figures"] > 0
    assert summary["seconds"] >= sum(summary["timing_s"].values()) - 1e-6


def test_explain_rejects_bad_arguments(run_and_data):
    run, data = run_and_data
    with pytest.raises(ConfigError, match="unknown output"):
        explain(run, data, events=1, outputs=("mass",), relevance_fn=gradient_relevance)
    with pytest.raises(ConfigError, match="events"):
        explain(run, data, events=0, relevance_fn=gradient_relevance)
    with pytest.raises(ConfigError, match="check-targets"):
        explain(run, data, events=1, check_targets=0, relevance_fn=gradient_relevance)


def test_cli_explain(run_and_data, monkeypatch):
    from typer.testing import CliRunner

    from particlegraph.cli.main import app

    run, data = run_and_data
    monkeypatch.setattr(mlpf_explain, "lrp_relevance", lambda rule: gradient_relevance)
    base = ["mlpf", "explain", "--run", str(run), "--data", str(data), "--events", "1",
            "--device", "cpu", "--no-figures"]  # fmt: skip
    result = CliRunner().invoke(app, [*base, "--output", "pt", "--no-randomize"])
    assert result.exit_code == 0, result.output
    assert "pt: conservation" in result.output
    out = run / "explain"
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["outputs"]) == ["pt"]
    assert "randomization" not in summary["outputs"]["pt"]
    assert not list(out.glob("*.png"))  # --no-figures
    assert (out / "relmap_pt.npz").is_file()
    bad = CliRunner().invoke(app, [*base, "--output", "mass"])
    assert bad.exit_code == 2
    assert "error: unknown output 'mass'" in bad.output


def test_explain_with_the_lrp_engine(run_and_data):
    lrp = pytest.importorskip("particlegraph.explain.lrp")
    if not hasattr(lrp, "explain_event"):
        pytest.skip("LRP engine not available")
    run, data = run_and_data
    summary = explain(run, data, events=1, outputs=("class:charged_hadron", "energy"),
                      device="cpu", figures=False, num_neighbours=2)  # fmt: skip
    assert summary["rule"] == "epsilon"
    for entry in summary["outputs"].values():
        cons = entry["conservation"]
        # LRP bookkeeping: input relevance + absorbed share reproduces the output.
        assert cons["max_rel_err"] < 1e-4
        assert cons["targets"] > 0
        assert entry["randomization"]["spearman"][0] == pytest.approx(1.0)


def test_plot_functions_return_their_artists():
    import matplotlib.pyplot as plt

    from particlegraph.explain.faithfulness import FlippingCurve
    from particlegraph.plot.explain import (
        plot_event_display,
        plot_flipping_curves,
        plot_relevance_map,
    )

    values = np.array([[0.5, -2.0], [1.0, 0.0]])
    _, ax = plt.subplots()
    image = plot_relevance_map(values, feature_names=("a", "b"), ax=ax)
    np.testing.assert_allclose(image.get_array(), values)
    assert image.get_clim() == (-2.0, 2.0)  # symmetric around zero
    eta = np.array([0.0, 1.0, 2.0, 0.5])
    phi = np.array([0.0, 0.5, 3.0, -3.0])
    edges = (np.array([0, 0, 2, 1]), np.array([1, 2, 3, 3]), np.array([1.0, -0.5, 2.0, 0.1]))
    artists = plot_event_display(eta, phi, np.array([1.0, -1.0, 0.2, 0.0]), edges=edges,
                                 is_track=np.array([True, False, False, True]), highlight=0,
                                 max_edges=3, ax=ax)  # fmt: skip
    # The 3 strongest edges are drawn, except 2-3 which wraps around phi = +-pi.
    assert len(artists["edges"].get_segments()) == 2
    assert len(artists["tracks"].get_offsets()) == 2
    curve = FlippingCurve("element", np.array([0, 1.0]), np.array([0, 2.0]), np.array([0, 1.0]),
                          np.zeros(2))  # fmt: skip
    assert curve.auc_gap == pytest.approx(0.5)
    assert len(plot_flipping_curves({"pt": curve}, ax=ax)) == 2
    plt.close("all")


def test_explain_with_an_lrp_composite(run_and_data):
    lrp = pytest.importorskip("particlegraph.explain.lrp")
    if not hasattr(lrp, "Composite"):
        pytest.skip("LRP engine not available")
    run, data = run_and_data
    rule = lrp.Composite([("class_head.*", lrp.Epsilon(eps=0.1))], default=lrp.Epsilon())
    summary = explain(run, data, events=1, outputs=("class:photon",), rule=rule, device="cpu",
                      figures=False, randomize=False)  # fmt: skip
    assert summary["rule"].startswith("Composite")
    cons = summary["outputs"]["class:photon"]["conservation"]
    assert cons["max_rel_err"] < 1e-4  # the larger epsilon is absorbed, and accounted for
    with pytest.raises(ConfigError, match="unknown LRP rule"):
        explain(run, data, events=1, rule="alpha-beta")


def test_failed_randomisation_is_recorded_not_fatal(run_and_data, caplog):
    run, data = run_and_data
    calls = []

    def flaky(model, x, output, targets):
        calls.append(targets)
        if len(calls) > 1:  # every call of the randomisation test fails
            raise ConfigError("trace mismatch")
        return gradient_relevance(model, x, output, targets)

    summary = explain(run, data, events=1, outputs=("pt",), device="cpu", figures=False,
                      relevance_fn=flaky)  # fmt: skip
    assert summary["outputs"]["pt"]["randomization"] == {"error": "trace mismatch"}
    assert "flipping_element" in summary["outputs"]["pt"]
    assert (
        "randomisation test of pt failed" in caplog.text
    )  # a logging warning (stderr without a handler)


def test_randomisation_falls_back_to_every_target(run_and_data, caplog):
    run, data = run_and_data

    def subset_fails(model, x, output, targets):
        if targets is not None:
            raise ConfigError("trace mismatch")
        return gradient_relevance(model, x, output, targets)

    summary = explain(run, data, events=1, outputs=("pt",), device="cpu", figures=False,
                      relevance_fn=subset_fails)  # fmt: skip
    rnd = summary["outputs"]["pt"]["randomization"]
    assert rnd["spearman"][0] == pytest.approx(1.0)
    assert "explaining every element instead" in caplog.text


def test_compute_writes_nothing_and_the_writer_round_trips(run_and_data, tmp_path):
    """explain_events only computes; write_explanation stores exactly what it computed."""
    from particlegraph.tasks.mlpf.explain import ExplainSettings
    from particlegraph.tasks.mlpf.explain_compute import explain_events
    from particlegraph.tasks.mlpf.explain_writer import write_explanation
    from particlegraph.tasks.mlpf.store import iter_events
    from particlegraph.tasks.mlpf.train import load_model

    run, data = run_and_data
    model, _ = load_model(run, "last")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    settings = ExplainSettings(outputs=("pt", "class:photon", "pt"), events=5, num_neighbours=2)
    result = explain_events(model, iter_events(data), settings, relevance_fn=gradient_relevance)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing drawn or written
    assert list(result.outputs) == ["pt", "class:photon"]  # duplicates dropped, order kept
    assert (result.events, result.elements, result.rule) == (2, 42, "custom")  # 2 events exist
    for entry in result.outputs.values():
        assert entry.maps.shape == (6, 2, 3, 12) and int(entry.counts.sum()) == 42
        assert set(entry.flipping) == {"element", "feature"} and entry.randomization is not None
        assert 1 <= len(entry.single_maps) <= 6 and entry.single_maps[0].values.shape == (3, 12)
    display = result.event_display
    assert display is not None and len(display.panels) in (1, 2)
    assert display.panels[0].element.shape == (24,)  # the first event's elements

    out = tmp_path / "written"
    summary = write_explanation(result, out, figures=False)
    on_disk = json.loads((out / "summary.json").read_text())
    expected = json.loads(json.dumps(result.summary()))
    for key in ("seconds", "timing_s"):  # the writer adds its own time
        expected.pop(key), on_disk.pop(key)
    assert on_disk == {**expected, "files": summary["files"]}
    assert sorted(p.name for p in out.iterdir()) == sorted(summary["files"])  # no PNG
    arrays = np.load(out / "relmap_pt.npz")
    np.testing.assert_array_equal(arrays["mean"], result.outputs["pt"].maps)
    np.testing.assert_array_equal(arrays["hist_counts"], result.outputs["pt"].hist_counts)
    with pytest.raises(ConfigError, match="--neighbours must be between 1 and 1,?000"):
        ExplainSettings(num_neighbours=0)
