"""Packaged YAML configs of the anomaly task, read with :mod:`importlib.resources`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from particlegraph.config import parse_mapping
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
    return parse_mapping(text, where)
