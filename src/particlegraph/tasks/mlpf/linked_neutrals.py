"""Linked-tower neutrals: the neutral energy of HCAL towers with linked tracks, learned after the network.

In an HCAL tower that a charged hadron's track points to, the neutral energy is what is left of
the measured energy E once the charged deposit is taken away; with the Delphes-like calorimeter of
:mod:`particlegraph.sim.calorimeter` (each particle deposits all its energy in one tower) the only
handles are E, the linked momenta P and the network's view of the event. The seventh session's
study on validation events (docs/benchmarks.md, "MLPF: linked-tower neutrals") found that MLPF's
own energies on these towers cost most of its gap to the rule-based PF in jets and MET. A small
regression of the *expected* neutral energy learned after the network, replacing MLPF on these
towers, gives a much better MET (a sum of unbiased estimates) but slightly worse jets (their
resolution, an IQR, rewards hard decisions per tower); acting only where MLPF sees no particle,
it moves the jets a little towards the baseline instead. Neither was shipped by its declared rule.

The step, **off unless the run holds** ``linked_neutrals.json``:

1. the towers it acts on: tower elements with HCAL energy (``E_had > 0``) and at least one linked
   track (:func:`~particlegraph.tasks.mlpf.links.link_features`, the links the network sees);
2. per tower, :data:`FEATURE_NAMES` (log energies, the link features, |eta|, MLPF's class
   probabilities and its predicted energy), standardised, go through a small ReLU MLP whose one
   output is the expected neutral energy as a fraction of E (trained with a squared error, whose
   optimum is the mean: :func:`fit_linked_neutrals`);
3. where ``E x fraction >= threshold_gev`` the tower becomes a neutral hadron of that energy along
   the tower's direction (massless); otherwise it holds no particle. With ``mode="replace"`` this
   holds for every such tower; with ``mode="fill"`` only for the towers MLPF predicts as no
   particle (MLPF's own neutrals are kept, so its hard decisions, which the jet resolution
   rewards, stay). Towers below ``min_tower_gev`` of measured energy are left to MLPF in both
   modes. MLPF's output on every other element is unchanged.

The learned part is stored as plain numbers (JSON, written atomically); loading it never runs code.
Choose the validation events it learns from and the threshold on events you do not report on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.sim.elements import (
    ELEM_TOWER,
    NUM_CLASSES,
    Y_ENERGY,
    Y_PID,
    ParticleClass,
    target_rows,
)

LINKED_NEUTRALS_FILE = "linked_neutrals.json"
#: Inputs of the regression, per tower (E in GeV; probabilities of MLPF's arg-max classes).
FEATURE_NAMES = (
    "log1p_e", "log1p_e_em", "log1p_e_had", "link_log1p_p", "link_log1p_e",
    "link_signed_log_residual", "link_log1p_n", "abs_eta",
    *(f"prob_{c}" for c in range(NUM_CLASSES)), "log1p_e_pred",
)  # fmt: skip
NUM_FEATURES = len(FEATURE_NAMES)
#: Where the step acts: every linked HCAL tower, or only those MLPF predicts as no particle.
MODES = ("replace", "fill")
#: Hidden width of the MLP, training epochs, batch size and learning rate of the fit.
HIDDEN, EPOCHS, BATCH, LR = 64, 30, 512, 1e-3


def check_threshold(value: object, where: str = "threshold_gev") -> float:
    """``value`` as a float; refused unless finite and >= 0 [GeV]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number of GeV >= 0, got {value!r}")
    if value < 0:
        raise ConfigError(f"{where} must be >= 0 GeV, got {value!r}")
    return float(value)


def linked_hcal_towers(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (R,) of the tower elements of one event ``x`` (N, 12) with HCAL energy and a linked
    track, and the link features (N, 4) of the event (float32, as the network computes them:
    the dense track x tower distances of a pile-up-200 event take hundreds of MB in float64)."""
    import torch

    from particlegraph.tasks.mlpf.links import link_features

    link = link_features(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
    rows = np.flatnonzero((x[:, 0] == ELEM_TOWER) & (x[:, 7] > 0) & (link[:, 0] > 0))
    return rows, link


def tower_features(
    x: np.ndarray, ypred: np.ndarray, prob: np.ndarray, rows: np.ndarray, link: np.ndarray
) -> np.ndarray:
    """The (R, NUM_FEATURES) float64 inputs of towers ``rows`` (:data:`FEATURE_NAMES`).

    Args:
        x: the event's elements (N, 12).
        ypred: MLPF's predictions (N, 7), after its operating point and calibration.
        prob: MLPF's class probabilities (N, 6) (softmax of the logits).
        rows: the towers (:func:`linked_hcal_towers`).
        link: the event's link features (N, 4).
    """
    t = np.asarray(x, dtype=np.float64)[rows]
    return np.column_stack(
        [
            np.log1p(np.maximum(t[:, 5], 0.0)),
            np.log1p(np.maximum(t[:, 6], 0.0)),
            np.log1p(np.maximum(t[:, 7], 0.0)),
            link[rows],
            np.abs(t[:, 2]),
            np.asarray(prob, dtype=np.float64)[rows],
            np.log1p(np.maximum(np.asarray(ypred, dtype=np.float64)[rows, Y_ENERGY], 0.0)),
        ]
    )


@dataclass(frozen=True)
class LinkedNeutrals:
    """The learned step: standardisation, MLP layers and threshold.

    Attributes:
        mean, std: (F,) feature standardisation.
        layers: ``[(weight (out, in), bias (out,)), ...]``; ReLU between layers, the last has
            one output (the neutral energy fraction of E).
        threshold_gev: smallest neutral energy kept as a particle [GeV].
        events: validation events it was learned on.
        towers: towers it was learned on.
        mode: "replace" (every linked HCAL tower) or "fill" (only those MLPF calls no particle).
        min_tower_gev: towers with less measured energy [GeV] are left to MLPF.
    """

    mean: np.ndarray
    std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    threshold_gev: float
    events: int = 0
    towers: int = 0
    mode: str = "replace"
    min_tower_gev: float = 0.0

    def __post_init__(self) -> None:
        check_threshold(self.threshold_gev)
        check_threshold(self.min_tower_gev, "min_tower_gev")
        check_mode(self.mode)
        _check_shapes(self.mean, self.std, self.layers)

    def fraction(self, features: np.ndarray) -> np.ndarray:
        """Expected neutral energy over tower energy (R,) of ``features`` (R, F), >= 0."""
        h = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        out: np.ndarray = np.maximum(h[:, 0], 0.0)
        return out

    def apply(self, x: np.ndarray, ypred: np.ndarray, prob: np.ndarray) -> np.ndarray:
        """A float32 copy of ``ypred`` (N, 7) with the linked HCAL towers of ``x`` that the mode
        covers replaced by their learned neutral (or by no particle below the threshold)."""
        out = np.array(ypred, dtype=np.float32, copy=True)
        rows, link = linked_hcal_towers(x)
        if self.mode == "fill":
            rows = rows[np.rint(out[rows, Y_PID]) == ParticleClass.NONE]
        e_tower = np.asarray(x[rows, 5], dtype=np.float64)
        rows, e_tower = rows[e_tower >= self.min_tower_gev], e_tower[e_tower >= self.min_tower_gev]
        if rows.size == 0:
            return out
        energy = e_tower * self.fraction(tower_features(x, ypred, prob, rows, link))
        out[rows] = neutral_rows(x[rows], energy, self.threshold_gev)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready content of ``linked_neutrals.json``."""
        return {
            "features": list(FEATURE_NAMES),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "layers": [{"weight": w.tolist(), "bias": b.tolist()} for w, b in self.layers],
            "threshold_gev": self.threshold_gev,
            "events": self.events,
            "towers": self.towers,
            "mode": self.mode,
            "min_tower_gev": self.min_tower_gev,
        }


def check_mode(value: object, where: str = "mode") -> str:
    """``value`` if it is one of :data:`MODES`."""
    if value not in MODES:
        raise ConfigError(f"{where} must be one of {', '.join(MODES)}, got {value!r}")
    return str(value)


def neutral_rows(towers: np.ndarray, energy: np.ndarray, threshold_gev: float) -> np.ndarray:
    """(R, 7) float32 rows: a massless neutral hadron of ``energy`` [GeV] along each tower of
    ``towers`` (R, 12), or all zeros (no particle) where ``energy < threshold_gev``."""
    t = np.asarray(towers, dtype=np.float64)
    e = np.asarray(energy, dtype=np.float64)
    kept = (e >= threshold_gev) & (e > 0)
    cls = np.where(kept, ParticleClass.NEUTRAL_HADRON, ParticleClass.NONE)
    eta, phi = t[:, 2], np.arctan2(t[:, 3], t[:, 4])
    return target_rows(cls, np.zeros(len(t)), e / np.cosh(eta), eta, phi, e)


def training_rows(events: Iterable[Sequence[np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(features (M, F), target (M,), events)`` of validation events ``(X, ygen, ycand, ypred,
    prob)``: the target is the true neutral (neutral hadron or photon) energy of each linked
    HCAL tower over its measured energy (0 where its target is no neutral)."""
    feats, targets, k = [], [], 0
    for ev in events:
        x, ygen, ypred, prob = (np.asarray(ev[i]) for i in (0, 1, 3, 4))
        rows, link = linked_hcal_towers(x)
        cls = np.rint(ygen[rows, Y_PID])
        is_neutral = (cls == ParticleClass.NEUTRAL_HADRON) | (cls == ParticleClass.PHOTON)
        neutral = np.where(is_neutral, ygen[rows, Y_ENERGY], 0.0)
        feats.append(tower_features(x, ypred, prob, rows, link))
        targets.append(neutral / np.maximum(x[rows, 5].astype(np.float64), 1e-9))
        k += 1
    if k == 0:
        raise DataFileError("no validation events to learn the linked-tower neutrals from")
    f = np.concatenate(feats) if feats else np.zeros((0, NUM_FEATURES))
    return f, np.concatenate(targets), k


def fit_linked_neutrals(
    events: Iterable[Sequence[np.ndarray]],
    threshold_gev: float,
    *,
    epochs: int = EPOCHS,
    hidden: int = HIDDEN,
    seed: int = 0,
    mode: str = "replace",
) -> LinkedNeutrals:
    """Learn the step from validation events ``(X, ygen, ycand, ypred, prob)`` (predictions
    after the operating point and calibration; ``prob`` the softmax of the logits).

    A ReLU MLP (F -> hidden -> hidden -> 1) on standardised features, Adam (lr :data:`LR`,
    batches of :data:`BATCH` towers, ``epochs`` passes), squared error on the neutral energy
    fraction; deterministic for a given ``seed``. ``mode`` only says where
    :meth:`LinkedNeutrals.apply` acts; the fit is the same.

    Raises:
        DataFileError: no events, or fewer than 100 linked HCAL towers in them.
    """
    import torch

    check_threshold(threshold_gev)
    check_mode(mode)
    feats, target, k = training_rows(events)
    if len(target) < 100:
        raise DataFileError(
            f"{len(target)} linked HCAL towers in {k} validation events: too few to learn from"
        )
    mean, std = feats.mean(axis=0), feats.std(axis=0) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    xt = torch.tensor((feats - mean) / std, dtype=torch.float32)
    yt = torch.tensor(target, dtype=torch.float32)[:, None]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(NUM_FEATURES, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1),
        )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), BATCH):
            b = perm[i : i + BATCH]
            loss = torch.nn.functional.mse_loss(net(xt[b]), yt[b])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    linear = [m for m in net if isinstance(m, torch.nn.Linear)]
    layers = tuple(
        (m.weight.detach().double().numpy().copy(), m.bias.detach().double().numpy().copy())
        for m in linear
    )
    return LinkedNeutrals(mean, std, layers, float(threshold_gev), k, len(target), mode)


def save_linked_neutrals(step: LinkedNeutrals, folder: str | Path) -> Path:
    """Write ``folder/linked_neutrals.json`` atomically; return its path."""
    path = Path(folder) / LINKED_NEUTRALS_FILE
    write_json(path, step.to_dict())
    return path


def load_linked_neutrals(folder: str | Path) -> LinkedNeutrals | None:
    """The step stored in ``folder``, or None when it has none.

    Raises:
        DataFileError: the file is not one this module wrote (unreadable, keys or shapes wrong,
            numbers not finite, features of another version).
    """
    path = Path(folder) / LINKED_NEUTRALS_FILE
    if not path.is_file():
        return None
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
        if list(raw["features"]) != list(FEATURE_NAMES):
            raise ValueError("its features are not this version's")
        layers = tuple(
            (np.asarray(la["weight"], dtype=np.float64), np.asarray(la["bias"], dtype=np.float64))
            for la in raw["layers"]
        )
        return LinkedNeutrals(
            np.asarray(raw["mean"], dtype=np.float64),
            np.asarray(raw["std"], dtype=np.float64),
            layers,
            raw["threshold_gev"],
            int(raw["events"]),
            int(raw["towers"]),
            raw["mode"],
            raw["min_tower_gev"],
        )
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
        raise DataFileError(
            f"{path}: not a linked-neutrals step written by particlegraph ({err})"
        ) from err


def _check_shapes(
    mean: np.ndarray, std: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]
) -> None:
    """Refuse standardisations and layers that do not chain from F features to one output."""
    if mean.shape != (NUM_FEATURES,) or std.shape != (NUM_FEATURES,):
        raise ValueError(f"mean and std must have {NUM_FEATURES} entries")
    if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise ValueError("mean must be finite and std finite and positive")
    if not layers:
        raise ValueError("at least one layer is needed")
    width = NUM_FEATURES
    for w, b in layers:
        if w.ndim != 2 or w.shape[1] != width or b.shape != (w.shape[0],):
            raise ValueError(
                f"a layer of shape {w.shape} with bias {b.shape} does not follow {width} inputs"
            )
        if not np.all(np.isfinite(w)) or not np.all(np.isfinite(b)):
            raise ValueError("weights must be finite")
        width = w.shape[0]
    if width != 1:
        raise ValueError(f"the last layer must have one output, not {width}")
