"""Training both stages with the shared loop, then choosing the DBSCAN settings on validation.

A run directory holds ``config.yaml`` (:class:`TrackingRunConfig`), ``stage1/`` and ``stage2/``
(the loop's checkpoints and history), ``model.pt`` (final weights), ``run.json`` (event split,
chosen DBSCAN eps / min_samples and their validation scores) and ``index.html`` (its page). Stage 1 is metric learning
(hinge embedding loss on true same-particle pairs, random negatives and hard negatives from the
current embedding's neighbours); stage 2 trains the GNN with the hinge loss on the *loss graph*
(predicted graph plus the true pairs it missed) with stage 1 frozen, as in the exercise.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from particlegraph.atomic import write_json
from particlegraph.bounds import check_batch_size
from particlegraph.config import dump_config, load_config
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.graph.radius import radius_graph
from particlegraph.tasks.tracking.baselines import ClusterConfig, dbscan_labels
from particlegraph.tasks.tracking.dataset import (
    EventLoader,
    HitBatch,
    HitEvent,
    load_events,
    true_pairs,
    vertex_distance,
)
from particlegraph.tasks.tracking.model import ModelConfig, TrackingModel
from particlegraph.tasks.tracking.pipeline import GraphConfig
from particlegraph.tasks.tracking.score import trackml_score
from particlegraph.tasks.tracking.trackml import list_events
from particlegraph.train.checkpoint import save_checkpoint
from particlegraph.train.distributed import unwrap_model
from particlegraph.train.loop import FitConfig, fit

log = logging.getLogger(__name__)
CONFIG_NAME = "config.yaml"


def _fit(epochs: int = 20, lr: float = 1e-3) -> FitConfig:
    return FitConfig(epochs=epochs, lr=lr, optimizer="adam", weight_decay=0.0, schedule="cosine",
                     final_lr_fraction=0.1, grad_clip=1.0, device="cpu", log_every=1)  # fmt: skip


@dataclass(frozen=True)
class StageConfig:
    """One training stage: loop settings and the hinge loss."""

    fit: FitConfig = field(default_factory=_fit)
    margin: float = 1.0  # hinge margin: negatives are pushed beyond this distance
    negative_weight: float = 1.0  # weight of the negative-pair term relative to the positive one
    random_negatives: int = 4  # stage 1: random same-event pairs per hit
    hard_negatives: int = 8  # stage 1: nearest neighbours per hit in the current embedding
    max_positive_pairs: int = 500_000  # positives sampled per batch at most

    def __post_init__(self) -> None:
        if not self.margin > 0 or self.negative_weight < 0:
            raise ConfigError("stage margin must be > 0 and negative_weight >= 0")


@dataclass(frozen=True)
class TrackingRunConfig:
    """Everything a training run of the exercise's pipeline needs; written to ``config.yaml``."""

    pipeline: str = "exercise"  # this config's pipeline (the default one is "layerpair")
    data: str = ""  # folder of TrackML events (event*-hits.csv ...)
    train_events: int = 0  # events used for training; 0 = all except the validation ones
    val_events: int = 2  # events held out (the last ones) to validate and tune DBSCAN
    batch_size: int = 4  # events per optimizer step (the exercise: 4)
    model: ModelConfig = field(default_factory=ModelConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    stage1: StageConfig = field(default_factory=StageConfig)
    stage2: StageConfig = field(default_factory=StageConfig)
    dbscan: ClusterConfig = field(default_factory=ClusterConfig)
    eps_grid: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4)  # DBSCAN eps tried on validation
    min_samples_grid: tuple[int, ...] = (1, 2, 3)
    threads: int = 0  # torch CPU threads (0: keep the default)

    def __post_init__(self) -> None:
        check_batch_size("batch_size", self.batch_size)
        if self.pipeline != "exercise":
            raise ConfigError(f"pipeline must be 'exercise' here, got {self.pipeline!r}")
        if self.val_events < 1 or self.batch_size < 1 or self.train_events < 0:
            raise ConfigError("val_events and batch_size must be >= 1, train_events >= 0")


def load_run_config(
    path: str | Path | None, overrides: list[str] | None = None
) -> TrackingRunConfig:
    """An exercise-pipeline config from a YAML file or a shipped name (exercise, notebook,
    exercise_wide, exercise_demo) + overrides; :func:`.runconfig.load_tracking_config` picks
    the pipeline."""
    return load_config(TrackingRunConfig, path, overrides, package="particlegraph.tasks.tracking")


def _distances(e: Tensor, pairs: Tensor) -> Tensor:
    return torch.sqrt((e[pairs[0]] - e[pairs[1]]).pow(2).sum(-1) + 1e-12)


def hinge_loss(e: Tensor, pairs: Tensor, same: Tensor, margin: float, neg_weight: float) -> Tensor:
    """Mean distance of positive pairs + weight x mean max(0, margin - d) of negative ones."""
    d = _distances(e, pairs)
    zero = e.sum() * 0.0
    pos = d[same].mean() if bool(same.any()) else zero
    neg = F.relu(margin - d[~same]).mean() if bool((~same).any()) else zero
    return pos + neg_weight * neg


def _same(batch: HitBatch, pairs: Tensor) -> Tensor:
    pid = batch.particle_id
    return (pid[pairs[0]] == pid[pairs[1]]) & (pid[pairs[0]] != 0)


def _random_pairs(batch: HitBatch, per_hit: int) -> Tensor:
    """``per_hit`` random partners per hit within its own event, shape (2, N * per_hit)."""
    n = batch.x.shape[0]
    counts = torch.bincount(batch.batch, minlength=batch.num_graphs)
    start = torch.cumsum(counts, 0) - counts
    i = torch.arange(n, device=batch.x.device).repeat(per_hit)
    ev = batch.batch[i]
    j = start[ev] + (torch.rand(i.shape[0], device=i.device) * counts[ev]).long()
    return torch.stack([i, j])


def stage1_step(cfg: StageConfig) -> Any:
    """Step function of stage 1 for :func:`~particlegraph.train.loop.fit`."""

    def step(model: nn.Module, batch: HitBatch) -> tuple[Tensor, dict[str, float]]:
        m: Any = unwrap_model(model)
        e = m.embed(batch.x)
        pos = batch.true
        assert pos is not None
        if pos.shape[1] > cfg.max_positive_pairs:
            pos = pos[:, torch.randperm(pos.shape[1], device=pos.device)[: cfg.max_positive_pairs]]
        parts = [pos, _random_pairs(batch, cfg.random_negatives)]
        if cfg.hard_negatives > 0:
            hard = radius_graph(e, cfg.margin, cfg.hard_negatives, batch.batch)
            parts.append(hard.to(e.device))
        pairs = torch.cat(parts, dim=1)
        pairs = pairs[:, pairs[0] != pairs[1]]
        same = _same(batch, pairs)
        loss = hinge_loss(e, pairs, same, cfg.margin, cfg.negative_weight)
        return loss, {"positive_fraction": float(same.float().mean())}

    return step


def stage2_step(cfg: StageConfig) -> Any:
    """Step function of stage 2: hinge loss on the loss graph (predicted graph + truth graph)
    plus ``random_negatives`` random pairs per hit."""

    def step(model: nn.Module, batch: HitBatch) -> tuple[Tensor, dict[str, float]]:
        assert batch.edge_index is not None and batch.true is not None
        e = model(batch.x, batch.edge_index)
        # random negatives keep unrelated hits apart, which the local graph alone cannot
        rand = _random_pairs(batch, cfg.random_negatives)
        pairs = torch.cat([batch.edge_index, batch.true, rand], dim=1)
        pairs = pairs[:, pairs[0] != pairs[1]]
        same = _same(batch, pairs)
        loss = hinge_loss(e, pairs, same, cfg.margin, cfg.negative_weight)
        with torch.no_grad():
            d = _distances(e, batch.edge_index)
            s = _same(batch, batch.edge_index)
            near = d < cfg.margin / 2
            purity = float((near & s).sum()) / max(int(near.sum()), 1)
        return loss, {"edge_purity_after": purity}

    return step


@torch.no_grad()
def predicted_graphs(
    model: TrackingModel, events: list[HitEvent], graph: GraphConfig
) -> list[Tensor]:
    """The stage-1 graph of each event (2, E_i)."""
    model.eval()
    return [radius_graph(model.embed(ev.x), graph.radius, graph.k) for ev in events]


def graph_quality(graphs: list[Tensor], events: list[HitEvent]) -> dict[str, float]:
    """Edge efficiency (truth-graph pairs present, either direction) and purity (same particle)."""
    found = true_total = pure = edges = 0
    for g, ev in zip(graphs, events, strict=True):
        pid = ev.particle_id
        same = (pid[g[0]] == pid[g[1]]) & (pid[g[0]] != 0)
        pure += int(same.sum())
        edges += g.shape[1]
        n = ev.num_hits
        truth = true_pairs(pid, vertex_distance(ev))
        tkey = torch.minimum(truth[0], truth[1]) * n + torch.maximum(truth[0], truth[1])
        gkey = torch.minimum(g[0], g[1]) * n + torch.maximum(g[0], g[1])
        found += int(torch.isin(tkey, gkey).sum())
        true_total += truth.shape[1]
    return {
        "edge_efficiency": found / max(true_total, 1),
        "edge_purity": pure / max(edges, 1),
        "edges_per_hit": edges / max(sum(e.num_hits for e in events), 1),
    }


def split_events(cfg: TrackingRunConfig) -> tuple[list[int], list[int]]:
    """(train ids, validation ids): the last ``val_events`` events validate."""
    ids = list_events(cfg.data)
    if len(ids) <= cfg.val_events:
        raise DataFileError(
            f"{cfg.data}: {len(ids)} events; need more than val_events={cfg.val_events}"
        )
    train, val = ids[: -cfg.val_events], ids[-cfg.val_events :]
    if cfg.train_events:
        train = train[: cfg.train_events]
    return train, val


def tune_dbscan(
    points: list[np.ndarray],
    events: list[HitEvent],
    eps_grid: tuple[float, ...],
    ms_grid: tuple[int, ...],
) -> tuple[ClusterConfig, list[dict[str, float]]]:
    """The (eps, min_samples) with the best mean TrackML score on ``events``; and all scores."""
    table = []
    best, best_score = ClusterConfig(), -1.0
    for eps in eps_grid:
        for ms in ms_grid:
            c = ClusterConfig(eps=float(eps), min_samples=int(ms))
            s = float(np.mean([
                trackml_score(ev.particle_id.numpy(), ev.weight.numpy(), dbscan_labels(p, c))
                for p, ev in zip(points, events, strict=True)
            ]))  # fmt: skip
            table.append({"eps": float(eps), "min_samples": int(ms), "score": s})
            if s > best_score:
                best, best_score = c, s
    return best, table


def train_run(
    cfg: TrackingRunConfig, run_dir: str | Path, *, resume: bool = False
) -> dict[str, Any]:
    """Train both stages into ``run_dir`` and tune DBSCAN; returns the content of ``run.json``."""
    run_dir = Path(run_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    train_ids, val_ids = split_events(cfg)
    train, val = load_events(cfg.data, train_ids), load_events(cfg.data, val_ids)
    torch.manual_seed(cfg.stage1.fit.seed)
    model = TrackingModel(cfg.model)
    x_all = torch.cat([e.x for e in train])
    model.set_standardization(x_all.mean(0), x_all.std(0))
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / CONFIG_NAME)

    def freeze(stage: int) -> None:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in model.stage_parameters(stage):
            p.requires_grad_(True)

    freeze(1)
    loader = EventLoader(train, cfg.batch_size, shuffle=True, seed=cfg.stage1.fit.seed)
    val_loader = EventLoader(val, cfg.batch_size)

    def stage1_quality(epoch: int, m: nn.Module) -> dict[str, float]:
        q = graph_quality(predicted_graphs(m, val, cfg.graph), val)  # type: ignore[arg-type]
        return {f"val_{k}": v for k, v in q.items()}

    h1 = fit(model, loader, val_loader, stage1_step(cfg.stage1), cfg.stage1.fit, run_dir / "stage1",
             resume=resume, epoch_callbacks=[stage1_quality])  # fmt: skip
    _load_best(model, run_dir / "stage1")
    freeze(2)
    g_train = predicted_graphs(model, train, cfg.graph)
    g_val = predicted_graphs(model, val, cfg.graph)
    loader2 = EventLoader(
        train, cfg.batch_size, shuffle=True, seed=cfg.stage2.fit.seed, graphs=g_train
    )
    val2 = EventLoader(val, cfg.batch_size, graphs=g_val)
    h2 = fit(
        model,
        loader2,
        val2,
        stage2_step(cfg.stage2),
        cfg.stage2.fit,
        run_dir / "stage2",
        resume=resume,
    )
    _load_best(model, run_dir / "stage2")
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    with torch.no_grad():
        points = [model(ev.x, g).double().numpy() for ev, g in zip(val, g_val, strict=True)]
    best, table = tune_dbscan(points, val, cfg.eps_grid, cfg.min_samples_grid)
    save_checkpoint(run_dir / "model.pt", {"model": model.state_dict()})
    info = {
        "pipeline": "exercise",
        "train_events": train_ids,
        "val_events": val_ids,
        "dbscan": dataclasses.asdict(best),
        "dbscan_scan": table,
        "val_graph": graph_quality(g_val, val),
        "stage1_best_epoch": h1.best_epoch,
        "stage2_best_epoch": h2.best_epoch,
    }
    write_json(run_dir / "run.json", info)
    return info


def train(cfg: Any, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """Train the pipeline of ``cfg`` into ``run_dir`` and write the run's ``index.html``.

    ``cfg``: a :class:`TrackingRunConfig` (the exercise's pipeline, :func:`train_run`) or a
    :class:`~particlegraph.tasks.tracking.learned.LayerPairRunConfig` (the default pipeline,
    :func:`~particlegraph.tasks.tracking.learned.train_layerpair`), as
    :func:`~particlegraph.tasks.tracking.runconfig.load_tracking_config` gives it. Returns the
    content of ``run.json``.
    """
    from particlegraph.tasks.tracking.learned import LayerPairRunConfig, train_layerpair
    from particlegraph.tasks.tracking.report import write_run_page

    if isinstance(cfg, LayerPairRunConfig):
        info = train_layerpair(cfg, run_dir, resume=resume)
    else:
        info = train_run(cfg, run_dir, resume=resume)
    write_run_page(run_dir)
    return info


def _load_best(model: TrackingModel, stage_dir: Path) -> None:
    from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint

    path = checkpoint_path(stage_dir, "best")
    if not path.is_file():
        path = checkpoint_path(stage_dir, "last")
    model.load_state_dict(load_checkpoint(path)["model"])


def load_run(run_dir: str | Path) -> tuple[TrackingModel, TrackingRunConfig, ClusterConfig]:
    """The trained model (eval mode), its config and the tuned DBSCAN settings of a run.

    ``run_dir`` is a ``PATH`` or ``pretrained:NAME`` (opened with
    :func:`particlegraph.train.run.open_run`: runs of another task are refused).
    """
    from particlegraph.train.checkpoint import load_checkpoint
    from particlegraph.train.run import open_run

    run_dir = open_run(run_dir, "tracking", "particlegraph.tasks.tracking").path
    for name in (CONFIG_NAME, "model.pt", "run.json"):
        if not (run_dir / name).is_file():
            raise DataFileError(
                f"{run_dir} is not a finished tracking run (no {name}); run 'particlegraph tracking train' first"
            )
    cfg = load_config(TrackingRunConfig, run_dir / CONFIG_NAME)
    model = TrackingModel(cfg.model)
    model.load_state_dict(load_checkpoint(run_dir / "model.pt")["model"])
    model.eval()
    info = json.loads((run_dir / "run.json").read_text())
    return model, cfg, ClusterConfig(**info["dbscan"])
