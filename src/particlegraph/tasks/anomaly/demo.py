"""``particlegraph anomaly demo``: the whole task end to end in a few minutes on a CPU.

Generates small zerobias / jetht / two-signal samples (pile-up 25 from a 300-event pool), trains
``gae-seed``, ``gae`` and ``node-ae`` on zerobias for a few epochs, evaluates them with zerobias
as the background (jetht and the signals as anomalies) and explains the node-ae's most anomalous
events. Numbers from a demo are far too small to quote; bench/anomaly.py measures.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from particlegraph.tasks.anomaly.configs import read_config
from particlegraph.tasks.anomaly.evaluate import (
    SampleRef,
    evaluate,
    markdown_table,
    write_evaluation,
)
from particlegraph.tasks.anomaly.explain import explain_sample, write_explanations
from particlegraph.tasks.anomaly.samples import generate_sample, samples_config_from_dict
from particlegraph.tasks.anomaly.train import make_run_config, train_run

log = logging.getLogger(__name__)
DEMO_SIGNALS = ("h2_zz4l", "zprime_ttbar")


def run_demo(out: str | Path, *, events: int = 300, epochs: int = 3, seed: int = 0) -> Path:
    """Run the demo into ``out`` and return the evaluation report's path.

    ``events`` zerobias events (two thirds train, one third test), ``events // 2`` jetht and
    ``events // 3`` of each demo signal.
    """
    out = Path(out)
    cfg = samples_config_from_dict(read_config("samples"))
    cfg = dataclasses.replace(cfg, pool_size=300, events_per_file=50)
    data = out / "data"
    sizes = {"zerobias": events, "jetht": max(events // 2, 10)}
    sizes.update({s: max(events // 3, 10) for s in DEMO_SIGNALS})
    for name, n in sizes.items():
        log.info("generating %d %s events", n, name)
        generate_sample(name, cfg, data, events=n, seed=seed)
    n_train = (2 * events) // 3
    runs = []
    for model in ("gae-seed", "gae", "node-ae"):
        run_cfg = make_run_config(model, data / "zerobias",
                                  [f"max_events={n_train}", f"fit.epochs={epochs}", f"fit.seed={seed}"])  # fmt: skip
        run_dir = out / "runs" / model
        train_run(run_cfg, run_dir, resume=True)
        runs.append(run_dir)
    bkg = SampleRef("zerobias", str(data / "zerobias"), n_train, events)
    sigs = [SampleRef(n, str(data / n)) for n in sizes if n != "zerobias"]
    ev = evaluate(runs, bkg, sigs)
    report = write_evaluation(ev, out / "evaluation")
    log.info("\n%s", markdown_table(ev))
    exps, classes = [], {}
    for ref in (sigs[1], sigs[0]):
        e, c = explain_sample(runs[-1], ref, n_events=2, n_class_events=50)
        exps += e
        classes[ref.name] = c
    write_explanations(exps, classes, out / "explain", "Anomaly demo: node-ae explanations")
    return report
