"""Which pipeline a config or a run belongs to, and loading the right config class.

``pipeline: layerpair`` (the default: layer-pair graph, interaction network, track building,
:mod:`.learned`) or ``pipeline: exercise`` (metric learning, edge-weighted GNN, DBSCAN,
:mod:`.train`); a config without the key is the exercise's (configs written before the key).
"""

from __future__ import annotations

import json
from pathlib import Path

from particlegraph.config import apply_overrides, load_config, parse_mapping, resolve_config
from particlegraph.errors import ConfigError
from particlegraph.tasks.tracking.learned import LayerPairRunConfig
from particlegraph.tasks.tracking.train import TrackingRunConfig

PACKAGE = "particlegraph.tasks.tracking"
PIPELINES = ("layerpair", "exercise")


def config_pipeline(config: str | Path, overrides: list[str] | None = None) -> str:
    """The ``pipeline`` of a YAML file or shipped config name (overrides applied)."""
    p = resolve_config(config, PACKAGE)
    data = parse_mapping(p.read_text(), f"config file {p}")
    data = apply_overrides(data, [o for o in overrides or [] if o.startswith("pipeline=")])
    name = str(data.get("pipeline", "exercise"))
    if name not in PIPELINES:
        raise ConfigError(f"pipeline must be one of {', '.join(PIPELINES)}, got {name!r}")
    return name


def load_tracking_config(
    config: str | Path, overrides: list[str] | None = None
) -> TrackingRunConfig | LayerPairRunConfig:
    """The run config of either pipeline from a YAML file or shipped name + ``key=value``."""
    cls = (
        LayerPairRunConfig
        if config_pipeline(config, overrides) == "layerpair"
        else TrackingRunConfig
    )
    return load_config(cls, config, overrides, package=PACKAGE)  # type: ignore[return-value]


def run_pipeline(run_dir: str | Path) -> str:
    """The pipeline of a trained run (from ``run.json``; runs without the key are exercise runs)."""
    info = Path(run_dir) / "run.json"
    if not info.is_file():
        return "exercise"  # the exercise loader gives the missing-file error
    try:
        return str(json.loads(info.read_text()).get("pipeline", "exercise"))
    except json.JSONDecodeError:
        return "exercise"
