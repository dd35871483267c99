"""Evaluate a trained MLPF run against the rule-based PF baseline on held-out events.

``evaluate(run, data)`` checks its options and its output folder, then computes and writes in two
separate steps:

* :func:`compute_evaluation` predicts every event of ``data`` with the run's checkpoint
  (:func:`predict_events`), computes the metrics of :mod:`particlegraph.tasks.mlpf.metrics`,
  :mod:`.diagnostics`, :mod:`.uncertainty` and :mod:`particlegraph.physics.jets` for MLPF
  (``ypred``) and the baseline (``ycand``) side by side, and the arrays of every figure
  (:func:`~particlegraph.tasks.mlpf.evaluate_result.figure_data`); it returns an
  :class:`~particlegraph.tasks.mlpf.evaluate_result.Evaluation` and writes nothing;
* :func:`~particlegraph.tasks.mlpf.evaluate_writer.write_evaluation` turns it into files::

    OUT/metrics.json          {"mlpf": {...}, "baseline": {...}, "gen": {...}, "events": K, ...}
    OUT/evaluation/*.png      confusion matrices, efficiency / fake rate vs pT and eta,
                              response per class, jets, MET, multiplicity (mplhep CMS style)
    OUT/index.html            summary tables and every plot

``OUT`` is the run folder (``runs/pretrained_<name>/`` for a shipped model) unless ``out_dir``
(``--out``) names another, which goes through the output guard. Definitions of every number are
in docs/evaluation.md; the console tables are in :mod:`.evaluate_tables`.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.sim.elements import CLASS_NAMES, NUM_CLASSES
from particlegraph.tasks.mlpf import metrics as pf
from particlegraph.tasks.mlpf.calibration import Calibration, load_calibration
from particlegraph.tasks.mlpf.diagnostics import summarize_diagnostics
from particlegraph.tasks.mlpf.evaluate_result import (
    EVAL_DIR as EVAL_DIR,
)
from particlegraph.tasks.mlpf.evaluate_result import (
    Evaluation,
    figure_data,
    read_history,
)
from particlegraph.tasks.mlpf.evaluate_tables import (
    format_summary as format_summary,
)
from particlegraph.tasks.mlpf.linked_neutrals import LinkedNeutrals, load_linked_neutrals
from particlegraph.tasks.mlpf.operating_point import OperatingPoint
from particlegraph.tasks.mlpf.recovery import RECOVERY_KEY, NeutralRecovery, detector_of
from particlegraph.tasks.mlpf.uncertainty import summarize_uncertainties

PathLike = str | os.PathLike[str]

#: The command, as the output guard and the folder marker name it.
COMMAND = "mlpf evaluate"


def predict_events(
    model: Any,
    data: PathLike | Iterable[PathLike],
    *,
    max_events: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    progress: bool = True,
    class_offsets: Any = None,
    offset_max_pt: float | None = None,
    calibration: Any = None,
    recovery: NeutralRecovery | None = None,
    linked_neutrals: LinkedNeutrals | None = None,
    probabilities: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Run ``model`` on every event of ``data`` and yield ``(X, ygen, ycand, ypred)`` per event.

    Args:
        model: an MLPF module, ``forward(x (N, 12), batch (N,)) -> MLPFOutput``.
        data: dataset directory, one shard, or a list of shards (Parquet or .pkl.bz2).
        max_events: stop after this many events (None: all).
        device: "auto", "cpu" or "cuda".
        batch_size: events per forward pass.
        progress: show progress (a bar on a terminal, plain lines with total and ETA in a pipe).
        class_offsets: (6,) tensor of the operating point (``operating_point.json``), or None.
        offset_max_pt: the offsets act below this element pT|Et [GeV] (None: everywhere).
        calibration: a :class:`~particlegraph.tasks.mlpf.calibration.Calibration` applied to
            every event's predictions, or None.
        recovery: a :class:`~particlegraph.tasks.mlpf.recovery.NeutralRecovery` applied after
            the calibration (the rule's residual neutral on towers predicted "none"), or None.
        linked_neutrals: a :class:`~particlegraph.tasks.mlpf.linked_neutrals.LinkedNeutrals`
            applied after the calibration (the learned neutral of HCAL towers with linked
            tracks), or None; not together with ``recovery``.
        probabilities: also yield MLPF's class probabilities (N, 6), the softmax of its logits.

    Yields:
        numpy float32 arrays ``X`` (N, 12), ``ygen``, ``ycand``, ``ypred`` (N, 7)[, ``prob``
        (N, 6)].

    Raises:
        ConfigError: ``batch_size < 1``, or both ``recovery`` and ``linked_neutrals``.
    """
    import torch

    from particlegraph.cli.common import progress as progress_bar
    from particlegraph.device import resolve_device
    from particlegraph.tasks.mlpf.dataset import MLPFDataset, make_loader
    from particlegraph.tasks.mlpf.model import decode_predictions

    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if recovery is not None and linked_neutrals is not None:
        raise ConfigError("the rule's neutral recovery and the linked-tower neutrals both "
                          "rewrite linked towers: use one of them")  # fmt: skip
    dev = resolve_device(device)
    model = model.to(dev).eval()
    reference = getattr(getattr(model, "cfg", None), "tower_reference", "energy")
    dataset = MLPFDataset(data, max_events=max_events)
    loader = make_loader(dataset, batch_size=batch_size)
    # Parquet footers give the total for free (a .pkl.bz2 would have to be read twice)
    parquet = all(f.name.endswith(".parquet") for f in dataset.files)
    total = dataset.count_events() if parquet else max_events
    bar = progress_bar(total=total, unit="ev", desc="evaluate", enabled=progress)
    with torch.inference_mode(), bar:
        for batch in loader:
            batch = batch.to(dev)
            out = model(batch.x, batch.batch)
            decoded = decode_predictions(
                batch.x, out, class_offsets, offset_max_pt, batch.batch, reference
            )
            ypred = decoded.float().cpu().numpy()
            need_prob = probabilities or linked_neutrals is not None
            prob = torch.softmax(out.logits.float(), dim=-1).cpu().numpy() if need_prob else None
            x, ygen, ycand, ptr = (t.cpu().numpy() for t in (batch.x, batch.ygen, batch.ycand,
                                                             batch.ptr))  # fmt: skip
            for a, b in itertools.pairwise(ptr.tolist()):
                p = None if prob is None else prob[a:b]
                yp = _after_network(x[a:b], ypred[a:b], p, calibration, recovery, linked_neutrals)
                yield (x[a:b], ygen[a:b], ycand[a:b], yp) + ((p,) if probabilities else ())
            bar.update(len(ptr) - 1)


def _after_network(
    x: np.ndarray,
    ypred: np.ndarray,
    prob: np.ndarray | None,
    calibration: Any,
    recovery: NeutralRecovery | None,
    linked_neutrals: LinkedNeutrals | None,
) -> np.ndarray:
    """One event's predictions after the steps that follow the network, in order: the energy
    calibration, the rule's neutral recovery, the linked-tower neutrals (each when given)."""
    yp = ypred if calibration is None else calibration.apply(ypred)
    yp = yp if recovery is None else recovery.apply(x, yp)
    if linked_neutrals is not None and prob is not None:
        yp = linked_neutrals.apply(x, yp, prob)
    return yp


def check_run_data(
    run_dir: str | os.PathLike[str], data: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
) -> None:
    """Refuse events simulated with another detector than the run's training data.

    Compares the ``detector`` settings stored in the first event file with those the run recorded
    (:func:`particlegraph.tasks.mlpf.train.data_identity`); a run or a file without them passes.

    Raises:
        ConfigError: naming the detector setting that differs.
    """
    from particlegraph.outputs import owner
    from particlegraph.tasks.mlpf.store import resolve_files
    from particlegraph.tasks.mlpf.train import data_identity
    from particlegraph.train.run import Run

    files = resolve_files(data)
    mark = owner(run_dir)
    if not files or mark is None:
        return
    trained = Run(path=Path(run_dir), task="mlpf", identity=mark).data_settings.get("detector")
    now = data_identity(files[0]).get("detector")
    if not isinstance(now, dict) or not isinstance(trained, dict):
        return
    for key in sorted(set(now) & set(trained)):
        if json.dumps(now[key]) != json.dumps(trained[key]):
            raise ConfigError(
                f"{files[0]}: simulated with detector.{key} = {now[key]!r}, but {run_dir} was "
                f"trained on detector.{key} = {trained[key]!r}; evaluate on events made with the "
                "run's detector"
            )


# --- compute ---------------------------------------------------------------------------------


def _has_params(model: Any) -> bool:
    try:
        next(iter(model.parameters()))
    except (StopIteration, AttributeError):
        return False
    return True


def run_metrics(
    model: Any,
    data: PathLike | Iterable[PathLike],
    *,
    device: str,
    batch_size: int,
    events: int,
    elapsed: float,
    which: str,
    op: OperatingPoint | None,
    cal: Calibration | None,
    linked: LinkedNeutrals | None = None,
) -> dict[str, Any]:
    """The ``metrics.json`` entries that describe the evaluation itself: inference speed
    (``elapsed`` [s] over ``events``), data, checkpoint, operating point, calibration, the
    linked-tower neutrals step, classes."""
    return {
        "inference": {
            "device": str(next(iter(model.parameters())).device) if _has_params(model) else device,
            "batch_size": batch_size,
            "seconds_incl_metrics": round(elapsed, 3),
            "events_per_s_incl_metrics": round(events / elapsed, 2) if elapsed > 0 else None,
        },
        "data": str(data) if isinstance(data, str | os.PathLike) else "list of files",
        "checkpoint": which,
        "operating_point": _op_record(op),
        "calibration": (
            {"events": cal.events, "classes": sorted(cal.points), "counts": cal.counts}
            if cal is not None
            else None
        ),
        "linked_neutrals": (
            {
                "threshold_gev": linked.threshold_gev,
                "events": linked.events,
                "towers": linked.towers,
                "mode": linked.mode,
                "min_tower_gev": linked.min_tower_gev,
            }
            if linked is not None
            else None
        ),
        "classes": list(CLASS_NAMES[:NUM_CLASSES]),
    }


def _op_record(op: OperatingPoint | None) -> dict[str, Any] | None:
    """The operating point as ``metrics.json`` records it (the recovery only when set)."""
    if op is None:
        return None
    rec: dict[str, Any] = {
        "class_offsets": list(op.class_offsets),
        "offset_max_pt_gev": op.offset_max_pt_gev,
        "feasible": op.feasible,
    }
    if op.neutral_recovery_significance is not None:
        rec[RECOVERY_KEY] = op.neutral_recovery_significance
    return rec


def recovery_for(
    op: OperatingPoint | None, data: PathLike | Iterable[PathLike]
) -> NeutralRecovery | None:
    """The operating point's neutral recovery for events ``data`` (their detector), or None."""
    if op is None or op.neutral_recovery_significance is None:
        return None
    return NeutralRecovery(op.neutral_recovery_significance, detector_of(data))


def compute_evaluation(
    model: Any,
    data: PathLike | Iterable[PathLike],
    *,
    max_events: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    progress: bool = True,
    which: str = "best",
    operating_point: OperatingPoint | None = None,
    calibration: Calibration | None = None,
    linked_neutrals: LinkedNeutrals | None = None,
    figures: bool = True,
    history: list[dict[str, Any]] | None = None,
) -> Evaluation:
    """Predict every event of ``data`` with ``model`` and compute what the evaluation shows.

    Writes nothing (:func:`~particlegraph.tasks.mlpf.evaluate_writer.write_evaluation` does).

    Args:
        model, data, max_events, device, batch_size, progress: see :func:`predict_events`.
        which: the checkpoint the model came from (recorded in the metrics).
        operating_point: class offsets applied before the arg-max (None: plain arg-max), and
            its neutral recovery (:mod:`.recovery`) when set.
        calibration: energy calibration applied to the predictions (None: none).
        linked_neutrals: the learned neutrals of HCAL towers with linked tracks, applied after
            the calibration (:mod:`.linked_neutrals`; None: none).
        figures: also compute the arrays of the figures (False: metrics only).
        history: the run's training records, shown as loss curves.

    Returns:
        The :class:`~particlegraph.tasks.mlpf.evaluate_result.Evaluation`; its ``metrics`` are
        the ``metrics.json`` content: ``{"mlpf": {...}, "baseline": {...}, "gen": {...},
        "diagnostics": {...}, "uncertainty": {...}, "events": K, "inference": {...}, "data":
        str, "checkpoint": which, "operating_point", "calibration", "classes"}``.
    """
    op = operating_point
    t0 = time.perf_counter()
    col = pf.collect(
        predict_events(
            model, data, max_events=max_events, device=device, batch_size=batch_size,
            progress=progress, class_offsets=op.offsets_tensor() if op is not None else None,
            offset_max_pt=op.offset_max_pt_gev if op is not None else None,
            calibration=calibration, recovery=recovery_for(op, data),
            linked_neutrals=linked_neutrals,
        )
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    metrics = pf.summarize(col)
    metrics["diagnostics"] = summarize_diagnostics(col)
    metrics["uncertainty"] = summarize_uncertainties(col)
    metrics.update(
        run_metrics(
            model, data, device=device, batch_size=batch_size, events=col.events,
            elapsed=elapsed, which=which, op=op, cal=calibration, linked=linked_neutrals,
        )
    )  # fmt: skip
    return Evaluation(metrics, figure_data(col) if figures else None, op, list(history or []))


# --- the workflow ----------------------------------------------------------------------------


def _learned_steps(out: Path, source: Path) -> tuple[Calibration | None, LinkedNeutrals | None]:
    """The calibration and linked-tower neutrals ``evaluate`` applies: each from the output
    folder (where ``mlpf calibrate`` writes), else from the run itself, else None."""
    return (
        load_calibration(out) or load_calibration(source),
        load_linked_neutrals(out) or load_linked_neutrals(source),
    )


def evaluation_folder(run_dir: PathLike, out_dir: PathLike | None = None) -> Path:
    """Where ``evaluate`` writes: ``out_dir``, else the run (``runs/pretrained_<name>`` for a
    shipped model: the package folder is never written into)."""
    from particlegraph.tasks.mlpf.train import run_output_dir

    return Path(out_dir) if out_dir is not None else run_output_dir(run_dir)


def _same(a: PathLike, b: PathLike) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def guard_evaluation_folder(
    out: Path,
    data: PathLike | Iterable[PathLike],
    reads: Iterable[PathLike] = (),
    *,
    overwrite: bool = False,
) -> None:
    """The output guard of ``--out``: refused when it equals or lies inside ``data`` or another
    input (``reads``: the run's config, checkpoint folder), or when it exists and holds files
    ``mlpf evaluate`` did not make (unless ``overwrite``).

    Raises:
        ConfigError: one sentence naming the folder and what to do.
    """
    from particlegraph.outputs import Output, guard_outputs

    inputs = [data] if isinstance(data, str | os.PathLike) else list(data)
    guard_outputs(COMMAND, [Output(out, "dir", "--out")], [*inputs, *reads], overwrite=overwrite)


def _run_inputs(run_dir: PathLike, which: str, *, opened: bool) -> tuple[Path, list[Path]]:
    """The run's folder and what ``evaluate`` reads from it (config, checkpoint folder, and the
    package folder of a shipped model, never written into). ``opened``: open the run through the
    run contract (:func:`particlegraph.train.run.open_run`); False when a model is given."""
    from particlegraph.tasks.mlpf.train import PACKAGE, resolve_run_dir
    from particlegraph.train.run import open_run

    if not opened:
        return resolve_run_dir(run_dir), []
    run = open_run(run_dir, "mlpf", PACKAGE)  # a folder or pretrained:NAME
    reads = [run.config_path, run.checkpoint(which).parent]
    return run.path, [*reads, run.path] if run.pretrained else reads


def evaluate(
    run_dir: PathLike,
    data: PathLike | Iterable[PathLike],
    max_events: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    *,
    which: str = "best",
    model: Any = None,
    progress: bool = True,
    figures: bool = True,
    use_operating_point: bool = True,
    use_calibration: bool = True,
    out_dir: PathLike | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate a trained run on ``data``, write metrics, plots and the report, return the metrics.

    Args:
        run_dir: run directory written by ``particlegraph mlpf train``, or ``pretrained:<name>``.
        data: held-out dataset directory, one shard, or a list of shards.
        max_events: evaluate at most this many events (None: all).
        device: "auto", "cpu" or "cuda".
        batch_size: events per forward pass.
        which: checkpoint, "best" (falls back to "last") or "last".
        model: use this module instead of loading the run's checkpoint (tests, notebooks).
        progress: show a progress bar on a terminal.
        figures: write the PNGs (about 10 s of CPU); False writes metrics and tables only.
        use_operating_point: apply ``run_dir/operating_point.json`` (class offsets chosen on
            validation events) when the run has one; False: plain arg-max.
        use_calibration: apply the run's ``calibration.json`` (energy calibration learned on
            validation events, :mod:`.calibration`) and ``linked_neutrals.json`` (the learned
            neutrals of linked HCAL towers, :mod:`.linked_neutrals`) when it has them; each is
            looked for in the output directory, then in the run itself.
        out_dir: write here instead of the run (``--out``): refused when it lies inside
            ``data`` or holds files ``mlpf evaluate`` did not make, unless ``overwrite``; the
            run is then only read.
        overwrite: write into an ``out_dir`` that ``mlpf evaluate`` did not make.

    ``run_dir = "pretrained:<name>"`` evaluates a shipped model and writes into
    ``runs/pretrained_<name>/`` by default.

    Returns:
        The content of ``OUT/metrics.json`` (:func:`compute_evaluation`).
    """
    from particlegraph.atomic import restored_on_failure
    from particlegraph.cli.common import removed_on_failure
    from particlegraph.outputs import claim_unowned
    from particlegraph.tasks.mlpf.evaluate_writer import write_evaluation
    from particlegraph.tasks.mlpf.operating_point import load_operating_point
    from particlegraph.tasks.mlpf.train import load_model

    if max_events is not None and max_events < 1:
        raise ConfigError(f"max_events must be >= 1 or None, got {max_events}")
    source, reads = _run_inputs(run_dir, which, opened=model is None)
    default, out = evaluation_folder(run_dir), evaluation_folder(run_dir, out_dir)
    elsewhere = not _same(out, default)
    if elsewhere:
        guard_evaluation_folder(out, data, reads, overwrite=overwrite)
    if model is None:
        check_run_data(source, data)
        model, _ = load_model(source, which=which)
    op = load_operating_point(source) if use_operating_point else None
    cal, linked = _learned_steps(out, source) if use_calibration else (None, None)
    # into the run: a failure half-way (a full disk) puts back what was there
    run_files = (out / "metrics.json", out / EVAL_DIR, out / "report", out / "index.html")
    touched = () if elsewhere else run_files
    with removed_on_failure(out if elsewhere else None), restored_on_failure(*touched):
        if elsewhere:
            claim_unowned(out, COMMAND)
        result = compute_evaluation(
            model, data, max_events=max_events, device=device, batch_size=batch_size,
            progress=progress, which=which, operating_point=op, calibration=cal,
            linked_neutrals=linked, figures=figures, history=read_history(source),
        )  # fmt: skip
        title = f"MLPF evaluation of {os.fspath(run_dir)}" if elsewhere else None
        write_evaluation(result, out, figures=figures, title=title)
    return result.metrics
