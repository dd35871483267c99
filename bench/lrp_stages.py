"""Where the time of one LRP explanation goes, stage by stage, at several event sizes.

    python bench/lrp_stages.py --elements 6400,12800 [--repeat 2] [--threads 2] [--out FILE]

Same model and events as bench/lrp.py (paper-size MLPF, one output ``class:neutral_hadron``,
epsilon). The engine's stage functions are wrapped with wall-clock timers (inclusive times: a
stage that calls another counts both): the model's kNN inside the trace, the trace itself, the
rule preparation, the local-prefix composition, the shortcut/sink building, the locality order,
the pair walk per op (``walk:<op name>``, the backward step of each op), the merges of the walk
(``merge``), the sink contractions (``flush``) and the final merge (``finish``). The sizes run
interleaved, ``--repeat`` rounds; each stage's time is the minimum over the rounds, and the
ratio of the last size to the first is printed per stage (what grows faster than N).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lrp import random_event
from particlegraph.atomic import write_json
from particlegraph.explain.lrp import compose, engine, explain_event, pairs, parse_output
from particlegraph.explain.lrp.rules import Epsilon, as_composite
from particlegraph.graph import knn
from particlegraph.nn import gravnet
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig

TIMES: dict[str, float] = defaultdict(float)
#: The clock of the stage timers: wall time, or process CPU time with ``--cpu``.
CLOCK: list[Callable[[], float]] = [time.perf_counter]


def timed(key: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its wall time added to ``TIMES[key]`` (key may be computed from the args)."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = CLOCK[0]()
        try:
            return fn(*args, **kwargs)
        finally:
            name = key(*args, **kwargs) if callable(key) else key
            TIMES[name] += CLOCK[0]() - t0

    return wrapper


def instrument() -> None:
    """Wrap the stage functions of the engine and the model's kNN."""
    gravnet.knn_graph = timed("knn", gravnet.knn_graph)
    import particlegraph.explain.lrp.explain as explain_mod

    explain_mod.trace_model = timed("trace (incl. knn)", explain_mod.trace_model)
    for name in ("_prepare", "_compose_local", "_shortcuts", "_locality_order", "_merge"):
        setattr(engine, name, timed(name.lstrip("_"), getattr(engine, name)))
    engine._coalesce = timed("coalesce (flush, finish)", engine._coalesce)
    engine._contract = timed("contract", engine._contract)
    pairs._coalesce = timed("coalesce (walk)", pairs._coalesce)
    for name in ("_compose_linear", "_aggregate_sink", "_linear_sink", "_chain_sink"):
        setattr(compose, name, timed(name.lstrip("_"), getattr(compose, name)))
    engine._backward = timed(lambda op, *a: f"walk:{op.name}", engine._backward)
    engine._backward_shortcut = timed(
        lambda op, *a: f"walk:{op.name} (shortcut)", engine._backward_shortcut
    )
    engine._Collector.flush = timed("flush (contract)", engine._Collector.flush)
    engine._Collector.finish = timed("finish (incl. last flushes)", engine._Collector.finish)
    engine.propagate = timed("propagate", engine.propagate)
    explain_mod.propagate = engine.propagate


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--elements", default="6400,12800")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="process CPU time instead of wall time")
    p.add_argument(
        "--dense-knn", action="store_true", help="the dense O(N^2) kNN in the model (as before)"
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.cpu:
        CLOCK[0] = time.process_time
    if args.dense_knn:
        knn.PRUNED_MIN_POINTS = 1 << 62
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = MLPFConfig(
        hidden=args.hidden, num_blocks=2, k=16, propagate_dim=64 if args.hidden >= 256 else 32
    )
    model = MLPF(cfg).eval()
    sizes = [int(v) for v in args.elements.split(",")]
    events = {n: random_event(n, args.seed, torch.device("cpu")) for n in sizes}
    spec = parse_output("class:neutral_hadron", model.lrp_output_names)
    composite = as_composite(Epsilon(eps=1e-6))
    with torch.no_grad():
        model(events[sizes[0]][:256])
    instrument()
    best: dict[int, dict[str, float]] = {n: {} for n in sizes}
    for _ in range(args.repeat):
        for n in sizes:
            TIMES.clear()
            t0 = CLOCK[0]()
            explain_event(model, events[n], output=spec, composite=composite)
            TIMES["total"] = CLOCK[0]() - t0
            for k, v in TIMES.items():
                best[n][k] = min(best[n].get(k, float("inf")), v)
    first, last = sizes[0], sizes[-1]
    rows = []
    for key in best[last]:
        a, b = best[first].get(key, 0.0), best[last][key]
        rows.append({"stage": key, f"s_{first}": a, f"s_{last}": b, "ratio": b / a if a else None})
    for r in sorted(rows, key=lambda r: -r[f"s_{last}"]):
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['stage']:42s} {r[f's_{first}']:8.3f} {r[f's_{last}']:8.3f}  {ratio}")
    result = {
        "elements": sizes, "threads": args.threads, "repeat": args.repeat,
        "clock": "cpu" if args.cpu else "wall", "dense_knn": args.dense_knn, "stages": rows,
    }  # fmt: skip
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
