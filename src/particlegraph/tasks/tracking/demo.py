"""``particlegraph tracking demo``: generate, train, evaluate and explain on a small sample.

Minutes on a laptop CPU: ``events`` ttbar events (plus ``test_events`` unseen ones) at pile-up
``pileup`` (default 0), the ``demo`` config (the default pipeline: layer-pair graph +
interaction network), evaluation beside the classical baseline, one explanation. ``config``
picks another config, e.g. ``exercise_demo`` for the exercise's pipeline. The shipped
pile-up model (:data:`PRETRAINED`, ``--run pretrained:NAME``) is evaluated on the same test
events beside the model the demo trains (``eval_pretrained/``; seconds).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from particlegraph.tasks.tracking.evaluate import evaluate
from particlegraph.tasks.tracking.learned import LayerPairRunConfig
from particlegraph.tasks.tracking.runconfig import load_tracking_config
from particlegraph.tasks.tracking.simulate import generate
from particlegraph.tasks.tracking.train import train

log = logging.getLogger(__name__)
#: The shipped run the demo shows beside its own model.
PRETRAINED = "ttbar_pu50"


def run_demo(
    out: str | Path,
    *,
    events: int = 24,
    test_events: int = 4,
    pileup: float = 0.0,
    seed: int = 0,
    overrides: list[str] | None = None,
    config: str = "demo",
) -> dict[str, Any]:
    """Run the whole task into ``out`` (data/, test/, run/, eval/, explain/); returns metrics."""
    out = Path(out)
    generate(out / "data", "ttbar", events, pileup, seed, pool_cache=out)
    generate(
        out / "test", "ttbar", test_events, pileup, seed + 1, pool_cache=out, first_event_id=5000
    )
    cfg = load_tracking_config(config, [f"data={out / 'data'}", *(overrides or [])])
    run = out / "run"
    train(cfg, run, resume=(run / "gnn").exists() or (run / "stage1").exists())
    metrics = evaluate(run, out / "test", out / "eval")
    from particlegraph.tasks.tracking.explain import explain

    explain(run, out / "test", out / "explain")
    if isinstance(cfg, LayerPairRunConfig):
        from particlegraph.tasks.tracking.evaluate_layerpair import evaluate_layerpair_run

        shipped = evaluate_layerpair_run(f"pretrained:{PRETRAINED}", out / "test",
                                         out / "eval_pretrained", baselines=False)  # fmt: skip
        metrics["methods"][f"pretrained:{PRETRAINED}"] = shipped["methods"]["layerpair_gnn"]
    return metrics
