"""Hit features, truth and batches of events for the tracking models.

Per hit the models see ``FEATURES``: cylindrical coordinates (r [m], cos phi, sin phi, z [m])
and the cluster information of the cells file (number of cells, summed charge). The truth kept
per hit is the particle id (0 = noise), the TrackML weight, and the particle's pT and |eta|.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from particlegraph.errors import DataFileError
from particlegraph.tasks.tracking.trackml import TrackMLEvent, list_events, read_event

#: Names of the hit feature columns, in order.
FEATURES = ("r", "cos_phi", "sin_phi", "z", "cell_count", "charge_value")


@dataclass
class HitEvent:
    """One event's hits as tensors; ``x`` (N, F), the rest (N,) (truth tensors may be empty)."""

    event_id: int
    hit_id: Tensor  # (N,) long
    x: Tensor  # (N, F) float32, FEATURES
    xyz: Tensor  # (N, 3) float32 measured position [mm]
    particle_id: Tensor  # (N,) long, 0 = noise
    weight: Tensor  # (N,) float32 TrackML weight
    pt: Tensor  # (N,) float32 pT of the hit's particle [GeV] (0 for noise)
    eta: Tensor  # (N,) float32 pseudorapidity of the hit's particle
    vz: Tensor  # (N,) float32 production-vertex z of the hit's particle [mm]
    layer: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    # (N,) long layer key 100 * volume_id + layer_id (empty when unknown)

    @property
    def num_hits(self) -> int:
        return int(self.x.shape[0])

    def particle_pt(self) -> dict[int, float]:
        """pT [GeV] per particle id (from the hits; particles without hits are absent)."""
        pid = self.particle_id.numpy()
        pt = self.pt.numpy()
        uniq, first = np.unique(pid, return_index=True)
        return dict(zip(uniq.tolist(), pt[first].astype(float).tolist(), strict=True))


def hit_features(ev: TrackMLEvent) -> np.ndarray:
    """``FEATURES`` of every hit, shape (N, F) float32."""
    x, y, z = (ev.hits[c].astype(np.float64) for c in ("x", "y", "z"))
    r = np.hypot(x, y)
    phi = np.arctan2(y, x)
    count, value = ev.cell_features()
    cols = [r / 1000.0, np.cos(phi), np.sin(phi), z / 1000.0, count, value]
    return np.stack(cols, axis=1).astype(np.float32)


def to_hit_event(ev: TrackMLEvent) -> HitEvent:
    """Features and truth of a :class:`TrackMLEvent` as tensors."""
    n = ev.num_hits
    xyz = np.stack([ev.hits[c] for c in ("x", "y", "z")], axis=1).astype(np.float32)
    pid = np.zeros(n, dtype=np.int64)
    weight = np.zeros(n, dtype=np.float32)
    pt = np.zeros(n, dtype=np.float32)
    eta = np.zeros(n, dtype=np.float32)
    vz = np.zeros(n, dtype=np.float32)
    if ev.truth is not None and ev.particles is not None:
        pid = ev.truth["particle_id"].astype(np.int64)
        weight = ev.truth["weight"].astype(np.float32)
        parts = ev.particles
        order = np.argsort(parts["particle_id"])
        pos = np.searchsorted(parts["particle_id"], pid, sorter=order)
        pos = order[np.clip(pos, 0, max(order.size - 1, 0))] if order.size else pos
        known = (pid != 0) & (order.size > 0)
        if order.size:
            known &= parts["particle_id"][pos] == pid
        if np.any((pid != 0) & ~known):
            raise DataFileError(
                f"event {ev.event_id}: the truth file names particles missing from the particles file"
            )
        pos = np.where(known, pos, 0) if order.size else np.zeros(n, dtype=np.int64)
        parts = parts if order.size else {c: np.zeros(1) for c in ("px", "py", "pz", "vz")}
        px, py, pz = (parts[c].astype(np.float64)[pos] for c in ("px", "py", "pz"))
        ppt = np.hypot(px, py)
        with np.errstate(divide="ignore", invalid="ignore"):
            peta = np.arcsinh(np.where(ppt > 0, pz / np.maximum(ppt, 1e-12), 0.0))
        pt = np.where(known, ppt, 0.0).astype(np.float32)
        eta = np.where(known, peta, 0.0).astype(np.float32)
        vz = np.where(known, parts["vz"][pos], 0.0).astype(np.float32)
    return HitEvent(
        ev.event_id,
        torch.from_numpy(ev.hits["hit_id"].astype(np.int64)),
        torch.from_numpy(hit_features(ev)),
        torch.from_numpy(xyz),
        torch.from_numpy(pid),
        torch.from_numpy(weight),
        torch.from_numpy(pt),
        torch.from_numpy(eta),
        torch.from_numpy(vz),
        torch.from_numpy(100 * ev.hits["volume_id"].astype(np.int64) + ev.hits["layer_id"]),
    )


def load_events(folder: str | Path, ids: Sequence[int] | None = None) -> list[HitEvent]:
    """Read events ``ids`` (default: all) of a TrackML folder as :class:`HitEvent`."""
    ids = list_events(folder) if ids is None else list(ids)
    return [to_hit_event(read_event(folder, i)) for i in ids]


def true_pairs(particle_id: Tensor, order: Tensor) -> Tensor:
    """Consecutive hits of each particle (2, T), i -> next hit, noise excluded.

    ``order`` (N,) ranks the hits along a particle (the distance from its production vertex):
    the *truth graph* of the GNN-tracking literature links each hit to the next one.
    """
    keep = torch.nonzero(particle_id != 0).squeeze(1)
    if keep.numel() < 2:
        return torch.empty(2, 0, dtype=torch.long)
    k = keep[torch.argsort(order[keep].double(), stable=True)]
    k = k[torch.argsort(particle_id[k], stable=True)]  # by particle, then along it
    same = particle_id[k[1:]] == particle_id[k[:-1]]
    return torch.stack([k[:-1][same], k[1:][same]])


def vertex_distance(ev: HitEvent) -> Tensor:
    """Distance [mm] of each hit from its particle's vertex (taken on the beam line), (N,)."""
    xyz = ev.xyz.double()
    return torch.sqrt(xyz[:, 0] ** 2 + xyz[:, 1] ** 2 + (xyz[:, 2] - ev.vz.double()) ** 2)


@dataclass
class HitBatch:
    """Several events concatenated; ``batch`` (N,) event index; optional graph (2, E)."""

    x: Tensor
    particle_id: Tensor
    batch: Tensor
    num_graphs: int
    edge_index: Tensor | None = None
    true: Tensor | None = None  # (2, T) truth graph: consecutive hits of each particle
    extra: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> HitBatch:
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return replace(
            self,
            x=self.x.to(device),
            particle_id=self.particle_id.to(device),
            batch=self.batch.to(device),
            edge_index=mv(self.edge_index),
            true=mv(self.true),
            extra={k: v.to(device) for k, v in self.extra.items()},
        )


def collate(events: Sequence[HitEvent], graphs: Sequence[Tensor] | None = None) -> HitBatch:
    """Concatenate events (node ids offset per event); ``graphs`` are per-event edge lists."""
    offsets = np.cumsum([0] + [e.num_hits for e in events])
    true = [
        true_pairs(e.particle_id, vertex_distance(e)) + int(o)
        for e, o in zip(events, offsets[:-1], strict=True)
    ]
    edge = None
    if graphs is not None:
        edge = torch.cat([g + int(o) for g, o in zip(graphs, offsets[:-1], strict=True)], dim=1)
    # particle ids are unique only within an event: offset them so events never share a particle
    pid = torch.cat(
        [
            torch.where(e.particle_id > 0, e.particle_id + i * (1 << 40), 0)
            for i, e in enumerate(events)
        ]
    )
    return HitBatch(
        x=torch.cat([e.x for e in events]),
        particle_id=pid,
        batch=torch.cat(
            [torch.full((e.num_hits,), i, dtype=torch.long) for i, e in enumerate(events)]
        ),
        num_graphs=len(events),
        edge_index=edge,
        true=torch.cat(true, dim=1),
    )


class EventLoader:
    """Batches of ``batch_size`` events, reshuffled each epoch (seeded), re-iterable.

    ``graphs`` (one edge list per event) are attached to the batches when given. The training
    loop calls :meth:`set_epoch` through the ``dataset`` attribute. Under DistributedDataParallel
    each rank iterates its own share of the events.
    """

    def __init__(
        self,
        events: Sequence[HitEvent],
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        graphs: Sequence[Tensor] | None = None,
    ) -> None:
        self.events, self.batch_size, self.shuffle, self.seed = (
            list(events),
            batch_size,
            shuffle,
            seed,
        )
        self.graphs = None if graphs is None else list(graphs)
        self.epoch = 0
        self.dataset = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.events)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            n = len(range(torch.distributed.get_rank(), n, torch.distributed.get_world_size()))
        return -(-n // self.batch_size)

    def __iter__(self) -> Iterator[HitBatch]:
        order = np.arange(len(self.events))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # under torchrun each rank takes every world_size-th event of the same order
            order = order[torch.distributed.get_rank() :: torch.distributed.get_world_size()]
        for lo in range(0, len(order), self.batch_size):
            sel = order[lo : lo + self.batch_size].tolist()
            graphs = None if self.graphs is None else [self.graphs[i] for i in sel]
            yield collate([self.events[i] for i in sel], graphs)
