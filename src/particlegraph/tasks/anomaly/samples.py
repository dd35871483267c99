"""Event samples for anomaly detection: Pythia 8 + pile-up + fast detector -> PF candidates.

A sample (``zerobias``, ``jetht``, a BSM-like signal) is a Pythia preset of
:mod:`particlegraph.sim.pythia` plus an optional trigger: the scalar sum HT of anti-kT R = 0.4
jets (pT > 30 GeV, |eta| < 2.5) built from the event's rule-based PF candidates (``ycand``) must
pass a threshold. Every event is overlaid with Poisson(``pileup``) minimum-bias events from a
cached pool (:mod:`particlegraph.sim.pileup`) before the detector simulation.

On disk: ``out/<sample>/<sample>_<index>.parquet``, shards of :mod:`particlegraph.io.shards`
with one row per event and the :data:`SCHEMA` columns ``candidates`` (M, 6): the ``keep``
highest-pT PF candidates ``(pt [GeV], eta, phi [rad], cls (PF class 1-5), charge [e],
energy [GeV])`` sorted by falling pT, and ``event`` (1, 5): ``(n_cand`` (all candidates, before
``keep``), ``ht`` [GeV], ``lead_jet_pt`` [GeV], ``lead_jet_mass`` [GeV], ``n_jets)``.
:mod:`particlegraph.tasks.anomaly.generate` makes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from particlegraph.bounds import MAX_PILEUP, MAX_POOL_EVENTS
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.io.shards import list_shards, read_shard, write_shard
from particlegraph.io.shards import read_metadata as shard_metadata
from particlegraph.physics.kinematics import massless_p4, phi_from_sincos
from particlegraph.sim.elements import Y_CHARGE, Y_COS_PHI, Y_ENERGY, Y_ETA, Y_PID, Y_PT, Y_SIN_PHI
from particlegraph.sim.pythia import PROCESSES

#: Jets entering HT: anti-kT R = 0.4, pT > 30 GeV, |eta| < 2.5 (the CMS HLT PFHT definition).
JET_RADIUS, HT_JET_PT_MIN, HT_JET_ETA_MAX = 0.4, 30.0, 2.5
LIST_COLUMNS = ("pt", "eta", "phi", "cls", "charge", "energy")
SCALAR_COLUMNS = ("n_cand", "ht", "lead_jet_pt", "lead_jet_mass", "n_jets")
#: Shard columns (:mod:`particlegraph.io.shards`): per event ``candidates`` (M, 6) with the
#: :data:`LIST_COLUMNS` and ``event`` (1, 5) with the :data:`SCALAR_COLUMNS`, all float32.
SCHEMA = {"candidates": len(LIST_COLUMNS), "event": len(SCALAR_COLUMNS)}


@dataclass(frozen=True)
class SampleSpec:
    """One sample: a Pythia preset, extra settings and an HT trigger threshold."""

    process: str = "minbias"  # preset name in particlegraph.sim.pythia.PROCESSES
    pythia_settings: tuple[str, ...] = ()  # appended to the preset (they win)
    ht_min: float = 0.0  # trigger: keep events with HT >= ht_min [GeV]; 0 = no trigger
    events: int = 1000  # default number of events of `generate`
    label: int = 1  # 0 = background-like (zerobias), 1 = anomalous

    def __post_init__(self) -> None:
        if self.process not in PROCESSES:
            raise ConfigError(
                f"unknown process {self.process!r}; choose one of {', '.join(sorted(PROCESSES))}"
            )
        if self.ht_min < 0 or self.events < 1:
            raise ConfigError("sample ht_min must be >= 0 and events >= 1")


@dataclass(frozen=True)
class SamplesConfig:
    """Generation settings shared by all samples (``configs/samples.yaml``)."""

    pileup: float = 25.0  # Poisson mean of overlaid minimum-bias interactions
    pool_size: int = 1000  # minimum-bias events in the pile-up pool
    keep: int = 128  # highest-pT candidates stored per event
    events_per_file: int = 100
    max_tries_factor: int = 200  # give up when a trigger accepts fewer than 1 in this many
    samples: dict[str, SampleSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.pileup <= MAX_PILEUP:  # also NaN
            raise ConfigError(f"pileup must be between 0 and {MAX_PILEUP:g}, got {self.pileup}")
        if self.pool_size > MAX_POOL_EVENTS:
            raise ConfigError(
                f"pool_size must be at most {MAX_POOL_EVENTS:,}, got {self.pool_size}"
            )
        if self.keep < 1 or self.events_per_file < 1 or self.pool_size < 1:
            raise ConfigError("keep, events_per_file and pool_size must be >= 1")

    def spec(self, name: str) -> SampleSpec:
        """The sample called ``name`` (ConfigError naming the known ones otherwise)."""
        if name not in self.samples:
            raise ConfigError(
                f"unknown sample {name!r}; this config defines {', '.join(self.samples)}"
            )
        return self.samples[name]


def samples_config_from_dict(data: dict[str, Any]) -> SamplesConfig:
    """Build :class:`SamplesConfig` from a YAML mapping (``samples:`` is name -> SampleSpec)."""
    from particlegraph.config import from_dict

    data = dict(data)
    raw = data.pop("samples", {}) or {}
    if not isinstance(raw, dict):
        raise ConfigError("samples: expected a mapping of sample name -> settings")
    samples = {str(k): from_dict(SampleSpec, dict(v or {}), f"samples.{k}") for k, v in raw.items()}
    base = from_dict(SamplesConfig, data, "samples config")
    return SamplesConfig(**{**base.__dict__, "samples": samples})


class Candidates(NamedTuple):
    """PF candidates of many events, flat: every array (C,), ``offsets`` (E+1,).

    ``cls`` PF class (1 charged hadron, 2 neutral hadron, 3 photon, 4 electron, 5 muon),
    ``charge`` [e], ``pt``/``energy`` [GeV], ``eta``, ``phi`` [rad]. Per-event arrays (E,):
    ``n_cand``, ``ht``, ``lead_jet_pt``, ``lead_jet_mass``, ``n_jets``.
    """

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    cls: np.ndarray
    charge: np.ndarray
    energy: np.ndarray
    offsets: np.ndarray
    n_cand: np.ndarray
    ht: np.ndarray
    lead_jet_pt: np.ndarray
    lead_jet_mass: np.ndarray
    n_jets: np.ndarray

    @property
    def num_events(self) -> int:
        return int(self.offsets.size - 1)


def pf_candidates(ycand: np.ndarray, keep: int) -> dict[str, Any]:
    """The ``keep`` highest-pT candidates (class != 0) of one event's ``ycand`` (N, 7) rows."""
    rows = ycand[ycand[:, Y_PID] > 0]
    order = np.argsort(-rows[:, Y_PT], kind="stable")[:keep]
    r = rows[order]
    return {
        "pt": r[:, Y_PT].astype(np.float32),
        "eta": r[:, Y_ETA].astype(np.float32),
        "phi": phi_from_sincos(r[:, Y_SIN_PHI], r[:, Y_COS_PHI]).astype(np.float32),
        "cls": r[:, Y_PID].astype(np.int8),
        "charge": r[:, Y_CHARGE].astype(np.int8),
        "energy": r[:, Y_ENERGY].astype(np.float32),
        "n_cand": np.int32(rows.shape[0]),
    }


def jet_summary(events: list[np.ndarray]) -> np.ndarray:
    """Per event ``(HT, leading-jet pT, leading-jet mass, n_jets)`` (E, 4) from ycand rows.

    Anti-kT R = 0.4 (fastjet) on massless candidates; HT and n_jets count jets with
    pT > 30 GeV and |eta| < 2.5; the leading jet is the hardest of those (zeros when none).
    """
    import awkward as ak
    import fastjet

    p4s = []
    for y in events:
        r = y[y[:, Y_PID] > 0].astype(np.float64)
        phi = phi_from_sincos(r[:, Y_SIN_PHI], r[:, Y_COS_PHI])
        p4s.append(massless_p4(r[:, Y_PT], r[:, Y_ETA], phi).reshape(-1, 4))
    counts = np.array([len(p) for p in p4s], dtype=np.int64)
    flat = np.concatenate(p4s) if counts.sum() else np.zeros((0, 4))
    arr = ak.zip({n: ak.unflatten(np.ascontiguousarray(flat[:, i]), counts)
                  for i, n in enumerate(("px", "py", "pz", "E"))})  # fmt: skip
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, JET_RADIUS)
    jets = fastjet.ClusterSequence(arr, jetdef).inclusive_jets(min_pt=HT_JET_PT_MIN)
    out = np.zeros((len(events), 4))
    for i, ev in enumerate(ak.to_list(jets)):
        if not ev:
            continue
        j = np.array([[d["px"], d["py"], d["pz"], d["E"]] for d in ev])
        pt = np.hypot(j[:, 0], j[:, 1])
        eta = np.arcsinh(j[:, 2] / np.maximum(pt, 1e-12))
        sel = np.abs(eta) < HT_JET_ETA_MAX
        if not sel.any():
            continue
        j, pt = j[sel], pt[sel]
        lead = int(np.argmax(pt))
        m2 = j[lead, 3] ** 2 - (j[lead, :3] ** 2).sum()
        out[i] = (pt.sum(), pt[lead], math.sqrt(max(m2, 0.0)), sel.sum())
    return out


def write_candidates(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Write per-event candidate rows (dicts as made by :func:`pf_candidates` plus the jet
    numbers) to one shard of :data:`SCHEMA` via :mod:`particlegraph.io.shards`, atomically."""
    cands = [np.stack([np.asarray(r[c], dtype=np.float32) for c in LIST_COLUMNS], 1).reshape(-1, 6)
             for r in rows]  # fmt: skip
    event = [np.array([[r[c] for c in SCALAR_COLUMNS]], dtype=np.float32) for r in rows]
    write_shard(path, {"candidates": cands, "event": event}, SCHEMA, meta)


def sample_files(path: str | Path) -> list[Path]:
    """Parquet shards of a sample: a folder (sorted ``*.parquet``) or one file."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataFileError(
            f"{path}: no such sample folder or file; run `particlegraph anomaly generate`"
        )
    return list_shards(path, what="anomaly sample")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The generation metadata of one candidate shard."""
    return shard_metadata(path)


def read_candidates(path: str | Path, max_events: int | None = None) -> Candidates:
    """Read a sample (folder or file) into flat :class:`Candidates` (first ``max_events``)."""
    cands: list[np.ndarray] = []
    events: list[np.ndarray] = []
    for f in sample_files(path):
        cols = read_shard(f, SCHEMA)
        cands += cols["candidates"]
        events += cols["event"]
        if max_events is not None and len(events) >= max_events:
            break
    cands, events = cands[:max_events], events[:max_events]
    counts = np.array([c.shape[0] for c in cands], dtype=np.int64)
    flat = np.concatenate(cands) if cands else np.zeros((0, 6), np.float32)
    ev = np.concatenate(events) if events else np.zeros((0, 5), np.float32)
    return Candidates(
        flat[:, 0], flat[:, 1], flat[:, 2], flat[:, 3].round().astype(np.int64),
        flat[:, 4].round().astype(np.int64), flat[:, 5],
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        ev[:, 0].round().astype(np.int64), ev[:, 1], ev[:, 2], ev[:, 3],
        ev[:, 4].round().astype(np.int64),
    )  # fmt: skip


def take_events(c: Candidates, start: int, stop: int | None = None) -> Candidates:
    """Events ``start .. stop-1`` of ``c`` (clipped to the available events)."""
    n = c.num_events
    stop = n if stop is None else min(stop, n)
    start = min(max(start, 0), stop)
    lo, hi = int(c.offsets[start]), int(c.offsets[stop])
    flat = [a[lo:hi] for a in c[:6]]
    per_event = [a[start:stop] for a in c[7:]]
    return Candidates._make([*flat, c.offsets[start : stop + 1] - lo, *per_event])
