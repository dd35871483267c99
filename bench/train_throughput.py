"""Training throughput of MLPF (events/s) for a run config, on CPU or GPU.

Times full optimizer steps (forward, loss, backward, clip, AdamW) of the real training step with
events from a dataset directory or synthetic events of a given size, and prints/saves one JSON object.

    .venv/bin/python bench/train_throughput.py --config small --elements 1500 \
        --steps 20 --out bench/results/train_throughput_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from particlegraph.atomic import write_json
from particlegraph.config import load_config
from particlegraph.device import resolve_device
from particlegraph.sim.elements import ELEM_TRACK
from particlegraph.tasks.mlpf.export import example_event
from particlegraph.tasks.mlpf.model import count_parameters
from particlegraph.tasks.mlpf.train import (
    PACKAGE,
    MLPFRunConfig,
    build_model,
    class_weight_tensor,
    make_step,
)
from particlegraph.train.loop import autocast, make_optimizer


def synthetic_event(n: int, seed: int) -> Data:
    """Event of ``n`` elements: tracks -> charged hadrons, towers -> photons / neutral hadrons."""
    x = example_event(n, seed)
    xn = x.numpy()
    rng = np.random.default_rng(seed + 1)
    is_track = xn[:, 0] == ELEM_TRACK
    cls = np.where(is_track, 1, np.where(rng.random(n) < 0.6, 3, 2)).astype(np.float32)
    y = np.zeros((n, 7), np.float32)
    y[:, 0] = cls
    y[:, 1] = np.where(is_track, xn[:, 9], 0.0)
    y[:, 2:7] = xn[:, [1, 2, 3, 4, 5]]
    ygen = torch.from_numpy(y)
    return Data(x=x, ygen=ygen, ycand=ygen.clone(), num_nodes=n)


def load_events(args: argparse.Namespace, count: int) -> list[Data]:
    if args.data is None:
        return [synthetic_event(args.elements, i) for i in range(count)]
    from particlegraph.tasks.mlpf.dataset import MLPFDataset

    events = []
    for ev in MLPFDataset(args.data, max_events=count):
        events.append(ev)
    if not events:
        sys.exit(f"no events in {args.data}")
    return events


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="small", help="config file or shipped name")
    p.add_argument("--set", action="append", default=[], help="config override key=value")
    p.add_argument("--data", default=None, help="dataset directory (default: synthetic events)")
    p.add_argument("--elements", type=int, default=1500, help="elements per synthetic event")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=None, help="events per step (default: config)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    p.add_argument("--out", default=None, help="JSON output file")
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(
        MLPFRunConfig,
        args.config,
        package=PACKAGE,
        overrides=[*args.set, f"fit.device={args.device}"],
    )
    bs = args.batch_size or cfg.data.batch_size
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = make_optimizer(model, cfg.fit)
    loss_cfg = cfg.loss
    if loss_cfg.class_weighting == "auto":  # timing does not depend on the weight values
        from dataclasses import replace

        loss_cfg = replace(loss_cfg, class_weighting="none")
    step = make_step(loss_cfg)
    assert class_weight_tensor(loss_cfg) is None

    pool = load_events(args, bs * 4)
    batches = [
        Batch.from_data_list([pool[(i * bs + j) % len(pool)] for j in range(bs)]).to(device)
        for i in range(4)
    ]

    def one_step(i: int) -> None:
        with autocast(device, cfg.fit.amp):
            loss, _ = step(model, batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.fit.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.fit.grad_clip)
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for i in range(args.warmup):
        one_step(i)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.steps):
        one_step(i)
    sync()
    elapsed = time.perf_counter() - t0
    n_events = args.steps * bs
    elements = [b.num_nodes / bs for b in batches]
    result = {
        "benchmark": "train_throughput",
        "config": str(args.config),
        "overrides": args.set,
        "model": {
            "kind": cfg.model.kind,
            "hidden": cfg.model.hidden,
            "num_blocks": cfg.model.num_blocks,
            "k": cfg.model.k,
            "parameters": count_parameters(model),
        },
        "data": args.data or "synthetic",
        "mean_elements_per_event": float(np.mean(elements)),
        "batch_size": bs,
        "steps": args.steps,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "amp": bool(cfg.fit.amp and device.type == "cuda"),
        "seconds": elapsed,
        "ms_per_step": 1000.0 * elapsed / args.steps,
        "events_per_s": n_events / elapsed,
        "elements_per_s": n_events * float(np.mean(elements)) / elapsed,
        "peak_mb": torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else math.nan,
        "torch": torch.__version__,
    }
    if math.isnan(result["peak_mb"]):
        result["peak_mb"] = None
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
