"""``particlegraph anomaly demo``: the whole task end to end in a few minutes on a CPU.

Generates a small QCD background (``jetht``: hard QCD passing HT >= 300 GeV, pile-up 25 from a
300-event pool) and two BSM signals, trains ``gae-seed`` (the exercise's model), ``node-ae`` on
event-frame inputs and ``set-ae`` on the background for a few epochs, evaluates them beside the
trivial scores (HT, sum pT, candidate count, leading pT, MET, background density) with the
plain, HT-calibrated and HT-matched protocols, and explains the node-ae's most anomalous events.
Background events: the first half trains, the next quarter is the reference (trivial density and
HT calibrations), the last quarter is the test. Numbers from a demo are far too small to quote;
bench/anomaly.py measures.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from particlegraph.tasks.anomaly.configs import read_config
from particlegraph.tasks.anomaly.evaluate import SampleRef, evaluate
from particlegraph.tasks.anomaly.explain import explain
from particlegraph.tasks.anomaly.generate import generate_sample
from particlegraph.tasks.anomaly.report import markdown_table, write_evaluation
from particlegraph.tasks.anomaly.samples import samples_config_from_dict
from particlegraph.tasks.anomaly.train import make_run_config, train

log = logging.getLogger(__name__)
COMMAND = "anomaly demo"
BACKGROUND = "jetht"
DEMO_SIGNALS = ("h2_zz4l", "zprime_ttbar")
#: run name -> (packaged config, overrides)
DEMO_MODELS = {
    "gae-seed": ("gae-seed", []),
    "node-ae-event": ("node-ae", ["model.frame=event"]),
    "set-ae": ("set-ae", []),
}


def run_demo(out: str | Path, *, events: int = 400, epochs: int = 3, seed: int = 0) -> Path:
    """Run the demo into ``out`` and return the evaluation report's path.

    ``events`` jetht events (>= 200: half train, a quarter reference, a quarter test) and
    ``events // 4`` of each demo signal.
    """
    from particlegraph.outputs import Output, check_settings, claim, guard_outputs

    out = Path(out)
    events = max(events, 200)
    # a demo folder made with another size would mix training and test events: refuse it
    settings = {"events": events, "epochs": epochs, "seed": seed}
    guard_outputs(COMMAND, [Output(out, "dir", "--out")])
    check_settings(out, COMMAND, settings, {"events": "--events", "epochs": "--epochs"})
    claim(out, COMMAND, settings)
    cfg = samples_config_from_dict(read_config("samples"))
    cfg = dataclasses.replace(cfg, pool_size=300, events_per_file=50)
    data = out / "data"
    sizes = {BACKGROUND: events, **{s: max(events // 4, 20) for s in DEMO_SIGNALS}}
    for name, n in sizes.items():
        log.info("generating %d %s events", n, name)
        generate_sample(name, cfg, data, events=n, seed=seed)
    n_train, n_ref = events // 2, (3 * events) // 4
    runs = []
    for name, (config, sets) in DEMO_MODELS.items():
        run_cfg = make_run_config(config, data / BACKGROUND, [f"max_events={n_train}",
                                  f"fit.epochs={epochs}", f"fit.seed={seed}", *sets])  # fmt: skip
        run_dir = out / "runs" / name
        train(run_cfg, run_dir, resume=True)
        runs.append(run_dir)
    bkg = SampleRef(BACKGROUND, str(data / BACKGROUND), n_ref, events)
    ref = SampleRef(f"{BACKGROUND}_reference", str(data / BACKGROUND), n_train, n_ref)
    sigs = [SampleRef(n, str(data / n)) for n in DEMO_SIGNALS]
    ev = evaluate(runs, bkg, sigs, reference=ref, n_boot=30)
    report = write_evaluation(ev, out / "evaluation")
    log.info("\n%s", markdown_table(ev, protocols=("plain", "ht-calibrated")))
    # the demo owns ``out``: its explanation folder is replaced on a rerun
    explain(runs[1], sigs, out / "explain", n_events=2, n_class_events=50, overwrite=True,
            title="Anomaly demo: node-ae explanations")  # fmt: skip
    return report
