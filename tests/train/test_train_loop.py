"""Tests of the generic training loop: schedule, history files, checkpoints, bit-for-bit resume."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch_geometric.data import Batch, Data

from particlegraph.config import from_dict
from particlegraph.errors import ConfigError, ParticlegraphError
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint
from particlegraph.train.loop import (
    FitConfig,
    History,
    batch_size,
    evaluate,
    fit,
    lr_factor,
    to_device,
)


def _data(seed: int = 0, n: int = 48) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return TensorDataset(x, y)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    # Dropout consumes the global RNG, so resume must restore it to be bit-for-bit.
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))


def _step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
    x, y = batch
    pred = model(x).squeeze(-1)
    loss = torch.mean((pred - y) ** 2)
    return loss, {"mae": float((pred - y).detach().abs().mean())}


def _loaders(seed: int = 0) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(_data(seed), batch_size=8, shuffle=True)  # shuffle uses the global RNG
    val = DataLoader(_data(seed + 100, 16), batch_size=8)
    return train, val


CFG = FitConfig(epochs=3, lr=3e-3, warmup_steps=4, grad_clip=5.0, device="cpu", seed=7, log_every=2)


class _Killed(Exception):
    pass


def test_lr_factor_warmup_and_cosine_hand_values() -> None:
    cfg = FitConfig(epochs=4, warmup_steps=4, final_lr_fraction=0.1)
    assert lr_factor(cfg, 0, 0.0) == pytest.approx(0.25)
    assert lr_factor(cfg, 3, 0.0) == pytest.approx(1.0)
    # half-way through the epochs: cos(pi/2) = 0 -> 0.1 + 0.9 * 0.5
    assert lr_factor(cfg, 100, 2.0) == pytest.approx(0.55)
    assert lr_factor(cfg, 100, 4.0) == pytest.approx(0.1)
    const = FitConfig(epochs=4, schedule="constant")
    assert lr_factor(const, 100, 3.0) == 1.0


def test_fitconfig_rejects_bad_values() -> None:
    with pytest.raises(ConfigError, match="optimizer"):
        FitConfig(optimizer="sgd")
    with pytest.raises(ConfigError, match="epochs"):
        from_dict(FitConfig, {"epochs": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(FitConfig, {"learning_rate": 0.1})


def test_fit_writes_history_and_checkpoints_and_learns(tmp_path) -> None:
    train, val = _loaders()
    model = _model()
    before = evaluate(model, val, _step)["loss"]
    hist = fit(model, train, val, _step, CFG, tmp_path)
    assert [r["epoch"] for r in hist.records] == [1, 2, 3]
    assert hist.records[-1]["step"] == 3 * 6  # 48 samples / batch 8 per epoch
    assert hist.records[-1]["val_loss"] < before
    data = json.loads((tmp_path / "history.json").read_text())
    assert data["best_epoch"] == hist.best_epoch
    assert data["records"][1]["train_mae"] == pytest.approx(hist.records[1]["train_mae"])
    with (tmp_path / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    assert {"train_loss", "train_mae", "val_loss", "val_mae", "lr", "samples_per_s"} <= set(rows[0])
    assert float(rows[2]["val_loss"]) == pytest.approx(hist.records[2]["val_loss"])
    last = load_checkpoint(checkpoint_path(tmp_path, "last"))
    best = load_checkpoint(checkpoint_path(tmp_path, "best"))
    assert last["epoch"] == 3
    assert best["epoch"] == hist.best_epoch
    assert History.load(tmp_path).best_loss == pytest.approx(hist.best_loss)
    # validation loss recorded for the best epoch is what evaluate gives with the best weights
    model.load_state_dict(best["model"])
    assert evaluate(model, val, _step)["loss"] == pytest.approx(hist.best_loss, rel=1e-6)


def test_resume_is_bit_for_bit(tmp_path) -> None:
    train, val = _loaders()
    straight = _model()
    h_straight = fit(straight, train, val, _step, CFG, tmp_path / "a")

    def kill_in_second_epoch(epoch: int, model: nn.Module) -> None:
        if epoch == 1:  # after epoch 2 trained, before its checkpoint: like a crash
            raise _Killed

    train, val = _loaders()
    with pytest.raises(_Killed):
        fit(
            _model(), train, val, _step, CFG, tmp_path / "b", epoch_callbacks=[kill_in_second_epoch]
        )
    assert load_checkpoint(checkpoint_path(tmp_path / "b", "last"))["epoch"] == 1

    torch.manual_seed(12345)  # a fresh process would have different RNG state and weights
    resumed = _model(seed=99)
    train, val = _loaders()
    h_resumed = fit(resumed, train, val, _step, CFG, tmp_path / "b", resume=True)
    for (name, p), q in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    keys = ("epoch", "step", "lr", "train_loss", "train_mae", "val_loss")
    for r1, r2 in zip(h_straight.records, h_resumed.records, strict=True):
        assert [r1[k] for k in keys] == [r2[k] for k in keys]
    # a finished run resumes to a no-op
    again = fit(resumed, train, val, _step, CFG, tmp_path / "b", resume=True)
    assert len(again.records) == 3


def test_existing_run_without_resume_is_refused(tmp_path) -> None:
    train, val = _loaders()
    fit(_model(), train, val, _step, FitConfig(epochs=1, device="cpu"), tmp_path)
    with pytest.raises(ConfigError, match="resume"):
        fit(_model(), train, val, _step, FitConfig(epochs=1, device="cpu"), tmp_path)


def test_early_stopping_on_rising_val_loss(tmp_path) -> None:
    calls = {"n": 0}

    def step(model: nn.Module, batch):
        loss, metrics = _step(model, batch)
        if not model.training:  # validation loss rises every epoch: best is epoch 1
            calls["n"] += 1
            return torch.tensor(float(calls["n"])), metrics
        return loss, metrics

    train, _ = _loaders()
    val = DataLoader(_data(5, 8), batch_size=8)  # one batch -> one call per epoch
    seen: list[int] = []

    def cb(epoch: int, model: nn.Module) -> dict[str, float]:
        seen.append(epoch)
        return {"extra": 2.0 * epoch}

    cfg = FitConfig(epochs=10, patience=2, device="cpu")
    hist = fit(_model(), train, val, step, cfg, tmp_path, epoch_callbacks=[cb])
    assert hist.stopped_early
    assert [r["val_loss"] for r in hist.records] == [1.0, 2.0, 3.0]
    assert hist.best_epoch == 1
    assert seen == [0, 1, 2]
    assert hist.column("extra") == [0.0, 2.0, 4.0]
    assert load_checkpoint(checkpoint_path(tmp_path, "best"))["epoch"] == 1


def test_non_finite_loss_raises(tmp_path) -> None:
    def bad(model: nn.Module, batch):
        return model(batch[0]).sum() * math.nan, {}

    train, _ = _loaders()
    with pytest.raises(ParticlegraphError, match="non-finite"):
        fit(_model(), train, None, bad, FitConfig(epochs=1, device="cpu"), tmp_path)


def test_pyg_batch_size_and_device_move() -> None:
    graphs = [Data(x=torch.ones(n, 3)) for n in (2, 5, 1)]
    batch = Batch.from_data_list(graphs)
    assert batch_size(batch) == 3
    assert batch_size((torch.zeros(7, 2), torch.zeros(7))) == 7
    moved = to_device({"a": (batch, torch.zeros(2)), "b": 3}, torch.device("cpu"))
    assert moved["b"] == 3
    assert moved["a"][0].x.shape == (8, 3)


def test_make_optimizer_names_and_decay_groups() -> None:
    from particlegraph.train.loop import FitConfig, make_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = make_optimizer(model, FitConfig(optimizer="adamax", lr=2e-3, weight_decay=0.1))
    assert isinstance(opt, torch.optim.Adamax)
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    sizes = sorted(len(g["params"]) for g in opt.param_groups)
    assert decays == [0.0, 0.1] and sizes == [1, 3]  # one weight matrix; two biases + LN scale
    with pytest.raises(ConfigError, match="adamax"):
        FitConfig(optimizer="sgd")
