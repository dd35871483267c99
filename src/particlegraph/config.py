"""Frozen dataclass configs loaded from YAML with ``key=value`` command-line overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from particlegraph.errors import ConfigError

T = TypeVar("T")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        seq = [_coerce(v, inner, where) for v in value]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes", "on"):
                return True
            if value.lower() in ("false", "0", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp in (int, float, str):
        try:
            return tp(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from err
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (possibly nested) dict, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of a dataclass config (for YAML/JSON dumps)."""
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (value parsed as YAML) to a nested dict, returning a copy."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. model.hidden=64)")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return out


def shipped_configs(package: str) -> list[str]:
    """Names of the configs shipped in ``<package>/configs/*.yaml`` (package data)."""
    folder = resources.files(package) / "configs"
    if not folder.is_dir():
        return []
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )


def resolve_config(config: str | Path, package: str | None = None) -> Path | Traversable:
    """A config given as a YAML file, or as the name of a config shipped with ``package``
    (e.g. ``"small"`` with package ``"particlegraph.tasks.mlpf"``), read with importlib.resources
    so that an installed wheel finds it too.

    Raises:
        ConfigError: neither a file nor a shipped name.
    """
    path = Path(config)
    if path.is_file():
        return path
    if package is not None:
        name = str(config).removesuffix(".yaml")
        shipped = resources.files(package) / "configs" / f"{name}.yaml"
        if "/" not in name and shipped.is_file():
            return shipped
        names = ", ".join(shipped_configs(package))
        raise ConfigError(
            f"config {str(config)!r} is neither a file nor a shipped config ({names}); "
            "give a YAML path or one of those names"
        )
    raise ConfigError(f"config file {path} does not exist")


def load_config(
    cls: type[T],
    path: str | Path | Traversable | None,
    overrides: list[str] | None = None,
    package: str | None = None,
) -> T:
    """Load ``cls`` from a YAML file or shipped config name (when ``package`` names the task
    package that ships it; defaults when ``path`` is None) plus ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = path if isinstance(path, Traversable) and not isinstance(path, Path) else None
        p = p or resolve_config(path, package)  # type: ignore[arg-type]
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {p} is not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
    data = apply_overrides(data, overrides or [])
    where = getattr(path, "name", None) if path is not None else None
    return from_dict(cls, data, where=str(where or cls.__name__))


def dump_config(cfg: Any, path: str | Path) -> None:
    """Write a resolved config as YAML, atomically."""
    from particlegraph.atomic import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
