"""MLPF's shipped run configs load by name (moved out of the engine's test_config.py)."""

from __future__ import annotations

import pytest

from particlegraph.config import load_config
from particlegraph.errors import ConfigError


def test_shipped_configs_load_and_errors_name_them() -> None:
    from particlegraph.config import shipped_configs
    from particlegraph.tasks.mlpf.train import PACKAGE, MLPFRunConfig

    names = shipped_configs(PACKAGE)
    assert {"demo", "small", "paper"} <= set(names)
    for name in names:
        assert load_config(MLPFRunConfig, name, package=PACKAGE).fit.epochs >= 1
    msg = r"config key fit.epochs in .*demo.yaml must be an integer.*got 2.7"  # path or name
    with pytest.raises(ConfigError, match=msg):
        load_config(MLPFRunConfig, "demo", ["fit.epochs=2.7"], package=PACKAGE)
