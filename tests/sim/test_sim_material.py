"""Material effects: Highland width, Bethe mean dE/dx of silicon, bremsstrahlung, stopping."""

from __future__ import annotations

import numpy as np
import pytest

from particlegraph.sim.material import (
    SI_DENSITY,
    SI_X0_CM,
    bethe_mean_dedx,
    highland,
    lose_energy,
    mean_energy_loss,
)

MUON, PION = 0.1056584, 0.1395704


def test_highland_hand_value_at_the_tracker_material():
    # 13.6 MeV / 1 GeV * 0.07746 * (1 - 0.038 * 5.116) = 0.8487 mrad
    expected = 0.0136 * np.sqrt(0.006) * (1 + 0.038 * np.log(0.006))
    assert expected == pytest.approx(0.8487e-3, rel=1e-3)
    assert highland(np.array([1.0]), np.array([1.0]), np.array([0.006]))[0] == pytest.approx(
        expected
    )
    # 1/p: a 0.5 GeV particle scatters twice as much (beta = 1)
    assert highland(np.array([0.5]), np.array([1.0]), np.array([0.006]))[0] == pytest.approx(
        2 * expected
    )


def test_bethe_minimum_is_the_pdg_value_for_silicon():
    # PDG "Atomic and nuclear properties", silicon: minimum ionisation 1.664 MeV cm^2/g
    bg = np.logspace(0, 1.5, 3000)
    d = bethe_mean_dedx(bg, np.full(bg.size, MUON))
    assert d.min() == pytest.approx(1.664, abs=0.01)
    assert 3.0 < bg[d.argmin()] < 4.0  # the minimum sits at beta gamma ~ 3.5
    # slow (1/beta^2) side and the relativistic rise, damped by the density effect
    assert bethe_mean_dedx(np.array([1.0]), np.array([MUON]))[0] > 2.0
    high = bethe_mean_dedx(np.array([100.0, 1e4]), np.full(2, MUON))
    assert 1.664 < high[0] < high[1] < 1.664 * 1.6


def test_hand_value_of_the_loss_per_crossing():
    # 1 GeV pion, 0.006 X0 at normal incidence = 0.5622 mm of silicon; hand Bethe at
    # beta gamma = 7.165: W_max from Eq. 34.4, delta from the Sternheimer fit (x = 0.855)
    bg = 1.0 / PION
    b2 = bg**2 / (1 + bg**2)
    g = np.sqrt(1 + bg**2)
    me = 0.51099895
    wmax = 2 * me * bg**2 / (1 + 2 * g * me / (PION * 1e3) + (me / (PION * 1e3)) ** 2)
    x = np.log10(bg)
    delta = 2 * np.log(10) * x - 4.4355 + 0.1492 * (2.8716 - x) ** 3.2546
    dedx = (
        0.307075 * 0.49848 / b2 * (0.5 * np.log(2 * me * bg**2 * wmax / 173e-6**2) - b2 - delta / 2)
    )
    thickness_cm = 0.006 * SI_X0_CM
    assert thickness_cm == pytest.approx(0.05622)
    want = dedx * SI_DENSITY * thickness_cm * 1e-3  # GeV
    assert want == pytest.approx(0.22e-3, rel=0.1)  # about 0.22 MeV
    got = mean_energy_loss(np.array([1.0]), np.array([PION]), np.array([False]), np.array([0.006]))
    assert got[0] == pytest.approx(want, rel=1e-9)
    # twice the path (60 degrees incidence), twice the loss
    got2 = mean_energy_loss(np.array([1.0]), np.array([PION]), np.array([False]), np.array([0.012]))
    assert got2[0] == pytest.approx(2 * want)


def test_electrons_radiate_and_slow_particles_stop():
    t = np.array([0.006])
    e_loss = mean_energy_loss(np.array([2.0]), np.array([0.000511]), np.array([True]), t)[0]
    ion = mean_energy_loss(np.array([2.0]), np.array([0.000511]), np.array([False]), t)[0]
    assert e_loss - ion == pytest.approx(np.hypot(2.0, 0.000511) * (1 - np.exp(-0.006)))
    # momentum after the loss: E - dE = sqrt(p'^2 + m^2)
    p_new = lose_energy(np.array([1.0]), np.array([PION]), np.array([False]), t)[0]
    dE = mean_energy_loss(np.array([1.0]), np.array([PION]), np.array([False]), t)[0]
    assert np.hypot(p_new, PION) == pytest.approx(np.hypot(1.0, PION) - dE)
    # a 1 MeV/c pion through a thick layer stops (p = 0)
    assert (
        lose_energy(np.array([0.001]), np.array([PION]), np.array([False]), np.array([1.0]))[0]
        == 0.0
    )
