from __future__ import annotations

import math

import pytest
import torch

from particlegraph.config import from_dict
from particlegraph.errors import ConfigError
from particlegraph.sim import elements as schema
from particlegraph.tasks.mlpf.model import (
    IDENTITY_REGRESSION,
    MLPF,
    TOWER_SCALES,
    TRACK_SCALES,
    MLPFConfig,
    MLPFOutput,
    decode_predictions,
    encode_targets,
)


def _event(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 12)
    x[:, 0] = torch.randint(1, 3, (n,), generator=g).float()
    x[:, 1] = torch.rand(n, generator=g) * 20 + 0.5
    x[:, 2] = torch.randn(n, generator=g)
    phi = torch.rand(n, generator=g) * 2 * math.pi
    x[:, 3], x[:, 4] = torch.sin(phi), torch.cos(phi)
    x[:, 5] = x[:, 1] * torch.cosh(x[:, 2])
    y = torch.zeros(n, 7)
    y[:, 0] = torch.randint(0, 6, (n,), generator=g).float()
    charged = torch.isin(y[:, 0].long(), torch.tensor([1, 4, 5]))
    y[:, 1] = torch.where(charged, torch.where(torch.rand(n, generator=g) > 0.5, 1.0, -1.0), 0.0)
    y[:, 2] = x[:, 1] * 1.1
    y[:, 3] = x[:, 2] + 0.01
    y[:, 4], y[:, 5] = x[:, 3], x[:, 4]
    y[:, 6] = x[:, 5] * 1.1
    y[y[:, 0] == 0] = 0.0
    return x, y


@pytest.mark.parametrize("kind", ["gravnet", "fcn"])
def test_output_shapes(kind: str) -> None:
    x, _ = _event(50)
    out = MLPF(MLPFConfig(kind=kind, hidden=16, k=4))(x)
    assert out.logits.shape == (50, schema.NUM_CLASSES)
    assert out.charge_logits.shape == (50, 3)
    assert out.regression.shape == (50, 5)


def test_decode_inverts_encode_targets() -> None:
    x, ygen = _event(60)
    t = encode_targets(x, ygen)
    # build the outputs a perfect network would give and decode them back
    logits = torch.nn.functional.one_hot(t.cls, 6).float() * 10
    charge_logits = torch.nn.functional.one_hot(t.charge, 3).float() * 10
    y = decode_predictions(x, MLPFOutput(logits, charge_logits, t.regression))
    torch.testing.assert_close(y, ygen, rtol=1e-5, atol=1e-5)


def test_encode_targets_hand_values() -> None:
    x = torch.zeros(2, 12)
    x[:, 0] = torch.tensor([2.0, 1.0])
    x[:, 1] = torch.tensor([10.0, 4.0])
    x[:, 2] = torch.tensor([0.5, -1.0])
    x[:, 5] = torch.tensor([20.0, 8.0])
    ygen = torch.tensor([[1, -1, 20.0, 0.7, 0.0, 1.0, 40.0], [0, 0, 0, 0, 0, 0, 0]])
    t = encode_targets(x, ygen)
    assert t.cls.tolist() == [1, 0]
    assert t.charge.tolist() == [0, 1]
    assert t.has_particle.tolist() == [True, False]
    # a track: corrections in units of TRACK_SCALES; element (sin, cos) = (0, 0) reads as phi 0
    physical = torch.tensor([math.log(2.0), 0.2, 0.0, 1.0, math.log(2.0)])
    torch.testing.assert_close(t.regression[0], physical / torch.tensor(TRACK_SCALES))
    torch.testing.assert_close(t.regression[1], torch.tensor(IDENTITY_REGRESSION))


@pytest.mark.parametrize("kind", ["gravnet", "fcn"])
def test_untrained_head_returns_the_element_measurement(kind: str) -> None:
    torch.manual_seed(3)
    x, _ = _event(40)
    model = MLPF(MLPFConfig(kind=kind, hidden=16, k=4)).eval()
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(
        out.regression, torch.tensor(IDENTITY_REGRESSION).expand(40, 5), rtol=0, atol=0
    )
    # every element decoded as a particle: the prediction is the element's own measurement
    logits = torch.zeros(40, 6)
    logits[:, 1] = 1.0
    y = decode_predictions(x, MLPFOutput(logits, out.charge_logits, out.regression))
    torch.testing.assert_close(y[:, 2], x[:, 1])  # pT | Et
    torch.testing.assert_close(y[:, 3], x[:, 2])  # eta
    torch.testing.assert_close(y[:, 4:6], x[:, 3:5], rtol=1e-5, atol=1e-6)  # phi
    torch.testing.assert_close(y[:, 6], x[:, 5])  # p | E (>= pT here)


@pytest.mark.parametrize(
    ("phi_elem", "phi_gen", "delta"),
    [
        (math.pi - 0.05, -math.pi + 0.05, 0.1),  # across +pi: +0.1, not -2 pi + 0.1
        (-math.pi + 0.05, math.pi - 0.05, -0.1),
        (0.3, 0.25, -0.05),
    ],
)
def test_delta_phi_target_wraps_at_pi(phi_elem: float, phi_gen: float, delta: float) -> None:
    x = torch.zeros(1, 12)
    x[0, :6] = torch.tensor([1.0, 5.0, 0.0, math.sin(phi_elem), math.cos(phi_elem), 5.0])
    ygen = torch.tensor([[2.0, 0.0, 5.0, 0.0, math.sin(phi_gen), math.cos(phi_gen), 5.0]])
    t = encode_targets(x, ygen)
    got = math.atan2(float(t.regression[0, 2]) * TOWER_SCALES[2], float(t.regression[0, 3]))
    assert got == pytest.approx(delta, abs=1e-6)
    logits = torch.tensor([[0.0, 0.0, 9.0, 0.0, 0.0, 0.0]])
    y = decode_predictions(x, MLPFOutput(logits, torch.zeros(1, 3), t.regression))
    assert math.atan2(float(y[0, 4]), float(y[0, 5])) == pytest.approx(phi_gen, abs=1e-5)


def test_class_offsets_move_the_decision() -> None:
    x, _ = _event(3)
    logits = torch.tensor([[2.0, 0.0, 1.5, 0.0, 0.0, 0.0]]).expand(3, 6)
    out = MLPFOutput(logits, torch.zeros(3, 3), torch.tensor(IDENTITY_REGRESSION).expand(3, 5))
    assert decode_predictions(x, out)[:, 0].tolist() == [0.0, 0.0, 0.0]
    offsets = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    assert decode_predictions(x, out, offsets)[:, 0].tolist() == [2.0, 2.0, 2.0]
    # gated: only elements with pT|Et below the cut move
    cut = float(x[:, 1].median())
    gated = decode_predictions(x, out, offsets, offset_max_pt=cut)[:, 0]
    assert gated.tolist() == [2.0 if float(p) < cut else 0.0 for p in x[:, 1]]


def test_graph_model_sees_neighbours_fcn_does_not() -> None:
    torch.manual_seed(0)
    x, _ = _event(30)
    for kind, expect_change in (("gravnet", True), ("fcn", False)):
        model = MLPF(MLPFConfig(kind=kind, hidden=16, k=30, norm="none")).eval()
        base = model(x).logits[0]
        x2 = x.clone()
        x2[1:, 1] *= 3.0  # change every element but the first
        changed = not torch.allclose(model(x2).logits[0], base)
        assert changed == expect_change


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="aggr"):
        from_dict(MLPFConfig, {"aggr": "median"})
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(MLPFConfig, {"hiden": 3})


def _linked_event() -> torch.Tensor:
    """Towers A (E 10, one 4 GeV track), B (E 5, one 8 GeV track), C (E 3, no track), and the two
    tracks entering A and B (hadrons: linked to the HCAL part). Columns: X layout."""
    x = torch.zeros(5, 12)
    for i, (e, phi) in enumerate([(10.0, 0.0), (5.0, 1.0), (3.0, 2.0)]):  # towers at eta 0
        x[i, 0] = schema.ELEM_TOWER
        x[i, 1] = x[i, 5] = x[i, 7] = e  # Et = E at eta 0, all of it in the HCAL
        x[i, 3], x[i, 4] = math.sin(phi), math.cos(phi)
    for i, (p, phi) in enumerate([(4.0, 0.0), (8.0, 1.0)], start=3):
        x[i, 0] = schema.ELEM_TRACK
        x[i, 1] = x[i, 5] = p
        x[i, 3], x[i, 4] = math.sin(phi), math.cos(phi)
        x[i, 7], x[i, 8] = math.sin(phi), math.cos(phi)  # calorimeter entry at eta 0, same phi
        x[i, 9] = 1.0
    return x


def test_residual_reference_hand_values() -> None:
    from particlegraph.tasks.mlpf.model import RESIDUAL_FLOOR, tower_residual_fraction

    x = _linked_event()
    frac = tower_residual_fraction(x)
    expected = [0.6, RESIDUAL_FLOOR, 1.0, 1.0, 1.0]  # (10 - 4) / 10; 5 - 8 < 0.1 x 5; unlinked
    assert frac.tolist() == pytest.approx(expected)
    # a neutral hadron of 6 GeV in tower A is exactly the residual: no correction
    y = torch.zeros(5, 7)
    y[0] = torch.tensor([2.0, 0.0, 6.0, 0.0, 0.0, 1.0, 6.0])
    t = encode_targets(x, y, tower_reference="residual")
    assert t.regression[0].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0, 0.0], abs=1e-6)
    t_energy = encode_targets(x, y)  # relative to the measured 10 GeV: log(0.6)
    assert float(t_energy.regression[0, 4]) == pytest.approx(math.log(0.6), rel=1e-5)
    # an untrained head (identity) predicts the residual for a tower called neutral
    logits = torch.full((5, 6), -10.0)
    logits[:, 2] = 10.0
    identity = torch.tensor(IDENTITY_REGRESSION).expand(5, 5)
    pred = decode_predictions(
        x, MLPFOutput(logits, torch.zeros(5, 3), identity), tower_reference="residual"
    )
    assert pred[:3, schema.Y_ENERGY].tolist() == pytest.approx([6.0, 0.5, 3.0], rel=1e-5)


def test_residual_reference_round_trip_per_event_in_a_batch() -> None:
    x1, y1 = _event(40, seed=3)
    x2 = _linked_event()
    y2 = torch.zeros(5, 7)
    y2[:3] = torch.tensor([2.0, 0.0, 5.0, 0.1, 0.0, 1.0, 5.0])
    x, y = torch.cat([x1, x2]), torch.cat([y1, y2])
    batch = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(5, dtype=torch.long)])
    t = encode_targets(x, y, batch, "residual")
    alone = encode_targets(x2, y2, tower_reference="residual")
    assert torch.allclose(t.regression[40:], alone.regression)
    logits = torch.nn.functional.one_hot(t.cls, 6).float() * 10
    out = MLPFOutput(logits, torch.zeros(45, 3), t.regression)
    pred = decode_predictions(x, out, batch=batch, tower_reference="residual")
    m = t.has_particle
    assert torch.allclose(pred[m, schema.Y_ENERGY], y[m, schema.Y_ENERGY], rtol=1e-4)


def test_unknown_tower_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="tower_reference"):
        MLPFConfig(tower_reference="tracks")
