"""The packaged tracking configs load strictly; bad values name the key."""

from __future__ import annotations

import json

import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.build import BuildConfig
from particlegraph.tasks.tracking.learned import LayerPairRunConfig
from particlegraph.tasks.tracking.runconfig import config_pipeline, load_tracking_config
from particlegraph.tasks.tracking.train import TrackingRunConfig, load_run_config


@pytest.mark.parametrize("name", ["exercise", "notebook", "exercise_wide", "exercise_demo"])
def test_packaged_exercise_configs_load(name):
    cfg = load_run_config(name, ["data=/some/where"])
    assert cfg.data == "/some/where" and cfg.model.gnn_layers == 4
    if name in ("exercise", "notebook"):  # the exercise's settings; notebook is an alias
        assert (cfg.model.gnn_hidden, cfg.batch_size, cfg.stage2.fit.lr) == (16, 4, 1e-3)
    assert isinstance(load_tracking_config(name), TrackingRunConfig)


@pytest.mark.parametrize("name", ["default", "demo", "pileup", "pileup50", "pileup200"])
def test_default_configs_are_the_layer_pair_pipeline(name):
    assert config_pipeline(name) == "layerpair"
    cfg = load_tracking_config(name, ["data=/x", "model.iterations=7"])
    assert isinstance(cfg, LayerPairRunConfig) and cfg.model.iterations == 7
    with pytest.raises(ConfigError, match="pipeline"):
        load_tracking_config(name, ["pipeline=mine"])


def test_bad_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_run_config("exercise_wide", ["model.widht=3"])
    with pytest.raises(ConfigError, match=r"graph\.k"):
        load_run_config("exercise_wide", ["graph.k=0"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_tracking_config("default", ["model.widht=3"])
    p = tmp_path / "mine.yaml"
    p.write_text("batch_size: 2\n")
    assert load_run_config(str(p)).batch_size == 2


def test_pileup200_starts_from_the_shipped_pileup50_model_with_its_architecture():
    import yaml

    from particlegraph.train.run import open_run

    cfg = load_tracking_config("pileup200")
    assert isinstance(cfg, LayerPairRunConfig) and cfg.init_from == "pretrained:ttbar_pu50"
    shipped = open_run(cfg.init_from, "tracking", "particlegraph.tasks.tracking").path
    model = yaml.safe_load((shipped / "config.yaml").read_text())["model"]
    assert {k: getattr(cfg.model, k) for k in model} == model  # the weights fit
    # the building the shipped pile-up-200 model ended with, chosen on validation events
    build = json.loads((shipped.parent / "ttbar_pu200" / "run.json").read_text())["build"]
    assert (cfg.thresholds, cfg.modes) == ((build["threshold"],), (build["mode"],))
    keep = ("outlier_mm", "follow_pt_min", "follow_window_scale", "follow_min_hits")
    assert {k: getattr(cfg, k) for k in keep} == {k: build[k] for k in keep}
    assert cfg.base_build() == BuildConfig(**{k: build[k] for k in keep})
    with pytest.raises(ConfigError, match="outlier_mm"):
        load_tracking_config("pileup200", ["outlier_mm=-1"])
