"""Shared helpers of the benchmark scripts: timing, peak memory, JSON output, synthetic events."""

from __future__ import annotations

import json
import math
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def machine() -> dict[str, Any]:
    """A short description of where the numbers were taken."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_call(
    fn: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1
) -> float:
    """Median wall time of ``fn()`` in seconds, synchronising CUDA around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic_event(n: int, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Random elements (N, 12) with the X layout: ~55 % tracks, ~45 % towers, falling pT spectrum."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 12)
    is_track = torch.rand(n, generator=g) < 0.55
    x[:, 0] = torch.where(is_track, 2.0, 1.0)
    x[:, 1] = 0.5 + torch.empty(n).exponential_(1.0 / 2.0, generator=g)
    x[:, 2] = torch.where(is_track, 5.0, 10.0) * (torch.rand(n, generator=g) - 0.5)
    phi = 2 * math.pi * torch.rand(n, generator=g)
    x[:, 3], x[:, 4] = torch.sin(phi), torch.cos(phi)
    x[:, 5] = x[:, 1] * torch.cosh(x[:, 2])
    x[:, 6] = torch.where(is_track, x[:, 2], 0.3 * x[:, 5])
    x[:, 7] = torch.where(is_track, torch.sin(phi + 0.05), 0.7 * x[:, 5])
    x[:, 8] = torch.where(is_track, torch.cos(phi + 0.05), 0.0)
    x[:, 9] = torch.where(is_track, torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0), 0.0)
    return x.to(device)


def emit(result: dict[str, Any], out: str | None) -> None:
    """Print ``result`` as one JSON line and, with ``out``, save it too."""
    text = json.dumps(result)
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")
