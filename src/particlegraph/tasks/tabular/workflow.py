"""The tabular task's actions, callable from Python with the CLI's names: generate, train,
explain, demo."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.config import apply_overrides, from_dict, load_config, to_dict
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.plot import save_figure
from particlegraph.tasks.tabular.analysis import (
    gradient_summary,
    heatmap_derivatives,
    model_taylor,
    predict,
    roc_table,
    taylor_dict,
)
from particlegraph.tasks.tabular.data import (
    OBSERVABLES,
    ToyConfig,
    generate_toy,
    read_table,
    toy_metadata,
    write_table,
)
from particlegraph.tasks.tabular.training import (
    CONFIG_NAME,
    TabularRunConfig,
    load_run,
    make_run_config,
    torch_threads,
    train_run,
)

#: The package whose ``configs/`` folder ships the named run configs.
PACKAGE = "particlegraph.tasks.tabular"


def generate(out: str | Path, events: int = 20_000, seed: int = 0, **toy: Any) -> Path:
    """Write the three-observable toy (``.data`` or ``.parquet`` by suffix) and return its path.

    ``toy`` overrides other :class:`~particlegraph.tasks.tabular.data.ToyConfig` fields.
    """
    cfg = ToyConfig(events=events, seed=seed, **toy)
    out = Path(out)
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
    overrides: list[str] | None = None,
    config: str | Path | None = None,
) -> dict[str, Any]:
    """Train a classifier on ``data`` into run directory ``out``; returns a short summary.

    With ``resume`` the run's own ``config.yaml`` is used (arguments other than ``out`` ignored).
    ``config`` (a YAML file or a shipped name such as ``"default"``) replaces the keyword
    settings ``epochs``, ``lr``, ``batch_size``, ``seed``, ``device``; ``data`` and ``features``
    always come from the arguments. ``overrides`` are ``key=value`` strings on
    :class:`TabularRunConfig` (e.g. ``model.hidden=[50]``), applied last.
    """
    out = Path(out)
    if resume and (out / CONFIG_NAME).is_file():
        cfg = load_config(TabularRunConfig, out / CONFIG_NAME, overrides)
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


def _test_part(data_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    data = read_table(data_path)
    x, y = data.part("test")
    if len(x) == 0:
        raise DataFileError(f"{data_path}: no test rows (labels 2/3) to explain the model on")
    if len(np.unique(y)) != 2:
        raise DataFileError(f"{data_path}: test rows must hold both signal and background")
    return x, y


def explain(
    run: str | Path,
    *,
    data: str | Path | None = None,
    out: str | Path | None = None,
    heatmap_run: str | Path | None = None,
    heatmap_epochs: int | None = None,
    bins: int = 100,
    threads: int | None = 1,
) -> dict[str, Any]:
    """Gradient / Taylor / ROC analysis of a trained run on the test rows of ``data``.

    Writes into ``out`` (default ``run/explain``): ``gradients.json``/``.png``,
    ``taylor_coefficients.json``, ``taylor_matrix.png``, ``taylor_ranking.png``,
    ``taylor_evolution.png``, ``roc.json``/``.png``, ``observables.png`` and, from a
    two-observable model (``heatmap_run``, or one trained here on obs1 and obs2), ``heatmaps.png``
    and ``heatmaps.npz``; ``summary.json`` lists everything. Returns that summary.
    ``threads``: intra-op CPU threads (see :func:`~particlegraph.tasks.tabular.training.torch_threads`).
    """
    with torch_threads(threads):
        return _explain(Path(run), data, out, heatmap_run, heatmap_epochs, bins)


def _explain(
    run: Path,
    data: str | Path | None,
    out: str | Path | None,
    heatmap_run: str | Path | None,
    heatmap_epochs: int | None,
    bins: int,
) -> dict[str, Any]:
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend
    from particlegraph.tasks.tabular import plots as P

    headless_backend()
    model, cfg = load_run(run)
    out = Path(out) if out is not None else run / "explain"
    out.mkdir(parents=True, exist_ok=True)
    data_path = data or cfg.data
    x_raw, y = _test_part(data_path)
    names = cfg.feature_names
    x = x_raw[:, list(cfg.features)]
    figures: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        save_figure(fig, out / name, tight=True)
        figures[name.removesuffix(".png")] = str(out / name)

    grads = gradient_summary(model, x)
    write_json(out / "gradients.json", {"observables": names, **grads})
    fig, ax = plt.subplots(figsize=(5, 4))
    P.plot_gradient_summary(grads, names, ax=ax)
    save(fig, "gradients.png")

    tc = model_taylor(model, x)
    tdict = taylor_dict(tc, names)
    write_json(out / "taylor_coefficients.json", tdict)
    fig, ax = plt.subplots(figsize=(5, 5))
    P.plot_taylor_matrix(tc.first.tolist(), tc.second.tolist(), names, ax=ax)
    save(fig, "taylor_matrix.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    P.plot_taylor_ranking(tc.ranked(names), ax=ax)
    save(fig, "taylor_ranking.png")

    evo_path = run / "taylor_evolution.json"
    if evo_path.is_file():
        fig, ax = plt.subplots(figsize=(7, 5))
        P.plot_taylor_evolution(json.loads(evo_path.read_text()), ax=ax)
        save(fig, "taylor_evolution.png")

    prob = predict(model, x)
    curves = roc_table(x_raw, y, list(OBSERVABLES), network=prob, abs_columns=(1,))
    write_json(
        out / "roc.json",
        {
            "auc": {k: c.auc for k, c in curves.items()},
            "negated": {k: c.flipped for k, c in curves.items()},
            "network_features": names,
        },
    )
    fig, ax = plt.subplots(figsize=(5.5, 5))
    P.plot_roc(curves, ax=ax)
    save(fig, "roc.png")

    fig = plt.figure(figsize=(9, 9))
    P.plot_observable_matrix(x_raw, y, list(OBSERVABLES), fig=fig)
    save(fig, "observables.png")

    heat: dict[str, Any] = {}
    if len(cfg.features) == 2 and heatmap_run is None:
        heatmap_run = run
    if heatmap_run is None:
        heatmap_run = out / "two_observables"
        if not (heatmap_run / CONFIG_NAME).is_file():
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
            train_run(two, heatmap_run)
    model2, cfg2 = load_run(heatmap_run)
    if len(cfg2.features) != 2:
        raise ConfigError(f"heat-map run {heatmap_run} must use two observables")
    x2 = x_raw[:, list(cfg2.features)]
    lo, hi = np.percentile(x2, [1, 99], axis=0)
    xs, ys, gd = heatmap_derivatives(model2, (lo[0], hi[0]), (lo[1], hi[1]), bins=bins)
    np.savez(out / "heatmaps.npz", xs=xs, ys=ys, **{k: v.numpy() for k, v in gd._asdict().items()})
    fig = plt.figure(figsize=(14, 8))
    P.plot_grid_derivatives(xs, ys, gd, cfg2.feature_names, fig=fig)
    save(fig, "heatmaps.png")
    heat = {"run": str(heatmap_run), "observables": cfg2.feature_names, "bins": bins}

    summary = {
        "run": str(run),
        "data": str(data_path),
        "test_events": len(y),
        "observables": names,
        "taylor_ranked": tdict["ranked"],
        "auc": {k: c.auc for k, c in curves.items()},
        "heatmaps": heat,
        "figures": figures,
    }
    write_json(out / "summary.json", summary)
    return summary


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
) -> dict[str, Any]:
    """Everything end to end in ``out``: toy data, a three-observable model, a two-observable
    model for the heat maps, and the analysis (``taylor_coefficients.json``, ``roc.json``, figures).
    """
    out = Path(out)
    t0 = time.perf_counter()
    data = generate(out / "events.data", events=events, seed=seed)
    train(data, out / "run_3obs", epochs=epochs, features=(0, 1, 2), seed=seed, device=device)
    train(data, out / "run_2obs", epochs=epochs, features=(0, 1), seed=seed, device=device)
    summary = explain(out / "run_3obs", data=data, out=out, heatmap_run=out / "run_2obs")
    for name in ("run_3obs", "run_2obs"):
        summary["figures"][f"training_curves_{name.removeprefix('run_')}"] = str(
            out / name / "training_curves.png"
        )
    summary["seconds"] = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    return summary
