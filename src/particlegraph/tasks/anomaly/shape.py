"""Shape density: a background density of event observables that do not scale with the event.

An attempt at issue 19's target with inputs that cannot read HT: per event, from the 40
leading PF candidates (the graph's nodes) and the stored jets, only ratios and relative
coordinates (:data:`SHAPE_FEATURES`):

- ``f1``, ``f4``, ``f10``: pT fraction of the leading 1, 4 and 10 candidates (of the 40's scalar
  sum);
- ``frac_ch``, ``frac_nh``, ``frac_gamma``, ``frac_e``, ``frac_mu``: pT fraction carried by each
  PF type (charged and neutral hadrons, photons, electrons, muons): the particle composition;
- ``n_lep``: electrons and muons carrying more than 2 % of the scalar sum each;
- ``balance``: |vector sum pT| / scalar sum of the 40 (a scale-free missing-pT fraction);
- ``spread_eta``, ``spread_phi``: pT-weighted rms of eta and of the wrapped phi relative to the
  leading candidate (how spread out the event's energy is);
- ``jet_frac``, ``jet_m_over_pt``, ``n_jets``: leading-jet pT / HT, leading-jet mass / pT and
  the number of jets.

The density is a Gaussian mixture in the standardised features fitted on background training
events; its number of components is chosen by the mean log-likelihood on background
*validation* events (no signal enters anywhere). Score: ``-log p_bkg`` (larger = rarer), two-sided
like the trivial ``density``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.physics.kinematics import delta_phi
from particlegraph.tasks.anomaly.graphs import MAX_NODES, select_top
from particlegraph.tasks.anomaly.samples import Candidates

SHAPE_FEATURES = ("f1", "f4", "f10", "frac_ch", "frac_nh", "frac_gamma", "frac_e", "frac_mu",
                  "n_lep", "balance", "spread_eta", "spread_phi", "jet_frac", "jet_m_over_pt",
                  "n_jets")  # fmt: skip
#: Candidate counts tried for the mixture (chosen on background validation events).
COMPONENTS = (1, 2, 4, 8)


def _rank_fraction(pt: np.ndarray, event: np.ndarray, rank: np.ndarray, k: int, n: int) -> Any:
    return np.bincount(event, np.where(rank < k, pt, 0.0), minlength=n)


def shape_features(c: Candidates, max_nodes: int = MAX_NODES) -> np.ndarray:
    """(E, len(SHAPE_FEATURES)) float64 observables of every event of ``c`` (see the module)."""
    index, off = select_top(c.offsets, c.pt, max_nodes)
    counts = np.diff(off)
    n = counts.size
    event = np.repeat(np.arange(n), counts)
    rank = np.arange(index.size) - np.repeat(off[:-1], counts)  # 0 = leading, per event
    pt = c.pt[index].astype(np.float64)
    total = np.maximum(np.bincount(event, pt, minlength=n), 1e-9)
    frac = pt / total[event]
    cols: dict[str, np.ndarray] = {
        f"f{k}": _rank_fraction(frac, event, rank, k, n) for k in (1, 4, 10)
    }
    cls, charge = c.cls[index], c.charge[index]
    for name, code in (("ch", 1), ("nh", 2), ("gamma", 3), ("e", 4), ("mu", 5)):
        cols[f"frac_{name}"] = np.bincount(event, np.where(cls == code, frac, 0.0), minlength=n)
    lep = (cls >= 4) & (frac > 0.02) & (charge != 0)
    cols["n_lep"] = np.bincount(event, lep.astype(np.float64), minlength=n)
    phi, eta = c.phi[index].astype(np.float64), c.eta[index].astype(np.float64)
    px = np.bincount(event, frac * np.cos(phi), minlength=n)
    py = np.bincount(event, frac * np.sin(phi), minlength=n)
    cols["balance"] = np.hypot(px, py)
    first = np.zeros(n, dtype=np.int64)
    first[counts > 0] = off[:-1][counts > 0]  # the leading candidate of each event
    d_eta = eta - eta[first[event]]
    d_phi = delta_phi(phi, phi[first[event]])
    cols["spread_eta"] = np.sqrt(np.bincount(event, frac * d_eta**2, minlength=n))
    cols["spread_phi"] = np.sqrt(np.bincount(event, frac * d_phi**2, minlength=n))
    ht = np.maximum(c.ht.astype(np.float64), 1e-9)
    jet_pt = c.lead_jet_pt.astype(np.float64)
    cols["jet_frac"] = jet_pt / ht
    cols["jet_m_over_pt"] = c.lead_jet_mass.astype(np.float64) / np.maximum(jet_pt, 1e-9)
    cols["n_jets"] = c.n_jets.astype(np.float64)
    return np.stack([cols[f] for f in SHAPE_FEATURES], axis=1)


@dataclass(frozen=True)
class ShapeDensity:
    """Gaussian mixture of the background in the standardised :data:`SHAPE_FEATURES`."""

    mean: np.ndarray  # (F,) standardisation of the training events
    scale: np.ndarray  # (F,)
    gmm: Any  # sklearn.mixture.GaussianMixture (fitted)
    validation_nll: dict[int, float]  # components -> mean -log p on the validation events

    @classmethod
    def fit(
        cls,
        train: np.ndarray,
        val: np.ndarray,
        seed: int = 0,
        components: tuple[int, ...] = COMPONENTS,
    ) -> ShapeDensity:
        """Fit on background features ``train`` (E, F); choose among ``components`` (mixture
        sizes) by the mean log-likelihood on the background validation events ``val``."""
        return best_density(cls.fit_all(train, val, seed, components))

    @classmethod
    def fit_all(
        cls,
        train: np.ndarray,
        val: np.ndarray,
        seed: int = 0,
        components: tuple[int, ...] = COMPONENTS,
    ) -> dict[int, ShapeDensity]:
        """One fitted density per mixture size in ``components`` (each carrying every size's
        validation ``-log p``), for choosing among any subset of sizes with :func:`best_density`.

        Raises:
            ConfigError: a mixture size below 1, or fewer than 50 training / 20 validation events.
        """
        from sklearn.mixture import GaussianMixture

        if not components or min(components) < 1:
            raise ConfigError(f"mixture sizes must be >= 1, got {components}")
        if len(train) < 50 or len(val) < 20:
            raise ConfigError(
                f"the shape density needs >= 50 training and >= 20 validation background events, "
                f"got {len(train)} and {len(val)}"
            )
        mean, scale = train.mean(0), np.maximum(train.std(0), 1e-6)
        zt, zv = (train - mean) / scale, (val - mean) / scale
        fits, nll = {}, {}
        for k in components:
            g = GaussianMixture(k, covariance_type="full", reg_covar=1e-2, random_state=seed)
            fits[k] = g.fit(zt)
            nll[k] = -float(g.score(zv))
        return {k: cls(mean, scale, g, nll) for k, g in fits.items()}

    @property
    def components(self) -> int:
        return int(self.gmm.n_components)

    def score(self, features: np.ndarray) -> np.ndarray:
        """``-log p_bkg`` per event (E,) (larger = rarer in the background)."""
        z = (features - self.mean) / self.scale
        return -np.asarray(self.gmm.score_samples(z), dtype=np.float64)


def best_density(fits: dict[int, ShapeDensity], max_components: int | None = None) -> ShapeDensity:
    """The density of :meth:`ShapeDensity.fit_all` with the smallest validation ``-log p``, among
    the sizes up to ``max_components`` (all when None); ties go to the smaller mixture."""
    sizes = sorted(k for k in fits if max_components is None or k <= max_components)
    if not sizes:
        raise ConfigError(f"no mixture size <= {max_components} among {sorted(fits)}")
    nll = fits[sizes[0]].validation_nll
    return fits[min(sizes, key=lambda k: (nll[k], k))]
