"""The generic training loop shared by every task: :func:`fit` and :func:`evaluate`.

The task supplies a ``step_fn(model, batch) -> (loss, {metric: float})``; the loop does the rest:
device placement, AdamW/Adam with linear warm-up and cosine decay, gradient clipping, bf16
autocast on CUDA, validation, early stopping, per-epoch history (JSON + CSV), atomic checkpoints
and bit-for-bit resume, and DistributedDataParallel when a process group is active (``torchrun``).

Run directory layout written by :func:`fit`::

    run_dir/history.json          per-epoch records + best epoch (see History)
    run_dir/history.csv           the same records as a table
    run_dir/checkpoints/last.pt   state after the latest completed epoch (resume point)
    run_dir/checkpoints/best.pt   state after the epoch with the lowest validation loss

Why one module of ~500 lines: the loop, its history and the resume logic share the state that
must round-trip bit for bit through a checkpoint; keeping them together keeps that contract in
one place (checkpoint I/O itself lives in :mod:`.checkpoint`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from particlegraph.atomic import write_json, write_text
from particlegraph.errors import ConfigError, ParticlegraphError
from particlegraph.progress import progress as progress_counter
from particlegraph.train import distributed as D
from particlegraph.train.checkpoint import (
    capture_rng_state,
    checkpoint_path,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)

#: ``step_fn(model, batch) -> (scalar loss tensor with grad, {metric name: float})``.
StepFn = Callable[[nn.Module, Any], tuple[torch.Tensor, dict[str, float]]]
#: ``cb(epoch, model)`` after each epoch (0-based epoch, un-wrapped model); may return extra metrics.
EpochCallback = Callable[[int, nn.Module], "Mapping[str, float] | None"]


#: Optimizers a run config may name (``fit.optimizer``).
OPTIMIZERS: dict[str, Any] = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "adamax": torch.optim.Adamax,  # the GNN-tracking notebook's choice
}


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit` (the ``fit:`` section of a run config)."""

    epochs: int = 10  # passes over the training data
    lr: float = 1e-3  # peak learning rate (reached after warm-up)
    optimizer: str = "adamw"  # "adamw" (decoupled weight decay), "adam" or "adamax"
    weight_decay: float = 1e-4  # applied to weight matrices only, not biases / norm scales
    warmup_steps: int = 0  # optimizer steps of linear warm-up from lr/warmup_steps to lr
    schedule: str = (
        "cosine"  # "cosine" decay to final_lr_fraction * lr at the last epoch, or "constant"
    )
    final_lr_fraction: float = 0.0  # learning rate at the end of a cosine schedule, relative to lr
    grad_clip: float = 0.0  # max global gradient norm; 0 disables clipping
    patience: int = 0  # stop after this many epochs without a better validation loss; 0 = never
    amp: bool = False  # bf16 autocast (CUDA only; ignored on CPU)
    device: str = "auto"  # "auto", "cpu", "cuda" (under torchrun: cuda:LOCAL_RANK)
    seed: int = 0  # seeds python, numpy and torch at the start of a fresh run (plus the rank)
    log_every: int = 10  # optimizer steps between progress-bar updates
    num_threads: int = 0  # CPU intra-op threads for this process; 0 keeps torch's default

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"fit.epochs must be >= 1, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"fit.lr must be a finite number > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"fit.optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"fit.schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not all(math.isfinite(v) and v >= 0 for v in (self.weight_decay, self.grad_clip)):
            raise ConfigError(
                f"fit.weight_decay and fit.grad_clip must be finite and >= 0, got "
                f"{self.weight_decay} and {self.grad_clip}"
            )
        if self.warmup_steps < 0:
            raise ConfigError(f"fit.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.patience < 0 or self.log_every < 1:
            raise ConfigError("fit.patience must be >= 0 and fit.log_every >= 1")
        if self.num_threads < 0:
            raise ConfigError(f"fit.num_threads must be >= 0, got {self.num_threads}")
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ConfigError(
                f"fit.final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}"
            )


@dataclass
class History:
    """Per-epoch records of a run.

    Each record holds ``epoch`` (1-based), ``step`` (optimizer steps so far), ``lr``, ``time_s``,
    ``samples_per_s``, ``train_loss``, ``train_<metric>``, and with validation ``val_loss``,
    ``val_<metric>``, plus whatever epoch callbacks returned.
    """

    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0  # 1-based epoch of the lowest monitored loss (0: none yet)
    best_loss: float = math.inf  # val_loss of best_epoch (train_loss without validation)
    stopped_early: bool = False

    def column(self, name: str) -> list[float]:
        """Values of one metric over epochs (NaN where an epoch lacks it)."""
        return [float(r.get(name, math.nan)) for r in self.records]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(
            records=[dict(r) for r in data.get("records", [])],
            best_epoch=int(data.get("best_epoch", 0)),
            best_loss=float(data.get("best_loss", math.inf)),
            stopped_early=bool(data.get("stopped_early", False)),
        )

    def write(self, run_dir: str | Path) -> None:
        """Write ``history.json`` and ``history.csv`` into ``run_dir`` (atomically)."""
        run_dir = Path(run_dir)
        data = self.to_dict()
        if not math.isfinite(self.best_loss):
            data["best_loss"] = None  # JSON has no infinity
        write_json(run_dir / "history.json", data)
        columns: list[str] = []
        for rec in self.records:
            columns.extend(k for k in rec if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        write_text(run_dir / "history.csv", buf.getvalue())

    @classmethod
    def load(cls, run_dir: str | Path) -> History:
        """Read ``run_dir/history.json``."""
        path = Path(run_dir) / "history.json"
        if not path.is_file():
            raise ParticlegraphError(f"{path} does not exist; has the run finished an epoch?")
        data = json.loads(path.read_text())
        if data.get("best_loss") is None:
            data["best_loss"] = math.inf
        return cls.from_dict(data)


# --- small helpers ---------------------------------------------------------------------------


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, a PyG ``Data``/``Batch``, or nested tuples/lists/dicts of them to ``device``."""
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(v, device) for v in batch)
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


def batch_size(batch: Any) -> int:
    """Number of samples in a batch: graphs of a PyG batch, else the leading dimension."""
    num_graphs = getattr(batch, "num_graphs", None)
    if num_graphs is not None:
        return int(num_graphs)
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    if isinstance(batch, Mapping):
        return batch_size(next(iter(batch.values())))
    if isinstance(batch, Sequence) and len(batch) > 0:
        return batch_size(batch[0])
    return 1


def make_optimizer(model: nn.Module, cfg: FitConfig) -> torch.optim.Optimizer:
    """Adam/AdamW/Adamax with weight decay on weight matrices only (biases and norm scales are
    1-D); Adam and Adamax add the decay to the gradient, AdamW decouples it."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    opt_cls = OPTIMIZERS[cfg.optimizer]
    result: torch.optim.Optimizer = opt_cls(groups, lr=cfg.lr)
    return result


def lr_factor(cfg: FitConfig, step: int, progress: float) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based) and epoch ``progress``.

    Linear warm-up over ``cfg.warmup_steps`` steps times a cosine from 1 at epoch 0 to
    ``cfg.final_lr_fraction`` at epoch ``cfg.epochs`` (``progress`` counts epochs as a float).
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "constant":
        return warm
    frac = min(1.0, max(0.0, progress / cfg.epochs))
    final = cfg.final_lr_fraction
    return warm * (final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * frac)))


def _loader_len(loader: Iterable[Any]) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:  # iterable-style datasets have no length
        return None


def _set_epoch(loader: Iterable[Any], epoch: int) -> None:
    """Tell samplers/datasets that reshuffle per epoch (DistributedSampler, MLPFDataset) the epoch."""
    for obj in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        set_epoch = getattr(obj, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``amp`` is set, else a no-op context."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _weighted_means(sums: dict[str, float], n: float, device: torch.device) -> dict[str, float]:
    """Sample-weighted means of per-batch sums, combined over ranks."""
    totals = D.all_reduce_floats({**sums, "__n": n}, device)
    count = max(totals.pop("__n"), 1.0)
    return {k: v / count for k, v in totals.items()}


def _accumulate(sums: dict[str, float], loss: float, metrics: Mapping[str, float], n: int) -> None:
    sums["loss"] = sums.get("loss", 0.0) + loss * n
    for k, v in metrics.items():
        sums[k] = sums.get(k, 0.0) + float(v) * n


# --- evaluation --------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    step_fn: StepFn,
    device: torch.device | str = "cpu",
    amp: bool = False,
) -> dict[str, float]:
    """Sample-weighted mean loss and metrics of ``step_fn`` over ``loader`` in eval mode.

    Returns ``{"loss": ..., metric: ...}``; under DDP the means cover all ranks.
    """
    device = torch.device(device)
    model.eval()
    sums: dict[str, float] = {}
    n_total = 0
    it = iter(loader)
    while True:
        batch = next(it, None)
        if not D.all_have_batch(batch is not None, device):
            break
        batch = to_device(batch, device)
        n = batch_size(batch)
        with autocast(device, amp):
            loss, metrics = step_fn(model, batch)
        _accumulate(sums, float(loss.detach().float()), metrics, n)
        n_total += n
    return _weighted_means(sums, n_total, device) if n_total or D.is_distributed() else {}


# --- training ----------------------------------------------------------------------------------


@dataclass
class _State:
    """Mutable loop state that goes into checkpoints."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    steps_per_epoch: int | None = None
    history: History = field(default_factory=History)


def _train_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    step_fn: StepFn,
    optimizer: torch.optim.Optimizer,
    cfg: FitConfig,
    st: _State,
    device: torch.device,
    show: bool,
) -> tuple[dict[str, float], int, float]:
    """One pass over ``loader``; returns (mean metrics, batches, samples/s)."""
    model.train()
    sums: dict[str, float] = {}
    n_samples = 0
    n_batches = 0
    t0 = time.perf_counter()
    # a bar on a terminal, plain lines with an ETA in a pipe (a log file, a batch job)
    bar = progress_counter(
        total=st.steps_per_epoch,
        desc=f"epoch {st.epoch + 1}/{cfg.epochs}",
        unit="batch",
        enabled=show,
        interval=PLAIN_PROGRESS_SECONDS,
        leave=False,
    )
    it = iter(loader)
    try:
        while True:
            batch = next(it, None)
            if not D.all_have_batch(batch is not None, device):
                break
            batch = to_device(batch, device)
            spe = st.steps_per_epoch
            progress = st.epoch + (min(n_batches / spe, 1.0) if spe else 0.0)
            lr = cfg.lr * lr_factor(cfg, st.step, progress)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(device, cfg.amp):
                loss, metrics = step_fn(model, batch)
            loss_value = float(loss.detach().float())
            if not math.isfinite(loss_value):
                raise ParticlegraphError(
                    f"non-finite training loss at step {st.step} (epoch {st.epoch + 1}); "
                    "lower fit.lr, set fit.grad_clip, or check the input data"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            st.step += 1
            n_batches += 1
            n = batch_size(batch)
            n_samples += n
            _accumulate(sums, loss_value, metrics, n)
            bar.update(1)
            if n_batches % cfg.log_every == 0:
                rate = n_samples / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"loss={loss_value:.4g}, lr={lr:.2e}, samples_s={rate:.1f}")
    finally:
        bar.close()
    elapsed = max(time.perf_counter() - t0, 1e-9)
    rate_total = D.all_reduce_floats({"n": float(n_samples)}, device)["n"] / elapsed
    return _weighted_means(sums, n_samples, device), n_batches, rate_total


#: Seconds between the plain progress lines printed when stderr is not a terminal.
PLAIN_PROGRESS_SECONDS = 20.0


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    step_fn: StepFn,
    cfg: FitConfig,
    run_dir: str | Path,
    resume: bool = False,
    epoch_callbacks: Sequence[EpochCallback] = (),
) -> History:
    """Train ``model`` for ``cfg.epochs`` epochs and return its :class:`History`.

    Args:
        model: any ``nn.Module``; moved to the device (and wrapped in DDP under torchrun).
        train_loader: iterable of batches (tensors, tuples, PyG batches); re-iterated every epoch.
        val_loader: validation batches, or None (then early stopping and ``best.pt`` follow the
            training loss).
        step_fn: ``step_fn(model, batch) -> (loss, metrics)``; the batch is already on the device.
            Under DDP ``model`` is the DDP wrapper; gradients are averaged over ranks.
        cfg: loop settings.
        run_dir: where checkpoints and history go (created if needed).
        resume: continue from ``run_dir/checkpoints/last.pt`` (bit-for-bit on the same device and
            world size); without a checkpoint the run starts fresh.
        epoch_callbacks: ``cb(epoch, model)`` after each epoch on rank 0 (epoch is 0-based, model
            un-wrapped, in train mode); a returned mapping is merged into the epoch's record.

    Raises:
        ConfigError: ``run_dir`` already holds a checkpoint and ``resume`` is False.
    """
    run_dir = Path(run_dir)
    info, device = D.init_distributed(cfg.device)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    last = checkpoint_path(run_dir, "last")
    if last.is_file() and not resume:
        raise ConfigError(
            f"{run_dir} already holds a training checkpoint; pass resume=True (--resume) "
            "to continue it or choose a new run directory"
        )
    generator = getattr(train_loader, "generator", None)
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    st = _start(model, optimizer, cfg, last if resume else None, train_loader, device, info)
    if st.history.stopped_early:
        return st.history
    train_model = D.wrap_model(model, device)
    plain = D.unwrap_model(train_model)
    while st.epoch < cfg.epochs:
        _set_epoch(train_loader, st.epoch)
        t0 = time.perf_counter()
        train_stats, n_batches, rate = _train_epoch(
            train_model, train_loader, step_fn, optimizer, cfg, st, device, info.is_main
        )
        if n_batches == 0:
            raise ParticlegraphError(
                "the training loader yielded no batches; is the dataset empty?"
            )
        if st.steps_per_epoch is None:
            st.steps_per_epoch = n_batches  # iterable datasets: learned from the first epoch
        val_stats = (
            evaluate(plain, val_loader, step_fn, device, cfg.amp) if val_loader is not None else {}
        )
        record = _epoch_record(st, optimizer, train_stats, val_stats, t0, rate)
        if info.is_main:
            _run_callbacks(epoch_callbacks, st.epoch, plain, record)
        plain.train()
        improved = _close_epoch(st, record, cfg)
        rng = D.gather_objects(capture_rng_state(generator))
        if info.is_main:
            _save_epoch(run_dir, plain, optimizer, st, rng, improved)
            tqdm.write(_summary(record, cfg.epochs, improved))
        D.barrier()
        if st.history.stopped_early:
            if info.is_main:
                tqdm.write(f"early stopping: no improvement for {cfg.patience} epochs")
            break
    return st.history


def _start(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: FitConfig,
    checkpoint: Path | None,
    train_loader: Iterable[Any],
    device: torch.device,
    info: Any,
) -> _State:
    """The loop state at the start: restored from ``checkpoint`` (model, optimizer, schedule,
    history and random states) when it exists, else fresh with every seed set."""
    generator = getattr(train_loader, "generator", None)
    st = _State(steps_per_epoch=_loader_len(train_loader))
    if checkpoint is None or not checkpoint.is_file():
        seed_everything(cfg.seed + info.rank)
        return st
    ckpt = load_checkpoint(checkpoint, map_location=device)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    st.epoch = int(ckpt["epoch"])
    st.step = int(ckpt["schedule"]["step"])
    st.steps_per_epoch = ckpt["schedule"]["steps_per_epoch"] or st.steps_per_epoch
    st.history = History.from_dict(ckpt["history"])
    rngs = ckpt["rng"]
    restore_rng_state(rngs[info.rank] if info.rank < len(rngs) else rngs[0], generator)
    if info.is_main:
        tqdm.write(f"resuming {checkpoint.parent.parent} after epoch {st.epoch} (step {st.step})")
    return st


def _epoch_record(
    st: _State,
    optimizer: torch.optim.Optimizer,
    train_stats: Mapping[str, float],
    val_stats: Mapping[str, float],
    started: float,
    rate: float,
) -> dict[str, float]:
    """The history record of the epoch that just ended (``started``: its perf_counter start)."""
    record: dict[str, float] = {
        "epoch": st.epoch + 1,
        "step": st.step,
        "lr": float(optimizer.param_groups[0]["lr"]),
    }
    record.update({f"train_{k}": v for k, v in train_stats.items()})
    record.update({f"val_{k}": v for k, v in val_stats.items()})
    record["time_s"] = time.perf_counter() - started
    record["samples_per_s"] = rate
    return record


def _run_callbacks(
    callbacks: Sequence[EpochCallback], epoch: int, model: nn.Module, record: dict[str, float]
) -> None:
    """Run the epoch callbacks (model in train mode) and merge what they return into ``record``."""
    for cb in callbacks:
        model.train()
        extra = cb(epoch, model)
        if extra:
            record.update({k: float(v) for k, v in extra.items()})


def _close_epoch(st: _State, record: dict[str, float], cfg: FitConfig) -> bool:
    """Append ``record`` to the history, count the epoch, decide on early stopping; returns
    whether the monitored loss (validation, else training) improved."""
    hist = st.history
    monitor = float(record.get("val_loss", record["train_loss"]))
    improved = monitor < hist.best_loss
    if improved:
        hist.best_epoch, hist.best_loss = st.epoch + 1, monitor
    hist.records.append(record)
    st.epoch += 1
    if cfg.patience > 0 and st.epoch - hist.best_epoch >= cfg.patience:
        hist.stopped_early = st.epoch < cfg.epochs
    return improved


def _save_epoch(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    st: _State,
    rng: Any,
    improved: bool,
) -> None:
    """Write ``last.pt`` (and ``best.pt`` when ``improved``) and the history (rank 0 only)."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": {"step": st.step, "steps_per_epoch": st.steps_per_epoch},
        "epoch": st.epoch,
        "rng": rng,
        "history": st.history.to_dict(),
    }
    if improved:
        save_checkpoint(checkpoint_path(run_dir, "best"), state)
    save_checkpoint(checkpoint_path(run_dir, "last"), state)
    st.history.write(run_dir)


def _summary(record: Mapping[str, float], epochs: int, improved: bool) -> str:
    """One line per epoch, e.g. ``epoch 3/10 train_loss 0.41 val_loss 0.44 (best) 212 samples/s``."""
    parts = [f"epoch {int(record['epoch'])}/{epochs}", f"train_loss {record['train_loss']:.4g}"]
    if "val_loss" in record:
        parts.append(f"val_loss {record['val_loss']:.4g}")
    if improved:
        parts.append("(best)")
    parts.append(f"{record['samples_per_s']:.1f} samples/s")
    return "  ".join(parts)
