"""Material effects of a tracker layer: multiple scattering and mean energy loss.

Every layer is described by its thickness in radiation lengths ``t = x / X0`` along the path
(the normal-incidence value times 1 / cos(incidence)); the material is taken to be silicon for the
ionisation loss. Sources (PDG Review of Particle Physics 2024, "Passage of particles through
matter", R. Workman et al., PTEP 2022 083C01 and updates):

- multiple scattering: Highland's width of the plane-projected angle, Eq. 34.15,
  theta0 = 13.6 MeV / (beta c p) z sqrt(t) (1 + 0.038 ln(t z^2 / beta^2));
- ionisation: the Bethe equation for the mean loss, Eq. 34.5, with the maximum energy transfer of
  Eq. 34.4 and the Sternheimer density-effect correction, Eq. 34.7, silicon's parameters from
  Sternheimer, Berger and Seltzer, At. Data Nucl. Data Tables 30 (1984) 261 (their Table 1 row
  for Si: I = 173 eV, -C = -4.4355, x0 = 0.2015, x1 = 2.8716, a = 0.1492, k = 3.2546,
  delta0 = 0.14), Z/A = 0.49848, density 2.329 g/cm^3, X0 = 9.370 cm (PDG "Atomic and nuclear
  properties of materials", silicon);
- electrons and positrons additionally lose the mean bremsstrahlung energy of Eq. 34.32,
  E -> E exp(-t).

Only the *mean* loss is applied (no Landau fluctuation): it changes the curvature of low-pT
tracks along their path, which is what a track finder sees. Units: GeV, mm, radians.
"""

from __future__ import annotations

import numpy as np

#: Electron mass [GeV].
M_ELECTRON = 0.51099895e-3
#: Bethe constant K = 4 pi N_A r_e^2 m_e c^2 [MeV mol^-1 cm^2] (PDG Table 34.1).
K_BETHE = 0.307075
#: Silicon: Z/A [mol/g], mean excitation energy [MeV], density [g/cm^3], X0 [cm].
SI_Z_OVER_A = 0.49848
SI_I_MEV = 173.0e-6
SI_DENSITY = 2.329
SI_X0_CM = 9.370
#: Sternheimer density-effect parameters of silicon (C-bar, x0, x1, a, k, delta0).
SI_DENSITY_EFFECT = (4.4355, 0.2015, 2.8716, 0.1492, 3.2546, 0.14)


def highland(p: np.ndarray, beta: np.ndarray, x_over_x0: np.ndarray) -> np.ndarray:
    """Width [rad] of the plane-projected scattering angle (Highland, PDG Eq. 34.15), unit charge.

    theta0 = 13.6 MeV / (beta c p) sqrt(x/X0) (1 + 0.038 ln(x / (X0 beta^2))); 0 for x = 0.
    Shapes broadcast; ``p`` [GeV].
    """
    t = np.maximum(x_over_x0, 1e-12)
    theta = 0.0136 / (beta * p) * np.sqrt(t) * (1.0 + 0.038 * np.log(t / beta**2))
    return np.where(x_over_x0 > 0, np.maximum(theta, 0.0), 0.0)


def scatter(
    phi: np.ndarray, cot: np.ndarray, p: np.ndarray, theta0: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deflect directions by two Gaussian angles of width ``theta0`` in the plane normal to them.

    Args: direction azimuth ``phi``, ``cot`` = pz / pT, momentum ``p`` [GeV], ``theta0`` [rad],
    all (P,). Returns the new (phi, cot, pT); |p| is unchanged.
    """
    t1, t2 = rng.normal(size=(2, phi.size)) * theta0
    lam = np.arctan(cot)  # dip angle
    cp, sp, cl, sl = np.cos(phi), np.sin(phi), np.cos(lam), np.sin(lam)
    # unit direction + t1 * (azimuthal unit vector) + t2 * (polar unit vector)
    vx = cl * cp - t1 * sp - t2 * sl * cp
    vy = cl * sp + t1 * cp - t2 * sl * sp
    vz = sl + t2 * cl
    vt = np.hypot(vx, vy)
    return np.arctan2(vy, vx), vz / vt, p * vt / np.sqrt(vt**2 + vz**2)


def _density_effect(beta_gamma: np.ndarray) -> np.ndarray:
    """delta(beta gamma) of silicon (Sternheimer parameterisation, PDG Eq. 34.7)."""
    c_bar, x0, x1, a, k, delta0 = SI_DENSITY_EFFECT
    x = np.log10(beta_gamma)
    two_ln10 = 2.0 * np.log(10.0)
    high = two_ln10 * x - c_bar
    mid = high + a * np.clip(x1 - x, 0.0, None) ** k
    low = delta0 * 10.0 ** (2.0 * (x - x0))
    return np.asarray(np.where(x >= x1, high, np.where(x >= x0, mid, low)), dtype=np.float64)


def bethe_mean_dedx(beta_gamma: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Mean ionisation loss <-dE/dx> [MeV cm^2 / g] of a unit-charge particle in silicon.

    Args:
        beta_gamma: p / m, shape (P,) (clipped to >= 0.05, below which the Bethe equation fails).
        mass: particle mass [GeV], (P,).
    """
    bg = np.maximum(np.asarray(beta_gamma, dtype=np.float64), 0.05)
    b2 = bg**2 / (1.0 + bg**2)
    gamma = np.sqrt(1.0 + bg**2)
    me = M_ELECTRON * 1e3  # MeV
    ratio = me / np.maximum(np.asarray(mass, dtype=np.float64) * 1e3, 1e-9)
    w_max = 2.0 * me * bg**2 / (1.0 + 2.0 * gamma * ratio + ratio**2)
    log_term = 0.5 * np.log(2.0 * me * bg**2 * w_max / SI_I_MEV**2)
    return K_BETHE * SI_Z_OVER_A / b2 * (log_term - b2 - 0.5 * _density_effect(bg))


def mean_energy_loss(
    p: np.ndarray, mass: np.ndarray, electron: np.ndarray, x_over_x0: np.ndarray
) -> np.ndarray:
    """Mean energy lost [GeV] crossing ``x_over_x0`` radiation lengths of silicon-like material.

    Ionisation (Bethe) for every particle over the equivalent silicon thickness
    ``x_over_x0 * X0(Si)``; electrons and positrons (``electron`` True) also radiate the mean
    bremsstrahlung fraction 1 - exp(-x / X0) of their energy. All arrays (P,); ``p`` [GeV].
    """
    p = np.asarray(p, dtype=np.float64)
    mass = np.asarray(mass, dtype=np.float64)
    t = np.asarray(x_over_x0, dtype=np.float64)
    dedx = bethe_mean_dedx(p / np.maximum(mass, 1e-9), mass)  # MeV cm^2 / g
    ionisation = dedx * SI_DENSITY * t * SI_X0_CM * 1e-3  # GeV
    energy = np.sqrt(p**2 + mass**2)
    brem = np.where(electron, energy * (1.0 - np.exp(-t)), 0.0)
    return ionisation + brem


def lose_energy(
    p: np.ndarray, mass: np.ndarray, electron: np.ndarray, x_over_x0: np.ndarray
) -> np.ndarray:
    """Momentum [GeV] after the mean loss of :func:`mean_energy_loss`; 0 where a particle stops."""
    energy = np.sqrt(p**2 + mass**2) - mean_energy_loss(p, mass, electron, x_over_x0)
    return np.asarray(np.sqrt(np.clip(energy**2 - mass**2, 0.0, None)) * (energy > mass))
