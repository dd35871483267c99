"""CMS-like detector description: one frozen config and the calorimeter tower grid.

Every default comes from the Delphes CMS card ``cards/delphes_card_CMS.tcl`` (Delphes 3.5,
https://github.com/delphes/delphes), which in turn cites the CMS papers named next to each value.
Where this simulation simplifies the card, the field comment says how.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

from particlegraph.errors import ConfigError

# HCAL tower edges of the Delphes CMS card (module HCal, "EtaPhiBins"): 0.087 in eta and 5 deg
# in phi for |eta| < 1.653, then 10 deg in phi with the CMS endcap/HF eta edges up to 4.525,
# then 20 deg for the last two HF rings up to |eta| = 5.
_ETA_72 = tuple(round(-1.653 + 0.087 * i, 3) for i in range(39))  # -1.653 ... 1.653
_ETA_FWD = (1.74, 1.83, 1.93, 2.043, 2.172, 2.322, 2.5, 2.65, 2.868, 2.95, 3.125, 3.3, 3.475,
            3.65, 3.825, 4.0, 4.175, 4.35, 4.525)  # fmt: skip
_ETA_HF = (4.7, 5.0)
DEFAULT_TOWER_ETA_EDGES: tuple[float, ...] = (
    *(-e for e in reversed(_ETA_HF)),
    *(-e for e in reversed(_ETA_FWD)),
    *_ETA_72,
    *_ETA_FWD,
    *_ETA_HF,
)
DEFAULT_TOWER_PHI_BINS: tuple[int, ...] = (
    (18,) * len(_ETA_HF) + (36,) * len(_ETA_FWD) + (72,) * (len(_ETA_72) - 1)
    + (36,) * len(_ETA_FWD) + (18,) * len(_ETA_HF)
)  # fmt: skip

# ECAL cells of the Delphes CMS card (module ECal): 0.0174 in eta x 1 deg in phi for
# |eta| < 2.958 (barrel crystals and an HGCAL-like end cap), then the HF rings (10 deg) to 5.
_ECAL_HF = (3.125, 3.3, 3.475, 3.65, 3.825, 4.0, 4.175, 4.35, 4.525, 4.7, 5.0)
_ECAL_FINE = tuple(
    sorted(
        {round(i * 0.0174, 4) for i in range(-85, 87)}
        | {round(-2.958 + i * 0.0174, 4) for i in range(85)}
        | {round(1.4964 + i * 0.0174, 4) for i in range(1, 85)}
    )
)  # -2.958 ... 2.958
DEFAULT_ECAL_ETA_EDGES: tuple[float, ...] = (
    *(-e for e in reversed(_ECAL_HF)),
    *_ECAL_FINE,
    *_ECAL_HF,
)
DEFAULT_ECAL_PHI_BINS: tuple[int, ...] = (
    (36,) * len(_ECAL_HF) + (360,) * (len(_ECAL_FINE) - 1) + (36,) * len(_ECAL_HF)
)


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the fast simulation. Units: T, m, mm, GeV. Sources: Delphes CMS card."""

    # --- magnetic field and tracker volume (card: ParticlePropagator) ----------------------------
    bz: float = 3.8  # solenoid field [T]
    radius: float = 1.29  # radius of the tracker volume = calorimeter surface [m]
    half_length: float = 3.0  # half-length of the tracker volume [m]
    # --- tracking (card: *TrackingEfficiency, *MomentumSmearing; resolution from arXiv:1405.6569)
    tracker_eta_max: float = 2.5  # tracker acceptance |eta|
    track_pt_min: float = 0.1  # no track below this pT [GeV]
    eff_pt_edges: tuple[float, ...] = (1.0, 100.0)  # pT edges [GeV] of the efficiency columns
    eff_eta_edge: float = 1.5  # |eta| edge between the barrel and endcap efficiency rows
    hadron_eff_barrel: tuple[float, ...] = (0.70, 0.95, 0.95)  # per pT column
    hadron_eff_endcap: tuple[float, ...] = (0.60, 0.85, 0.85)
    electron_eff_barrel: tuple[float, ...] = (0.73, 0.95, 0.99)
    electron_eff_endcap: tuple[float, ...] = (0.50, 0.83, 0.90)
    muon_eff_barrel: tuple[float, ...] = (0.75, 0.99, 0.99)
    muon_eff_endcap: tuple[float, ...] = (0.70, 0.98, 0.98)
    # relative pT resolution sqrt(a^2 + (b*pT)^2) in |eta| regions split at res_eta_edges
    res_eta_edges: tuple[float, ...] = (0.5, 1.5)
    hadron_res_a: tuple[float, ...] = (0.01, 0.015, 0.025)
    hadron_res_b: tuple[float, ...] = (1.5e-4, 2.5e-4, 5.5e-4)  # [1/GeV]
    electron_res_a: tuple[float, ...] = (0.03, 0.05, 0.15)
    electron_res_b: tuple[float, ...] = (1.3e-3, 1.7e-3, 3.1e-3)
    muon_res_a: tuple[float, ...] = (0.01, 0.015, 0.025)
    muon_res_b: tuple[float, ...] = (1.0e-4, 1.5e-4, 3.5e-4)
    # track direction resolution sigma = sqrt(a^2 + (b / pT)^2) per |eta| region (res_eta_edges):
    # a constant (hit resolution, alignment) and a multiple-scattering term ~ 1/pT [GeV]. Values
    # read off the single-muon resolutions of the CMS tracker, JINST 9 (2014) P10009
    # (arXiv:1405.6569), Figs. 15-16: sigma(phi) ~ 2 mrad at 1 GeV, ~0.2 mrad at 10 GeV and
    # ~0.1 mrad at 100 GeV in the barrel, sigma(cot theta) ~ 2e-3, ~3e-4, ~2e-4, both growing
    # with |eta| (more material). All zeros: directions unsmeared (the Delphes card's choice).
    track_phi_res_a: tuple[float, ...] = (1.0e-4, 1.5e-4, 2.5e-4)  # [rad]
    track_phi_res_b: tuple[float, ...] = (2.0e-3, 2.5e-3, 4.0e-3)  # [rad GeV]
    track_cot_res_a: tuple[float, ...] = (2.0e-4, 3.0e-4, 6.0e-4)  # sigma(cot theta)
    track_cot_res_b: tuple[float, ...] = (2.0e-3, 3.0e-3, 6.0e-3)  # [GeV]
    # --- calorimeter towers (card: HCal EtaPhiBins; ECAL deposits are summed on the same grid,
    # as the Delphes CMS card's TowerMerger output and the older single "Calorimeter" module do)
    tower_eta_edges: tuple[float, ...] = DEFAULT_TOWER_ETA_EDGES
    tower_phi_bins: tuple[int, ...] = DEFAULT_TOWER_PHI_BINS  # phi bins per eta ring
    # False: one tower per HCAL cell carrying both E_em and E_had (the DESIGN.md layout).
    # True: ECAL cells (card ECal grid, 0.0174 x 1 deg) and HCAL cells are separate tower
    # elements, like the Delphes card's tower merger used for the public MLPF sample.
    separate_ecal_towers: bool = False
    ecal_eta_edges: tuple[float, ...] = DEFAULT_ECAL_ETA_EDGES  # used when separate
    ecal_phi_bins: tuple[int, ...] = DEFAULT_ECAL_PHI_BINS
    smear_tower_center: bool = True  # card: SmearTowerCenter true (uniform inside the tower)
    # card ECal/HCal EnergyFraction: |pid| -> ECAL share, the rest goes to HCAL
    em_fraction_pids: tuple[int, ...] = (11, 22, 111, 310, 3122)
    em_fraction_values: tuple[float, ...] = (1.0, 1.0, 1.0, 0.3, 0.3)
    no_deposit_pids: tuple[int, ...] = (12, 13, 14, 16, 1000022, 1000023, 1000025, 1000035, 1000045)
    # ECAL resolution, card ECal ResolutionFormula (arXiv:1306.2016, 1502.02701):
    #   |eta|<=1.5: (1+0.64 eta^2) * sqrt((c E)^2 + s^2 E + n^2);
    #   1.5<|eta|<=2.5: (2.16 + 5.6 (|eta|-2)^2) * same;  2.5<|eta|<=5: sqrt((cf E)^2 + sf^2 E)
    ecal_c: float = 0.008
    ecal_s: float = 0.11  # [sqrt(GeV)]
    ecal_n: float = 0.40  # [GeV]
    ecal_fwd_c: float = 0.107
    ecal_fwd_s: float = 2.08  # [sqrt(GeV)]
    # HCAL resolution, card HCal ResolutionFormula: sqrt((c E)^2 + s^2 E), forward above |eta|=3
    hcal_c: float = 0.050
    hcal_s: float = 1.50  # [sqrt(GeV)]
    hcal_fwd_c: float = 0.130
    hcal_fwd_s: float = 2.70  # [sqrt(GeV)]
    hcal_fwd_eta: float = 3.0
    # thresholds (card: ECal/HCal EnergyMin and EnergySignificanceMin)
    ecal_energy_min: float = 0.5  # [GeV]
    hcal_energy_min: float = 1.0  # [GeV]
    significance_min: float = 2.0  # tower kept if E > significance_min * sigma(E)
    # --- beam spot (Delphes CMS pile-up card, PileUpMerger VertexDistributionFormula)
    vertex_sigma_z: float = 53.0  # Gaussian longitudinal vertex spread [mm]

    def __post_init__(self) -> None:
        for prefix in ("tower", "ecal"):
            edges = np.asarray(getattr(self, f"{prefix}_eta_edges"))
            phi_bins = getattr(self, f"{prefix}_phi_bins")
            if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
                raise ConfigError(f"detector.{prefix}_eta_edges must be a strictly increasing list")
            if len(phi_bins) != edges.size - 1 or min(phi_bins) < 1:
                raise ConfigError(
                    f"detector.{prefix}_phi_bins needs one positive count per eta ring "
                    f"({edges.size - 1}), got {len(phi_bins)}"
                )
        if len(self.em_fraction_pids) != len(self.em_fraction_values):
            raise ConfigError("detector.em_fraction_pids and em_fraction_values differ in length")
        ncol = len(self.eff_pt_edges) + 1
        for name in ("hadron", "electron", "muon"):
            for region in ("barrel", "endcap"):
                if len(getattr(self, f"{name}_eff_{region}")) != ncol:
                    raise ConfigError(f"detector.{name}_eff_{region} needs {ncol} values")
            for term in ("a", "b"):
                if len(getattr(self, f"{name}_res_{term}")) != len(self.res_eta_edges) + 1:
                    raise ConfigError(f"detector.{name}_res_{term} needs one value per eta region")
        for angle in ("phi", "cot"):
            for term in ("a", "b"):
                values = getattr(self, f"track_{angle}_res_{term}")
                if len(values) != len(self.res_eta_edges) + 1 or min(values) < 0:
                    raise ConfigError(
                        f"detector.track_{angle}_res_{term} needs one value >= 0 per eta region "
                        f"({len(self.res_eta_edges) + 1}), got {list(values)}"
                    )
        if self.bz < 0 or self.radius <= 0 or self.half_length <= 0:
            raise ConfigError("detector.bz must be >= 0 and radius, half_length > 0")

    @cached_property
    def grid(self) -> TowerGrid:
        """The (HCAL) tower grid built from ``tower_eta_edges`` and ``tower_phi_bins``."""
        return TowerGrid(np.asarray(self.tower_eta_edges), np.asarray(self.tower_phi_bins))

    @cached_property
    def ecal_grid(self) -> TowerGrid:
        """The ECAL cell grid (used when ``separate_ecal_towers``)."""
        return TowerGrid(np.asarray(self.ecal_eta_edges), np.asarray(self.ecal_phi_bins))

    @cached_property
    def cells(self) -> Cells:
        """Every calorimeter cell: the tower grid, then (when separate) the ECAL grid.

        Cell ids of the ECAL grid are offset by ``grid.num_towers``.
        """
        grids = [self.grid, self.ecal_grid] if self.separate_ecal_towers else [self.grid]

        def cat(field: str) -> np.ndarray:
            return np.concatenate([getattr(g, field) for g in grids])

        return Cells(
            eta_lo=cat("eta_lo"), eta_hi=cat("eta_hi"), phi_lo=cat("phi_lo"),
            phi_width=cat("phi_width"), eta_center=cat("eta_center"), phi_center=cat("phi_center"),
            ecal_only=np.concatenate([np.full(g.num_towers, i == 1) for i, g in enumerate(grids)]),
        )  # fmt: skip

    def to_dict(self) -> dict[str, object]:
        """Plain dict of the settings (for dataset metadata)."""
        return dataclasses.asdict(self)


class Cells(NamedTuple):
    """Geometry of all calorimeter cells, each field (C,): ring edges, phi start and width,
    centre, and ``ecal_only`` (True for ECAL cells when ECAL and HCAL towers are separate)."""

    eta_lo: np.ndarray
    eta_hi: np.ndarray
    phi_lo: np.ndarray
    phi_width: np.ndarray
    eta_center: np.ndarray
    phi_center: np.ndarray
    ecal_only: np.ndarray


class TowerGrid:
    """Calorimeter towers: eta rings with a ring-dependent number of equal phi bins.

    Args:
        eta_edges: (R+1,) increasing ring edges.
        phi_bins: (R,) number of phi bins per ring, spanning [-pi, pi).
    """

    def __init__(self, eta_edges: np.ndarray, phi_bins: np.ndarray) -> None:
        self.eta_edges = eta_edges.astype(np.float64)
        self.phi_bins = phi_bins.astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.phi_bins)])  # (R+1,)
        self.num_towers = int(self.offsets[-1])
        ring = np.repeat(np.arange(self.phi_bins.size), self.phi_bins)  # (T,)
        iphi = np.arange(self.num_towers) - self.offsets[ring]
        self.ring = ring
        self.eta_lo, self.eta_hi = self.eta_edges[ring], self.eta_edges[ring + 1]
        width = 2 * np.pi / self.phi_bins[ring]
        self.phi_lo = -np.pi + iphi * width
        self.phi_width = width
        self.eta_center = 0.5 * (self.eta_lo + self.eta_hi)  # (T,)
        self.phi_center = self.phi_lo + 0.5 * width  # (T,)

    def __repr__(self) -> str:
        return f"TowerGrid(rings={self.phi_bins.size}, towers={self.num_towers})"

    def index(self, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Tower index for each (eta, phi) point, -1 outside the eta range. Shapes (P,) -> (P,)."""
        ring = np.searchsorted(self.eta_edges, eta, side="right") - 1
        inside = (ring >= 0) & (ring < self.phi_bins.size) & np.isfinite(eta)
        ring_c = np.clip(ring, 0, self.phi_bins.size - 1)
        nphi = self.phi_bins[ring_c]
        iphi = np.floor((np.mod(phi + np.pi, 2 * np.pi)) / (2 * np.pi) * nphi).astype(np.int64)
        iphi = np.minimum(iphi, nphi - 1)  # phi == pi after rounding
        return np.where(inside, self.offsets[ring_c] + iphi, -1)
