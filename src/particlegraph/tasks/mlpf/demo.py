"""The flagship end to end: generate ttbar with pileup, train MLPF, evaluate against the baseline, explain.

``particlegraph mlpf demo`` (and ``make demo``) call :func:`demo`; every step is the same library
function that the individual commands use.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from particlegraph.config import resolve_config

#: What the demo explains: a neutral-hadron and a photon score, and the predicted energy.
DEMO_OUTPUTS = ("class:neutral_hadron", "class:photon", "energy")

log = logging.getLogger(__name__)


def demo(
    out: str | Path = "runs/demo",
    *,
    train_events: int = 300,
    test_events: int = 100,
    pileup: float = 50.0,
    seed: int = 0,
    config: str | Path = "demo",
    explain_events: int = 2,
    device: str = "auto",
    overrides: tuple[str, ...] = (),
    say: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Run generate -> train -> evaluate -> explain into ``out``; return the evaluation metrics.

    Generated events are kept in ``out/data`` and reused when the demo runs again; the model, its
    metrics and its figures are made afresh each time. ``say`` receives the narration (steps,
    the summary table, where the outputs are): the logger by default, the console from the CLI.
    """
    from particlegraph.tasks.mlpf.evaluate import evaluate, format_summary
    from particlegraph.tasks.mlpf.explain import explain
    from particlegraph.tasks.mlpf.explain_study import study
    from particlegraph.tasks.mlpf.generate import generate
    from particlegraph.tasks.mlpf.train import PACKAGE, resolve_run_config, train

    out = Path(out)
    config_path = resolve_config(config, PACKAGE)
    fit_overrides = (f"fit.device={device}", *overrides)
    # the whole configuration is checked before any event is generated
    resolve_run_config(config_path, out, fit_overrides, resume=False)
    train_dir, test_dir = out / "data" / "train", out / "data" / "test"
    t0 = time.perf_counter()

    say(f"[1/4] generating {train_events} + {test_events} ttbar events at pileup {pileup:g}")
    # At least 5 files, so the training run can hold some back for validation.
    per_file = max(1, min(50, train_events // 5))
    # A 300-event minimum-bias pool (random phi rotations make each overlay distinct) starts in
    # seconds; the 2,000-event default is for production samples.
    # overwrite=True: files made with these settings are reused, others (another --seed,
    # --pileup or event count) are regenerated; every file stores its settings.
    for n, s, folder in ((train_events, seed, train_dir), (test_events, seed + 7919, test_dir)):
        generate(
            "ttbar", n, pileup, s, folder, events_per_file=per_file, pool_size=300, overwrite=True
        )

    say(f"[2/4] training MLPF ({config_path.name}) into {out}")
    for stale in ("checkpoints", "evaluation", "explain", "explain_study"):
        shutil.rmtree(out / stale, ignore_errors=True)
    train(train_dir, config_path, out, overrides=fit_overrides, resume=False)

    say(f"[3/4] evaluating MLPF and the rule-based baseline on {test_events} unseen events")
    metrics = evaluate(out, test_dir, device=device)
    say(format_summary(metrics))

    say(f"[4/4] explaining the trained model on {explain_events} events")
    # Three outputs keep the demo short; `particlegraph mlpf explain` does every output by default.
    explain(out, test_dir, events=explain_events, outputs=DEMO_OUTPUTS, device=device)
    study(out, test_dir, events=explain_events, outputs="all", device=device)  # -> explain_study/

    minutes = (time.perf_counter() - t0) / 60
    say(f"\ndone in {minutes:.1f} min")
    say(f"  report:       {out / 'index.html'}")
    say(f"  metrics:      {out / 'metrics.json'}")
    say(f"  plots:        {out / 'evaluation'}")
    say(f"  explanations: {out / 'explain'}")
    return metrics
