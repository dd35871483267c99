"""MLPF training: loss terms against hand values, class weights, train end to end, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from mlpf_events import make_events, write_dataset

from particlegraph.errors import ConfigError
from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf.loss import (
    LossConfig,
    class_weights_from_counts,
    count_classes,
    mlpf_loss,
)
from particlegraph.tasks.mlpf.train import load_model, load_run_config, train
from particlegraph.train.checkpoint import checkpoint_path, load_checkpoint

TINY = (
    "model.hidden=16",
    "model.propagate_dim=8",
    "model.k=4",
    "model.num_blocks=1",
    "fit.epochs=2",
    "fit.lr=0.003",
    "fit.device=cpu",
    "data.batch_size=2",
)


def test_loss_matches_hand_computation() -> None:
    torch.manual_seed(0)
    n = 10
    logits, charge_logits, reg = torch.randn(n, 6), torch.randn(n, 3), torch.randn(n, 5)
    cls = torch.tensor([0, 1, 1, 2, 3, 4, 5, 0, 3, 1])
    charge = torch.tensor([1, 0, 2, 1, 1, 0, 2, 1, 1, 2])
    reg_t = torch.randn(n, 5)
    has = cls != 0
    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 3.0, 4.0])
    cfg = LossConfig(regression="mse", regression_weights=(1.0, 2.0, 1.0, 1.0, 0.5))
    loss, parts = mlpf_loss(logits, charge_logits, reg, (cls, charge, reg_t, has), cfg, w)

    ce = -F.log_softmax(logits, -1)[torch.arange(n), cls]
    exp_cls = (w[cls] * ce).sum() / w[cls].sum()
    charged = torch.tensor([c in (1, 4, 5) for c in cls.tolist()])
    exp_charge = F.cross_entropy(charge_logits[charged], charge[charged])
    sq = (reg[has] - reg_t[has]) ** 2 * torch.tensor([1.0, 2.0, 1.0, 1.0, 0.5])
    exp_reg = sq.sum() / has.sum()
    assert parts["loss_class"] == pytest.approx(float(exp_cls), rel=1e-5)
    assert parts["loss_charge"] == pytest.approx(float(exp_charge), rel=1e-5)
    assert parts["loss_regression"] == pytest.approx(float(exp_reg), rel=1e-5)
    assert float(loss) == pytest.approx(float(exp_cls + exp_charge + exp_reg), rel=1e-5)


@pytest.mark.parametrize("mode", ["energy", "pt_bins"])
def test_weighted_regression_matches_hand_computation(mode: str) -> None:
    torch.manual_seed(4)
    n = 6
    cls = torch.tensor([1, 2, 0, 3, 1, 2])
    has = cls != 0
    reg, reg_t = torch.randn(n, 5), torch.randn(n, 5)
    gen_pt = torch.tensor([0.5, 30.0, 0.0, 0.7, 3.0, 60.0])
    gen_e = torch.tensor([1.0, 40.0, 0.0, 2.0, 5.0, 100.0])
    cfg = LossConfig(regression="mse", regression_weighting=mode)
    t = (cls, torch.ones(n, dtype=torch.long), reg_t, has)
    _, parts = mlpf_loss(
        torch.zeros(n, 6), torch.zeros(n, 3), reg, t, cfg, gen_pt_energy=(gen_pt, gen_e)
    )
    per = ((reg - reg_t) ** 2).sum(-1)[has]  # particles 0, 1, 3, 4, 5
    if mode == "energy":
        w = torch.tensor([1.0, 40.0, 2.0, 5.0, 100.0])
    else:  # bins [0,1): 2 particles, [2,5): 1, [20,50): 1, [50,100): 1
        w = torch.tensor([0.5, 1.0, 0.5, 1.0, 1.0])
    assert parts["loss_regression"] == pytest.approx(float((w * per).sum() / w.sum()), rel=1e-5)


def test_weighted_regression_without_gen_values_is_a_config_error() -> None:
    t = (torch.ones(2, dtype=torch.long), torch.ones(2, dtype=torch.long), torch.zeros(2, 5))
    with pytest.raises(ConfigError, match="gen_pt_energy"):
        mlpf_loss(
            torch.zeros(2, 6), torch.zeros(2, 3), torch.zeros(2, 5), (*t, torch.ones(2) > 0),
            LossConfig(regression_weighting="energy"),
        )  # fmt: skip
    with pytest.raises(ConfigError, match="regression_weighting"):
        LossConfig(regression_weighting="bogus")


def test_focal_loss_with_gamma_zero_is_cross_entropy() -> None:
    torch.manual_seed(1)
    logits = torch.randn(8, 6)
    cls = torch.randint(0, 6, (8,))
    t = (cls, torch.ones(8, dtype=torch.long), torch.zeros(8, 5), cls != 0)
    args = (logits, torch.zeros(8, 3), torch.zeros(8, 5), t)
    _, ce = mlpf_loss(*args, LossConfig(classification="ce"))
    _, fo = mlpf_loss(*args, LossConfig(classification="focal", focal_gamma=0.0))
    _, fo2 = mlpf_loss(*args, LossConfig(classification="focal", focal_gamma=2.0))
    assert fo["loss_class"] == pytest.approx(ce["loss_class"], rel=1e-6)
    assert fo2["loss_class"] < ce["loss_class"]  # (1 - p)^2 < 1 down-weights every element


def test_split_loss_over_ranks_adds_up_to_global_gradient() -> None:
    """With summed denominators and scale = world size, the mean of rank gradients is global."""
    torch.manual_seed(2)
    n = 12
    logits = torch.randn(n, 6, requires_grad=True)
    cls = torch.randint(0, 6, (n,))
    t = (cls, torch.randint(0, 3, (n,)), torch.randn(n, 5), cls != 0)
    w = torch.rand(6) + 0.5
    cfg = LossConfig()
    full, _ = mlpf_loss(logits, torch.zeros(n, 3), torch.zeros(n, 5), t, cfg, w)
    (g_full,) = torch.autograd.grad(full, logits)
    halves = [slice(0, 5), slice(5, n)]  # uneven element counts, as on real ranks

    grads = torch.zeros_like(logits)
    for mine, other in (halves, halves[::-1]):
        part = tuple(v[mine] for v in t)
        other_dens = _dens(tuple(v[other] for v in t), w)

        def reduce(d: torch.Tensor, o: torch.Tensor = other_dens) -> torch.Tensor:
            return d + o  # stands in for all_reduce(SUM) (the metric parts are not checked here)

        loss, _ = mlpf_loss(
            logits[mine], torch.zeros(part[0].numel(), 3), torch.zeros(part[0].numel(), 5),
            part, cfg, w, reduce_fn=reduce, scale=2.0,
        )  # fmt: skip
        (g,) = torch.autograd.grad(loss, logits)
        grads += g / 2.0  # DDP averages gradients over the 2 ranks
    torch.testing.assert_close(grads, g_full, rtol=1e-5, atol=1e-7)


def _dens(t: tuple[torch.Tensor, ...], w: torch.Tensor) -> torch.Tensor:
    cls, _, _, has = t
    charged = (cls == 1) | (cls == 4) | (cls == 5)
    return torch.stack(
        [w[cls].sum(), charged.sum().float(), has.sum().float(), torch.tensor(float(cls.numel()))]
    )


def test_class_weights_from_counts_hand_values() -> None:
    w = class_weights_from_counts([0, 75, 25, 0, 0, 0], power=1.0)
    # frequencies 0.75, 0.25 -> raw weights 4/3, 4 with 0.75 * 4/3 + 0.25 * 4 = 2 -> halve them
    assert w[1] == pytest.approx(2 / 3)
    assert w[2] == pytest.approx(2.0)
    assert w[0] == pytest.approx(2.0)  # absent classes take the largest weight
    assert 0.75 * w[1] + 0.25 * w[2] == pytest.approx(1.0)
    y = np.zeros((4, 7), np.float32)
    y[:, 0] = [0, 1, 1, 3]
    counts = count_classes([MLPFEvent(np.zeros((4, 12), np.float32), y, y)])
    assert counts.tolist() == [1, 2, 0, 1, 0, 0]
    with pytest.raises(ConfigError):
        class_weights_from_counts([0] * 6)


def test_loss_config_validation() -> None:
    with pytest.raises(ConfigError, match="class_weights"):
        LossConfig(class_weighting="manual", class_weights=(1.0, 2.0))
    with pytest.raises(ConfigError, match="regression_weights"):
        LossConfig(regression_weights=(1.0,))


def test_train_mlpf_end_to_end_and_resume(tmp_path) -> None:
    data = write_dataset(tmp_path / "data", n_files=5, events_per_file=4)
    run = tmp_path / "run"
    hist = train(data, None, run, overrides=(*TINY, "data.val_fraction=0.2"))
    assert len(hist.records) == 2
    assert hist.records[-1]["train_loss"] < hist.records[0]["train_loss"]
    assert {"val_loss", "val_accuracy", "train_loss_class"} <= set(hist.records[0])
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["hidden"] == 16
    assert len(saved["loss"]["class_weights"]) == 6  # "auto" weights resolved into the config
    cfg = load_run_config(run)
    assert cfg.fit.epochs == 2

    model, cfg2 = load_model(run, "best")
    assert cfg2 == cfg
    assert not model.training
    x = torch.from_numpy(make_events(1, 99)[0].X)
    out = model(x)
    assert out.logits.shape == (x.shape[0], 6)

    with pytest.raises(ConfigError, match="resume"):
        train(data, None, run, overrides=TINY)
    # train two more epochs from the checkpoint (the saved config plus an override)
    more = train(data, None, run, overrides=("fit.epochs=3",), resume=True)
    assert [r["epoch"] for r in more.records] == [1, 2, 3]
    assert more.records[0] == hist.records[0]


class _Crash(Exception):
    pass


def test_train_mlpf_killed_and_resumed_is_bit_for_bit(tmp_path, monkeypatch) -> None:
    import particlegraph.tasks.mlpf.train as tm

    data = write_dataset(tmp_path / "data", n_files=4, events_per_file=2, seed=5)
    sets = (*TINY, "data.val_fraction=0.25", "model.dropout=0.1")  # dropout draws random numbers
    train(data, None, tmp_path / "straight", overrides=sets)

    real_fit = tm.fit

    def crashing_fit(*args, **kwargs):
        def crash(epoch: int, model: torch.nn.Module) -> None:
            if epoch == 1:  # second epoch trained, its checkpoint not yet written
                raise _Crash

        return real_fit(*args, **kwargs, epoch_callbacks=[crash])

    monkeypatch.setattr(tm, "fit", crashing_fit)
    with pytest.raises(_Crash):
        train(data, None, tmp_path / "crashed", overrides=sets)
    monkeypatch.setattr(tm, "fit", real_fit)
    torch.manual_seed(999)
    train(data, None, tmp_path / "crashed", resume=True)

    a = load_checkpoint(checkpoint_path(tmp_path / "straight", "last"))
    b = load_checkpoint(checkpoint_path(tmp_path / "crashed", "last"))
    assert a["epoch"] == b["epoch"] == 2
    for name, wa in a["model"].items():
        assert torch.equal(wa, b["model"][name]), name


def test_shipped_configs_load() -> None:
    from particlegraph.config import load_config, shipped_configs
    from particlegraph.tasks.mlpf.train import PACKAGE, MLPFRunConfig

    names = set(shipped_configs(PACKAGE))
    assert {"small", "paper", "demo"} <= names
    for name in sorted(names):
        cfg = load_config(MLPFRunConfig, name, package=PACKAGE)
        assert cfg.model.hidden >= 1
    paper = load_config(MLPFRunConfig, "paper", package=PACKAGE)
    assert paper.model.hidden == 256 and paper.model.num_blocks in (2, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_mlpf_cuda_bf16(tmp_path) -> None:
    data = write_dataset(tmp_path / "data", n_files=3, events_per_file=4, seed=8)
    sets = [s for s in TINY if not s.startswith("fit.device")]
    hist = train(data, None, tmp_path / "run", overrides=(*sets, "fit.device=cuda", "fit.amp=true"))
    assert all(math.isfinite(r["train_loss"]) for r in hist.records)
    assert hist.records[-1]["train_loss"] < hist.records[0]["train_loss"]
    model, _ = load_model(tmp_path / "run")  # saved from CUDA, loaded on CPU
    assert next(model.parameters()).device.type == "cpu"


def test_class_energy_weights_match_hand_computation() -> None:
    torch.manual_seed(1)
    logits = torch.randn(4, 6)
    cls = torch.tensor([0, 2, 3, 1])
    energy = torch.tensor([0.5, 4.0, 9.0, 16.0])  # -> weights max(E, 1) ** 0.5 = 1, 2, 3, 4
    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 3.0, 4.0])
    cfg = LossConfig(class_energy_power=0.5)
    targets = (cls, torch.ones(4, dtype=torch.long), torch.zeros(4, 5), cls != 0)
    _, parts = mlpf_loss(
        logits, torch.randn(4, 3), torch.zeros(4, 5), targets, cfg, w, element_energy=energy
    )
    ce = -F.log_softmax(logits, -1)[torch.arange(4), cls]
    e_w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    expected = (e_w * w[cls] * ce).sum() / (e_w * w[cls]).sum()
    assert parts["loss_class"] == pytest.approx(float(expected), rel=1e-6)
    # power 0 is the plain loss whatever the energies
    _, plain = mlpf_loss(logits, torch.randn(4, 3), torch.zeros(4, 5), targets, LossConfig(), w)
    assert plain["loss_class"] == pytest.approx(float((w[cls] * ce).sum() / w[cls].sum()), rel=1e-6)
    with pytest.raises(ConfigError, match="energies"):
        mlpf_loss(logits, torch.randn(4, 3), torch.zeros(4, 5), targets, cfg, w)
    with pytest.raises(ConfigError, match="class_energy_power"):
        LossConfig(class_energy_power=-1.0)


class _Started(Exception):
    pass


def test_init_from_starts_from_the_other_runs_best_weights(tmp_path, monkeypatch) -> None:
    import particlegraph.tasks.mlpf.train as tm

    data = write_dataset(tmp_path / "data", n_files=5, events_per_file=4)
    first = tmp_path / "first"
    train(data, None, first, overrides=(*TINY, "data.val_fraction=0.2"))
    source, _ = load_model(first, "best")
    seen: dict[str, torch.Tensor] = {}

    def fake_fit(model, *args, **kwargs):
        seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        assert model.training
        raise _Started

    monkeypatch.setattr(tm, "fit", fake_fit)
    with pytest.raises(_Started):
        train(data, None, tmp_path / "second", overrides=(*TINY, f"init_from={first}"))
    for name, value in source.state_dict().items():
        assert torch.equal(seen[name], value), name
    # a different architecture is refused before any training
    with pytest.raises(ConfigError, match="different model section"):
        train(
            data,
            None,
            tmp_path / "third",
            overrides=(*TINY, "model.hidden=8", f"init_from={first}"),
        )
    assert not (tmp_path / "third").exists()  # refused before the run folder is made
    # another tower reference is allowed and keeps every weight, the regression head included
    seen.clear()
    with pytest.raises(_Started):
        train(
            data, None, tmp_path / "fourth",
            overrides=(*TINY, "model.tower_reference=residual", f"init_from={first}"),
        )  # fmt: skip
    assert seen and all(torch.equal(seen[k], v) for k, v in source.state_dict().items())
