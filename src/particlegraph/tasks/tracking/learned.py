"""The default tracking pipeline: layer-pair graph -> (filter) -> interaction network -> tracks.

A run directory holds ``config.yaml`` (:class:`LayerPairRunConfig`), ``module_map.json`` (the
layer-pair map learned from the training events' truth), ``filter/`` and ``gnn/`` (the training
loop's checkpoints and history), ``model.pt`` and ``run.json`` (event split, filter cut, the
building threshold and mode chosen on validation events by the TrackML score, validation scan).

Training: the map is learned; every training event becomes a PyG ``Data`` on its graph; events
with more than ``max_edges`` edges are split into overlapping phi sectors (:func:`.graphs.sectors`)
so that a step fits the CPU. With a filter, the filter MLP is trained first (weighted BCE), its
cut is set to keep ``filter_efficiency`` of the true validation edges, and the interaction
network trains on the edges it keeps. The loss is binary cross-entropy with true edges weighted
``pos_weight``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from particlegraph.atomic import write_json
from particlegraph.config import dump_config, load_config
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.tasks.tracking.build import MODES, BuildConfig, build_tracks
from particlegraph.tasks.tracking.dataset import HitEvent, load_events
from particlegraph.tasks.tracking.edge_model import EdgeClassifier, EdgeModelConfig
from particlegraph.tasks.tracking.extend import FREE_FOLLOWER
from particlegraph.tasks.tracking.graphs import event_data, sectors, truth_sample
from particlegraph.tasks.tracking.module_map import LayerPairMap, learn_map
from particlegraph.tasks.tracking.score import trackml_score
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from particlegraph.train.distributed import unwrap_model
from particlegraph.train.loop import FitConfig, fit
from particlegraph.train.run import open_run

log = logging.getLogger(__name__)

#: Most edges in one training step (``max_edges``, ``filter_max_edges``): an event is split into
#: phi sectors of at most this many edges. 50 million is 250 times the filter's default (200,000)
#: and far above the 3000 of the interaction network, so no setting a CPU or one GPU can train is
#: refused; at that size one latent tensor of the network (width 32, float32) already takes
#: 6.4 GB, and 2e9 edges would exhaust the memory before the first step.
MAX_EDGES_PER_STEP = 50_000_000
#: The package of shipped runs (``--run pretrained:NAME``).
TRACKING_PACKAGE = "particlegraph.tasks.tracking"
CONFIG_NAME, MAP_NAME = "config.yaml", "module_map.json"
#: What the classifier learns as a true edge: ``"consecutive"`` hits of a particle (the truth
#: graph), or any two hits of the same ``"particle"`` that the map connects (skip edges over a
#: hole or an overlap hit included; Exa.TrkX's "pid truth"). With ``"particle"`` a track is held
#: together by several paths, so connected components survive a lost edge: on 4 validation
#: events at mu = 0, dropping 5 % of the true edges at random lowers the components' score from
#: 0.997 to 0.82-0.87 with consecutive truth and to 0.990-0.997 with particle truth.
EDGE_TARGETS = ("consecutive", "particle")


@dataclass(frozen=True)
class MapConfig:
    """How the layer-pair map is learned (see :func:`.module_map.learn_map`)."""

    quantile: float = 0.001
    margin: float = 0.1
    min_count: int = 3
    pt_min: float = 0.0  # learn the windows on true edges of particles above this pT [GeV]
    z0_half_width_min: float = 0.0  # widen every z0 window to at least +- this [mm]
    z_shift: float = 0.0  # learn the windows also on the events moved by -+ this along z [mm]


def _fit() -> FitConfig:
    return FitConfig(epochs=10, lr=2e-3, optimizer="adam", weight_decay=0.0, schedule="cosine",
                     final_lr_fraction=0.05, grad_clip=1.0, device="cpu", log_every=5)  # fmt: skip


@dataclass(frozen=True)
class LayerPairRunConfig:
    """Everything a run of the default pipeline needs; written to ``run_dir/config.yaml``."""

    pipeline: str = "layerpair"
    data: str = ""  # folder of TrackML events
    train_events: int = 0  # 0: all except the validation events
    val_events: int = 2  # the last events validate (threshold, filter cut, mode)
    map: MapConfig = field(default_factory=MapConfig)
    model: EdgeModelConfig = field(default_factory=EdgeModelConfig)
    fit: FitConfig = field(default_factory=_fit)
    filter_fit: FitConfig = field(default_factory=_fit)
    filter_efficiency: float = 0.995  # share of true validation edges the filter keeps
    pos_weight: float = 2.0  # weight of true edges in the BCE
    max_edges: int = 3000  # edges per training step; bigger events are split into phi sectors
    filter_max_edges: int = 200_000  # the same for the filter
    sector_overlap: float = 0.25  # fraction of a sector's width added on both sides
    thresholds: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    modes: tuple[str, ...] = MODES
    threads: int = 0  # torch CPU threads (0: keep the default)
    init_from: str = ""  # a finished run whose weights start this one (fine-tuning at pile-up)
    z_shift: float = 0.0  # training augmentation: all hits of a step shifted in z by U(-a, a) [mm]
    edge_target: str = "consecutive"  # what a true edge is: "consecutive" hits or same "particle"
    #: track cleanup kept by every building candidate (BuildConfig.outlier_mm [mm]; 0: off)
    outlier_mm: float = 0.0
    #: second-pass follower of the "splitfollow" candidates (the BuildConfig fields)
    follow_pt_min: float = FREE_FOLLOWER.pt_min
    follow_window_scale: float = FREE_FOLLOWER.window_scale
    follow_min_hits: int = FREE_FOLLOWER.min_hits

    def __post_init__(self) -> None:
        if self.pipeline != "layerpair":
            raise ConfigError(f"pipeline must be 'layerpair' here, got {self.pipeline!r}")
        if self.val_events < 1 or self.train_events < 0:
            raise ConfigError("val_events >= 1 and train_events >= 0 required")
        for key in ("max_edges", "filter_max_edges"):
            value = getattr(self, key)
            if not 100 <= value <= MAX_EDGES_PER_STEP:
                raise ConfigError(
                    f"{key} must be between 100 and {MAX_EDGES_PER_STEP:,} (edges per training "
                    f"step), got {value:,}"
                )
        if not 0.5 <= self.filter_efficiency <= 1.0 or not self.pos_weight > 0:
            raise ConfigError("filter_efficiency must be in [0.5, 1] and pos_weight > 0")
        if not self.outlier_mm >= 0.0:  # NaN refused too
            raise ConfigError(f"outlier_mm must be >= 0 [mm] (0: off), got {self.outlier_mm}")
        self.base_build()  # refuses bad follower settings before any training
        if self.edge_target not in EDGE_TARGETS:
            raise ConfigError(
                f"edge_target must be one of {EDGE_TARGETS}, got {self.edge_target!r}"
            )
        if any(m not in MODES for m in self.modes) or not self.modes or not self.thresholds:
            raise ConfigError(f"modes must be a non-empty subset of {MODES}; thresholds non-empty")

    def base_build(self) -> BuildConfig:
        """What every building candidate of the tuning keeps (cleanup and second-pass follower)."""
        return BuildConfig(outlier_mm=self.outlier_mm, follow_pt_min=self.follow_pt_min,
                           follow_window_scale=self.follow_window_scale,
                           follow_min_hits=self.follow_min_hits)  # fmt: skip


class _Loader:
    """A list of ``Data`` reshuffled every epoch (seeded); ``dataset.set_epoch`` for the loop."""

    def __init__(self, items: list[Data], shuffle: bool, seed: int = 0) -> None:
        self.items, self.shuffle, self.seed, self.epoch, self.dataset = (
            items,
            shuffle,
            seed,
            0,
            self,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Any:
        order = np.arange(len(self.items))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        return iter([self.items[i] for i in order])


def _bce_step(pos_weight: float, filter_stage: bool, z_shift: float = 0.0) -> Any:
    """BCE step; in training mode the hits are shifted along the beam by U(-z_shift, z_shift) mm
    (one shift per step), so that a vertex far from z = 0 is not out of distribution."""

    def step(model: nn.Module, d: Data) -> tuple[Tensor, dict[str, float]]:
        m: Any = unwrap_model(model)
        x = d.x
        if z_shift > 0 and model.training:
            x = x.clone()
            x[:, 3] += (2.0 * torch.rand(()) - 1.0) * z_shift / 1000.0  # features in m
        logits = m.filter_logits(x, d.edge_index) if filter_stage else m(x, d.edge_index)
        w = torch.where(d.y > 0, pos_weight, 1.0)
        loss = F.binary_cross_entropy_with_logits(logits, d.y, weight=w)
        with torch.no_grad():
            pred = logits > 0
            tp = float((pred & (d.y > 0)).sum())
            eff = tp / max(float(d.y.sum()), 1.0)
            pur = tp / max(float(pred.sum()), 1.0)
        return loss, {"efficiency": eff, "purity": pur}

    return step


def split_ids(cfg: LayerPairRunConfig) -> tuple[list[int], list[int], list[int]]:
    """(train ids, validation ids, map ids): the last ``val_events`` events validate; the map
    learns from every other event, the networks from the first ``train_events`` of them."""
    from particlegraph.tasks.tracking.trackml import list_events

    ids = list_events(cfg.data)
    if len(ids) <= cfg.val_events:
        raise DataFileError(
            f"{cfg.data}: {len(ids)} events; need more than val_events={cfg.val_events}"
        )
    train, val = ids[: -cfg.val_events], ids[-cfg.val_events :]
    return (train[: cfg.train_events] if cfg.train_events else train), val, train


def target_data(ev: HitEvent, m: LayerPairMap, target: str) -> Data:
    """The event on the map's graph, with ``y`` the ``target`` truth (see :data:`EDGE_TARGETS`)."""
    d = event_data(ev, m)
    if target == "particle":
        pid = ev.particle_id
        i, j = d.edge_index
        same = (pid[i] == pid[j]) & (pid[i] > 0)
        d.y = same.float()
        d.edge_pt = torch.where(same, ev.pt[i], torch.zeros_like(ev.pt[i]))
    return d


def filter_cut(model: EdgeClassifier, val: list[Data], efficiency: float) -> float:
    """Filter logit that keeps ``efficiency`` of the true validation edges (-inf: no filter)."""
    if model.filter is None:
        return float("-inf")
    true_logits = torch.cat([model.filter_logits_chunked(d.x, d.edge_index)[d.y > 0] for d in val])
    return (
        float(torch.quantile(true_logits.double(), 1.0 - efficiency))
        if true_logits.numel()
        else 0.0
    )


def apply_filter(model: EdgeClassifier, d: Data, cut: float) -> Data:
    """The edges of ``d`` whose filter logit reaches ``cut`` (all without a filter)."""
    if model.filter is None:
        return d
    keep = model.filter_logits_chunked(d.x, d.edge_index) >= cut
    out = Data(x=d.x, edge_index=d.edge_index[:, keep], y=d.y[keep], edge_pt=d.edge_pt[keep],
               phi=d.phi, num_nodes=d.num_nodes)  # fmt: skip
    return out


def train_layerpair(
    cfg: LayerPairRunConfig, run_dir: str | Path, *, resume: bool = False
) -> dict[str, Any]:
    """Learn the map, train the filter and the interaction network, tune the track building."""
    run_dir = Path(run_dir)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    train_ids, val_ids, map_ids = split_ids(cfg)
    train_ev, val_ev = load_events(cfg.data, train_ids), load_events(cfg.data, val_ids)
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / CONFIG_NAME)
    mc = cfg.map
    extra = [i for i in map_ids if i not in set(train_ids)]
    samples = [truth_sample(e) for e in train_ev]
    samples += [truth_sample(load_events(cfg.data, [i])[0]) for i in extra]
    mmap = learn_map(samples, quantile=mc.quantile, margin=mc.margin, min_count=mc.min_count,
                     pt_min=mc.pt_min, z0_half_width_min=mc.z0_half_width_min,
                     z_shift=mc.z_shift)  # fmt: skip
    mmap.save(run_dir / MAP_NAME)
    train_d = [target_data(e, mmap, cfg.edge_target) for e in train_ev]
    val_d = [target_data(e, mmap, cfg.edge_target) for e in val_ev]
    torch.manual_seed(cfg.fit.seed)
    model = EdgeClassifier(cfg.model)
    x_all = torch.cat([d.x for d in train_d[:8]])
    offs = np.cumsum([0] + [d.num_nodes for d in train_d[:8]])
    e_all = torch.cat([d.edge_index + int(o) for d, o in zip(train_d[:8], offs, strict=False)], 1)
    model.set_standardization(x_all, e_all)
    if cfg.init_from:
        _init_from(model, cfg.init_from)
    cut = float("-inf")
    filter_info: dict[str, float] = {}
    if model.filter is not None:
        parts = [s for d in train_d for s in sectors(d, cfg.filter_max_edges, cfg.sector_overlap)]
        _only(model, "filter")
        vparts = [s for d in val_d for s in sectors(d, cfg.filter_max_edges, cfg.sector_overlap)]
        fit(model, _Loader(parts, True, cfg.filter_fit.seed), _Loader(vparts, False),
            _bce_step(cfg.pos_weight, True, cfg.z_shift), cfg.filter_fit, run_dir / "filter", resume=resume)  # fmt: skip
        _load_best(model, run_dir / "filter")
        model.eval()
        cut = filter_cut(model, val_d, cfg.filter_efficiency)
        before = [(d.edge_index.shape[1], float(d.y.sum()), d.num_nodes) for d in val_d]
        train_d = [apply_filter(model, d, cut) for d in train_d]
        val_d = [apply_filter(model, d, cut) for d in val_d]
        after = [(d.edge_index.shape[1], float(d.y.sum())) for d in val_d]
        filter_info = {
            "edges_per_hit_before": sum(b[0] for b in before) / sum(b[2] for b in before),
            "edges_per_hit_after": sum(a[0] for a in after) / sum(b[2] for b in before),
            "true_edges_kept": sum(a[1] for a in after) / max(sum(b[1] for b in before), 1.0),
        }
        log.info("filter on validation events: %s", filter_info)
    _only(model, "gnn")
    parts = [s for d in train_d for s in sectors(d, cfg.max_edges, cfg.sector_overlap)]
    vparts = [s for d in val_d for s in sectors(d, cfg.max_edges, cfg.sector_overlap)]
    h = fit(model, _Loader(parts, True, cfg.fit.seed), _Loader(vparts, False),
            _bce_step(cfg.pos_weight, False, cfg.z_shift), cfg.fit, run_dir / "gnn", resume=resume)  # fmt: skip
    _load_best(model, run_dir / "gnn")
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    base = cfg.base_build()
    best, scan = tune_build(model, val_d, val_ev, cfg.thresholds, cfg.modes, base)
    save_checkpoint(run_dir / "model.pt", {"model": model.state_dict()})
    info = {"pipeline": "layerpair", "train_events": train_ids, "val_events": val_ids,
            "map_events": map_ids,
            "filter_cut": cut, "val_filter": filter_info, "build": asdict(best), "build_scan": scan,
            "map_pairs": mmap.num_pairs, "gnn_best_epoch": h.best_epoch,
            "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip
    write_json(run_dir / "run.json", info)
    return info


def _init_from(model: EdgeClassifier, spec: str) -> None:
    """Start from the interaction network (and standardisation) of another run: a folder, or a
    shipped ``pretrained:NAME``."""
    from particlegraph.train.run import is_pretrained, open_run

    run_dir = (
        open_run(spec, "tracking", TRACKING_PACKAGE).path if is_pretrained(spec) else Path(spec)
    )
    if not (run_dir / "model.pt").is_file():
        raise DataFileError(f"init_from: {run_dir} is not a finished tracking run (no model.pt)")
    state = load_checkpoint(run_dir / "model.pt")["model"]
    own = model.state_dict()
    keep = {k: v for k, v in state.items()
            if not k.startswith("filter.") and k in own and own[k].shape == v.shape}  # fmt: skip
    if not all(k in keep for k in own if k.startswith("gnn.")):
        raise DataFileError(f"init_from: {run_dir} has no interaction network of this shape")
    model.load_state_dict(keep, strict=False)


def _only(model: EdgeClassifier, part: str) -> None:
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(part + "."))


def _load_best(model: nn.Module, stage_dir: Path) -> None:
    path = checkpoint_path(stage_dir, "best")
    if not path.is_file():
        path = checkpoint_path(stage_dir, "last")
    model.load_state_dict(load_checkpoint(path)["model"])


@torch.no_grad()
def edge_scores(model: EdgeClassifier, d: Data) -> np.ndarray:
    """Sigmoid scores (E,) of the edges of ``d`` (the network run in edge chunks)."""
    if d.edge_index.shape[1] == 0:
        return np.zeros(0)
    return torch.sigmoid(model.logits_chunked(d.x, d.edge_index)).double().numpy()


def tune_build(
    model: EdgeClassifier,
    val_d: list[Data],
    val_ev: list[HitEvent],
    thresholds: tuple[float, ...],
    modes: tuple[str, ...],
    base: BuildConfig | None = None,
) -> tuple[BuildConfig, list[dict[str, Any]]]:
    """The (threshold, mode) with the best mean validation TrackML score; and the whole scan.
    Every candidate keeps the cleanup settings of ``base`` (default: none)."""
    scores = [edge_scores(model, d) for d in val_d]
    base = base if base is not None else BuildConfig()
    best, best_s, scan = base, -1.0, []
    for mode in modes:
        for t in thresholds:
            b = replace(base, threshold=float(t), mode=mode)
            s = float(np.mean([
                trackml_score(ev.particle_id.numpy(), ev.weight.numpy(),
                              build_tracks(ev.num_hits, d.edge_index.numpy(), sc, b,
                                           ev.layer.numpy(), ev.xyz.numpy()))
                for d, sc, ev in zip(val_d, scores, val_ev, strict=True)
            ]))  # fmt: skip
            scan.append({"threshold": float(t), "mode": mode, "score": s})
            if s > best_s:
                best, best_s = b, s
    return best, scan


@dataclass
class LayerPairRun:
    """A trained run: model (eval mode), map, config, filter cut and building settings."""

    model: EdgeClassifier
    map: LayerPairMap
    cfg: LayerPairRunConfig
    filter_cut: float
    build: BuildConfig
    info: dict[str, Any]


def load_layerpair_run(run_dir: str | Path) -> LayerPairRun:
    """Load a finished run of the default pipeline (``PATH`` or ``pretrained:NAME``).

    Raises:
        ConfigError: an unknown pretrained name.
        DataFileError: not a finished tracking run, or a checkpoint that is not only weights.
    """
    run_dir = open_run(run_dir, "tracking", TRACKING_PACKAGE).path
    for name in (CONFIG_NAME, MAP_NAME, "model.pt", "run.json"):
        if not (run_dir / name).is_file():
            raise DataFileError(f"{run_dir} is not a finished tracking run (no {name}); run "
                                "'particlegraph tracking train' first")  # fmt: skip
    cfg = load_config(LayerPairRunConfig, run_dir / CONFIG_NAME)
    model = EdgeClassifier(cfg.model)
    model.load_state_dict(load_checkpoint(run_dir / "model.pt")["model"])
    model.eval()
    info = json.loads((run_dir / "run.json").read_text())
    return LayerPairRun(model, LayerPairMap.load(run_dir / MAP_NAME), cfg,
                        float(info["filter_cut"]), BuildConfig(**info["build"]), info)  # fmt: skip


def reconstruct_event(
    run: LayerPairRun, ev: HitEvent
) -> tuple[np.ndarray, Data, np.ndarray, dict[str, float]]:
    """Track ids (N,), the classified graph, its edge scores (E,) and seconds per stage."""
    import time

    from particlegraph.tasks.tracking.graphs import event_hits
    from particlegraph.tasks.tracking.module_map import build_graph

    t = time.perf_counter()
    edges = build_graph(run.map, event_hits(ev))
    return reconstruct_from_graph(run, ev, edges, time.perf_counter() - t)


def reconstruct_from_graph(
    run: LayerPairRun, ev: HitEvent, graph: np.ndarray, graph_s: float = 0.0
) -> tuple[np.ndarray, Data, np.ndarray, dict[str, float]]:
    """:func:`reconstruct_event` from the event's map graph ``graph`` (2, E) already built (in
    ``graph_s`` seconds): filter, interaction network, track building."""
    import time

    times = {"graph_s": graph_s}
    edges = torch.from_numpy(graph)
    t = time.perf_counter()
    if run.model.filter is not None and edges.shape[1]:
        edges = edges[:, run.model.filter_logits_chunked(ev.x, edges) >= run.filter_cut]
    times["filter_s"] = time.perf_counter() - t
    d = Data(x=ev.x, edge_index=edges, num_nodes=ev.num_hits)
    t = time.perf_counter()
    score = edge_scores(run.model, d)
    times["gnn_s"] = time.perf_counter() - t
    t = time.perf_counter()
    track = build_tracks(
        ev.num_hits, edges.numpy(), score, run.build, ev.layer.numpy(), ev.xyz.numpy()
    )
    times["build_s"] = time.perf_counter() - t
    times["total_s"] = sum(times.values())
    return track, d, score, times
