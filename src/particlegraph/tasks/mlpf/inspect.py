"""Summary statistics and validation plots of an MLPF dataset (``particlegraph mlpf inspect``).

The dataset is streamed once, shard by shard; histograms are filled on the fly with fixed
bins, so any dataset size fits in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.cli.common import progress
from particlegraph.plot import save_figure
from particlegraph.sim.elements import (
    CLASS_NAMES,
    ELEM_TOWER,
    ELEM_TRACK,
    NUM_CLASSES,
    Y_ETA,
    Y_PID,
    Y_PT,
)
from particlegraph.tasks.mlpf.store import read_any, resolve_files

PathLike = str | os.PathLike[str]

#: Histogram bin edges: pT [GeV] logarithmic, eta linear.
PT_EDGES = np.geomspace(0.1, 1000.0, 41)
ETA_EDGES = np.linspace(-5.0, 5.0, 41)
TARGETS = ("ygen", "ycand")


def _class_hist(y: np.ndarray, col: int, edges: np.ndarray) -> np.ndarray:
    """(NUM_CLASSES, bins) counts of column ``col`` of a target array (N, 7) per class."""
    cls = y[:, Y_PID].astype(np.int64)
    out = np.zeros((NUM_CLASSES, len(edges) - 1), dtype=np.int64)
    for c in range(1, NUM_CLASSES):
        out[c] = np.histogram(y[cls == c, col], bins=edges)[0]
    return out


def dataset_statistics(
    source: PathLike | Iterable[PathLike], max_events: int | None = None
) -> dict[str, Any]:
    """Stream a dataset and collect counts and histograms (numpy arrays, see inspect_dataset)."""
    files = resolve_files(source)
    n_elem: list[int] = []
    n_trk: list[int] = []
    n_twr: list[int] = []
    class_counts = {t: np.zeros(NUM_CLASSES, dtype=np.int64) for t in TARGETS}
    pt_hist = {t: np.zeros((NUM_CLASSES, len(PT_EDGES) - 1), dtype=np.int64) for t in TARGETS}
    eta_hist = {t: np.zeros((NUM_CLASSES, len(ETA_EDGES) - 1), dtype=np.int64) for t in TARGETS}
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    done = False
    for path in progress(files, desc="inspect", unit="file"):
        for ev in read_any(path):
            if max_events is not None and len(n_elem) >= max_events:
                done = True
                break
            kind = ev.X[:, 0]
            n_elem.append(len(kind))
            n_trk.append(int((kind == ELEM_TRACK).sum()))
            n_twr.append(int((kind == ELEM_TOWER).sum()))
            for t, y in (("ygen", ev.ygen), ("ycand", ev.ycand)):
                cls = np.clip(y[:, Y_PID].astype(np.int64), 0, NUM_CLASSES - 1)
                class_counts[t] += np.bincount(cls, minlength=NUM_CLASSES)
                pt_hist[t] += _class_hist(y, Y_PT, PT_EDGES)
                eta_hist[t] += _class_hist(y, Y_ETA, ETA_EDGES)
            g = np.clip(ev.ygen[:, Y_PID].astype(np.int64), 0, NUM_CLASSES - 1)
            c = np.clip(ev.ycand[:, Y_PID].astype(np.int64), 0, NUM_CLASSES - 1)
            confusion += np.bincount(g * NUM_CLASSES + c, minlength=NUM_CLASSES**2).reshape(
                NUM_CLASSES, NUM_CLASSES
            )
        if done:
            break
    return {
        "files": files,
        "n_elements": np.asarray(n_elem, dtype=np.int64),
        "n_tracks": np.asarray(n_trk, dtype=np.int64),
        "n_towers": np.asarray(n_twr, dtype=np.int64),
        "class_counts": class_counts,
        "pt_hist": pt_hist,
        "eta_hist": eta_hist,
        "confusion": confusion,
    }


def _per_event(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"mean": 0.0, "min": 0, "max": 0}
    return {"mean": float(values.mean()), "min": int(values.min()), "max": int(values.max())}


def _fractions(counts: np.ndarray) -> dict[str, float]:
    total = counts.sum()
    return {name: float(counts[i] / total) if total else 0.0 for i, name in enumerate(CLASS_NAMES)}


def inspect_dataset(
    path: PathLike | Iterable[PathLike],
    plots_dir: PathLike | None = None,
    max_events: int | None = None,
) -> dict[str, Any]:
    """Summarise an MLPF dataset and optionally write validation PNGs.

    Args:
        path: a dataset directory, one shard, or a list of shards (Parquet or ``.pkl.bz2``).
        plots_dir: when given, write ``multiplicity.png``, ``pt.png``, ``eta.png`` and
            ``confusion.png`` there (mplhep CMS style).
        max_events: stop after this many events (``None``: all).

    Returns:
        JSON-serialisable dict: ``files``, ``events``, ``elements_per_event`` / ``tracks_per_event``
        / ``towers_per_event`` (mean, min, max), ``track_fraction``, ``ygen_class_fractions`` and
        ``ycand_class_fractions`` (class name -> fraction of elements),
        ``confusion_ygen_ycand`` (6 x 6 counts, rows ygen), and ``plots`` (paths written).
    """
    stats = dataset_statistics(path, max_events=max_events)
    n_elem = stats["n_elements"]
    total = int(n_elem.sum())
    summary: dict[str, Any] = {
        "files": len(stats["files"]),
        "events": len(n_elem),
        "elements_per_event": _per_event(n_elem),
        "tracks_per_event": _per_event(stats["n_tracks"]),
        "towers_per_event": _per_event(stats["n_towers"]),
        "track_fraction": float(stats["n_tracks"].sum() / total) if total else 0.0,
        "ygen_class_fractions": _fractions(stats["class_counts"]["ygen"]),
        "ycand_class_fractions": _fractions(stats["class_counts"]["ycand"]),
        "confusion_ygen_ycand": stats["confusion"].tolist(),
        "plots": [],
    }
    if plots_dir is not None:
        summary["plots"] = [str(p) for p in write_validation_plots(stats, plots_dir)]
    return summary


def write_validation_plots(stats: dict[str, Any], plots_dir: PathLike) -> list[Path]:
    """Write the validation PNGs from :func:`dataset_statistics` output; return their paths."""
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend
    from particlegraph.tasks.mlpf import plots_validation as vplot

    headless_backend()

    out = Path(plots_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with vplot.cms_style():
        fig, ax = plt.subplots(figsize=(8, 6), layout="constrained")
        vplot.plot_multiplicity(
            {
                "elements": stats["n_elements"],
                "tracks": stats["n_tracks"],
                "towers": stats["n_towers"],
            },
            ax=ax,
        )
        written.append(save_figure(fig, out / "multiplicity.png"))
        for name, hists, edges, label, log_x in (
            ("pt", stats["pt_hist"], PT_EDGES, r"$p_T$ [GeV]", True),
            ("eta", stats["eta_hist"], ETA_EDGES, r"$\eta$", False),
        ):
            fig, axes = plt.subplots(1, 2, figsize=(14, 6), sharey=True, layout="constrained")
            for ax, t in zip(axes, TARGETS, strict=True):
                vplot.plot_class_hists(hists[t], edges, xlabel=label, title=t, log_x=log_x, ax=ax)
            written.append(save_figure(fig, out / f"{name}.png"))
        fig, ax = plt.subplots(figsize=(8, 7.5), layout="constrained")
        vplot.plot_confusion(stats["confusion"], ax=ax)
        written.append(save_figure(fig, out / "confusion.png"))
    return written


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable multi-line text of an :func:`inspect_dataset` summary."""
    e, t, w = (summary[k] for k in ("elements_per_event", "tracks_per_event", "towers_per_event"))
    lines = [
        f"files: {summary['files']}    events: {summary['events']}",
        f"elements per event: mean {e['mean']:.1f}, min {e['min']}, max {e['max']}",
        f"tracks per event: mean {t['mean']:.1f}    towers per event: mean {w['mean']:.1f}"
        f"    track fraction: {summary['track_fraction']:.3f}",
        f"{'class':<16}{'ygen':>10}{'ycand':>10}",
    ]
    for name in CLASS_NAMES:
        g, c = summary["ygen_class_fractions"][name], summary["ycand_class_fractions"][name]
        lines.append(f"{name:<16}{g:>10.4f}{c:>10.4f}")
    if summary["plots"]:
        lines.append("plots: " + ", ".join(summary["plots"]))
    return "\n".join(lines)


#: The command that writes ``--json`` summaries and ``--plots`` folders (their owner mark).
COMMAND = "mlpf inspect"
#: Largest existing ``--json`` file read to find out whether this command wrote it [bytes].
MAX_OWN_CHECK_BYTES = 16 << 20


def is_own_summary(path: PathLike) -> bool:
    """Whether ``path`` is a JSON summary written by ``mlpf inspect`` (its ``command`` says so);
    anything else (a shard, another JSON file, a huge file) is never replaced without
    ``--overwrite``."""
    import json

    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_OWN_CHECK_BYTES:
            return False
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("command") == COMMAND


def inspect(
    path: PathLike,
    *,
    plots_dir: PathLike | None = None,
    max_events: int | None = None,
    json_out: PathLike | None = None,
    overwrite: bool = False,
    validate: bool = True,
) -> dict[str, Any]:
    """``particlegraph mlpf inspect``: :func:`inspect_dataset`, plus the ``--json`` summary.

    The outputs are checked before any reading (:func:`particlegraph.outputs.guard_outputs`):
    ``json_out`` is never one of the dataset's event files (not even with ``overwrite``), and
    an existing file or ``plots_dir`` is written only when ``mlpf inspect`` made it, or with
    ``overwrite``. A summary or plots folder beside the shards, inside the dataset folder, is
    allowed (readers skip them).

    Returns:
        The summary (see :func:`inspect_dataset`); the JSON file holds it with
        ``"command": "mlpf inspect"`` added.
    """
    from particlegraph.atomic import write_json
    from particlegraph.cli.common import check_output_dir, check_output_file, removed_on_failure
    from particlegraph.outputs import Output, claim_unowned, guard_outputs
    from particlegraph.tasks.mlpf.schema import reading

    outputs = []
    if json_out is not None:
        check_output_file(json_out, "--json")
        outputs.append(Output(Path(json_out), "file", "--json", own=is_own_summary))
    if plots_dir is not None:
        check_output_dir(plots_dir, "--plots")
        outputs.append(Output(Path(plots_dir), "dir", "--plots"))
    shards = resolve_files(path)  # the event files: what must never be replaced
    guard_outputs(COMMAND, outputs, shards, overwrite=overwrite)
    with reading(validate), removed_on_failure(plots_dir, json_out):
        if plots_dir is not None:
            claim_unowned(plots_dir, COMMAND)
        summary = inspect_dataset(shards, plots_dir=plots_dir, max_events=max_events)
        if json_out is not None:
            write_json(json_out, {**summary, "command": COMMAND})
    return summary
