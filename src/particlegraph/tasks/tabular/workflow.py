"""The tabular task's actions, callable from Python with the CLI's names: generate, train,
explain, demo."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.bounds import MAX_BINS
from particlegraph.config import apply_overrides, from_dict, load_config, to_dict
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.outputs import Output, claim, guard_outputs, owner
from particlegraph.tasks.tabular.data import (
    OBSERVABLES,
    ToyConfig,
    generate_toy,
    is_generated_toy,
    read_table,
    toy_metadata,
    write_table,
)
from particlegraph.tasks.tabular.explanation import explain_model, write_explanation
from particlegraph.tasks.tabular.training import (
    CONFIG_NAME,
    TabularRunConfig,
    load_run,
    make_run_config,
    torch_threads,
    train_run,
)
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint
from particlegraph.train.run import check_checkpoint, check_data, create_run, open_run

#: The package whose ``configs/`` folder ships the named run configs.
PACKAGE = "particlegraph.tasks.tabular"
#: The task's name in run folders and commands.
TASK = "tabular"
#: What a tabular run records about its data (compared by ``explain --data``).
DATA_SETTINGS = {"observables": list(OBSERVABLES)}


def generate(
    out: str | Path, events: int = 20_000, seed: int = 0, *, overwrite: bool = False, **toy: Any
) -> Path:
    """Write the three-observable toy (``.data`` or ``.parquet`` by suffix) and return its path.

    ``toy`` overrides other :class:`~particlegraph.tasks.tabular.data.ToyConfig` fields. An
    existing ``out`` is replaced only when ``tabular generate`` wrote it (its metadata says so)
    or with ``overwrite``.
    """
    cfg = ToyConfig(events=events, seed=seed, **toy)
    out = Path(out)
    guard_outputs(
        "tabular generate", [Output(out, "file", "--out", own=is_generated_toy)],
        overwrite=overwrite,
    )  # fmt: skip
    write_table(out, generate_toy(cfg), toy_metadata(cfg))
    return out


def train(
    data: str | Path,
    out: str | Path,
    *,
    epochs: int = 30,
    features: tuple[int, ...] = (0, 1, 2),
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    overwrite: bool = False,
    overrides: list[str] | None = None,
    config: str | Path | None = None,
) -> dict[str, Any]:
    """Train a classifier on ``data`` into run folder ``out`` (``--run``); returns a summary.

    The configuration and the data are checked before anything is written; the run folder is
    then made by :func:`particlegraph.train.run.create_run` (an existing run is refused unless
    ``resume``, which continues it, or ``overwrite``, which replaces it).
    With ``resume`` the run's own ``config.yaml`` is used (arguments other than ``out`` ignored).
    ``config`` (a YAML file or a shipped name such as ``"default"``) replaces the keyword
    settings ``epochs``, ``lr``, ``batch_size``, ``seed``, ``device``; ``data`` and ``features``
    always come from the arguments. ``overrides`` are ``key=value`` strings on
    :class:`TabularRunConfig` (e.g. ``model.hidden=[50]``), applied last.
    """
    out = Path(out)
    if resume:
        cfg = open_run(out, TASK, PACKAGE).config(TabularRunConfig, overrides)
    elif config is not None:
        given = [
            f"data={json.dumps(str(data))}",
            f"features={json.dumps(list(features))}",
            f"model.n_inputs={len(features)}",
        ]
        cfg = load_config(TabularRunConfig, config, [*given, *(overrides or [])], package=PACKAGE)
    else:
        cfg = make_run_config(data, tuple(features), epochs=epochs, lr=lr, seed=seed, device=device)
        cfg = from_dict(
            TabularRunConfig,
            apply_overrides(to_dict(cfg), [f"batch_size={batch_size}", *(overrides or [])]),
        )
    guard_outputs("tabular train", [Output(out, "dir", "--run")], [cfg.data], overwrite=overwrite)
    _test_or_train_rows(cfg.data, "train")  # the data is read and checked before any write
    if resume:  # so is the checkpoint it continues from (a payload is refused unread)
        load_checkpoint(checkpoint_path(out, "last"))
    create_run(out, TASK, cfg, data=DATA_SETTINGS, overwrite=overwrite, resume=resume)
    t0 = time.perf_counter()
    _, history = train_run(cfg, out, resume=resume)
    last = history.records[-1] if history.records else {}
    return {
        "run_dir": str(out),
        "epochs": len(history.records),
        "best_epoch": history.best_epoch,
        "val_loss": last.get("val_loss"),
        "val_accuracy": last.get("val_accuracy"),
        "seconds": time.perf_counter() - t0,
    }


def _test_or_train_rows(data_path: str | Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``part`` rows (``train``: labels 0/1, ``test``: 2/3) of a data file, both classes."""
    data = read_table(data_path)
    x, y = data.part(part)
    labels = "0/1" if part == "train" else "2/3"
    if len(x) == 0:
        raise DataFileError(f"{data_path}: no {part} rows (labels {labels})")
    if len(np.unique(y)) != 2:
        raise DataFileError(f"{data_path}: {part} rows must hold both signal and background")
    return x, y


def _test_part(data_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    return _test_or_train_rows(data_path, "test")


def explain(
    run: str | Path,
    *,
    data: str | Path | None = None,
    out: str | Path | None = None,
    heatmap_run: str | Path | None = None,
    heatmap_epochs: int | None = None,
    bins: int = 100,
    threads: int | None = 1,
    checkpoint: str = "best",
    overwrite: bool = False,
    accepts: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Gradient / Taylor / ROC analysis of a trained run on the test rows of ``data``.

    ``run`` is opened with :func:`particlegraph.train.run.open_run` (``checkpoint``: ``best``
    or ``last``); ``out`` is refused when it exists and was not written by ``tabular explain``
    (or one of ``accepts``), unless ``overwrite``, and always when it is the data file.

    Writes into ``out`` (default ``run/explain``): ``gradients.json``/``.png``,
    ``taylor_coefficients.json``, ``taylor_matrix.png``, ``taylor_ranking.png``,
    ``taylor_evolution.png``, ``roc.json``/``.png``, ``observables.png`` and, from a
    two-observable model (``heatmap_run``, or one trained here on obs1 and obs2), ``heatmaps.png``
    and ``heatmaps.npz``; ``summary.json`` lists everything. Returns that summary.
    ``threads``: intra-op CPU threads (see :func:`~particlegraph.tasks.tabular.training.torch_threads`).
    """
    check_checkpoint(checkpoint)
    if not 2 <= bins <= MAX_BINS:
        raise ConfigError(
            f"--bins must be between 2 and {MAX_BINS} (grid points per axis), got {bins}"
        )
    opened = open_run(run, TASK, PACKAGE)
    cfg = opened.config(TabularRunConfig)
    folder = Path(out) if out is not None else opened.output_dir / "explain"
    data_path = data or cfg.data
    inputs = [data_path, *([heatmap_run] if heatmap_run is not None else [])]
    accepted = ("tabular explain", *accepts)
    guard_outputs("tabular explain", [Output(folder, "dir", "--out", accepts=accepted)], inputs,
                  overwrite=overwrite)  # fmt: skip
    if heatmap_run is not None:
        open_run(heatmap_run, TASK, PACKAGE)
    check_data(opened, DATA_SETTINGS)
    test_rows = _test_part(data_path)  # checked before anything is written
    model, _ = load_run(opened.path, checkpoint)
    if owner(folder) is None:
        claim(folder, "tabular explain", {"run": str(opened.path), "data": str(data_path)})
    with torch_threads(threads):
        return _explain(opened.path, model, cfg, test_rows, data_path, folder, heatmap_run,
                        heatmap_epochs, bins)  # fmt: skip


def _explain(
    run: Path,
    model: Any,
    cfg: TabularRunConfig,
    test_rows: tuple[np.ndarray, np.ndarray],
    data_path: str | Path,
    out: Path,
    heatmap_run: str | Path | None,
    heatmap_epochs: int | None,
    bins: int,
) -> dict[str, Any]:
    """Compute the explanation (training the heat-map model first when needed) and write it."""
    heat = _heatmap_run(run, cfg, data_path, out, heatmap_run, heatmap_epochs)
    result = explain_model(run, model, cfg, test_rows, data_path, heat, bins)
    return write_explanation(result, out)


def _heatmap_run(
    run: Path,
    cfg: TabularRunConfig,
    data_path: str | Path,
    out: Path,
    heatmap_run: str | Path | None,
    heatmap_epochs: int | None,
) -> Path:
    """The two-observable run of the heat maps: ``heatmap_run``, the run itself when it has two
    observables, else ``out/two_observables`` (trained on obs1 and obs2 unless already there)."""
    if heatmap_run is not None:
        return Path(heatmap_run)
    if len(cfg.features) == 2:
        return run
    two_run = out / "two_observables"
    if not (two_run / CONFIG_NAME).is_file():
        fit2 = cfg.fit if heatmap_epochs is None else _with_epochs(cfg, heatmap_epochs)
        two = TabularRunConfig(
            data=str(data_path),
            features=(0, 1),
            model=type(cfg.model)(
                n_inputs=2, hidden=cfg.model.hidden, activation=cfg.model.activation
            ),
            fit=fit2,
            batch_size=cfg.batch_size,
            val_fraction=cfg.val_fraction,
            taylor_events=0,
        )
        create_run(two_run, TASK, two, data=DATA_SETTINGS)
        train_run(two, two_run)
    return two_run


def _with_epochs(cfg: TabularRunConfig, epochs: int) -> Any:
    import dataclasses

    return dataclasses.replace(cfg.fit, epochs=epochs)


def demo(
    out: str | Path,
    *,
    events: int = 20_000,
    epochs: int = 30,
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Everything end to end in ``out``: toy data, a three-observable model, a two-observable
    model for the heat maps, and the analysis (``taylor_coefficients.json``, ``roc.json``, figures).

    ``out`` must be new or empty, or a folder of an earlier demo with ``overwrite``.
    """
    out = Path(out)
    guard_outputs("tabular demo", [Output(out, "dir", "--out")], overwrite=overwrite)
    runs = ("run_3obs", "run_2obs")
    if not overwrite and any((out / name / CONFIG_NAME).is_file() for name in runs):
        raise ConfigError(
            f"{out}: holds an earlier tabular demo (pass --overwrite to replace it, or choose "
            "another --out)"
        )
    t0 = time.perf_counter()
    claim(out, "tabular demo", {"events": events, "epochs": epochs, "seed": seed})
    data = generate(out / "events.data", events=events, seed=seed, overwrite=overwrite)
    for name, feats in zip(runs, ((0, 1, 2), (0, 1)), strict=True):
        train(data, out / name, epochs=epochs, features=feats, seed=seed, device=device,
              overwrite=overwrite)  # fmt: skip
    summary = explain(out / "run_3obs", data=data, out=out, heatmap_run=out / "run_2obs",
                      accepts=("tabular demo",))  # fmt: skip
    for name in ("run_3obs", "run_2obs"):
        summary["figures"][f"training_curves_{name.removeprefix('run_')}"] = str(
            out / name / "training_curves.png"
        )
    summary["seconds"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    _demo_page(out, runs)
    return summary


def _demo_page(out: Path, runs: tuple[str, ...]) -> Path:
    """``out/index.html``: the demo's explanation plus both runs' curves and pages."""
    from particlegraph.report.html import ReportSection
    from particlegraph.report.run_index import write_run_index

    section = ReportSection(
        "Training curves", [out / name / "training_curves.png" for name in runs],
        text="The three-observable model (explained) and the two-observable model (heat maps).",
        links=[(f"{name} run page", str(out / name / "index.html")) for name in runs],
    )  # fmt: skip
    return write_run_index(out, "Tabular demo", "training", [section])
