"""Torch side of the MLPF data: a streaming dataset of ``torch_geometric.data.Data`` events.

Events are read shard by shard (Parquet or public ``.pkl.bz2``), so only one shard per worker
is in memory. The work is split first across distributed ranks (rank r of w reads the files
with position ``i % w == r`` in the epoch's file order) and then across the DataLoader workers
of that rank in the same way, so every file is read exactly once per epoch.

Batches are made by PyG: variable-size events are concatenated along the element axis with a
``batch`` vector and ``ptr`` offsets, no padding.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from particlegraph.errors import ConfigError
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf.store import count_events, read_any, resolve_files

PathLike = str | os.PathLike[str]


def event_to_data(event: MLPFEvent) -> Data:
    """One event as ``Data(x (N, 12), ygen (N, 7), ycand (N, 7))``, float32, sharing memory."""
    x = torch.from_numpy(np.ascontiguousarray(event.X, dtype=np.float32))
    return Data(
        x=x,
        ygen=torch.from_numpy(np.ascontiguousarray(event.ygen, dtype=np.float32)),
        ycand=torch.from_numpy(np.ascontiguousarray(event.ycand, dtype=np.float32)),
        num_nodes=x.shape[0],
    )


def split_files(files: Sequence[PathLike], val_fraction: float) -> tuple[list[Path], list[Path]]:
    """Split shards into (train, validation): the last ``round(n * val_fraction)`` files validate.

    At least one file goes to each side when ``0 < val_fraction < 1``; ``val_fraction = 0``
    gives an empty validation list. Deterministic: the same files give the same split.
    """
    paths = [Path(f) for f in files]
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return paths, []
    if len(paths) < 2:
        raise ConfigError(
            f"cannot split {len(paths)} event file(s) into training and validation; "
            "generate more files (fewer events per file) or set val_fraction=0"
        )
    n_val = min(max(1, round(len(paths) * val_fraction)), len(paths) - 1)
    return paths[:-n_val], paths[-n_val:]


def _share(n: int, index: int, parts: int) -> int:
    """Size of part ``index`` when ``n`` items are dealt round-robin into ``parts`` parts."""
    return n // parts + (1 if index < n % parts else 0)


class MLPFDataset(IterableDataset[Data]):
    """Stream MLPF events from shards as ``torch_geometric.data.Data``.

    Args:
        files_or_dir: a dataset directory, one shard, or a list of shards
            (``.parquet`` or ``.pkl.bz2``).
        rank: this process's rank in distributed training (default 0).
        world_size: number of distributed processes (default 1).
        shuffle_files: shuffle the file order each epoch (seeded by ``seed + epoch``, identical
            on every rank so ranks stay disjoint); events within a file keep their order.
        seed: base seed of the file shuffle.
        max_events: at most this many events per rank per epoch (``None``: all). With several
            DataLoader workers the cap is shared round-robin between them.

    Yields:
        ``Data(x (N, 12), ygen (N, 7), ycand (N, 7))`` float32 per event.
    """

    def __init__(
        self,
        files_or_dir: PathLike | Iterable[PathLike],
        rank: int = 0,
        world_size: int = 1,
        shuffle_files: bool = False,
        seed: int = 0,
        max_events: int | None = None,
    ) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(
                f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}"
            )
        if max_events is not None and max_events < 0:
            raise ConfigError(f"max_events must be >= 0 or None, got {max_events}")
        self.files = resolve_files(files_or_dir)
        self.rank = rank
        self.world_size = world_size
        self.shuffle_files = shuffle_files
        self.seed = seed
        self.max_events = max_events
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose file order the next iteration uses (call before each epoch)."""
        self.epoch = epoch

    def epoch_files(self) -> list[Path]:
        """All files in this epoch's order (before the rank split)."""
        if not self.shuffle_files:
            return list(self.files)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.files))
        return [self.files[i] for i in order]

    def rank_files(self) -> list[Path]:
        """The files this rank reads this epoch: positions ``i % world_size == rank``."""
        return self.epoch_files()[self.rank :: self.world_size]

    def count_events(self) -> int:
        """Events this rank yields in the current epoch (all workers together).

        Parquet shards are counted from their footers; ``.pkl.bz2`` shards must be loaded.
        Useful for progress bars and learning-rate schedules (steps per epoch).
        """
        n = sum(count_events(p) for p in self.rank_files())
        return n if self.max_events is None else min(n, self.max_events)

    def __iter__(self) -> Iterator[Data]:
        files = self.rank_files()
        limit = self.max_events
        info = get_worker_info()
        if info is not None:
            files = files[info.id :: info.num_workers]
            if limit is not None:
                limit = _share(limit, info.id, info.num_workers)
        remaining = math.inf if limit is None else limit
        for path in files:
            if remaining <= 0:
                return
            for event in read_any(path):
                if remaining <= 0:
                    return
                remaining -= 1
                yield event_to_data(event)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(files={len(self.files)}, rank={self.rank}, "
            f"world_size={self.world_size}, shuffle_files={self.shuffle_files}, "
            f"max_events={self.max_events})"
        )


def make_loader(dataset: MLPFDataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """PyG DataLoader over ``dataset``: events concatenated with ``batch``/``ptr``, no padding."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if num_workers < 0:
        raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,  # an IterableDataset orders itself (see MLPFDataset.set_epoch)
        num_workers=num_workers,
        persistent_workers=False,
    )
