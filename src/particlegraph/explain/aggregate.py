"""Streaming aggregation of relevance over a dataset: constant memory, exact merge and resume.

A dataset study explains O output neurons for every element of thousands of events; the
relevance itself is never kept. Each event is folded into a :class:`RelevanceStudy`, whose arrays
are indexed by output ``o`` (O), true class ``c`` (C) and ``w`` (0: predicted class == true
class, 1: wrong), so their size does not depend on the number of events:

* ``maps`` (O, C, 2, 1 + K, F): sums of neighbour-ordered relevance maps (row 0: the element
  itself, row k: its k-th most relevant neighbour, ranked by |sum over features| for that
  output), each map normalised by the element's total ``sum_{s,f} |R[t, s, f]|``, as in
  :mod:`.rmaps`;
* ``hist`` (O, C, 2, F, B): histograms of each feature's signed share
  ``sum_s R[t, s, f] / sum_{s,f} |R[t, s, f]|`` in [-1, 1];
* ``abs_share``/``signed_share`` (O, C, 2, G F): sums of each *typed* feature's share
  ``sum_{s in group g} |R[t, s, f]| / sum |R|`` (the groups split the sources, e.g. towers and
  tracks, whose columns mean different things); the ``abs_share`` of an element sums to 1;
* ``rank_share`` (O, C, 2, K + 2): the |R| share of the element itself, of each neighbour rank
  and of all further neighbours;
* ``count`` (O, C, 2): elements with non-zero relevance that entered the sums;
* Poisson-bootstrap replicas (B of them) of ``count``, ``abs_share`` and ``rank_share``: event
  ``i`` enters replica ``b`` with weight ``Poisson(1)`` drawn from ``(seed, i)``, so the
  uncertainty of every share comes from resampling events, and shards agree with one run;
* flipping curves summed per output (``flip``, (O, 2 units, 2 curves, S)) for the events that
  the caller chose to flip (they cost forward passes).

Every sum is kept in int64 fixed point (:data:`FIXED` = 2^32 per unit; per-element shares are
rounded once), so adding is associative: ``merge(A, B)`` equals one run over A + B bit for bit,
and a run resumed from a saved state equals an uninterrupted one. States are saved atomically
(``.npz`` with a JSON header) and remember which global event indices they hold (as ranges), so
overlapping shards are refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from particlegraph.atomic import atomic_path
from particlegraph.errors import ConfigError, DataFileError

#: Fixed-point scale of every accumulated sum: a share of 1 is stored as 2^32.
FIXED = float(1 << 32)
#: Flipping units, in the order of the ``flip`` array's second axis.
FLIP_UNITS = ("element", "feature")


@dataclass(frozen=True)
class StudySpec:
    """What a study accumulates; two studies merge only when their specs are equal.

    Args:
        outputs: names of the O explained outputs.
        num_classes: C, true classes 0..C-1.
        features: names of the F input columns.
        groups: names of the G source groups (e.g. ``("tower", "track")``).
        num_neighbours: K, neighbour ranks kept in the maps.
        bins: B, histogram bins on [-1, 1].
        num_boot: bootstrap replicas.
        seed: seed of the bootstrap weights.
        flip_fractions: S, points of the flipping curves (``linspace(0, 1, S)``).
    """

    outputs: tuple[str, ...]
    num_classes: int
    features: tuple[str, ...]
    groups: tuple[str, ...] = ("all",)
    num_neighbours: int = 8
    bins: int = 40
    num_boot: int = 32
    seed: int = 0
    flip_fractions: int = 11

    def __post_init__(self) -> None:
        if not self.outputs or self.num_classes < 1 or not self.features or not self.groups:
            raise ConfigError("a relevance study needs outputs, classes, features and groups")
        if self.num_neighbours < 0 or self.bins < 1 or self.num_boot < 2:
            raise ConfigError("num_neighbours >= 0, bins >= 1 and num_boot >= 2 are required")

    @property
    def typed_features(self) -> tuple[str, ...]:
        """``group:feature`` names of the G F typed features."""
        return tuple(f"{g}:{f}" for g in self.groups for f in self.features)


def _fixed(a: Tensor) -> Tensor:
    return torch.round(a.double() * FIXED).long()


class RelevanceStudy:
    """Accumulators of one dataset study (module docstring); ``add_event`` per event."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        o, c, f, k = len(spec.outputs), spec.num_classes, len(spec.features), spec.num_neighbours
        gf, b = len(spec.groups) * f, spec.num_boot
        z = np.zeros
        self.arrays: dict[str, np.ndarray] = {
            "count": z((o, c, 2), np.int64),
            "maps": z((o, c, 2, k + 1, f), np.int64),
            "hist": z((o, c, 2, f, spec.bins), np.int64),
            "abs_share": z((o, c, 2, gf), np.int64),
            "signed_share": z((o, c, 2, gf), np.int64),
            "rank_share": z((o, c, 2, k + 2), np.int64),
            "boot_count": z((b, o, c, 2), np.int64),
            "boot_abs_share": z((b, o, c, 2, gf), np.int64),
            "boot_rank_share": z((b, o, c, 2, k + 2), np.int64),
            "flip": z((o, 2, 2, spec.flip_fractions), np.int64),
            "flip_count": z((o, 2), np.int64),
            "totals": z(3, np.int64),  # events, elements, correctly classified elements
        }
        self.spans: list[tuple[int, int, int]] = []  # event indices range(start, stop, step)

    # --- bookkeeping ----------------------------------------------------------------------------
    @property
    def events(self) -> int:
        return int(self.arrays["totals"][0])

    def holds(self, index: int) -> bool:
        """True when global event ``index`` is already in the study."""
        return any(start <= index < stop and (index - start) % step == 0
                   for start, stop, step in self.spans)  # fmt: skip

    def _record(self, index: int, step: int) -> None:
        if self.holds(index):
            raise ConfigError(f"event {index} is already in this relevance study")
        if self.spans and self.spans[-1][1] == index and self.spans[-1][2] == step:
            start, _, _ = self.spans[-1]
            self.spans[-1] = (start, index + step, step)
        else:
            self.spans.append((index, index + step, step))

    # --- accumulation ---------------------------------------------------------------------------
    def add_event(
        self,
        index: int,
        rel: Any,
        true_class: Tensor,
        pred_class: Tensor,
        group: Tensor | None = None,
        *,
        step: int = 1,
    ) -> None:
        """Fold one event's multi-output relevance in.

        Args:
            index: global event index (bootstrap weights and the duplicate check use it).
            rel: a ``MultiRelevance`` (values (P, O, F), pairs sorted by target then source).
            true_class, pred_class: (N,) long per element.
            group: (N,) long source group per element in [0, G); None = group 0.
            step: stride of this shard's event indices (``num_shards``), for compact bookkeeping.
        """
        spec = self.spec
        ev = _EventPairs.of(spec, rel, true_class, pred_class, group)
        self._record(index, step)
        o_n, c_n, k = len(spec.outputs), spec.num_classes, spec.num_neighbours
        t_n = len(ev.targets)
        sums = _target_sums(spec, ev)
        cell = ev.true[ev.targets] * 2 + (ev.pred[ev.targets] != ev.true[ev.targets]).long()  # (T,)

        # targets without relevance have inv = 0, so all their per-target sums are 0 already
        def to_cells(per_target: Tensor) -> np.ndarray:  # (T, O, ...) -> (O, C2, ...) int64
            q = _fixed(per_target)
            out = torch.zeros(c_n * 2, *q.shape[1:], dtype=torch.long).index_add_(0, cell, q)
            return out.transpose(0, 1).reshape(o_n, c_n, 2, *q.shape[2:]).numpy()

        # (output, cell) index of every (target, output) that has relevance
        oc_ok = ((torch.arange(o_n) * (c_n * 2))[None, :] + cell[:, None])[sums.ok]  # (M,)
        count = torch.bincount(oc_ok, minlength=o_n * c_n * 2).view(o_n, c_n, 2)
        per_event = {
            "count": count.numpy(),
            "abs_share": to_cells(sums.abs_share),
            "rank_share": to_cells(sums.rank_share.view(t_n, o_n, k + 2)),
        }
        a = self.arrays
        for key, val in per_event.items():
            a[key] += val
        a["signed_share"] += to_cells(sums.signed_share)
        a["maps"] += to_cells(sums.maps.view(t_n, o_n, k + 1, len(spec.features)))
        a["hist"] += self._histogram(sums.feature_share[sums.ok], oc_ok)
        w = np.random.default_rng([spec.seed, index]).poisson(1.0, spec.num_boot).astype(np.int64)
        for key, val in per_event.items():
            a[f"boot_{key}"] += w.reshape(-1, *([1] * val.ndim)) * val[None]
        a["totals"] += [1, ev.n, int((ev.pred == ev.true).sum())]

    def _histogram(self, share: Tensor, oc: Tensor) -> np.ndarray:
        """Counts of the signed feature shares ``share`` (M, F) of the (output, cell) rows ``oc``
        (M,), in the shape of ``arrays["hist"]``."""
        spec = self.spec
        f_n = len(spec.features)
        edges = torch.linspace(-1.0, 1.0, spec.bins + 1, dtype=torch.float64)
        b = (torch.searchsorted(edges, share.contiguous(), right=True) - 1).clamp(0, spec.bins - 1)
        flat = (oc[:, None] * f_n + torch.arange(f_n)) * spec.bins + b  # (M, F)
        size = len(spec.outputs) * spec.num_classes * 2 * f_n * spec.bins
        counts = torch.bincount(flat.reshape(-1), minlength=size)
        return counts.view(self.arrays["hist"].shape).numpy()

    def add_flipping(self, output: int, unit: str, relevance: Any, random: Any) -> None:
        """Add one event's flipping curves (each (S,)) of output ``output`` for ``unit``."""
        u = FLIP_UNITS.index(unit)
        curves = torch.as_tensor(np.stack([np.asarray(relevance), np.asarray(random)]))
        if curves.shape != (2, self.spec.flip_fractions):
            raise ConfigError(f"flipping curves need {self.spec.flip_fractions} points")
        self.arrays["flip"][output, u] += _fixed(curves).numpy()
        self.arrays["flip_count"][output, u] += 1

    # --- combination and files ------------------------------------------------------------------
    def merge(self, other: RelevanceStudy) -> RelevanceStudy:
        """A new study holding both; refuses different specs or overlapping events."""
        if other.spec != self.spec:
            raise ConfigError("cannot merge relevance studies with different settings")
        for start, stop, step in other.spans:
            if any(self.holds(i) for i in range(start, stop, step)):
                raise ConfigError(f"relevance studies overlap (events {start}..{stop - 1})")
        out = RelevanceStudy(self.spec)
        out.arrays = {key: self.arrays[key] + other.arrays[key] for key in self.arrays}
        out.spans = sorted([*self.spans, *other.spans])
        return out

    def save(self, path: str | Path) -> None:
        """Write the state atomically (``.npz`` with a JSON header)."""
        meta = json.dumps({"spec": asdict(self.spec), "spans": self.spans, "version": 1})
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez_compressed(fh, meta=np.array(meta), **self.arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path) -> RelevanceStudy:
        """Read a state written by :meth:`save`."""
        try:
            with np.load(path) as data:
                meta = json.loads(str(data["meta"]))
                spec = meta["spec"]
                for key in ("outputs", "features", "groups"):
                    spec[key] = tuple(spec[key])
                study = cls(StudySpec(**spec))
                for key in study.arrays:
                    study.arrays[key] = data[key].astype(np.int64)
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise DataFileError(
                f"cannot read relevance study state {path} ({err}); delete it to start afresh"
            ) from err
        study.spans = [tuple(s) for s in meta["spans"]]
        return study

    # --- results --------------------------------------------------------------------------------
    def mean(self, key: str) -> np.ndarray:
        """Mean per element of ``maps``, ``abs_share``, ``signed_share`` or ``rank_share``."""
        cnt = self.arrays["count"]
        val = self.arrays[key] / FIXED
        result: np.ndarray = val / np.maximum(cnt, 1).reshape(*cnt.shape, *([1] * (val.ndim - 3)))
        return result

    def boot_std(self, key: str) -> np.ndarray:
        """Bootstrap standard deviation of :meth:`mean` for ``abs_share`` or ``rank_share``."""
        cnt = self.arrays["boot_count"]
        val = self.arrays[f"boot_{key}"] / FIXED
        ratio = val / np.maximum(cnt, 1)[..., None]
        result: np.ndarray = ratio.std(axis=0, ddof=1)
        return result

    def flipping(self) -> np.ndarray:
        """(O, 2 units, 2 [relevance, random], S) mean flipping curves (NaN where none)."""
        cnt = self.arrays["flip_count"][:, :, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(cnt > 0, self.arrays["flip"] / FIXED / np.maximum(cnt, 1), np.nan)


@dataclass(frozen=True)
class _EventPairs:
    """One event's relevance pairs, checked and on the CPU (see :meth:`RelevanceStudy.add_event`).

    values (P, O, F) float64 (a copy: it is scaled in place); targets (T,), target (P,),
    source (P,) long; n elements; true, pred, group (N,) long.
    """

    values: Tensor
    targets: Tensor
    target: Tensor
    source: Tensor
    n: int
    true: Tensor
    pred: Tensor
    group: Tensor

    @classmethod
    def of(cls, spec: StudySpec, rel: Any, true_class: Any, pred_class: Any,
           group: Any) -> _EventPairs:  # fmt: skip
        o_n, f_n, c_n, g_n = (
            len(spec.outputs),
            len(spec.features),
            spec.num_classes,
            len(spec.groups),
        )
        v = rel.values.detach().to("cpu", torch.float64, copy=True)  # (P, O, F)
        if v.dim() != 3 or v.shape[1:] != (o_n, f_n):
            raise ConfigError(f"relevance values must be (P, {o_n}, {f_n}); got {tuple(v.shape)}")
        n = int(rel.num_elements)
        true = torch.as_tensor(true_class).cpu().long()
        pred = torch.as_tensor(pred_class).cpu().long()
        grp = (
            torch.zeros(n, dtype=torch.long)
            if group is None
            else torch.as_tensor(group).cpu().long()
        )
        if true.numel() != n or pred.numel() != n or grp.numel() != n:
            raise ConfigError(f"true_class, pred_class and group need one entry per element ({n})")
        if bool(((true < 0) | (true >= c_n)).any()) or bool(((grp < 0) | (grp >= g_n)).any()):
            raise ConfigError(f"true classes must lie in 0..{c_n - 1} and groups in 0..{g_n - 1}")
        return cls(v, rel.targets.cpu().long(), rel.target.cpu().long(), rel.source.cpu().long(),
                   n, true, pred, grp)  # fmt: skip


def _neighbour_ranks(pos: Tensor, is_self: Tensor, score: Tensor, t_n: int) -> Tensor:
    """(P, O) rank of each pair among its target's sources: 0 for the element itself, then
    1, 2, ... by decreasing ``score`` (P, O); ``pos`` (P,) is the pair's target row in [0, T)."""
    o_n = score.shape[1]
    rank = torch.zeros(len(pos), o_n, dtype=torch.long)
    nb = (~is_self).nonzero()[:, 0]
    if len(nb):
        # per-target sort in a padded (T, width, O) block: sources stay in the engine's
        # (ascending) order within a target, so a stable sort breaks ties by element id
        pos_nb = pos[nb]
        counts = torch.bincount(pos_nb, minlength=t_n)
        q = torch.arange(len(nb)) - (torch.cumsum(counts, 0) - counts)[pos_nb]
        width = int(counts.max())
        block = torch.full((t_n, width, o_n), torch.inf, dtype=torch.float64)
        block[pos_nb, q] = -score[nb]
        order = torch.sort(block, dim=1, stable=True).indices  # (T, width, O)
        ranks = torch.empty_like(order).scatter_(
            1, order, torch.arange(width).view(1, -1, 1).expand(t_n, -1, o_n).contiguous()
        )
        rank[nb] = 1 + ranks[pos_nb, q]
    return rank


@dataclass(frozen=True)
class _TargetSums:
    """Per-target sums of one event's normalised relevance (each target's |R| sums to 1).

    ok (T, O) bool: the target has relevance for that output; rank_share (T * O, K + 2);
    abs_share, signed_share (T, O, G * F) by (group, feature); feature_share (T, O, F) signed,
    groups summed; maps (T * O * (K + 1), F) by neighbour rank.
    """

    ok: Tensor
    rank_share: Tensor
    abs_share: Tensor
    signed_share: Tensor
    feature_share: Tensor
    maps: Tensor


def _target_sums(spec: StudySpec, ev: _EventPairs) -> _TargetSums:
    o_n, f_n, k, g_n = len(spec.outputs), len(spec.features), spec.num_neighbours, len(spec.groups)
    t_n, v, src = len(ev.targets), ev.values, ev.source
    lookup = torch.full((ev.n,), -1, dtype=torch.long)
    lookup[ev.targets] = torch.arange(t_n)
    pos = lookup[ev.target]  # (P,)
    norm = torch.zeros(t_n, o_n, dtype=torch.float64).index_add_(0, pos, v.abs().sum(2))
    ok = norm > 0  # (T, O)
    inv = torch.where(ok, 1.0 / norm.clamp(min=1e-300), torch.zeros_like(norm))
    # neighbours are ranked by |sum over features|
    row = _neighbour_ranks(pos, src == ev.target, v.sum(2).abs_(), t_n).clamp(max=k + 1)  # (P, O)
    scaled = v.mul_(inv[pos][:, :, None])  # (P, O, F) per-element normalised relevance
    abs_scaled = scaled.abs()
    # row k + 1 collects every neighbour beyond K
    rank_t = torch.zeros(t_n * o_n, k + 2, dtype=torch.float64)
    flat = pos[:, None] * o_n + torch.arange(o_n)
    rank_t.index_put_((flat.reshape(-1), row.reshape(-1)), abs_scaled.sum(2).reshape(-1),
                      accumulate=True)  # fmt: skip
    typed = ev.group[src] * t_n + pos  # (P,) row of (group, target), group-major

    def by_group(values: Tensor) -> Tensor:  # (P, O, F) -> (T, O, G * F)
        out = torch.zeros(g_n * t_n, o_n, f_n, dtype=torch.float64).index_add_(0, typed, values)
        return out.view(g_n, t_n, o_n, f_n).permute(1, 2, 0, 3).reshape(t_n, o_n, g_n * f_n)

    abs_t, sgn_t = by_group(abs_scaled), by_group(scaled)
    dump = t_n * o_n * (k + 1)  # one extra row collects the ranks beyond K
    map_t = torch.zeros(dump + 1, f_n, dtype=torch.float64)
    map_idx = torch.where(row <= k, flat * (k + 1) + row, dump)
    map_t.index_add_(0, map_idx.reshape(-1), scaled.reshape(-1, f_n))
    feat = sgn_t.view(t_n, o_n, g_n, f_n).sum(2)  # (T, O, F) signed share, groups summed
    return _TargetSums(ok, rank_t, abs_t, sgn_t, feat, map_t[:dump])
