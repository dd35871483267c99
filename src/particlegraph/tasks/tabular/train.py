"""``tabular train`` (:func:`train`): the classifier trained with the shared loop
:func:`particlegraph.train.loop.fit`.

A run directory holds ``config.yaml`` (:class:`TabularRunConfig`), the loop's checkpoints and
history, ``training_curves.json`` / ``.png`` (loss and accuracy per epoch) and
``taylor_evolution.json`` (Taylor coefficients on validation rows after every epoch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from particlegraph.atomic import write_json
from particlegraph.bounds import check_batch_size
from particlegraph.config import apply_overrides, dump_config, from_dict, load_config, to_dict
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.outputs import Output, guard_outputs
from particlegraph.tasks.tabular.analysis import TaylorTracker, taylor_evolution_from_records
from particlegraph.tasks.tabular.data import OBSERVABLES, read_table
from particlegraph.tasks.tabular.model import ClassifierConfig, MLPClassifier
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint, load_weights
from particlegraph.train.loop import FitConfig, History, fit
from particlegraph.train.run import create_run, open_run
from particlegraph.train.split import train_val_split

CONFIG_NAME = "config.yaml"
#: The package whose ``configs/`` folder ships the named run configs.
PACKAGE = "particlegraph.tasks.tabular"
#: The task's name in run folders and commands.
TASK = "tabular"
#: What a tabular run records about its data (compared by ``explain --data``).
DATA_SETTINGS = {"observables": list(OBSERVABLES)}


def _default_fit() -> FitConfig:
    return FitConfig(
        epochs=30, lr=1e-3, optimizer="adam", weight_decay=0.0, schedule="constant", device="cpu"
    )


@dataclass(frozen=True)
class TabularRunConfig:
    """Everything a tabular training run needs; written to ``run_dir/config.yaml``."""

    data: str = ""  # training data file (.data or .parquet); rows labelled 0/1 are used
    features: tuple[int, ...] = (0, 1, 2)  # observable columns fed to the model (0-based)
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    fit: FitConfig = field(default_factory=_default_fit)
    batch_size: int = 128  # events per optimizer step
    val_fraction: float = 0.25  # share of the training rows held out for validation
    taylor_events: int = 2000  # validation rows for per-epoch Taylor coefficients; 0 = off

    def __post_init__(self) -> None:
        if not self.features or any(not 0 <= f < len(OBSERVABLES) for f in self.features):
            raise ConfigError(f"features must be column indices in 0..2, got {self.features}")
        if len(set(self.features)) != len(self.features):
            raise ConfigError(f"features must not repeat, got {self.features}")
        if self.model.n_inputs != len(self.features):
            raise ConfigError(
                f"model.n_inputs={self.model.n_inputs} does not match {len(self.features)} features"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check_batch_size("batch_size", self.batch_size)
        if self.batch_size < 1 or self.taylor_events < 0:
            raise ConfigError("batch_size must be >= 1 and taylor_events >= 0")

    @property
    def feature_names(self) -> list[str]:
        """Names of the observables the model sees."""
        return [OBSERVABLES[i] for i in self.features]


def make_run_config(
    data: str | Path, features: tuple[int, ...] = (0, 1, 2), **fit_kw: Any
) -> TabularRunConfig:
    """Run config for ``data`` and ``features`` with :class:`FitConfig` fields overridden."""
    return TabularRunConfig(
        data=str(data),
        features=tuple(features),
        model=ClassifierConfig(n_inputs=len(features)),
        fit=dataclasses.replace(_default_fit(), **fit_kw),
    )


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads (restored afterwards; ``None`` = unchanged).

    A 3 x 100 x 1 MLP gains nothing from threads, and on a busy machine two threads per tiny
    matrix product were measured 20x slower than one (80 vs 3.5 ms per step).
    """
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def step_fn(model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """Binary cross-entropy on the logit (the sigmoid output's loss, computed stably) + accuracy."""
    x, y = batch
    logit = model(x)  # (B,)
    loss = F.binary_cross_entropy_with_logits(logit, y)
    acc = ((logit > 0).to(y.dtype) == y).float().mean().item()
    return loss, {"accuracy": acc}


def train_run(
    cfg: TabularRunConfig, run_dir: str | Path, *, resume: bool = False, threads: int | None = 1
) -> tuple[MLPClassifier, History]:
    """Train (or resume) a tabular classifier into ``run_dir``; returns the best model and history.

    ``threads``: intra-op CPU threads during training (see :func:`torch_threads`).
    """
    with torch_threads(threads):
        return _train_run(cfg, Path(run_dir), resume)


def _train_run(cfg: TabularRunConfig, run_dir: Path, resume: bool) -> tuple[MLPClassifier, History]:
    data = read_table(cfg.data)
    x_all, y_all = data.part("train")
    if len(np.unique(y_all)) != 2:
        raise DataFileError(f"{cfg.data}: training rows (labels 0/1) must hold both classes")
    x_all = x_all[:, list(cfg.features)]
    tr, va = train_val_split(len(x_all), cfg.val_fraction, cfg.fit.seed, what="training rows")
    xt = torch.as_tensor(x_all[tr])
    yt = torch.as_tensor(y_all[tr], dtype=torch.float32)
    xv = torch.as_tensor(x_all[va])
    yv = torch.as_tensor(y_all[va], dtype=torch.float32)

    torch.manual_seed(cfg.fit.seed)  # weight initialisation
    model = MLPClassifier(cfg.model)
    model.set_standardization(xt.mean(0), xt.std(0).clamp_min(1e-6))
    gen = torch.Generator().manual_seed(cfg.fit.seed)
    train_loader = DataLoader(
        TensorDataset(xt, yt), batch_size=cfg.batch_size, shuffle=True, generator=gen
    )
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=4096)
    callbacks = []
    if cfg.taylor_events > 0:
        callbacks.append(TaylorTracker(xv[: cfg.taylor_events], cfg.feature_names))

    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / CONFIG_NAME)
    history = fit(
        model,
        train_loader,
        val_loader,
        step_fn,
        cfg.fit,
        run_dir,
        resume=resume,
        epoch_callbacks=callbacks,
    )
    write_training_outputs(run_dir, history, cfg)
    best, _ = load_run(run_dir)
    return best, history


def write_training_outputs(run_dir: Path, history: History, cfg: TabularRunConfig) -> None:
    """``training_curves.{json,png}`` and ``taylor_evolution.json`` from the history."""
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend, save_figure
    from particlegraph.tasks.tabular.plots import plot_metric_curves

    headless_backend()

    recs = history.records
    curves: dict[str, Any] = {
        key: history.column(key)
        for key in ("epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy")
    }
    curves["best_epoch"] = history.best_epoch
    write_json(run_dir / "training_curves.json", curves)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    plot_metric_curves(recs, "loss", ax=a1)
    plot_metric_curves(recs, "accuracy", ax=a2)
    a1.set_ylabel("binary cross-entropy")
    save_figure(fig, run_dir / "training_curves.png", tight=True)
    if cfg.taylor_events > 0:
        evo = taylor_evolution_from_records(recs, cfg.feature_names)
        write_json(run_dir / "taylor_evolution.json", evo)
    write_run_page(run_dir, history, cfg)


#: The files of a tabular run that its page links (those that exist).
RUN_FILES = (
    CONFIG_NAME, "history.json", "history.csv", "training_curves.json", "taylor_evolution.json",
    "checkpoints/best.pt", "checkpoints/last.pt",
)  # fmt: skip


def write_run_page(run_dir: Path, history: History, cfg: TabularRunConfig) -> Path:
    """``RUN/index.html``: the headline numbers of the training, its curves, config and files."""
    from particlegraph.report.html import ReportSection
    from particlegraph.report.run_index import write_run_index

    best = history.best_epoch
    rec = next((r for r in history.records if r.get("epoch") == best), None)
    rec = rec or (history.records[-1] if history.records else {})
    rows: list[list[Any]] = [
        ["epochs", len(history.records)],
        ["best epoch", best],
        ["validation loss (best epoch)", rec.get("val_loss")],
        ["validation accuracy (best epoch)", rec.get("val_accuracy")],
    ]
    curves = ReportSection(
        "Training curves", ["training_curves.png"],
        captions=["Binary cross-entropy (left) and accuracy (right) per epoch, training and "
                  "validation rows."],
    )  # fmt: skip
    return write_run_index(
        run_dir, f"Tabular run: {run_dir.name}", "training", [curves], config=cfg,
        files=RUN_FILES, summary_rows=rows, header=["training", "value"],
    )  # fmt: skip


def load_run(run_dir: str | Path, which: str = "best") -> tuple[MLPClassifier, TabularRunConfig]:
    """The trained classifier (CPU, eval mode) and config of a tabular run directory."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_NAME
    if not cfg_path.is_file():
        raise DataFileError(f"{run_dir} is not a tabular run directory (no {CONFIG_NAME})")
    cfg = load_config(TabularRunConfig, cfg_path)
    model = MLPClassifier(cfg.model)
    load_weights(run_dir, model, which)
    return model, cfg


def train(
    data: str | Path,
    out: str | Path,
    *,
    epochs: int = 30,
    features: tuple[int, ...] = (0, 1, 2),
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    overrides: list[str] | None = None,
    config: str | Path | None = None,
) -> dict[str, Any]:
    """Train a classifier on ``data`` into run folder ``out`` (``--run``); returns a summary.

    The configuration and the data are checked before anything is written; the run folder is
    then made by :func:`particlegraph.train.run.create_run` (an existing run is refused unless
    ``resume``, which continues it, or ``overwrite``, which replaces it).
    With ``resume`` the run's own ``config.yaml`` is used (arguments other than ``out`` ignored).
    ``config`` (a YAML file or a shipped name such as ``"default"``) replaces the keyword
    settings ``epochs``, ``lr``, ``batch_size``, ``seed``, ``device``; ``data`` and ``features``
    always come from the arguments. ``overrides`` are ``key=value`` strings on
    :class:`TabularRunConfig` (e.g. ``model.hidden=[50]``), applied last.
    """
    out = Path(out)
    if resume:
        cfg = open_run(out, TASK, PACKAGE).config(TabularRunConfig, overrides)
    elif config is not None:
        given = [
            f"data={json.dumps(str(data))}",
            f"features={json.dumps(list(features))}",
            f"model.n_inputs={len(features)}",
        ]
        cfg = load_config(TabularRunConfig, config, [*given, *(overrides or [])], package=PACKAGE)
    else:
        cfg = make_run_config(data, tuple(features), epochs=epochs, lr=lr, seed=seed, device=device)
        cfg = from_dict(
            TabularRunConfig,
            apply_overrides(to_dict(cfg), [f"batch_size={batch_size}", *(overrides or [])]),
        )
    guard_outputs("tabular train", [Output(out, "dir", "--run")], [cfg.data], overwrite=overwrite)
    table_rows(cfg.data, "train")  # the data is read and checked before any write
    if resume:  # so is the checkpoint it continues from (a payload is refused unread)
        load_checkpoint(checkpoint_path(out, "last"))
    create_run(out, TASK, cfg, data=DATA_SETTINGS, overwrite=overwrite, resume=resume)
    t0 = time.perf_counter()
    _, history = train_run(cfg, out, resume=resume)
    last = history.records[-1] if history.records else {}
    return {
        "run_dir": str(out),
        "epochs": len(history.records),
        "best_epoch": history.best_epoch,
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "seconds": time.perf_counter() - t0,
    }


def table_rows(data_path: str | Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``part`` rows (``train``: labels 0/1, ``test``: 2/3) of a data file, both classes."""
    data = read_table(data_path)
    x, y = data.part(part)
    labels = "0/1" if part == "train" else "2/3"
    if len(x) == 0:
        raise DataFileError(f"{data_path}: no {part} rows (labels {labels})")
    if len(np.unique(y)) != 2:
        raise DataFileError(f"{data_path}: {part} rows must hold both signal and background")
    return x, y
