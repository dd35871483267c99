"""DDP: 2 CPU processes (gloo, under torchrun) reach the same weights as one process with the same
global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from mlpf_events import write_dataset

from particlegraph.tasks.mlpf.train import train
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint

COMMON = (
    "model.hidden=16",
    "model.propagate_dim=8",
    "model.k=4",
    "model.num_blocks=2",
    "model.norm=none",  # per-rank BatchNorm statistics would differ from the global batch
    "fit.epochs=2",
    "fit.lr=0.01",
    "fit.warmup_steps=2",
    "fit.grad_clip=1.0",
    "fit.device=cpu",
    "data.val_fraction=0",
    "data.shuffle_files=true",
)


@pytest.mark.slow  # starts torchrun with 2 worker processes (~15-30 s on 2 shared cores)
def test_two_gloo_ranks_match_single_process(tmp_path) -> None:
    # 4 shards of one event each (different sizes): per epoch rank r reads shards r, r+2 of the
    # epoch's order; with batch 1 per rank each step sees the same 2 events as a batch of 2.
    data = write_dataset(tmp_path / "data", n_files=4, events_per_file=1, seed=3)
    single = tmp_path / "single"
    train(data, None, single, overrides=(*COMMON, "data.batch_size=2"))

    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = [
        arg for s in (*COMMON, "data.batch_size=1", "fit.num_threads=1") for arg in ("--set", s)
    ]
    # the documented command: torchrun ... -m particlegraph.cli.main mlpf train ... --run-dir
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "particlegraph.cli.main", "mlpf", "train", "--data", str(data),
        "--run-dir", str(ddp), *sets,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained 2 epoch(s)") == 1  # only rank 0 prints

    a = load_checkpoint(checkpoint_path(single, "last"))
    b = load_checkpoint(checkpoint_path(ddp, "last"))
    assert a["schedule"]["step"] == b["schedule"]["step"] == 4
    moved = 0.0
    for name, wa in a["model"].items():
        if name.endswith("lin_s.bias"):
            # The edge weights exp(-10 |s_i - s_j|^2) are translation invariant, so this bias gets
            # an exactly-zero gradient: Adam turns its round-off noise into lr-sized steps that
            # cannot agree between any two differently ordered sums. Nothing downstream uses it.
            continue
        torch.testing.assert_close(b["model"][name], wa, rtol=1e-5, atol=1e-6, msg=name)
    # the weights did change, so agreement is not trivial
    torch.manual_seed(0)  # train seeds with fit.seed = 0 before building the model
    from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig

    init = MLPF(MLPFConfig(hidden=16, propagate_dim=8, k=4, num_blocks=2, norm="none"))
    for name, w0 in init.state_dict().items():
        moved = max(moved, float((a["model"][name] - w0).abs().max()))
    assert moved > 1e-3
    # the two runs logged the same global training loss
    la = a["history"]["records"][-1]["train_loss"]
    lb = b["history"]["records"][-1]["train_loss"]
    assert lb == pytest.approx(la, rel=1e-4)
