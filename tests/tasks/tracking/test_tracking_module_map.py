"""Layer-pair map: learned from straight tracks it keeps every true edge; round trip; geometry."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.errors import DataFileError
from particlegraph.tasks.tracking.module_map import (
    Hits,
    LayerPairMap,
    build_graph,
    detector_layers,
    learn_map,
    unknown_layers,
)

RADII = (32.0, 72.0, 116.0)
KEYS = (802, 804, 806)


def _event(rng, n_tracks=40):
    """Straight tracks from z0 ~ N(0, 20) mm crossing three barrel layers (no noise)."""
    phi0 = rng.uniform(-np.pi, np.pi, n_tracks)
    cot = rng.uniform(-1.0, 1.0, n_tracks)
    z0 = rng.normal(0.0, 20.0, n_tracks)
    r = np.repeat(np.array(RADII)[None], n_tracks, 0)
    phi = phi0[:, None] + rng.normal(0, 1e-3, r.shape)
    z = z0[:, None] + cot[:, None] * r
    layer = np.repeat(np.array(KEYS)[None], n_tracks, 0)
    h = Hits(r.ravel(), (phi.ravel() + np.pi) % (2 * np.pi) - np.pi, z.ravel(), layer.ravel())
    idx = np.arange(r.size).reshape(n_tracks, 3)
    true = np.concatenate([idx[:, [0, 1]], idx[:, [1, 2]]]).T
    return h, true, np.full(true.shape[1], 1.0)


def test_learned_map_keeps_true_edges_and_cuts_wrong_ones():
    rng = np.random.default_rng(0)
    m = learn_map([_event(rng) for _ in range(5)], quantile=0.0, margin=0.2)
    assert {tuple(p) for p in m.pairs.tolist()} == {(802, 804), (804, 806)}
    h, true, _ = _event(rng)
    g = build_graph(m, h)
    got = set(zip(g[0].tolist(), g[1].tolist(), strict=True))
    assert set(zip(true[0].tolist(), true[1].tolist(), strict=True)) <= got
    assert g.shape[1] < 0.2 * (40 * 40 * 2)  # far fewer than all layer-pair combinations
    assert np.all(np.isin(h.layer[g[0]], [802, 804]))  # edges point outwards


def test_pt_floor_and_min_count():
    rng = np.random.default_rng(1)
    h, true, pt = _event(rng)
    pt = np.where(np.arange(pt.size) < 40, 0.2, 2.0)  # the (802, 804) edges are soft
    m = learn_map([(h, true, pt)], pt_min=0.5)
    assert m.pairs.tolist() == [[804, 806]]
    with pytest.raises(DataFileError):
        learn_map([(h, true, pt)], min_count=0)


def test_json_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    m = learn_map([_event(rng)])
    m.save(tmp_path / "map.json")
    back = LayerPairMap.load(tmp_path / "map.json")
    assert np.array_equal(back.pairs, m.pairs) and np.allclose(back.windows, m.windows)
    assert back.settings == m.settings
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataFileError, match="not a layer-pair map"):
        LayerPairMap.load(tmp_path / "bad.json")


def test_detector_layers_from_a_detectors_file(tmp_path):
    p = tmp_path / "detectors.csv"
    p.write_text(
        ",volume_id,layer_id,module_id,cx,cy,cz\n"
        "0,8,2,1,30.0,40.0,10.0\n1,8,2,2,-50.0,0.0,-10.0\n2,8,4,1,0.0,72.0,0.0\n"
    )
    layers = detector_layers(p)
    assert set(layers) == {802, 804}
    assert layers[802]["r"] == pytest.approx(50.0) and layers[802]["modules"] == 2
    rng = np.random.default_rng(3)
    assert unknown_layers(learn_map([_event(rng)]), layers) == [806]


def test_z0_windows_widened_to_the_luminous_region():
    rng = np.random.default_rng(4)
    m = learn_map([_event(rng)], z0_half_width_min=300.0)
    assert np.all(m.windows[:, 1, 0] <= -300.0) and np.all(m.windows[:, 1, 1] >= 300.0)
    assert m.settings["z0_half_width_min"] == 300.0


def test_z_shift_learns_windows_for_a_displaced_vertex():
    rng = np.random.default_rng(5)
    sample = _event(rng)  # vertices z0 ~ N(0, 20) mm
    plain = learn_map([sample], quantile=0.0, margin=0.0)
    shifted = learn_map([sample], quantile=0.0, margin=0.0, z_shift=100.0)
    # the z0 window of the shifted learning spans the plain one moved by -+100 mm, exactly
    np.testing.assert_allclose(shifted.windows[:, 1, 0], plain.windows[:, 1, 0] - 100.0)
    np.testing.assert_allclose(shifted.windows[:, 1, 1], plain.windows[:, 1, 1] + 100.0)
    # dphi, dr and dz do not depend on a common shift along the beam
    np.testing.assert_allclose(shifted.windows[:, [0, 2, 3]], plain.windows[:, [0, 2, 3]])
    assert shifted.counts.tolist() == plain.counts.tolist() == [40, 40]
    assert shifted.settings["true_edges"] == 80
    # an event whose vertices sit 90 mm away keeps its true edges only with the shifted map
    samples = [_event(rng) for _ in range(5)]
    plain = learn_map(samples, quantile=0.0, margin=0.2)
    shifted = learn_map(samples, quantile=0.0, margin=0.2, z_shift=100.0)
    h, true, _ = _event(rng)
    far = Hits(h.r, h.phi, h.z + 90.0, h.layer)
    truth = set(zip(true[0].tolist(), true[1].tolist(), strict=True))
    g = build_graph(shifted, far)
    assert truth <= set(zip(g[0].tolist(), g[1].tolist(), strict=True))
    g = build_graph(plain, far)
    assert not truth <= set(zip(g[0].tolist(), g[1].tolist(), strict=True))
    with pytest.raises(DataFileError):
        learn_map([sample], z_shift=-1.0)
