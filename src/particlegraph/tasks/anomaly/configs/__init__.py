"""Packaged YAML configs of the anomaly task, read with :mod:`importlib.resources`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from particlegraph.errors import ConfigError

NAMES = ("samples", "gae-seed", "gae", "node-ae", "set-ae")


def read_config(name_or_path: str | Path) -> dict[str, Any]:
    """The mapping of a packaged config (``samples``, ``gae-seed``, ``gae``, ``node-ae``, ``set-ae``) or a YAML file."""
    text: str
    if str(name_or_path) in NAMES:
        text = resources.files(__name__).joinpath(f"{name_or_path}.yaml").read_text()
        where = f"packaged config {name_or_path}"
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise ConfigError(f"config {p} does not exist; use a file or one of {', '.join(NAMES)}")
        text, where = p.read_text(), str(p)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping at the top level")
    return data
