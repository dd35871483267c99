"""What ``tabular explain`` computes (:func:`explain_model`) and how it is written (:func:`write_explanation`).

The computation returns an :class:`Explanation` (gradients, Taylor coefficients, ROC curves and
the heat maps of a two-observable model) and touches no file; the writer turns it into JSON,
PNG figures, ``summary.json`` and ``index.html`` (through :mod:`particlegraph.report`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError
from particlegraph.explain.gradients import GridDerivatives, TaylorCoefficients
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
from particlegraph.tasks.tabular.training import TabularRunConfig, load_run


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
