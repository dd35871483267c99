"""Trivial event-level scores: what a one-line cut already gives, beside every learned score.

Per event (from :class:`~particlegraph.tasks.anomaly.samples.Candidates`):

- ``ht``: scalar sum of anti-kT R = 0.4 jet pT (pT > 30 GeV, |eta| < 2.5) [GeV], the trigger's HT;
- ``sum_pt``: scalar sum of the pT of the 40 leading PF candidates (the graph's nodes) [GeV];
- ``n_cand``: number of PF candidates of the event (all of them, before the 128 stored);
- ``lead_pt``: pT of the leading PF candidate [GeV];
- ``met``: |vector sum of the stored candidates' pT| [GeV] (the 128 leading candidates: the soft
  rest is mostly pile-up and balances on average; this is a proxy, not the full PF MET);
- ``density``: ``-log p_bkg`` of the four variables ``log1p(ht, n_cand, lead_pt, met)`` under a
  Gaussian mixture fitted on *background* events only (:class:`TrivialDensity`): their best
  combination without any knowledge of a signal (rare in background = anomalous).

Every score is "larger = more anomalous"; ``ht``, ``sum_pt``, ``lead_pt``, ``met`` and ``n_cand``
are one-sided (harder / busier is anomalous), ``density`` is two-sided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError
from particlegraph.tasks.anomaly.graphs import MAX_NODES, select_top
from particlegraph.tasks.anomaly.samples import Candidates

#: Plain trivial scores, in the order of the tables.
TRIVIAL_SCORES = ("ht", "sum_pt", "n_cand", "lead_pt", "met")
#: Variables of the background density (a subset: sum_pt is nearly HT).
DENSITY_VARIABLES = ("ht", "n_cand", "lead_pt", "met")


def event_observables(c: Candidates, max_nodes: int = MAX_NODES) -> dict[str, np.ndarray]:
    """The plain trivial scores of every event of ``c``: name -> (E,) float64."""
    counts = np.diff(c.offsets)
    event = np.repeat(np.arange(counts.size), counts)
    index, off = select_top(c.offsets, c.pt, max_nodes)
    top_event = np.repeat(np.arange(counts.size), np.diff(off))
    sp = np.bincount(top_event, c.pt[index].astype(np.float64), minlength=counts.size)
    lead = np.zeros(counts.size)
    np.maximum.at(lead, event, c.pt.astype(np.float64))
    px = np.bincount(event, c.pt * np.cos(c.phi), minlength=counts.size)
    py = np.bincount(event, c.pt * np.sin(c.phi), minlength=counts.size)
    return {
        "ht": c.ht.astype(np.float64),
        "sum_pt": sp,
        "n_cand": c.n_cand.astype(np.float64),
        "lead_pt": lead,
        "met": np.hypot(px, py),
    }


def _features(obs: dict[str, np.ndarray]) -> np.ndarray:
    """(E, 4) ``log1p`` of the density variables (all >= 0)."""
    return np.stack([np.log1p(np.maximum(obs[v], 0.0)) for v in DENSITY_VARIABLES], axis=1)


@dataclass(frozen=True)
class TrivialDensity:
    """Gaussian mixture of the background in ``log1p`` (HT, n_cand, leading pT, MET).

    The number of components (1 .. ``max_components``) is chosen by the BIC on the same
    background events, so nothing about a signal enters. Stored as plain arrays.
    """

    mean: np.ndarray  # (4,) standardisation
    scale: np.ndarray  # (4,)
    gmm: Any  # sklearn.mixture.GaussianMixture (fitted)

    @classmethod
    def fit(
        cls, obs: dict[str, np.ndarray], max_components: int = 4, seed: int = 0
    ) -> TrivialDensity:
        """Fit on background observables (dict of (E,) arrays, E >= 20)."""
        from sklearn.mixture import GaussianMixture

        f = _features(obs)
        if f.shape[0] < 20:
            raise ConfigError(f"the trivial density needs >= 20 background events, got {len(f)}")
        mean, scale = f.mean(0), np.maximum(f.std(0), 1e-6)
        z = (f - mean) / scale
        best, best_bic = None, np.inf
        for k in range(1, max_components + 1):
            g = GaussianMixture(k, covariance_type="full", reg_covar=1e-3, random_state=seed)
            g.fit(z)
            bic = float(g.bic(z))
            if bic < best_bic:
                best, best_bic = g, bic
        return cls(mean, scale, best)

    def score(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``-log p_bkg`` per event (E,) (in the standardised variables; larger = rarer)."""
        z = (_features(obs) - self.mean) / self.scale
        return -np.asarray(self.gmm.score_samples(z), dtype=np.float64)


def trivial_scores(c: Candidates, density: TrivialDensity | None = None) -> dict[str, np.ndarray]:
    """All trivial scores of ``c``: the plain ones and, with a fitted density, ``density``."""
    obs = event_observables(c)
    if density is not None:
        obs["density"] = density.score(obs)
    return obs
