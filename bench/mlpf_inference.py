"""MLPF inference time and peak memory for one event of N elements.

    python bench/mlpf_inference.py --elements 6400 [--config paper|small] [--device cpu|cuda] [--out FILE]

Each call measures one N (peak memory is per process); ``--elements`` accepts a comma list, which
re-runs this script once per N in a fresh process and prints one JSON object per N.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import torch

from common import emit, machine, rss_mb, synthetic_event, time_call
from particlegraph.device import resolve_device
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig, count_parameters

CONFIGS = {
    # "paper": MLPF 2021 size (hidden 256, GravNet k=16); "small": the CPU training config.
    "paper": MLPFConfig(hidden=256, num_blocks=2, k=16, propagate_dim=64),
    "small": MLPFConfig(hidden=64, num_blocks=2, k=16, propagate_dim=32),
}


def measure(
    n: int, config: str, device: torch.device, repeats: int, dtype: str, bin_size: int | None
) -> dict[str, object]:
    torch.manual_seed(0)
    cfg = dataclasses.replace(CONFIGS[config], knn_bin_size=bin_size)
    model = MLPF(cfg).to(device).eval()
    x = synthetic_event(n, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")

    @torch.no_grad()
    def run() -> object:
        with autocast:
            return model(x)

    # Peak memory above what the model and the input already hold (first call included).
    base_rss = rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_cuda = torch.cuda.memory_allocated(device) / 2**20
    seconds = time_call(run, device, repeats=repeats, warmup=1)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20 - base_cuda
    else:
        peak = rss_mb() - base_rss
    return {
        "elements": n,
        "config": config,
        "parameters": count_parameters(model),
        "device": str(device),
        "dtype": dtype,
        "knn": "exact" if bin_size is None else f"binned({bin_size})",
        "ms_per_event": 1e3 * seconds,
        "peak_mb": peak,
        "peak_mb_kind": "cuda_max_allocated" if device.type == "cuda" else "peak_rss_growth",
        "machine": machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--elements", default="6400")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--knn-bin-size", type=int, help="binned kNN with this bin size (default exact)"
    )
    ap.add_argument("--out")
    args = ap.parse_args()
    sizes = [int(s) for s in args.elements.split(",")]
    if len(sizes) > 1:
        rows = []
        for n in sizes:
            cmd = [sys.executable, __file__, "--elements", str(n), "--config", args.config,
                   "--device", args.device, "--dtype", args.dtype, "--repeats", str(args.repeats)]  # fmt: skip
            if args.knn_bin_size:
                cmd += ["--knn-bin-size", str(args.knn_bin_size)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
        base = rows[0]
        for r in rows:
            r["time_ratio_to_first"] = r["ms_per_event"] / base["ms_per_event"]
            r["size_ratio_to_first"] = r["elements"] / base["elements"]
        if args.out:
            emit({"runs": rows}, args.out)
        return
    emit(
        measure(
            sizes[0],
            args.config,
            resolve_device(args.device),
            args.repeats,
            args.dtype,
            args.knn_bin_size,
        ),
        args.out,
    )


if __name__ == "__main__":
    main()
