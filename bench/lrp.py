"""Benchmark: LRP of one output neuron for all elements of one random event.

    .venv/bin/python bench/lrp.py --elements 6400 [--hidden 256] [--dense] [--device cpu|cuda] [--out FILE]
    .venv/bin/python bench/lrp.py --elements 6400 --outputs all --repeat 2   # 12 outputs vs 1
    .venv/bin/python bench/lrp.py --elements 1000 --hidden 64 --vs-dense --repeat 3  # vs dense

Prints one JSON object: elements, hidden, seconds (wall time of explain_event: trace +
propagation), cpu_seconds (process CPU time of the same call: less sensitive to a shared
machine's load), forward_seconds (one plain forward pass), peak_mb (peak resident memory above the level before the call on CPU; peak
allocated CUDA memory above the model's on GPU), pairs, conservation_rel_err (max over targets of
|sum R + absorbed - explained| / |explained|), conservation_event_rel_err (the same summed over
the event, relative to sum |explained|), plus the settings. ``--dense`` runs the dense
reference of the tests (tests/explain/lrp_reference.py, the published O(N^2 F)
method) instead, in float32 unless ``--dense-dtype float64``. ``--outputs all`` (or a comma
list) times, interleaved in one process, the one output ``--output`` and then those outputs
explained together (``explain_outputs``), and adds ``multi_seconds``, ``multi_cpu_seconds``,
``multi_peak_mb`` and their ratios to the one-output run. ``--vs-dense`` runs the dense
reference after each sparse run in the same process and adds ``dense_seconds``,
``dense_cpu_seconds`` and ``speedup_seconds`` / ``speedup_cpu_seconds`` (dense / sparse, the best
run of each).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

# Threads that wait passively: on a shared, loaded machine spinning OpenMP threads made the same
# run 3-10x slower in wall and CPU time (docs/explain.md). Must be set before torch starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

from particlegraph.atomic import write_json
from particlegraph.explain.lrp import explain_event, explain_outputs, parse_output, trace_model
from particlegraph.explain.lrp.checks import conservation_summary
from particlegraph.explain.lrp.rules import Epsilon, as_composite
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig


def random_event(n: int, seed: int, device: torch.device) -> torch.Tensor:
    """Random (N, 12) elements in the MLPF layout: half towers, half tracks."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    is_track = torch.rand(n, generator=g) < 0.5
    x[:, 0] = torch.where(is_track, 2.0, 1.0)
    x[:, [1, 5, 6, 7]] = x[:, [1, 5, 6, 7]].abs() * 5
    x[~is_track, 8:] = 0
    return x.to(device)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Peak memory (MB) above the level at entry: sampled RSS on CPU, the allocator on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak_mb = device, 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated() / 2**20
        else:
            self._base = self._max = _rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, _rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20 - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self._max, _rss_mb()) - self._base


def run_sparse(model, x, spec, composite, chunk_size, device) -> dict:
    with PeakMemory(device) as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        rel = explain_event(model, x, output=spec, composite=composite, chunk_size=chunk_size)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": mem.peak_mb,
        "pairs": rel.num_pairs,
        "pairs_per_target": rel.num_pairs / max(len(rel.targets), 1),
        "conservation_rel_err": float(rel.conservation_error().max()),
        "conservation_event_rel_err": conservation_summary(rel)["event_rel_err"],
        "absorbed_fraction": float(rel.absorbed.abs().sum() / rel.explained.abs().sum()),
    }


#: The 12 outputs of the MLPF explainability study: 6 class scores, charge, 5 regressions.
ALL_OUTPUTS = (
    "class:none", "class:charged_hadron", "class:neutral_hadron", "class:photon",
    "class:electron", "class:muon", "charge:+1", "pt", "eta", "sin_phi", "cos_phi", "energy",
)  # fmt: skip


def run_multi(model, x, outputs, composite, chunk_size, device) -> dict:
    with PeakMemory(device) as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        rel = explain_outputs(model, x, outputs, composite=composite, chunk_size=chunk_size)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "multi_seconds": seconds,
        "multi_cpu_seconds": cpu,
        "multi_peak_mb": mem.peak_mb,
        "multi_outputs": len(outputs),
        "multi_conservation_rel_err": max(
            float(rel.output(o).conservation_error().max()) for o in range(len(outputs))
        ),
    }


def run_dense(model, x, spec, composite, dtype, device) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "explain"))
    from lrp_reference import dense_lrp

    with PeakMemory(device) as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        program = trace_model(model, x)
        out = program.outputs[spec.head]
        targets = torch.arange(len(x))
        rel, absorbed = dense_lrp(program, out, spec.index, targets, composite, dtype=dtype)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    explained = program.values[out][targets, spec.index].to(dtype)
    err = (rel.sum((1, 2)) + absorbed - explained).abs() / explained.abs()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mb": mem.peak_mb,
        "conservation_rel_err": float(err.max()),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--elements",
        required=True,
        help="elements N in the event; a comma list (e.g. 6400,12800) runs the sizes "
        "interleaved in one process and adds time ratios to the last one (memory is then "
        "only indicative: later runs reuse memory cached by earlier ones)",
    )
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--k", type=int, default=16)
    p.add_argument(
        "--propagate-dim",
        type=int,
        default=None,
        help="default 64 for hidden >= 256 (paper), else 32",
    )
    p.add_argument(
        "--knn-bin-size",
        type=int,
        default=None,
        help="binned (linear-time, approximate) kNN in the model; default exact O(N^2) kNN",
    )
    p.add_argument("--output", default="class:neutral_hadron")
    p.add_argument(
        "--outputs",
        default=None,
        help="'all' (12 outputs) or a comma list: also time them together",
    )
    p.add_argument("--eps", type=float, default=1e-6)
    p.add_argument("--chunk-size", type=int, default=None)
    p.add_argument("--dense", action="store_true", help="run the dense O(N^2) reference instead")
    p.add_argument("--dense-dtype", choices=["float32", "float64"], default="float32")
    p.add_argument(
        "--vs-dense",
        action="store_true",
        help="run the dense reference and the sparse engine interleaved in this process and "
        "add their ratios (speedup = dense / sparse seconds, the best of --repeat each)",
    )
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--repeat", type=int, default=1, help="runs; the fastest is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    if args.propagate_dim is None:  # the "paper" / "small" configs of bench/mlpf_inference.py
        args.propagate_dim = 64 if args.hidden >= 256 else 32
    cfg = MLPFConfig(
        hidden=args.hidden, num_blocks=args.blocks, k=args.k, propagate_dim=args.propagate_dim,
        knn_bin_size=args.knn_bin_size,
    )  # fmt: skip
    model = MLPF(cfg).to(device).eval()
    sizes = [int(v) for v in str(args.elements).split(",")]
    events = {n: random_event(n, args.seed, device) for n in sizes}
    spec = parse_output(args.output, model.lrp_output_names)
    composite = as_composite(Epsilon(eps=args.eps))
    with torch.no_grad():  # warm-up: lazy initialisations are not the explanation's memory
        model(events[sizes[0]][: min(sizes[0], 256)])
    runs: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(args.repeat):  # interleaved, so a change of the machine's load hits all sizes
        for n in sizes:
            if args.dense:
                dtype = getattr(torch, args.dense_dtype)
                runs[n].append(run_dense(model, events[n], spec, composite, dtype, device))
            else:
                one = run_sparse(model, events[n], spec, composite, args.chunk_size, device)
                if args.vs_dense:
                    dtype = getattr(torch, args.dense_dtype)
                    dense = run_dense(model, events[n], spec, composite, dtype, device)
                    one.update({f"dense_{k}": v for k, v in dense.items()})
                if args.outputs:
                    names = ALL_OUTPUTS if args.outputs == "all" else args.outputs.split(",")
                    multi = run_multi(model, events[n], names, composite, args.chunk_size, device)
                    one.update(multi)
                    one["multi_ratio"] = multi["multi_seconds"] / one["seconds"]
                    one["multi_cpu_ratio"] = multi["multi_cpu_seconds"] / one["cpu_seconds"]
                runs[n].append(one)
    results = []
    for n in sizes:
        # fastest run's time; the largest peak of all runs (a later run may reuse cached memory)
        best = min(runs[n], key=lambda r: r["seconds"])
        if args.vs_dense:  # best dense against best sparse, wall and CPU
            for key in ("seconds", "cpu_seconds"):
                dense_best = min(r[f"dense_{key}"] for r in runs[n])
                best = {**best, f"dense_{key}": dense_best}
                best[f"speedup_{key}"] = dense_best / min(r[key] for r in runs[n])
        with torch.no_grad():
            t0 = time.perf_counter()
            model(events[n])
            forward_s = time.perf_counter() - t0
        results.append(
            {
                "method": "dense" if args.dense else "sparse",
                "elements": n,
                "hidden": args.hidden,
                **best,
                "peak_mb": max(r["peak_mb"] for r in runs[n]),
                "forward_seconds": forward_s,
                "blocks": args.blocks,
                "k": args.k,
                "propagate_dim": args.propagate_dim,
                "knn_bin_size": args.knn_bin_size,
                "output": str(spec),
                "eps": args.eps,
                "device": args.device,
                "threads": torch.get_num_threads(),
                "repeat": args.repeat,
            }
        )
    if len(results) > 1:
        first = results[0]
        for key in ("seconds", "cpu_seconds"):
            results[-1][f"{key}_ratio_to_{first['elements']}"] = results[-1][key] / first[key]
    for result in results:
        print(json.dumps(result))
    if args.out is not None:
        write_json(args.out, results[0] if len(results) == 1 else results)
    return results[-1]


if __name__ == "__main__":
    main()
