"""``tabular explain`` (:func:`explain`): what it computes (:func:`explain_model`) and how it is
written (:func:`write_explanation`).

The computation returns an :class:`Explanation` (gradients, Taylor coefficients, ROC curves and
the heat maps of a two-observable model) and touches no file; the writer turns it into JSON,
PNG figures, ``summary.json`` and ``index.html`` (through :mod:`particlegraph.report`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.bounds import MAX_BINS
from particlegraph.errors import ConfigError
from particlegraph.explain.gradients import GridDerivatives, TaylorCoefficients
from particlegraph.outputs import Output, claim, guard_outputs, owner
from particlegraph.plot import save_figure
from particlegraph.report.html import ReportSection
from particlegraph.report.run_index import write_run_index
from particlegraph.tasks.tabular.analysis import (
    RocCurve,
    gradient_summary,
    heatmap_derivatives,
    model_taylor,
    predict,
    roc_table,
    taylor_dict,
)
from particlegraph.tasks.tabular.data import OBSERVABLES
from particlegraph.tasks.tabular.model import MLPClassifier
from particlegraph.tasks.tabular.train import (
    CONFIG_NAME,
    DATA_SETTINGS,
    PACKAGE,
    TASK,
    TabularRunConfig,
    load_run,
    table_rows,
    torch_threads,
    train_run,
)
from particlegraph.train.run import check_checkpoint, check_data, create_run, open_run


@dataclass(frozen=True)
class HeatMaps:
    """Output and derivatives of a two-observable model on a ``bins x bins`` grid.

    ``xs`` (bins,), ``ys`` (bins,) raw observable values; every field of ``grid`` is
    (bins, bins) indexed [y, x]; ``run`` the model's run folder.
    """

    run: str
    observables: list[str]
    bins: int
    xs: np.ndarray
    ys: np.ndarray
    grid: GridDerivatives


@dataclass(frozen=True)
class Explanation:
    """Everything ``tabular explain`` found about one run on the test rows of its data.

    Attributes:
        run, data: the explained run folder and the data file.
        observables: the observables the network sees (F names).
        gradients: :func:`~.analysis.gradient_summary` of the network.
        taylor: ``<|t_i|>`` (F,) and ``<|t_ij|>`` (F, F) over the test rows.
        evolution: the run's ``taylor_evolution.json`` (per-epoch coefficients), if it has one.
        roc: ROC curve of each observable and of the network (``"network"``).
        x_raw: (B, 3) all observables of the test rows; ``y`` (B,) their labels (0/1).
        heatmaps: the two-observable model's grid.
    """

    run: str
    data: str
    observables: list[str]
    gradients: dict[str, list[float]]
    taylor: TaylorCoefficients
    evolution: dict[str, Any] | None
    roc: dict[str, RocCurve]
    x_raw: np.ndarray
    y: np.ndarray
    heatmaps: HeatMaps

    @property
    def auc(self) -> dict[str, float]:
        """Area under each ROC curve."""
        return {k: c.auc for k, c in self.roc.items()}


def explain_model(
    run: Path,
    model: MLPClassifier,
    cfg: TabularRunConfig,
    test_rows: tuple[np.ndarray, np.ndarray],
    data_path: str | Path,
    heatmap_run: Path,
    bins: int,
) -> Explanation:
    """Gradients, Taylor coefficients and ROC curves of ``model`` (the run ``run``, config
    ``cfg``) on ``test_rows`` (raw (B, 3) observables, (B,) labels), and the heat maps of the
    two-observable run ``heatmap_run`` over the 1-99 % range of its observables.

    Raises:
        ConfigError: ``heatmap_run`` does not use exactly two observables.
    """
    x_raw, y = test_rows
    x = x_raw[:, list(cfg.features)]
    evo_path = run / "taylor_evolution.json"
    evolution = json.loads(evo_path.read_text()) if evo_path.is_file() else None
    curves = roc_table(x_raw, y, list(OBSERVABLES), network=predict(model, x), abs_columns=(1,))
    model2, cfg2 = load_run(heatmap_run)
    if len(cfg2.features) != 2:
        raise ConfigError(f"heat-map run {heatmap_run} must use two observables")
    x2 = x_raw[:, list(cfg2.features)]
    lo, hi = np.percentile(x2, [1, 99], axis=0)
    xs, ys, gd = heatmap_derivatives(model2, (lo[0], hi[0]), (lo[1], hi[1]), bins=bins)
    return Explanation(
        run=str(run),
        data=str(data_path),
        observables=cfg.feature_names,
        gradients=gradient_summary(model, x),
        taylor=model_taylor(model, x),
        evolution=evolution,
        roc=curves,
        x_raw=x_raw,
        y=y,
        heatmaps=HeatMaps(str(heatmap_run), cfg2.feature_names, bins, xs, ys, gd),
    )


#: What each figure shows (the captions of ``index.html``).
CAPTIONS = {
    "gradients.png": "Mean and spread of the network output's gradient per standardised observable.",
    "taylor_matrix.png": "Mean absolute first-order (diagonal) and second-order Taylor coefficients.",
    "taylor_ranking.png": "Taylor coefficients ranked: what drives the decision.",
    "taylor_evolution.png": "Taylor coefficients on validation rows after every training epoch.",
    "roc.png": "ROC curves of each observable (|obs2| folded) and of the network; AUC in the legend.",
    "observables.png": "The observables of the test rows, signal and background.",
    "heatmaps.png": "Output and derivatives of the two-observable model over its observables.",
}


def write_explanation(result: Explanation, out: Path) -> dict[str, Any]:
    """Write ``result`` into ``out``; returns the summary also written as ``summary.json``.

    Files: ``gradients.json``/``.png``, ``taylor_coefficients.json``, ``taylor_matrix.png``,
    ``taylor_ranking.png``, ``taylor_evolution.png`` (when the run tracked it), ``roc.json``/``.png``,
    ``observables.png``, ``heatmaps.npz``/``.png``, ``summary.json`` and ``index.html``.
    """
    names = result.observables
    tdict = taylor_dict(result.taylor, names)
    hm = result.heatmaps
    write_json(out / "gradients.json", {"observables": names, **result.gradients})
    write_json(out / "taylor_coefficients.json", tdict)
    write_json(
        out / "roc.json",
        {
            "auc": result.auc,
            "negated": {k: c.flipped for k, c in result.roc.items()},
            "network_features": names,
        },
    )
    grid = {k: v.numpy() for k, v in hm.grid._asdict().items()}
    np.savez(out / "heatmaps.npz", xs=hm.xs, ys=hm.ys, **grid)
    figures = _write_figures(result, out)
    summary = {
        "run": result.run,
        "data": result.data,
        "test_events": len(result.y),
        "observables": names,
        "taylor_ranked": tdict["ranked"],
        "auc": result.auc,
        "heatmaps": {"run": hm.run, "observables": hm.observables, "bins": hm.bins},
        "figures": figures,
    }
    write_json(out / "summary.json", summary)
    write_explanation_index(out, summary)
    return summary


def _write_figures(result: Explanation, out: Path) -> dict[str, str]:
    """Draw the figures into ``out``; returns ``{name: path}`` in drawing order."""
    import matplotlib.pyplot as plt

    from particlegraph.plot import headless_backend
    from particlegraph.tasks.tabular import plots as P

    headless_backend()
    names = result.observables
    figures: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        save_figure(fig, out / name, tight=True)
        figures[name.removesuffix(".png")] = str(out / name)

    fig, ax = plt.subplots(figsize=(5, 4))
    P.plot_gradient_summary(result.gradients, names, ax=ax)
    save(fig, "gradients.png")
    fig, ax = plt.subplots(figsize=(5, 5))
    P.plot_taylor_matrix(result.taylor.first.tolist(), result.taylor.second.tolist(), names, ax=ax)
    save(fig, "taylor_matrix.png")
    fig, ax = plt.subplots(figsize=(6, 4))
    P.plot_taylor_ranking(result.taylor.ranked(names), ax=ax)
    save(fig, "taylor_ranking.png")
    if result.evolution is not None:
        fig, ax = plt.subplots(figsize=(7, 5))
        P.plot_taylor_evolution(result.evolution, ax=ax)
        save(fig, "taylor_evolution.png")
    fig, ax = plt.subplots(figsize=(5.5, 5))
    P.plot_roc(result.roc, ax=ax)
    save(fig, "roc.png")
    fig = plt.figure(figsize=(9, 9))
    P.plot_observable_matrix(result.x_raw, result.y, list(OBSERVABLES), fig=fig)
    save(fig, "observables.png")
    fig = plt.figure(figsize=(14, 8))
    hm = result.heatmaps
    P.plot_grid_derivatives(hm.xs, hm.ys, hm.grid, hm.observables, fig=fig)
    save(fig, "heatmaps.png")
    return figures


def write_explanation_index(out: Path, summary: dict[str, Any]) -> Path:
    """``out/index.html``: the AUC table, the Taylor ranking and every figure of ``summary``."""
    images = [Path(p) for p in summary["figures"].values()]
    ranked = [[r["coefficient"], r["value"]] for r in summary["taylor_ranked"]]
    sections = [
        ReportSection("Taylor coefficients", text="Ranked over the test rows.", rows=ranked,
                      header=["coefficient", "<|t|>"]),
        ReportSection("Figures", images, captions=CAPTIONS),
    ]  # fmt: skip
    files = [
        "summary.json",
        "gradients.json",
        "taylor_coefficients.json",
        "roc.json",
        "heatmaps.npz",
    ]
    rows = [[k, v] for k, v in summary["auc"].items()]
    return write_run_index(
        out, f"Tabular explanation: {Path(summary['run']).name}", "explanation", sections,
        files=files, summary_rows=rows, header=["score", "test AUC"],
    )  # fmt: skip


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
    ``threads``: intra-op CPU threads (see :func:`~particlegraph.tasks.tabular.train.torch_threads`).
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
    test_rows = table_rows(data_path, "test")  # checked before anything is written
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
    return dataclasses.replace(cfg.fit, epochs=epochs)
