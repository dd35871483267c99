"""One run folder for every task: created only after validation, never over another, opened safely.

A run folder ``RUN/`` holds:

- ``particlegraph.json``: the run's identity (:data:`~particlegraph.outputs.OWNER_FILE`): the
  command that made it (``"<task> train"``), the task, and ``settings.data``, the identity and
  detector settings of the data it was trained on (what ``evaluate`` compares its data with);
- ``config.yaml``: the resolved configuration (:data:`CONFIG_NAME`);
- ``checkpoints/{last,best}.pt`` (read with ``weights_only``: a run folder never runs code),
  ``history.json``, ``metrics.json``, plots, and ``index.html``.

:func:`create_run` is called by every task's ``train`` after the whole configuration has been
validated and before anything is written. It refuses a folder that holds anything but a run of the
same task, and a finished run, unless ``overwrite`` (then the old run, which particlegraph made, is
removed first; only a run: any other folder is never replaced) or ``resume``. :func:`open_run` is the one loader of all four tasks: ``PATH`` or
``pretrained:NAME`` with NAME one of the package's shipped runs (never a path).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from particlegraph.config import dump_config, load_config
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.outputs import OWNER_FILE, claim, owner
from particlegraph.train.checkpoint import CHECKPOINT_DIR, checkpoint_path, load_checkpoint

T = TypeVar("T")

#: The resolved configuration of a run.
CONFIG_NAME = "config.yaml"
#: ``--run pretrained:<name>`` names a run shipped in ``<task package>/pretrained/<name>/``.
PRETRAINED_PREFIX = "pretrained:"
#: The ``--checkpoint`` values: ``best`` (falls back to ``last``) and ``last``.
CHECKPOINTS = ("best", "last")
#: A shipped run's name: letters, digits, ``_ . -``; never a path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_checkpoint(which: str, option: str = "--checkpoint") -> str:
    """A ``--checkpoint`` value: ``best`` (falls back to ``last``) or ``last``.

    Raises:
        ConfigError: any other value, naming ``option``.
    """
    if which not in CHECKPOINTS:
        raise ConfigError(f"{option} must be 'best' or 'last', got {which!r}")
    return which


def train_command(task: str) -> str:
    """The command that makes runs of ``task``: ``"<task> train"``."""
    return f"{task} train"


@dataclass(frozen=True)
class Run:
    """An opened run folder.

    Attributes:
        path: the folder holding the config and checkpoints.
        task: the task that trained it (``mlpf``, ``tracking``, ``anomaly``, ``tabular``).
        identity: the run's ``particlegraph.json`` (empty for runs made before it existed).
        pretrained: the shipped name for ``pretrained:<name>``, else None.
    """

    path: Path
    task: str
    identity: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def data_settings(self) -> dict[str, Any]:
        """Identity and detector settings of the training data (empty when not recorded)."""
        settings = self.identity.get("settings", {})
        data = settings.get("data", {}) if isinstance(settings, dict) else {}
        return dict(data) if isinstance(data, dict) else {}

    @property
    def output_dir(self) -> Path:
        """Where ``evaluate``/``explain`` write by default: the run itself, or
        ``runs/pretrained_<name>`` for a shipped run (the package folder is not the user's)."""
        return Path("runs") / f"pretrained_{self.pretrained}" if self.pretrained else self.path

    def checkpoint(self, which: str = "best") -> Path:
        """``checkpoints/<which>.pt``; ``best`` falls back to ``last`` when there is no best."""
        path = checkpoint_path(self.path, which)
        if which == "best" and not path.is_file():
            path = checkpoint_path(self.path, "last")
        return path

    def config(self, cls: type[T], overrides: list[str] | None = None) -> T:
        """The run's configuration as ``cls``, with ``section.key=value`` overrides."""
        return load_config(cls, self.config_path, list(overrides or []))


def pretrained_names(package: str) -> list[str]:
    """Names of the runs shipped in ``<package>/pretrained/`` (package data)."""
    from importlib.resources import files

    root = files(package) / "pretrained"
    if not root.is_dir():
        return []
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name) is not None
    )


def is_pretrained(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a shipped run (``pretrained:<name>``)."""
    return os.fspath(spec).startswith(PRETRAINED_PREFIX)


def _pretrained_path(spec: str, package: str, task: str) -> tuple[Path, str]:
    from importlib.resources import files

    name = spec[len(PRETRAINED_PREFIX) :]
    shipped = pretrained_names(package)
    if _NAME.fullmatch(name) is None or name not in shipped:
        listed = ", ".join(shipped) or "none"
        raise ConfigError(
            f"--run {spec}: no pretrained {task} model of that name (a name, never a path); "
            f"shipped: {listed}"
        )
    return Path(str(files(package) / "pretrained" / name)), name


def open_run(spec: str | os.PathLike[str], task: str, package: str) -> Run:
    """Open a run folder (``PATH``) or a shipped run (``pretrained:NAME``) of ``task``.

    Args:
        spec: the ``--run`` value.
        task: the task that must have made it.
        package: the task's package (``particlegraph.tasks.<task>``), for shipped runs.

    Raises:
        ConfigError: an unknown pretrained name (the message lists the shipped ones).
        DataFileError: no run folder there, or a run of another task.
    """
    text = os.fspath(spec)
    name = None
    if is_pretrained(text):
        path, name = _pretrained_path(text, package, task)
    else:
        path = Path(text)
    if not path.is_dir():
        raise DataFileError(f"{path}: no such run folder (run `particlegraph {task} train` first)")
    mark = owner(path) or {}
    made_by = mark.get("command")
    if made_by is not None and made_by != train_command(task):
        raise DataFileError(
            f"{path}: is the output of `particlegraph {made_by}`, not a {task} run "
            f"(give a folder made by `particlegraph {task} train`)"
        )
    if not (path / CONFIG_NAME).is_file():
        raise DataFileError(
            f"{path}: is not a {task} run (no {CONFIG_NAME}); run `particlegraph {task} train` first"
        )
    return Run(path=path, task=task, identity=mark, pretrained=name)


def _trained(path: Path) -> bool:
    return (path / CHECKPOINT_DIR).is_dir() and any((path / CHECKPOINT_DIR).iterdir())


def _made_by_particlegraph(entry: Path) -> bool:
    """A folder particlegraph made: it carries a marker, or holds only such folders."""
    if not entry.is_dir() or entry.is_symlink():
        return False
    if owner(entry) is not None:
        return True
    inside = [e for e in entry.iterdir() if not e.name.startswith(".")]
    return bool(inside) and all(_made_by_particlegraph(e) for e in inside)


def _check_new_run(path: Path, task: str, overwrite: bool) -> None:
    """Refuse a ``--run`` folder that holds anything but an untrained run of ``task``."""
    if not path.exists():
        return
    if not path.is_dir():
        raise ConfigError(f"{path}: is a file, expected a run folder (choose another --run)")
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        return
    mark = owner(path)
    legacy = mark is None and (path / CONFIG_NAME).is_file()
    if mark is None and not legacy and all(_made_by_particlegraph(e) for e in entries):
        return  # only particlegraph's own outputs inside (the demo's data folder): kept, not a run
    if mark is None and not legacy:
        raise ConfigError(
            f"{path}: holds files that particlegraph did not make; it is never replaced, not even "
            "with --overwrite (choose another --run)"
        )
    made_by = mark["command"] if mark is not None else None
    if made_by is not None and not made_by.endswith(" train"):  # a dataset, an evaluation...
        raise ConfigError(
            f"{path}: is the output of `particlegraph {made_by}`, not a {task} run; a train "
            "command never replaces it, not even with --overwrite (choose another --run)"
        )
    if made_by is not None and made_by != train_command(task) and not overwrite:
        raise ConfigError(
            f"{path}: is the output of `particlegraph {made_by}`, not a {task} run (choose another "
            "--run, or pass --overwrite to replace it)"
        )
    if overwrite:
        shutil.rmtree(path)
        return
    if _trained(path):
        raise ConfigError(
            f"{path}: already holds a {task} run; use --resume to continue it, --overwrite to "
            "replace it, or choose another --run"
        )


def create_run(
    path: str | os.PathLike[str],
    task: str,
    cfg: Any,
    *,
    data: dict[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> Run:
    """Create (or, with ``resume``, reopen) the run folder of a ``train`` command.

    Call it after the whole configuration ``cfg`` (a validated config dataclass) and every
    option are checked, and before anything else is written: it is the run's first write.

    Args:
        path: the ``--run`` folder.
        task: the training task.
        cfg: the resolved configuration, written to ``config.yaml``.
        data: identity and detector settings of the training data (stored with the run).
        overwrite: replace an existing run (only a folder particlegraph made).
        resume: continue the run in ``path`` (it must hold a checkpoint of ``task``).

    Raises:
        ConfigError: the folder cannot hold this run (see the module docstring).
    """
    path = Path(path)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other (continue or replace a run)")
    if resume:
        run = open_run(path, task, package="")
        if not checkpoint_path(path, "last").is_file():
            raise ConfigError(f"{path}: no checkpoint to resume (train without --resume first)")
        load_checkpoint(checkpoint_path(path, "last"))  # a damaged or unsafe one: refused unwritten
        old = run.data_settings
        if data is not None and old and old != data:
            check_data(run, data)
    else:
        _check_new_run(path, task, overwrite)
    settings = {"data": data or {}}
    claim(path, train_command(task), settings)
    dump_config(cfg, path / CONFIG_NAME)
    return open_run(path, task, package="")


def check_data(run: Run, data: dict[str, Any], ignore: tuple[str, ...] = ()) -> None:
    """Refuse data whose settings differ from those the run was trained on.

    Only keys recorded on both sides are compared (a run made before the identity was recorded
    passes), except ``ignore`` (settings that change the events but not their kind: seed, count).

    Raises:
        ConfigError: naming the first setting that differs, with both values.
    """
    old = run.data_settings
    data = json.loads(json.dumps(data))  # compared in the form it is stored in
    for key in sorted(set(old) & set(data)):
        if key in ignore or old[key] == data[key]:
            continue
        raise ConfigError(
            f"the data's {key} ({data[key]!r}) differs from the one {run.path} was trained on "
            f"({old[key]!r}); evaluate on data made with the run's settings"
        )


__all__ = [
    "CHECKPOINTS",
    "CONFIG_NAME",
    "OWNER_FILE",
    "PRETRAINED_PREFIX",
    "Run",
    "check_checkpoint",
    "check_data",
    "create_run",
    "is_pretrained",
    "open_run",
    "pretrained_names",
    "train_command",
]
