"""Track-tower link features: hand-built events, a slow reference, batching, the model and ONNX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK
from particlegraph.tasks.mlpf.export import example_event
from particlegraph.tasks.mlpf.links import LINK_MAX_DR, NUM_LINK_FEATURES, link_features
from particlegraph.tasks.mlpf.model import MLPF, NUM_ENCODED, MLPFConfig


def tower(eta: float, phi: float, e_em: float, e_had: float) -> list[float]:
    e = e_em + e_had
    return [ELEM_TOWER, e / math.cosh(eta), eta, math.sin(phi), math.cos(phi), e, e_em, e_had,
            0, 0, 0, 0]  # fmt: skip


def track(eta_out: float, phi_out: float, p: float, muon: bool = False, electron: bool = False):
    # the vertex direction is deliberately far from the calorimeter entry point: links use the latter
    return [ELEM_TRACK, p / math.cosh(eta_out), eta_out + 0.3, math.sin(phi_out + 0.3),
            math.cos(phi_out + 0.3), p, eta_out, math.sin(phi_out), math.cos(phi_out), 1.0,
            float(muon), float(electron)]  # fmt: skip


def expected(p: float, e: float, n: int) -> list[float]:
    r = e - p
    return [math.log1p(p), math.log1p(e), math.copysign(math.log1p(abs(r)), r), math.log1p(n)]


def test_hand_built_event() -> None:
    x = torch.tensor(
        [
            tower(0.0, 0.0, 0.0, 20.0),  # 0: HCAL tower, two hadron tracks
            tower(0.5, 1.0, 8.0, 0.0),  # 1: ECAL cell, one electron track
            tower(0.52, 1.0, 0.0, 3.0),  # 2: HCAL tower next to the ECAL cell, nothing linked
            track(0.01, 0.02, 15.0),  # 3 -> tower 0
            track(0.03, -0.01, 3.0),  # 4 -> tower 0
            track(0.5, 1.01, 7.0, electron=True),  # 5 -> the ECAL cell, not the nearer HCAL tower
            track(0.0, 0.0, 50.0, muon=True),  # 6: muons are not linked
            track(2.0, 2.0, 4.0),  # 7: nothing within LINK_MAX_DR
        ],
        dtype=torch.float64,
    )
    f = link_features(x)
    assert f.shape == (8, NUM_LINK_FEATURES) and f.dtype == torch.float64
    t0 = expected(18.0, 20.0, 2)
    t1 = expected(7.0, 8.0, 1)
    want = [t0, t1, expected(0.0, 3.0, 0), t0, t0, t1, [0.0] * 4, [0.0] * 4]
    torch.testing.assert_close(f, torch.tensor(want, dtype=torch.float64))


def test_electron_is_not_linked_to_an_hcal_only_tower_and_phi_wraps() -> None:
    x = torch.tensor(
        [
            tower(1.0, math.pi - 0.01, 0.0, 10.0),
            track(1.0, -math.pi + 0.01, 2.0, electron=True),  # HCAL only: unlinked
            track(1.0, -math.pi + 0.02, 4.0),  # 0.03 rad across the +-pi seam: linked
        ]
    )
    f = link_features(x)
    torch.testing.assert_close(f[1], torch.zeros(4))
    torch.testing.assert_close(f[2], torch.tensor(expected(4.0, 10.0, 1)))
    torch.testing.assert_close(f[0], f[2])


def test_events_without_towers_or_without_tracks_give_zeros_for_the_missing_side() -> None:
    only_tracks = torch.tensor([track(0.0, 0.0, 5.0), track(1.0, 1.0, 2.0)])
    torch.testing.assert_close(link_features(only_tracks), torch.zeros(2, 4))
    only_towers = torch.tensor([tower(0.0, 0.0, 0.0, 4.0)])
    torch.testing.assert_close(link_features(only_towers), torch.tensor([expected(0.0, 4.0, 0)]))
    torch.testing.assert_close(link_features(torch.zeros(0, 12)), torch.zeros(0, 4))


def slow_link_features(x: np.ndarray) -> np.ndarray:
    """Reference: a loop over tracks and towers, one event."""
    n = len(x)
    p_sum, n_sum, link = np.zeros(n), np.zeros(n), -np.ones(n, dtype=int)
    for i in range(n):
        if x[i, 0] != ELEM_TRACK or x[i, 10] > 0.5:
            continue
        best, arg = LINK_MAX_DR**2, -1
        for j in range(n):
            if x[j, 0] != ELEM_TOWER or not (x[j, 6 if x[i, 11] > 0.5 else 7] > 0):
                continue
            dphi = math.remainder(
                math.atan2(x[i, 7], x[i, 8]) - math.atan2(x[j, 3], x[j, 4]), 2 * math.pi
            )
            d2 = (x[i, 6] - x[j, 2]) ** 2 + dphi**2
            if d2 < best:
                best, arg = d2, j
        if arg >= 0:
            link[i] = arg
            p_sum[arg] += x[i, 5]
            n_sum[arg] += 1
    out = np.zeros((n, 4))
    for i in range(n):
        j = i if x[i, 0] == ELEM_TOWER else link[i]
        if j < 0:
            continue
        p, e, k = p_sum[j], x[j, 5], n_sum[j]
        out[i] = expected(p, e, int(k))
    return out


def dense_event(n: int, seed: int) -> torch.Tensor:
    """A crowded event (many links, several towers in reach of one track)."""
    rng = np.random.default_rng(seed)
    x = example_event(n, seed=seed).double().numpy()
    x[:, 2] = rng.uniform(-0.4, 0.4, n)  # squeeze eta and phi so tracks find several towers
    phi = rng.uniform(-0.4, 0.4, n) + math.pi * (rng.random(n) < 0.5)
    x[:, 3], x[:, 4] = np.sin(phi), np.cos(phi)
    trk = x[:, 0] == ELEM_TRACK
    x[trk, 6] = x[trk, 2] + rng.normal(0, 0.05, trk.sum())
    phi_out = phi[trk] + rng.normal(0, 0.05, trk.sum())
    x[trk, 7], x[trk, 8] = np.sin(phi_out), np.cos(phi_out)
    x[trk, 10] = rng.random(trk.sum()) < 0.05
    x[trk, 11] = rng.random(trk.sum()) < 0.1
    twr = ~trk
    x[twr, 6] = np.where(rng.random(twr.sum()) < 0.5, x[twr, 6], 0.0)  # ECAL-only/HCAL-only cells
    x[twr, 7] = np.where(x[twr, 6] > 0, 0.0, x[twr, 7])
    return torch.from_numpy(x)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_slow_reference(seed: int) -> None:
    x = dense_event(120, seed)
    ref = slow_link_features(x.numpy())
    assert (ref[:, 3] > math.log1p(1)).any()  # some tower has two or more tracks
    np.testing.assert_allclose(link_features(x).numpy(), ref, rtol=1e-12, atol=1e-12)


def test_batched_equals_per_event_and_never_links_across_events() -> None:
    a, b = dense_event(60, 3), dense_event(45, 4)
    both = torch.cat([a, b])
    batch = torch.cat([torch.zeros(60, dtype=torch.long), torch.ones(45, dtype=torch.long)])
    f = link_features(both, batch)
    torch.testing.assert_close(f, torch.cat([link_features(a), link_features(b)]))
    # the same elements as one event link differently: the batch index is respected
    assert not torch.equal(link_features(both), f)


def test_model_with_links_has_wider_encoding_and_maps_links_to_the_energy_column() -> None:
    torch.manual_seed(0)
    model = MLPF(MLPFConfig(hidden=8, k=4, propagate_dim=4, link_features=True)).eval()
    assert model.encoding.num_outputs == NUM_ENCODED + NUM_LINK_FEATURES
    assert model.encoding.column_map[-NUM_LINK_FEATURES:].tolist() == [5] * NUM_LINK_FEATURES
    x = dense_event(40, 5).float()
    out = model(x)
    assert out.logits.shape == (40, 6) and torch.isfinite(out.regression).all()
    # the link features change the prediction: towers without their tracks look different
    no_tracks = x[x[:, 0] == ELEM_TOWER]
    towers = x[:, 0] == ELEM_TOWER
    assert not torch.allclose(model(no_tracks).logits, out.logits[towers])


def test_onnx_export_with_links_matches_torch_on_other_sizes(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from particlegraph.tasks.mlpf.export import export_onnx, onnx_outputs

    torch.manual_seed(1)
    model = MLPF(MLPFConfig(hidden=8, k=4, propagate_dim=4, link_features=True)).eval()
    res = export_onnx(model, tmp_path / "m.onnx", elements=64)
    assert res.max_abs_diff is not None and res.max_abs_diff < 1e-4
    for n, seed in ((37, 6), (150, 7)):  # other element counts than the traced one
        x = dense_event(n, seed).float()
        with torch.no_grad():
            ref = model(x)
        for got, want in zip(onnx_outputs(tmp_path / "m.onnx", x), ref, strict=True):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
