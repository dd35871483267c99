"""MLPF training: run config (model + fit + loss + data) and :func:`train`.

``train`` is what ``particlegraph mlpf train`` calls. It resolves the config, splits the
dataset's shards into training and validation files, estimates class weights, writes the
resolved config to ``run_dir/config.yaml`` and hands the rest to the generic loop
(:func:`particlegraph.train.loop.fit`). Under ``torchrun`` every rank reads its own shards and
the model is wrapped in DistributedDataParallel; ``data.batch_size`` is per rank, so the global
batch is ``batch_size * world_size`` events.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from importlib.resources.abc import Traversable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_geometric.loader import DataLoader

from particlegraph.bounds import check_batch_size
from particlegraph.config import from_dict, load_config
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.sim import elements as schema
from particlegraph.tasks.mlpf.dataset import MLPFDataset, make_loader, split_files
from particlegraph.tasks.mlpf.loss import (
    LossConfig,
    class_weights_from_counts,
    count_classes,
    mlpf_loss,
)
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig, encode_targets
from particlegraph.tasks.mlpf.store import read_any, resolve_files
from particlegraph.train import distributed as D
from particlegraph.train import run as run_module
from particlegraph.train.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    load_weights,
    seed_everything,
)
from particlegraph.train.loop import FitConfig, History, StepFn, fit

#: The package whose ``configs/`` folder ships the named run configs.
PACKAGE = "particlegraph.tasks.mlpf"
CONFIG_NAME = "config.yaml"


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section: how events are fed to training."""

    batch_size: int = 4  # events per optimizer step and rank (global batch = this * world size)
    val_fraction: float = 0.1  # fraction of the shards (files) kept for validation
    num_workers: int = 0  # DataLoader worker processes per rank
    shuffle_files: bool = True  # reshuffle the shard order every epoch (seeded)
    max_train_events: int | None = None  # cap per rank and epoch (None: all)
    max_val_events: int | None = None  # cap per rank for validation (None: all)
    class_weight_files: int = 4  # training shards read to estimate "auto" class weights
    operating_point_events: int = 200  # validation events for the class offsets (0: plain arg-max)

    def __post_init__(self) -> None:
        check_batch_size("data.batch_size", self.batch_size)
        if (
            self.batch_size < 1
            or self.num_workers < 0
            or self.class_weight_files < 1
            or self.operating_point_events < 0
        ):
            raise ConfigError(
                "data.batch_size and data.class_weight_files must be >= 1, num_workers and "
                "operating_point_events >= 0"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class MLPFRunConfig:
    """Everything that defines an MLPF training run (``configs/mlpf/*.yaml``)."""

    model: MLPFConfig = field(default_factory=MLPFConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    #: A finished MLPF run (folder or ``pretrained:NAME``) whose best weights start this run
    #: (fine-tuning); its ``model:`` section must equal this one's. "" = random initial weights.
    init_from: str = ""


def load_run_config(run_dir: str | Path) -> MLPFRunConfig:
    """The resolved config saved in ``run_dir/config.yaml``."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise DataFileError(f"{path} does not exist; is {run_dir} an MLPF run directory?")
    return load_config(MLPFRunConfig, path)


def build_model(cfg: MLPFRunConfig) -> MLPF:
    """A fresh :class:`MLPF` for the model section of ``cfg``."""
    return MLPF(cfg.model)


def resolve_class_weights(cfg: LossConfig, files: Sequence[Path], num_files: int) -> LossConfig:
    """Fill ``cfg.class_weights`` for ``class_weighting: auto`` from the first ``num_files`` files.

    Already filled weights (a resolved config, e.g. on resume) are kept unchanged.
    """
    if cfg.class_weighting != "auto" or cfg.class_weights:
        return cfg
    counts = count_classes(ev for f in files[:num_files] for ev in read_any(f))
    weights = class_weights_from_counts(counts, cfg.auto_weight_power)
    return replace(cfg, class_weights=tuple(round(float(w), 6) for w in weights))


def class_weight_tensor(cfg: LossConfig) -> Tensor | None:
    """The class weights of ``cfg`` as a (6,) tensor, or None when unweighted."""
    if cfg.class_weighting == "none" or not cfg.class_weights:
        return None
    return torch.tensor(cfg.class_weights, dtype=torch.float32)


def make_step(cfg: LossConfig, tower_reference: str = "energy") -> StepFn:
    """``step_fn(model, batch)`` for :func:`fit`: MLPF forward + :func:`mlpf_loss`, the targets
    encoded relative to the model's ``tower_reference`` (:attr:`MLPFConfig.tower_reference`)."""
    weights = class_weight_tensor(cfg)

    def step(model: nn.Module, batch: object) -> tuple[Tensor, dict[str, float]]:
        x, ygen, index = batch.x, batch.ygen, batch.batch  # type: ignore[attr-defined]
        out = model(x, index)
        targets = encode_targets(x, ygen, index, tower_reference)
        world = D.dist_info().world_size
        return mlpf_loss(
            out.logits,
            out.charge_logits,
            out.regression,
            (targets.cls, targets.charge, targets.regression, targets.has_particle),
            cfg,
            weights,
            gen_pt_energy=(ygen[:, schema.Y_PT], ygen[:, schema.Y_ENERGY]),
            element_energy=x[:, 5],
            reduce_fn=D.all_reduce_sum if D.is_distributed() else None,
            scale=float(world),
        )

    return step


def resolve_run_config(
    config_path: str | Path | Traversable | None,
    run_dir: Path,
    overrides: Sequence[str],
    resume: bool,
) -> MLPFRunConfig:
    """The config of a run: ``run_dir/config.yaml`` when resuming, else the file + overrides."""
    saved = run_dir / CONFIG_NAME
    if resume and saved.is_file():
        return load_config(MLPFRunConfig, saved, list(overrides))
    if config_path is None:
        return load_config(MLPFRunConfig, None, list(overrides))
    return load_config(MLPFRunConfig, config_path, list(overrides), package=PACKAGE)


def train(
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    config_path: str | Path | Traversable | None,
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    resume: bool = False,
    overwrite: bool = False,
) -> History:
    """Train MLPF on the shards in ``data``; write config, history and checkpoints to ``run_dir``.

    Args:
        data: dataset directory (``*.parquet`` / ``*.pkl.bz2``) or a list of shard files.
        config_path: YAML run config, or the name of a shipped one (``demo``, ``small``,
            ``paper``, in ``particlegraph/tasks/mlpf/configs/``); None = built-in defaults.
            Ignored when resuming a run that has a ``config.yaml`` (overrides still apply,
            e.g. ``fit.epochs=20`` to train longer).
        run_dir: the run directory (created).
        overrides: ``section.key=value`` strings, e.g. ``("model.hidden=32", "fit.lr=3e-4")``.
        resume: continue from ``run_dir/checkpoints/last.pt``.
        overwrite: replace an existing MLPF run in ``run_dir`` (never a folder particlegraph did
            not make; see :func:`particlegraph.train.run.create_run`).

    Returns:
        The run's :class:`History` (also in ``run_dir/history.json``).
    """
    run_dir = Path(run_dir)
    if resume and not checkpoint_path(run_dir, "last").is_file():
        raise ConfigError(f"{run_dir}: no checkpoint to resume (train without --resume first)")
    if resume:  # a damaged checkpoint fails here, before config.yaml is rewritten
        load_checkpoint(checkpoint_path(run_dir, "last"))
    cfg = resolve_run_config(config_path, run_dir, overrides, resume)
    info, _device = D.init_distributed(cfg.fit.device)

    files = resolve_files(data)
    if not files:
        raise DataFileError(f"no event files (*.parquet, *.pkl.bz2) found in {data}")
    train_files, val_files = split_files(files, cfg.data.val_fraction)
    if len(train_files) < info.world_size:
        raise ConfigError(
            f"{len(train_files)} training file(s) cannot feed {info.world_size} ranks; each rank "
            "reads whole files, so write more, smaller shards (events_per_file) or use fewer ranks"
        )
    init_source = init_from_source(cfg) if cfg.init_from and not resume else None
    loss_cfg = resolve_class_weights(cfg.loss, train_files, cfg.data.class_weight_files)
    cfg = replace(cfg, loss=loss_cfg)
    if info.is_main:  # the run's first write, after every check (refuses foreign folders)
        run_module.create_run(
            run_dir, "mlpf", cfg, data=data_identity(train_files[0]), overwrite=overwrite,
            resume=resume,
        )  # fmt: skip

    dc = cfg.data
    train_loader, val_loader = _loaders(cfg, train_files, val_files, info.rank, info.world_size)
    seed_everything(cfg.fit.seed)  # same initial weights on every rank and in every fresh run
    model = build_model(cfg)
    if init_source is not None:  # on resume the checkpoint holds the weights
        load_weights(init_source, model, "best")
        model.train()
    history = fit(
        model,
        train_loader,
        val_loader,
        make_step(cfg.loss, cfg.model.tower_reference),
        cfg.fit,
        run_dir,
        resume=resume,
    )
    if info.is_main and val_files and dc.operating_point_events > 0:
        from particlegraph.tasks.mlpf.operating_point import select_operating_point

        best = load_weights(run_dir, build_model(cfg), "best")
        select_operating_point(best, val_files, run_dir, max_events=dc.operating_point_events)
    return history


def _loaders(
    cfg: MLPFRunConfig, train_files: list[Path], val_files: list[Path], rank: int, world: int
) -> tuple[DataLoader, DataLoader | None]:
    """This rank's training loader and validation loader (None without validation files)."""
    dc = cfg.data
    train_ds = MLPFDataset(
        train_files, rank, world, dc.shuffle_files, cfg.fit.seed, dc.max_train_events
    )
    train_loader = make_loader(train_ds, dc.batch_size, dc.num_workers)
    if not val_files:
        return train_loader, None
    val_ds = MLPFDataset(val_files, rank, world, False, 0, dc.max_val_events)
    return train_loader, make_loader(val_ds, dc.batch_size, dc.num_workers)


def init_from_source(cfg: MLPFRunConfig) -> Path:
    """The folder of the run ``cfg.init_from`` whose best weights start a run, checked to fit.

    The model sections must be equal except for ``tower_reference``: the weights fit either way,
    and the regression head is kept, because its corrections keep their meaning for tracks and for
    towers without linked tracks (most elements); only linked towers start from a shifted
    reference.

    Raises:
        ConfigError: that run's ``model:`` section differs from ``cfg.model`` (the weights would
            not fit, or would mean something else).
        DataFileError: it is not a finished MLPF run.
    """
    source = resolve_run_dir(cfg.init_from)
    other = load_run_config(source)
    if replace(other.model, tower_reference=cfg.model.tower_reference) != cfg.model:
        raise ConfigError(
            f"init_from: {cfg.init_from} was trained with a different model section "
            f"({other.model}); use the same model settings to start from its weights"
        )
    return source


def data_identity(path: str | Path) -> dict[str, object]:
    """What a run records of its training data: the detector the events were simulated with.

    ``{}`` for files without generation settings (public Delphes files): nothing to compare.
    """
    from particlegraph.tasks.mlpf.generate import read_settings

    settings = read_settings(path)
    return {"detector": settings["detector"]} if "detector" in settings else {}


def run_config_from_dict(data: dict[str, object]) -> MLPFRunConfig:
    """Build a run config from a nested dict (for tests and notebooks)."""
    return from_dict(MLPFRunConfig, data, where="MLPFRunConfig")


def pretrained_names() -> list[str]:
    """Names of the shipped pretrained runs."""
    return run_module.pretrained_names(PACKAGE)


def resolve_run_dir(run: str | os.PathLike[str]) -> Path:
    """The directory holding a run: ``run`` itself, or the package folder of ``pretrained:<name>``.

    Raises:
        ConfigError: an unknown pretrained name, or one that is a path (the message lists the
            shipped ones).
    """
    if not run_module.is_pretrained(run):
        return Path(run)
    return run_module.open_run(run, "mlpf", PACKAGE).path


def run_output_dir(run: str | os.PathLike[str]) -> Path:
    """Where evaluate/explain write for ``run``: the run itself, ``runs/pretrained_<name>`` for a
    shipped model (the package folder is not the user's to write into)."""
    if not run_module.is_pretrained(run):
        return Path(run)
    return run_module.open_run(run, "mlpf", PACKAGE).output_dir


def load_model(
    run_dir: str | os.PathLike[str], which: str = "best"
) -> tuple[nn.Module, MLPFRunConfig]:
    """The trained MLPF model (CPU, eval mode) of a run directory and its resolved run config.

    Reads ``run_dir/config.yaml`` and the weights of ``checkpoints/<which>.pt`` (``best`` falls
    back to ``last``). ``run_dir = "pretrained:<name>"`` loads a shipped model.

    Raises:
        DataFileError: the run directory has no config or no checkpoint.
    """
    path = resolve_run_dir(run_dir)
    cfg = load_run_config(path)
    return load_weights(path, build_model(cfg), which), cfg
