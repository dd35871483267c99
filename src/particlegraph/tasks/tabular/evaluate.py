"""``tabular evaluate`` (:func:`evaluate`): the network's AUC beside a one-line cut, with errors.

The simplest competitor of the classifier is a cut on one observable. Which observable, and
in which direction, is chosen on the **training** rows (labels 0/1); the test rows (labels 2/3)
then give every AUC, and a bootstrap over test events gives each AUC's error and the paired
difference "network minus the best cut" (the same resampled events for both scores).
Writes ``OUT/metrics.json``, ``OUT/roc.png`` and ``OUT/index.html`` (default ``RUN/evaluation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError
from particlegraph.metrics.roc import rank_auc
from particlegraph.outputs import Output, claim, guard_outputs, owner
from particlegraph.plot import save_figure
from particlegraph.report.html import ReportSection
from particlegraph.report.run_index import write_run_index
from particlegraph.tasks.tabular.analysis import RocCurve, predict, roc_curve_auto
from particlegraph.tasks.tabular.data import OBSERVABLES
from particlegraph.tasks.tabular.train import (
    DATA_SETTINGS,
    PACKAGE,
    TASK,
    TabularRunConfig,
    load_run,
    table_rows,
)
from particlegraph.train.run import check_checkpoint, check_data, open_run

#: Bootstrap replicas of the test events behind every error.
N_BOOTSTRAP = 200


def cut_scores(x: np.ndarray) -> dict[str, np.ndarray]:
    """The one-line cuts as scores: each observable (columns of ``x`` (N, 3)) and ``|obs2|``."""
    scores = {name: x[:, i] for i, name in enumerate(OBSERVABLES)}
    scores[f"|{OBSERVABLES[1]}|"] = np.abs(x[:, 1])
    return scores


def cut_directions(x_train: np.ndarray, y_train: np.ndarray) -> dict[str, float]:
    """+1 or -1 per cut: the direction in which it selects signal on the training rows."""
    return {
        name: (1.0 if rank_auc(s, y_train) >= 0.5 else -1.0)
        for name, s in cut_scores(x_train).items()
    }


@dataclass(frozen=True)
class Evaluation:
    """What ``tabular evaluate`` measured on the test rows.

    Attributes:
        run, data: the run folder and the data file.
        events: number of test events (rows).
        scores: per score name (``network`` and every cut) its test scores (N,), oriented so that
            signal scores high (the cut's direction from the training rows).
        y: (N,) test labels (1 = signal).
        auc: per score its AUC on the test rows; ``auc_error`` its bootstrap standard deviation.
        best_cut: the cut with the largest AUC on the **training** rows.
        difference, difference_error: AUC(network) - AUC(best cut) and its paired bootstrap error.
    """

    run: str
    data: str
    events: int
    scores: dict[str, np.ndarray]
    y: np.ndarray
    auc: dict[str, float]
    auc_error: dict[str, float]
    best_cut: str
    difference: float
    difference_error: float

    def metrics(self) -> dict[str, Any]:
        """The JSON-ready summary (``metrics.json``)."""
        err = self.difference_error
        return {
            "run": self.run,
            "data": self.data,
            "test_events": self.events,
            "bootstrap_replicas": N_BOOTSTRAP,
            "auc": {k: {"value": v, "error": self.auc_error[k]} for k, v in self.auc.items()},
            "best_cut": self.best_cut,
            "best_cut_chosen_on": "training rows",
            "network_minus_best_cut": {
                "value": self.difference,
                "error": err,
                "significance": self.difference / err if err > 0 else None,
            },
        }


def compute_evaluation(
    model: Any, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    *, features: tuple[int, ...], seed: int = 0, run: str = "", data: str = "",
) -> Evaluation:  # fmt: skip
    """AUCs of the network (on columns ``features``) and of every cut, with bootstrap errors."""
    y_tr, y_te = (np.asarray(y_train) == 1), (np.asarray(y_test) == 1)
    directions = cut_directions(x_train, y_tr)
    train_auc = {k: rank_auc(directions[k] * s, y_tr) for k, s in cut_scores(x_train).items()}
    best = max(train_auc, key=lambda k: train_auc[k])
    scores = {"network": predict(model, x_test[:, list(features)])}
    scores.update({k: directions[k] * s for k, s in cut_scores(x_test).items()})
    auc = {k: rank_auc(s, y_te) for k, s in scores.items()}
    rng = np.random.default_rng(seed)
    reps: dict[str, list[float]] = {k: [] for k in scores}
    for _ in range(N_BOOTSTRAP):
        idx = rng.integers(0, len(y_te), size=len(y_te))
        for k, s in scores.items():
            reps[k].append(rank_auc(s[idx], y_te[idx]))
    arr = {k: np.asarray(v) for k, v in reps.items()}
    diff = arr["network"] - arr[best]
    return Evaluation(
        run=run, data=data, events=len(y_te), scores=scores, y=y_te, auc=auc,
        auc_error={k: float(np.nanstd(v, ddof=1)) for k, v in arr.items()}, best_cut=best,
        difference=auc["network"] - auc[best], difference_error=float(np.nanstd(diff, ddof=1)),
    )  # fmt: skip


def write_evaluation(result: Evaluation, out: Path) -> dict[str, Any]:
    """Write ``metrics.json``, ``roc.png`` and ``index.html`` into ``out``; return the metrics."""
    from particlegraph.tasks.tabular.plots import plot_roc

    metrics = result.metrics()
    write_json(out / "metrics.json", metrics)
    curves: dict[str, RocCurve] = {k: roc_curve_auto(s, result.y) for k, s in result.scores.items()}
    fig = plot_roc(curves)[0].figure
    save_figure(fig, out / "roc.png")
    d = metrics["network_minus_best_cut"]
    rows = [[k, f"{v['value']:.4f} ± {v['error']:.4f}"] for k, v in metrics["auc"].items()]
    rows.append([f"network - {result.best_cut}", f"{d['value']:+.4f} ± {d['error']:.4f}"])
    section = ReportSection(
        "ROC curves", [out / "roc.png"],
        text=f"{result.events} test events; the cut's observable and direction are chosen on the "
        "training rows; errors: bootstrap over test events.",
    )  # fmt: skip
    write_run_index(out, f"Tabular evaluation: {result.run}", "evaluation", [section],
                    files=["metrics.json"], summary_rows=rows, header=["score", "AUC"])  # fmt: skip
    return metrics


def evaluate(
    run: str | Path, *, data: str | Path | None = None, out: str | Path | None = None,
    checkpoint: str = "best", overwrite: bool = False, seed: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Evaluate run ``run`` on the test rows of ``data`` (default: the run's data) into ``out``.

    ``out`` (default ``RUN/evaluation``) is refused when it is the data file, or exists and was
    not made by ``tabular evaluate``, unless ``overwrite``. Returns the metrics.
    """
    check_checkpoint(checkpoint)
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    opened = open_run(run, TASK, PACKAGE)
    cfg = opened.config(TabularRunConfig)
    data_path = data if data is not None else cfg.data
    folder = Path(out) if out is not None else opened.output_dir / "evaluation"
    guard_outputs("tabular evaluate", [Output(folder, "dir", "--out")], [data_path],
                  overwrite=overwrite)  # fmt: skip
    check_data(opened, DATA_SETTINGS)
    x_train, y_train = table_rows(data_path, "train")
    x_test, y_test = table_rows(data_path, "test")  # everything read before anything is written
    model, _ = load_run(opened.path, checkpoint)
    result = compute_evaluation(
        model, x_train, y_train, x_test, y_test, features=tuple(cfg.features), seed=seed,
        run=str(opened.path), data=str(data_path),
    )  # fmt: skip
    if owner(folder) is None:
        claim(folder, "tabular evaluate", {"run": str(opened.path), "data": str(data_path)})
    return write_evaluation(result, folder)
