"""``anomaly train`` (:func:`train`): an anomaly model trained on background graphs with the engine's loop (:func:`particlegraph.train.loop.fit`).

A run directory holds ``config.yaml`` (:class:`AnomalyRunConfig`), ``preprocessing.json``, the
loop's ``checkpoints/{last,best}.pt`` and ``history.{json,csv}``, and ``calibration.json``
(background reference of the scores on the validation graphs, used by the remedy scores).
Training events are ``first_event .. first_event + max_events - 1`` of the background sample,
split at random (seeded) into training and validation graphs; evaluate on later events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from particlegraph.atomic import write_json
from particlegraph.bounds import check_batch_size
from particlegraph.config import load_config
from particlegraph.errors import ConfigError
from particlegraph.tasks.anomaly.graphs import Preprocessing, build_graphs
from particlegraph.tasks.anomaly.models import AnomalyModel, ModelConfig, build_model
from particlegraph.tasks.anomaly.samples import read_candidates, take_events
from particlegraph.tasks.anomaly.scores import Calibration, score_graphs
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint
from particlegraph.train.loop import FitConfig, History, fit
from particlegraph.train.split import train_val_split

CONFIG_NAME = "config.yaml"


def _default_fit() -> FitConfig:
    # the exercise: Adam, lr 1e-3, 10 epochs, no weight decay, constant rate
    return FitConfig(
        epochs=10, lr=1e-3, optimizer="adam", weight_decay=0.0, schedule="constant", device="cpu"
    )


@dataclass(frozen=True)
class AnomalyRunConfig:
    """Everything a training run needs; written to ``run_dir/config.yaml``."""

    data: str = ""  # background sample folder (or one .parquet file, or an exercise .pt file)
    first_event: int = 0  # first event of the sample used for training + validation
    max_events: int = 2000  # events used for training + validation
    val_fraction: float = 0.2  # share held out (validation loss, best checkpoint, calibration)
    batch_size: int = 32  # graphs per optimizer step (the exercise: 32)
    threads: int = 1  # torch CPU threads (tiny graphs gain nothing from more)
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=_default_fit)

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        check_batch_size("batch_size", self.batch_size)
        if self.batch_size < 1 or self.max_events < 2 or self.first_event < 0 or self.threads < 1:
            raise ConfigError("batch_size >= 1, max_events >= 2, first_event >= 0, threads >= 1")


def load_graphs(
    path: str | Path, model: ModelConfig, start: int = 0, stop: int | None = None, label: int = 0
) -> list[Data]:
    """Graphs of events ``start .. stop-1`` of a sample (Parquet folder/file) or an exercise ``.pt``."""
    p = Path(path)
    if p.suffix == ".pt":
        from particlegraph.tasks.anomaly.formats import read_pt_graphs

        if model.frame != "lab":
            raise ConfigError(f"{p}: exercise .pt graphs support model.frame=lab only")
        return read_pt_graphs(p, k=model.k, symmetric=model.use_symmetric)[start:stop]
    c = read_candidates(p, max_events=stop)
    c = take_events(c, start, stop)
    return build_graphs(
        c,
        k=model.k,
        symmetric=model.use_symmetric,
        label=label,
        lowest=model.select == "lowest",
        frame=model.frame,
    )


def step_fn(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The model's own training loss (GAE: recon_loss with in-graph negatives; node-ae: MSE)."""
    m: Any = model.module if hasattr(model, "module") else model
    return m.loss(batch.x, batch.edge_index, batch.batch), {}


TASK, PACKAGE = "anomaly", "particlegraph.tasks.anomaly"


def data_identity(path: str | Path) -> dict[str, Any]:
    """What identifies the training data (stored with the run): sample, process, trigger, pile-up."""
    p = Path(path)
    if p.suffix == ".pt":
        return {"format": "exercise .pt"}
    from particlegraph.tasks.anomaly.samples import read_metadata, sample_files

    meta = read_metadata(sample_files(p)[0])
    return {k: meta.get(k) for k in ("sample", "process", "ht_min", "pileup", "keep")}


def train(
    cfg: AnomalyRunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> tuple[AnomalyModel, History]:
    """Train (or resume) into ``run_dir``; returns the best model (eval mode) and the history.

    The run folder is made by :func:`particlegraph.train.run.create_run` (refuses a folder that is
    not an anomaly run, and a finished run unless ``resume`` or ``overwrite``); ``resume`` on a
    folder without a checkpoint starts the run.
    """
    from particlegraph.train.run import create_run

    run_dir = Path(run_dir)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        graphs = load_graphs(cfg.data, cfg.model, cfg.first_event, cfg.first_event + cfg.max_events)
        graphs = [g for g in graphs if g.num_nodes > 1]
        tr, va = train_val_split(len(graphs), cfg.val_fraction, cfg.fit.seed, what="graphs")
        train_g, val_g = [graphs[i] for i in tr], [graphs[i] for i in va]
        prep = Preprocessing.fit(torch.cat([g.x for g in train_g]))
        torch.manual_seed(cfg.fit.seed)  # weight initialisation
        model = build_model(cfg.model, prep)
        gen = torch.Generator().manual_seed(cfg.fit.seed)
        train_loader = DataLoader(train_g, batch_size=cfg.batch_size, shuffle=True, generator=gen)
        val_loader = DataLoader(val_g, batch_size=256)
        can_resume = resume and checkpoint_path(run_dir, "last").is_file()
        create_run(run_dir, TASK, cfg, data=data_identity(cfg.data), overwrite=overwrite,
                   resume=can_resume)  # fmt: skip
        write_json(run_dir / "preprocessing.json", prep.__dict__)
        history = fit(model, train_loader, val_loader, step_fn, cfg.fit, run_dir, resume=resume)
        best, _, _ = load_run(run_dir, calibrated=False)
        write_json(run_dir / "calibration.json", calibrate(best, val_g).to_dict())
        from particlegraph.tasks.anomaly.report import write_training_page

        write_training_page(run_dir, cfg, history.records)
    finally:
        torch.set_num_threads(old_threads)
    return best, history


def calibrate(model: AnomalyModel, graphs: list[Data]) -> Calibration:
    """Background reference of the scores on held-out background ``graphs``."""
    s = score_graphs(model, graphs)
    summary = s.latent_summary if s.latent_summary is not None else np.zeros((len(graphs), 1))
    return Calibration.fit(s.columns["recon"], summary)


def load_run(
    run_dir: str | Path, which: str = "best", calibrated: bool = True
) -> tuple[AnomalyModel, AnomalyRunConfig, Calibration | None]:
    """The trained model (CPU, eval mode), its config and its calibration (None if absent)."""
    from particlegraph.train.run import open_run

    run_dir = open_run(run_dir, TASK, PACKAGE).path
    cfg_path = run_dir / CONFIG_NAME
    cfg = load_config(AnomalyRunConfig, cfg_path)
    path = checkpoint_path(run_dir, which)
    if which == "best" and not path.is_file():
        path = checkpoint_path(run_dir, "last")
    model = build_model(cfg.model)
    model.load_state_dict(load_checkpoint(path, map_location="cpu")["model"])
    model.eval()
    cal = None
    cal_path = run_dir / "calibration.json"
    if calibrated and cal_path.is_file():
        cal = Calibration.from_dict(json.loads(cal_path.read_text()))
    return model, cfg, cal


def make_run_config(
    model: str,
    data: str | Path,
    overrides: list[str] | None = None,
    config: str | Path | None = None,
) -> AnomalyRunConfig:
    """Run config from the packaged ``configs/<model>.yaml`` (or ``config``) + ``key=value`` overrides."""
    from particlegraph.config import apply_overrides, from_dict
    from particlegraph.tasks.anomaly.configs import read_config
    from particlegraph.tasks.anomaly.models import MODEL_NAMES

    if config is None and model not in MODEL_NAMES:
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    raw = read_config(config if config is not None else model)
    raw = apply_overrides(raw, [f"data={data}", *(overrides or [])])
    return from_dict(AnomalyRunConfig, raw, where=str(config or f"configs/{model}.yaml"))
