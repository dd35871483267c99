"""The packaged tracking configs load strictly; bad values name the key."""

from __future__ import annotations

import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.train import load_run_config


@pytest.mark.parametrize("name", ["notebook", "default", "demo"])
def test_packaged_configs_load(name):
    cfg = load_run_config(name, ["data=/some/where"])
    assert cfg.data == "/some/where" and cfg.model.gnn_layers == 4
    if name == "notebook":  # the exercise's settings
        assert (cfg.model.gnn_hidden, cfg.batch_size, cfg.stage2.fit.lr) == (16, 4, 1e-3)


def test_bad_values_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_run_config("default", ["model.widht=3"])
    with pytest.raises(ConfigError, match=r"graph\.k"):
        load_run_config("default", ["graph.k=0"])
    p = tmp_path / "mine.yaml"
    p.write_text("batch_size: 2\n")
    assert load_run_config(str(p)).batch_size == 2
