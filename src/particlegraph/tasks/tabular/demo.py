"""``tabular demo`` (:func:`demo`): toy data, two runs, the evaluation and the explanation in one folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from particlegraph.atomic import write_json
from particlegraph.errors import ConfigError
from particlegraph.outputs import Output, claim, guard_outputs
from particlegraph.tasks.tabular.evaluate import evaluate
from particlegraph.tasks.tabular.explain import explain
from particlegraph.tasks.tabular.generate import generate
from particlegraph.tasks.tabular.train import CONFIG_NAME, train


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
    model for the heat maps, the evaluation (``evaluation/``: AUC beside the best one-line cut) and the analysis (``taylor_coefficients.json``, ``roc.json``, figures).

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
    evaluation = evaluate(out / "run_3obs", data=data, out=out / "evaluation", overwrite=overwrite)
    summary = explain(out / "run_3obs", data=data, out=out, heatmap_run=out / "run_2obs",
                      accepts=("tabular demo",))  # fmt: skip
    for name in ("run_3obs", "run_2obs"):
        summary["figures"][f"training_curves_{name.removeprefix('run_')}"] = str(
            out / name / "training_curves.png"
        )
    summary["evaluation"] = evaluation
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
        links=[(f"{name} run page", str(out / name / "index.html")) for name in runs]
        + [("evaluation page", str(out / "evaluation" / "index.html"))],
    )  # fmt: skip
    return write_run_index(out, "Tabular demo", "training", [section])
