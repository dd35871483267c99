"""Frozen dataclass configs loaded from YAML with ``key=value`` command-line overrides.

Values are checked strictly against the dataclass annotations (:func:`from_dict`); overrides
are parsed as YAML, so ``--set fit.epochs=3`` gives the integer 3 and ``fit.lr=true`` a bool.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from particlegraph.errors import ConfigError

T = TypeVar("T")


def _kind(value: Any) -> str:
    """``'2.7' (a float)``: the value and its YAML/Python type, for error messages."""
    name = type(value).__name__
    return f"{value!r} ({'an' if name[0] in 'aeiou' else 'a'} {name})"


def _bad(key: str, source: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(
        f"config key {key} in {source} must be {expected}, got {_kind(value)}; "
        "fix it in the YAML file or the --set override"
    )


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` strictly (see :func:`from_dict`)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise _bad(key, source, "a mapping (a section of keys)", value)
        return _build(tp, value, source, f"{key}.")
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) < len(typing.get_args(tp)):
                return None
            raise _bad(key, source, " or ".join(_name(a) for a in args), value)
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg, key, source)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:
            raise errors[0]
        raise _bad(key, source, " or ".join(_name(a) for a in args) + " or null", value)
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, list | tuple):
            raise _bad(key, source, "a list", value)
        seq = [_coerce(v, inner, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        if not isinstance(value, bool):
            raise _bad(key, source, "true or false", value)
        return value
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _INT.fullmatch(value.strip()):
            return int(value)
        raise _bad(key, source, "an integer (whole numbers like 3.0 are refused too)", value)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-3 as the string "1e-3"
            try:
                return float(value)
            except ValueError:
                pass
        raise _bad(key, source, "a number", value)
    if tp is str:
        if not isinstance(value, str):
            raise _bad(key, source, "a string (quote it in YAML)", value)
        return value
    return value


_TRUE = frozenset({"true", "yes", "on"})
_FALSE = frozenset({"false", "no", "off"})
_INT = re.compile(r"[+-]?[0-9]+")


def _name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _build(cls: type[T], data: dict[str, Any], source: str, prefix: str) -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        where = f"{source}, section {prefix[:-1]}" if prefix else source
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}{k}", source) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        where = f"{source}, section {prefix[:-1]}" if prefix else source
        raise ConfigError(f"{where}: {err}") from err


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a (possibly nested) dict, strictly; ``where`` names the source.

    Unknown keys are refused. Values must have the annotated type, with no silent conversion:
    an int field takes an integer only (a float such as 2.7, and also an integral 3.0, is
    refused; so is a bool), a float field takes an int or a float (not a bool), a str field a
    string only (a list or a number is refused), a bool field true/false (or the strings
    true/false/yes/no/on/off). Strings that spell a number are accepted for number fields,
    because PyYAML reads ``1e-3`` as a string. Tuples and lists check every item; ``X | None``
    takes null or an ``X``. Every refusal is a :class:`ConfigError` naming the dotted key, the
    expected type and the value.
    """
    return _build(cls, data, where, "")


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


def parse_mapping(text: str, where: str) -> dict[str, Any]:
    """The top-level mapping of a YAML config text; ``where`` names it in the one-line error.

    Raises:
        ConfigError: the text is not YAML, or its top level is not a mapping.
    """
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{where} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping at the top level")
    return data


def load_config(
    cls: type[T],
    path: str | Path | Traversable | None,
    overrides: list[str] | None = None,
    package: str | None = None,
) -> T:
    """Load ``cls`` from a YAML file or shipped config name (when ``package`` names the task
    package that ships it; defaults when ``path`` is None) plus ``key=value`` overrides."""
    data: dict[str, Any] = {}
    where = cls.__name__
    if path is not None:
        p = path if isinstance(path, Traversable) and not isinstance(path, Path) else None
        p = p or resolve_config(path, package)  # type: ignore[arg-type]
        where = str(p) if isinstance(p, Path) else f"shipped config {p.name}"
        data = parse_mapping(p.read_text(), f"config file {p}")
    data = apply_overrides(data, overrides or [])
    return from_dict(cls, data, where=where)


def dump_config(cfg: Any, path: str | Path) -> None:
    """Write a resolved config as YAML, atomically."""
    from particlegraph.atomic import write_text

    write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
