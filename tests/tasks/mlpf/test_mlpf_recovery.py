"""Neutral recovery (tasks/mlpf/recovery.py) on a hand-built event, and its storage."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from particlegraph.errors import ConfigError
from particlegraph.sim.detector import DetectorConfig
from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK, Y_ENERGY, Y_ETA, Y_PID, Y_PT
from particlegraph.tasks.mlpf.operating_point import (
    OPERATING_POINT_FILE,
    load_operating_point,
    store_neutral_recovery,
)
from particlegraph.tasks.mlpf.recovery import (
    RECOVERY_KEY,
    NeutralRecovery,
    check_significance,
    recover_neutrals,
    rule_residuals,
)

CFG = DetectorConfig(separate_ecal_towers=True)  # the MLPF default detector


def _tower(eta: float, phi: float, e_em: float, e_had: float) -> np.ndarray:
    e = e_em + e_had
    return np.array([ELEM_TOWER, e / math.cosh(eta), eta, math.sin(phi), math.cos(phi), e,
                     e_em, e_had, 0, 0, 0, 0], dtype=np.float32)  # fmt: skip


def _track(
    p: float, eta: float, phi: float, eta_out: float, phi_out: float, electron: bool = False
):
    pt = p / math.cosh(eta)
    return np.array([ELEM_TRACK, pt, eta, math.sin(phi), math.cos(phi), p, eta_out,
                     math.sin(phi_out), math.cos(phi_out), 1.0, 0.0, float(electron)],
                    dtype=np.float32)  # fmt: skip


def hand_event() -> tuple[np.ndarray, np.ndarray]:
    """Four towers, two tracks, and MLPF's prediction.

    0: HCAL tower (eta 0.12, phi 0.2), E_had 50, linked pion p = 20 (row 4); MLPF: none.
    1: ECAL cell (eta 0.5, phi -1), E_em 5, no track; MLPF: none.
    2: HCAL tower (eta -0.8, phi 2), E_had 40, linked pion p = 10 (row 5 is the electron, so the
       pion is not a row: MLPF already predicts a neutral hadron of 35 GeV here).
    3: ECAL cell (eta 0.30, phi -2.5), E_em 30, linked electron p = 10 (row 5); MLPF: none.
    """
    x = np.stack([
        _tower(0.12, 0.2, 0.0, 50.0),
        _tower(0.5, -1.0, 5.0, 0.0),
        _tower(-0.8, 2.0, 0.0, 40.0),
        _tower(0.30, -2.5, 30.0, 0.0),
        _track(20.0, 0.125, 0.19, 0.13, 0.21),  # enters tower 0's cell
        _track(10.0, 0.29, -2.49, 0.301, -2.501, electron=True),  # enters tower 3's ECAL cell
        _track(10.0, -0.79, 2.004, -0.79, 2.005),  # enters tower 2's cell
    ])  # fmt: skip
    y = np.zeros((7, 7), np.float32)
    for r in (4, 5, 6):  # MLPF: the tracks as charged particles with E = p
        y[r] = [4 if r == 5 else 1, 1, x[r, 1], x[r, 2], x[r, 3], x[r, 4], x[r, 5]]
    y[2] = [2, 0, 35.0 / math.cosh(-0.8), -0.8, math.sin(2.0), math.cos(2.0), 35.0]
    return x, y


def _p(x: np.ndarray, r: int) -> float:
    """A track's momentum as the rule computes it (pT cosh eta from the float32 columns)."""
    return float(x[r, 1]) * math.cosh(float(x[r, 2]))


def test_recovery_emits_the_hand_computed_neutrals() -> None:
    x, y = hand_event()
    out = recover_neutrals(x, y, 2.0, CFG)
    # tower 0: E - P = 50 - 20 along the tower, a neutral hadron
    e0 = 50.0 - _p(x, 4)
    assert out[0, Y_PID] == 2 and out[0, Y_ENERGY] == pytest.approx(e0, rel=1e-6)
    assert e0 == pytest.approx(30.0, rel=1e-5)
    assert out[0, Y_PT] == pytest.approx(e0 / math.cosh(x[0, 2]), rel=1e-6)
    assert out[0, Y_ETA] == pytest.approx(x[0, 2])
    assert math.atan2(out[0, 4], out[0, 5]) == pytest.approx(0.2, abs=1e-6)
    assert out[0, 1] == 0.0  # neutral
    # tower 3: ECAL energy minus the electron: a photon of 20 GeV
    assert out[3, Y_PID] == 3
    assert out[3, Y_ENERGY] == pytest.approx(30.0 - _p(x, 5), rel=1e-6)
    # tower 1: no linked track -> MLPF's "none" stands; tower 2: MLPF's neutral stands
    np.testing.assert_array_equal(out[[1, 2, 4, 5, 6]], y[[1, 2, 4, 5, 6]])


def test_recovery_conserves_tower_plus_track_energy() -> None:
    x, y = hand_event()
    out = recover_neutrals(x, y, 1.0, CFG)
    # tower 0 and its pion: neutral + charged = the tower's energy (massless expected deposit)
    assert out[0, Y_ENERGY] + _p(x, 4) == pytest.approx(x[0, 5], rel=1e-6)
    assert out[3, Y_ENERGY] + _p(x, 5) == pytest.approx(x[3, 5], rel=1e-6)
    # nothing else changes: the total grows by exactly the recovered energy
    added = out[[0, 3], Y_ENERGY].sum()
    assert out[:, Y_ENERGY].sum() == pytest.approx(y[:, Y_ENERGY].sum() + added, rel=1e-6)


def test_recovery_threshold_is_the_rules_significance() -> None:
    x, y = hand_event()
    # sigma_HCAL(50 GeV) = sqrt((0.05 * 50)^2 + 1.5^2 * 50); the pion's pT resolution in the
    # barrel sqrt(0.01^2 + (1.5e-4 pT)^2) times p; residual 30 GeV -> significance 2.75
    pt = float(x[4, 1])
    combined = math.sqrt((0.05 * 50) ** 2 + 1.5**2 * 50 + (math.hypot(0.01, 1.5e-4 * pt) * 20) ** 2)
    significance = (50.0 - _p(x, 4)) / combined
    assert significance == pytest.approx(2.7525, abs=2e-4)
    below = recover_neutrals(x, y, significance * 1.001, CFG)
    above = recover_neutrals(x, y, significance * 0.999, CFG)
    assert below[0, Y_PID] == 0 and above[0, Y_PID] == 2
    # the photon (significance ~23) survives both; at k = 30 nothing is recovered
    assert below[3, Y_PID] == 3
    np.testing.assert_array_equal(recover_neutrals(x, y, 30.0, CFG), y)


def test_recovery_rebuilds_the_rule_from_x() -> None:
    """At the rule's own threshold, a tower's recovered candidate is the rule's (ycand) row."""
    from particlegraph.sim.calorimeter import Towers, ecal_sigma, hcal_sigma
    from particlegraph.sim.particle_flow import tower_candidates
    from particlegraph.sim.tracker import Tracks, resolution

    x, _ = hand_event()
    rows, cand = rule_residuals(x, None, CFG)
    # the baseline's own function on the same towers, cells and tracks, built by hand
    order = [0, 2, 1, 3]  # HCAL cells first (lower ids), then the ECAL cells, by cell id
    cells = [CFG.grid.index(np.array([x[r, 2]]), np.array([math.atan2(x[r, 3], x[r, 4])]))[0]
             for r in (0, 2)]  # fmt: skip
    ecal = [CFG.ecal_grid.index(np.array([x[r, 2]]), np.array([math.atan2(x[r, 3], x[r, 4])]))[0]
            + CFG.grid.num_towers for r in (1, 3)]  # fmt: skip
    cell = np.array(cells + ecal)
    srt = np.argsort(cell)
    t = x[order][srt].astype(np.float64)
    eta_c = CFG.cells.eta_center[cell[srt]]
    towers = Towers(cell[srt], t[:, 2], np.arctan2(t[:, 3], t[:, 4]), t[:, 6], t[:, 7],
                    ecal_sigma(t[:, 6], eta_c, CFG), hcal_sigma(t[:, 7], eta_c, CFG))  # fmt: skip
    k = x[4:].astype(np.float64)
    electron = k[:, 11] > 0
    tracks = Tracks(np.arange(3), k[:, 1], k[:, 2], np.arctan2(k[:, 3], k[:, 4]), k[:, 9],
                    resolution(np.where(electron, 11, 211), k[:, 1], k[:, 2], CFG))  # fmt: skip
    tt = np.array([cells[0], ecal[1], cells[1]])
    ref = tower_candidates(tracks, tt, np.zeros(3, bool), electron, towers, CFG)
    by_row = dict(zip(rows.tolist(), cand, strict=True))
    ref_rows = np.array(order)[srt]
    for r, want in zip(ref_rows.tolist(), ref, strict=True):
        if r == 1:  # unlinked: the rule keeps the whole ECAL energy, the recovery does not
            assert want[Y_PID] == 3 and by_row[r][Y_PID] == 0
        else:
            np.testing.assert_allclose(by_row[r], want, rtol=1e-6)


def test_recovery_off_is_bit_identical() -> None:
    x, y = hand_event()
    assert recover_neutrals(x, y, None, CFG) is y
    assert load_operating_point(Path("/nonexistent")) is None
    from particlegraph.tasks.mlpf.evaluate import recovery_for
    from particlegraph.tasks.mlpf.train import resolve_run_dir

    shipped = load_operating_point(resolve_run_dir("pretrained:ttbar_pu50_medium"))
    assert shipped is not None and shipped.neutral_recovery_significance is None
    assert recovery_for(shipped, []) is None and recovery_for(None, []) is None


def test_predict_events_applies_recovery_only_when_given(tmp_path: Path) -> None:
    import torch

    from particlegraph.sim.elements import MLPFEvent
    from particlegraph.tasks.mlpf.evaluate import predict_events
    from particlegraph.tasks.mlpf.model import MLPFOutput
    from particlegraph.tasks.mlpf.store import write_events

    x, _ = hand_event()
    write_events(tmp_path / "a.parquet", [MLPFEvent(x, np.zeros_like(x[:, :7]),
                                                    np.zeros_like(x[:, :7]))], {"t": 1})  # fmt: skip

    class NoneModel(torch.nn.Module):  # predicts "no particle" for every element
        def forward(self, xx: torch.Tensor, batch: torch.Tensor) -> MLPFOutput:
            logits = torch.zeros(len(xx), 6)
            logits[:, 0] = 5.0
            return MLPFOutput(logits, torch.zeros(len(xx), 3), torch.zeros(len(xx), 5))

    plain = [e[3] for e in predict_events(NoneModel(), tmp_path, device="cpu", progress=False)]
    rec = NeutralRecovery(2.0, CFG)
    got = [e[3] for e in predict_events(NoneModel(), tmp_path, device="cpu", progress=False,
                                        recovery=rec)]  # fmt: skip
    assert not plain[0][:, Y_PID].any()
    np.testing.assert_array_equal(got[0], recover_neutrals(x, plain[0], 2.0, CFG))
    assert set(np.flatnonzero(got[0][:, Y_PID])) == {0, 2, 3}  # every linked tower


@pytest.mark.parametrize("bad", [0, -1.0, math.inf, math.nan, "2", True, [2.0]])
def test_bad_significance_is_refused(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="finite number > 0"):
        check_significance(bad)
    x, y = hand_event()
    if isinstance(bad, int | float) and not isinstance(bad, bool):
        with pytest.raises(ConfigError):
            recover_neutrals(x, y, bad, CFG)
        with pytest.raises(ConfigError):
            NeutralRecovery(bad, CFG)
    (tmp_path / OPERATING_POINT_FILE).write_text(
        json.dumps({"class_offsets": [0.0] * 6, RECOVERY_KEY: bad})
    )
    with pytest.raises(ConfigError, match=RECOVERY_KEY):
        load_operating_point(tmp_path)


def test_recovery_setting_round_trips_through_the_operating_point(tmp_path: Path) -> None:
    (tmp_path / OPERATING_POINT_FILE).write_text(
        json.dumps({"class_offsets": [0.0, 0.0, -0.5, 2.0, 0.0, 0.0], "offset_max_pt_gev": 1.0})
    )
    assert load_operating_point(tmp_path).neutral_recovery_significance is None  # type: ignore[union-attr]
    op = store_neutral_recovery(tmp_path, 3)
    assert op.neutral_recovery_significance == 3.0
    again = load_operating_point(tmp_path)
    assert again is not None and again.neutral_recovery_significance == 3.0
    assert again.class_offsets == (0.0, 0.0, -0.5, 2.0, 0.0, 0.0)
    with pytest.raises(ConfigError):
        store_neutral_recovery(tmp_path, -2.0)
    assert store_neutral_recovery(tmp_path, None).neutral_recovery_significance is None
    assert json.loads((tmp_path / OPERATING_POINT_FILE).read_text())[RECOVERY_KEY] is None
