"""Time gradients + Hessians (Taylor coefficients) of a 3-input MLP: torch.func vs a per-sample loop.

python bench/taylor.py --events 20000 [--hidden 100] [--loop-events 2000] [--device cpu|cuda]
    [--threads N] [--out FILE]

The vectorised path is :func:`particlegraph.explain.gradients.taylor_coefficients`
(``vmap(jacrev)`` + ``vmap(hessian)``, one call each). The loop computes, event by event, the
gradient with ``torch.autograd.grad(create_graph=True)`` and one more backward pass per Hessian
row, the way the classic exercise does it. The loop is timed on ``--loop-events`` events and
scaled linearly to ``--events`` (``loop_extrapolated`` says so) unless both are equal; both paths
are checked to agree on those events. Also timed: first order only, and the 100 x 100 heat-map grid
(output, 2 first and 3 second derivatives) of a 2-input MLP.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from common import emit, machine, time_call
from particlegraph.device import resolve_device
from particlegraph.explain.gradients import gradients, grid_derivatives, taylor_coefficients


def make_mlp(n_in: int, hidden: int, device: torch.device) -> nn.Module:
    """The tabular architecture: one tanh hidden layer, sigmoid output."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, 1), nn.Sigmoid())
    return net.to(device).eval()


def taylor_loop(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample reference: <|t_i|>, <|t_ij|> from a Python loop over events."""
    nf = x.shape[1]
    t1 = torch.zeros(nf, dtype=x.dtype, device=x.device)
    t2 = torch.zeros(nf, nf, dtype=x.dtype, device=x.device)
    half = torch.where(torch.eye(nf, dtype=torch.bool, device=x.device), 0.5, 1.0)
    for row in x:
        r = row.detach().clone().requires_grad_(True)
        out = net(r[None])[0, 0]
        (g,) = torch.autograd.grad(out, r, create_graph=True)
        hess = torch.stack([torch.autograd.grad(g[i], r, retain_graph=True)[0] for i in range(nf)])
        t1 += g.detach().abs()
        t2 += (half * hess).abs()
    return t1 / len(x), t2 / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--hidden", type=int, default=100)
    ap.add_argument("--loop-events", type=int, default=2000)
    ap.add_argument("--grid", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    net = make_mlp(3, args.hidden, device)
    x = torch.randn(args.events, 3, generator=torch.Generator().manual_seed(1)).to(device)

    def f(z: torch.Tensor) -> torch.Tensor:
        return net(z)[:, 0]

    t_vec = time_call(lambda: taylor_coefficients(f, x), device, args.repeats)
    t_grad = time_call(lambda: gradients(f, x), device, args.repeats)

    n_loop = min(args.loop_events, args.events)
    xl = x[:n_loop]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    r1, r2 = taylor_loop(net, xl)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t_loop_sub = time.perf_counter() - t0
    t_loop = t_loop_sub * args.events / n_loop
    tc_sub = taylor_coefficients(f, xl)
    max_diff = max(float((tc_sub.first - r1).abs().max()), float((tc_sub.second - r2).abs().max()))

    net2 = make_mlp(2, args.hidden, device)
    xs = torch.linspace(-3, 3, args.grid, device=device)
    t_grid = time_call(
        lambda: grid_derivatives(lambda z: net2(z)[:, 0], xs, xs), device, args.repeats
    )
    emit(
        {
            "events": args.events,
            "hidden": args.hidden,
            "device": str(device),
            "seconds_vectorised": t_vec,
            "seconds_first_order_only": t_grad,
            "seconds_loop": t_loop,
            "loop_events_timed": n_loop,
            "loop_extrapolated": n_loop != args.events,
            "speedup": t_loop / t_vec,
            "max_abs_diff_vs_loop": max_diff,
            "grid_points": args.grid**2,
            "seconds_grid_heatmaps": t_grid,
            "machine": machine(),
        },
        args.out,
    )


if __name__ == "__main__":
    main()
