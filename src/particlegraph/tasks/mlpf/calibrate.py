"""Learn a run's energy calibration (:mod:`.calibration`) on validation events.

``calibrate_run(run, data)`` predicts ``data`` with the run's best checkpoint at its operating
point (as ``evaluate`` does, without any calibration), fits the per-class inversion and writes
``calibration.json`` next to the run's outputs (``runs/pretrained_<name>/`` for a shipped model);
``evaluate`` applies it from then on. ``fit_linked_run(run, data, threshold)`` learns the
linked-tower neutrals (:mod:`.linked_neutrals`, ``linked_neutrals.json``) the same way, after the
calibration. Choose ``data`` among validation events, never the test events you report on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError, DataFileError
from particlegraph.tasks.mlpf.calibration import (
    CALIBRATION_FILE,
    Calibration,
    fit_calibration,
    load_calibration,
    save_calibration,
)
from particlegraph.tasks.mlpf.linked_neutrals import (
    LINKED_NEUTRALS_FILE,
    LinkedNeutrals,
    check_mode,
    check_threshold,
    fit_linked_neutrals,
    load_linked_neutrals,
    save_linked_neutrals,
)

PathLike = str | os.PathLike[str]


def calibrate_run(
    run: PathLike,
    data: PathLike | Iterable[PathLike],
    max_events: int | None = 300,
    *,
    which: str = "best",
    device: str = "auto",
    progress: bool = True,
    out_dir: PathLike | None = None,
    overwrite: bool = False,
) -> tuple[Calibration, Path]:
    """Fit and save the calibration of ``run`` on validation ``data``.

    Args:
        run: run directory or ``pretrained:<name>``.
        data: validation dataset directory, shard or list of shards.
        max_events: validation events used (None: all).
        which: checkpoint, "best" or "last".
        device: "auto", "cpu" or "cuda".
        progress: show progress.
        out_dir: where ``calibration.json`` goes (default: the run's output directory).
        overwrite: replace a ``calibration.json`` there that is not a calibration (the output
            guard of :mod:`particlegraph.outputs`; an earlier calibration is always replaced).

    Returns:
        ``(calibration, path of calibration.json)``.
    """
    source, dest = _guarded(run, data, CALIBRATION_FILE, load_calibration, out_dir, overwrite)
    events = operating_point_predictions(
        source, data, max_events, which=which, device=device, progress=progress
    )
    cal = fit_calibration(events)
    dest.mkdir(parents=True, exist_ok=True)
    return cal, save_calibration(cal, dest)


def _guarded(
    run: PathLike,
    data: PathLike | Iterable[PathLike],
    name: str,
    loader: Callable[[Path], object],
    out_dir: PathLike | None,
    overwrite: bool,
) -> tuple[Path, Path]:
    """``(run folder, output folder)`` once the output guard allows ``name`` there: refused
    inside ``data`` or over a file of that name that ``loader`` does not read (unless
    ``overwrite``); a file this command wrote is always replaced."""
    from particlegraph.outputs import Output, guard_outputs
    from particlegraph.tasks.mlpf.train import PACKAGE, run_output_dir
    from particlegraph.train.run import open_run

    source = open_run(run, "mlpf", PACKAGE).path  # the run contract: a folder or pretrained:NAME
    dest = Path(out_dir) if out_dir is not None else run_output_dir(run)
    inputs = [data] if isinstance(data, str | os.PathLike) else list(data)

    def own(path: Path) -> bool:
        try:
            return path.name == name and loader(path.parent) is not None
        except (DataFileError, ConfigError):
            return False

    target = Output(dest / name, kind="file", option="--out", own=own)
    guard_outputs("mlpf calibrate", [target], inputs, overwrite=overwrite)
    return source, dest


def operating_point_predictions(
    source: Path,
    data: PathLike | Iterable[PathLike],
    max_events: int | None,
    *,
    which: str,
    device: str,
    progress: bool,
    **kwargs: Any,
) -> Iterator[tuple[np.ndarray, ...]]:
    """The predictions of the run in folder ``source`` on ``data`` at its operating point
    (``kwargs`` to :func:`~particlegraph.tasks.mlpf.evaluate.predict_events`, e.g. a calibration
    or ``probabilities=True``)."""
    from particlegraph.tasks.mlpf.evaluate import predict_events
    from particlegraph.tasks.mlpf.operating_point import load_operating_point
    from particlegraph.tasks.mlpf.train import load_model

    if max_events is not None and max_events < 1:
        raise ConfigError(f"max_events must be >= 1 or None, got {max_events}")
    model, _ = load_model(source, which=which)
    op = load_operating_point(source)
    return predict_events(
        model, data, max_events=max_events, device=device, progress=progress,
        class_offsets=op.offsets_tensor() if op is not None else None,
        offset_max_pt=op.offset_max_pt_gev if op is not None else None, **kwargs,
    )  # fmt: skip


def guard_linked_output(
    run: PathLike,
    data: PathLike | Iterable[PathLike],
    out_dir: PathLike | None = None,
    overwrite: bool = False,
) -> None:
    """Refuse now what :func:`fit_linked_run` would refuse for its output (a foreign
    ``linked_neutrals.json``, an output inside ``data``): ``mlpf calibrate`` checks it before it
    writes the calibration, so a refusal leaves nothing written."""
    _guarded(run, data, LINKED_NEUTRALS_FILE, load_linked_neutrals, out_dir, overwrite)


def fit_linked_run(
    run: PathLike,
    data: PathLike | Iterable[PathLike],
    threshold_gev: float,
    max_events: int | None = 300,
    *,
    which: str = "best",
    device: str = "auto",
    progress: bool = True,
    out_dir: PathLike | None = None,
    overwrite: bool = False,
    seed: int = 0,
    mode: str = "fill",
    min_tower_gev: float = 0.0,
) -> tuple[LinkedNeutrals, Path]:
    """Learn and save the linked-tower neutrals (:mod:`.linked_neutrals`) of ``run`` on
    validation ``data``: predictions at the run's operating point, with the calibration that
    ``evaluate`` would apply (in ``out_dir``, else in the run), then the fit.

    Args:
        run, data, max_events, which, device, progress: as :func:`calibrate_run`.
        threshold_gev: smallest neutral energy kept as a particle [GeV].
        out_dir: where ``linked_neutrals.json`` goes (default: the run's output directory).
        overwrite: replace a ``linked_neutrals.json`` there that is not one.
        seed: of the fit.
        mode: "fill" (towers MLPF calls no particle) or "replace" (every linked HCAL tower).
        min_tower_gev: towers with less measured energy [GeV] are left to MLPF.

    Returns:
        ``(step, path of linked_neutrals.json)``.
    """
    check_threshold(threshold_gev, "--linked-neutrals")
    check_mode(mode, "--linked-mode")
    check_threshold(min_tower_gev, "--linked-min-tower")
    source, dest = _guarded(
        run, data, LINKED_NEUTRALS_FILE, load_linked_neutrals, out_dir, overwrite
    )
    events = operating_point_predictions(
        source, data, max_events, which=which, device=device, progress=progress,
        calibration=load_calibration(dest) or load_calibration(source), probabilities=True,
    )  # fmt: skip
    step = fit_linked_neutrals(events, threshold_gev, seed=seed, mode=mode)
    step = dataclasses.replace(step, min_tower_gev=float(min_tower_gev))
    dest.mkdir(parents=True, exist_ok=True)
    return step, save_linked_neutrals(step, dest)
