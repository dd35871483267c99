"""The LRP engine's one-output settings before and after issue 20, interleaved in one process.

    python bench/lrp_ab.py [--out bench/results/lrp_cpu_ab_issue20.json]

"legacy" restores the settings of before issue 20 (trace check on 2,048 elements, fan-out sink
of the first aggregation and chain tables only from 4 outputs, fan-out pairs merged at once),
"new" the current ones; both explain one output at 6,400 and 12,800 elements and 12 outputs at
6,400 (paper-size model, random events of bench/lrp.py), two rounds, best wall and CPU time.
Prints the multi-output ratio t(12 outputs) / t(1) and the size ratio t(12,800) / t(6,400) of
each. (The fan-out matrices are gathered the new way in both: that change is not a setting.)
"""

import collections
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

sys.path.insert(0, "bench")
from lrp import ALL_OUTPUTS, random_event
from particlegraph.explain.lrp import compose, engine, explain_event, explain_outputs, models
from particlegraph.explain.lrp.rules import Epsilon, as_composite
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig

torch.manual_seed(0)
model = MLPF(MLPFConfig(hidden=256, num_blocks=2, k=16, propagate_dim=64)).eval()
comp = as_composite(Epsilon(eps=1e-6))
ev = {n: random_event(n, 0, torch.device("cpu")) for n in (6400, 12800)}
with torch.no_grad():
    model(ev[6400][:256])
SET = {
    "legacy": {"check": 2048, "fan": 4, "chain": 4, "merge": 0},
    "new": {"check": 256, "fan": 1, "chain": 4, "merge": 1 << 22},
}


def use(s):
    models.trace_model.__defaults__ = (None, s["check"])
    compose.FANOUT_MIN_OUTPUTS = s["fan"]
    compose.CHAIN_MIN_OUTPUTS = s["chain"]
    engine.FANOUT_MERGE_AT = s["merge"]


res = collections.defaultdict(list)


def timed(key, fn):
    t, c = time.perf_counter(), time.process_time()
    fn()
    res[key].append((time.perf_counter() - t, time.process_time() - c))


for _rnd in range(2):
    for name, s in SET.items():
        use(s)
        timed(
            f"{name} 1x6400",
            lambda: explain_event(model, ev[6400], output="class:neutral_hadron", composite=comp),
        )
        timed(
            f"{name} 12x6400", lambda: explain_outputs(model, ev[6400], ALL_OUTPUTS, composite=comp)
        )
        timed(
            f"{name} 1x12800",
            lambda: explain_event(model, ev[12800], output="class:neutral_hadron", composite=comp),
        )
best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in res.items()}
out = {"best_wall_cpu_s": best, "threads": torch.get_num_threads()}
for name in SET:
    out[f"{name} multi ratio wall/cpu"] = [
        best[f"{name} 12x6400"][i] / best[f"{name} 1x6400"][i] for i in (0, 1)
    ]
    out[f"{name} size ratio wall/cpu"] = [
        best[f"{name} 1x12800"][i] / best[f"{name} 1x6400"][i] for i in (0, 1)
    ]
print(json.dumps(out, indent=1))
if len(sys.argv) > 2 and sys.argv[1] == "--out":
    from particlegraph.atomic import write_json

    write_json(sys.argv[2], out)
