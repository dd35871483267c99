"""Pythia 8 process presets and seeded batch generation (through the ``pythia8mc`` package).

Every preset is pp at 14 TeV with Pythia's default tune (Monash 2013). Particles with a proper
lifetime c*tau above 10 mm (K0_S, Lambda, ...) are left undecayed, as in the CMS convention for
"stable" generator particles and the Delphes/Pythia set-ups used for the MLPF samples, so that
every final-state particle comes from within a few mm of the collision (boosted B and D decays
aside) and the detector treats K0_S/Lambda like Delphes does (30 % ECAL, 70 % HCAL).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from particlegraph.errors import ConfigError, require
from particlegraph.sim.particles import Particles

#: Settings shared by every preset.
COMMON_SETTINGS: tuple[str, ...] = (
    "Beams:eCM = 14000.",
    "Print:quiet = on",
    "Next:numberCount = 0",
    "ParticleDecays:limitTau0 = on",
    "ParticleDecays:tau0Max = 10.",  # mm/c
)

#: Process name -> Pythia settings (on top of COMMON_SETTINGS).
PROCESSES: dict[str, tuple[str, ...]] = {
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    # Hard 2->2 QCD; pTHatMin 20 GeV keeps the cross section finite (change with extra settings).
    "qcd": ("HardQCD:all = on", "PhaseSpace:pTHatMin = 20."),
    "minbias": ("SoftQCD:nonDiffractive = on",),
    # Pure Z (no gamma* interference: gmZmode = 2) decaying to the named lepton pair.
    "zee": ("WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 11"),
    "zmumu": ("WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 13"),
    "ztautau": ("WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 2", "23:onMode = off", "23:onIfAny = 15"),
    # W -> e nu or mu nu.
    "wlnu": ("WeakSingleBoson:ffbar2W = on", "24:onMode = off", "24:onIfAny = 11 13"),
    # BSM-like signal for anomaly studies: a 2 TeV sequential-SM-like Z' decaying to top pairs
    # (Z'-only: gmZmode = 3), which gives boosted, merged top jets.
    "zprime_ttbar": (
        "NewGaugeBoson:ffbar2gmZZprime = on", "Zprime:gmZmode = 3", "32:m0 = 2000.",
        "32:onMode = off", "32:onIfAny = 6",
    ),
    # More BSM-like signals for anomaly studies, each from Pythia 8's built-in processes; settings
    # follow the Pythia 8.3 manual pages named (https://pythia.org/latest-manual/).
    # "New Gauge Bosons": a 2 TeV W' -> W Z (coup2WZ = 1, the EGM-like coupling) with both
    # bosons decaying to quarks: two boosted two-prong jets.
    "wprime_wz": (
        "NewGaugeBoson:ffbar2Wprime = on", "34:m0 = 2000.", "Wprime:coup2WZ = 1.",
        "34:onMode = off", "34:onIfAll = 24 23", "24:onMode = off", "24:onIfAny = 1 2 3 4 5",
        "23:onMode = off", "23:onIfAny = 1 2 3 4 5",
    ),
    # "Higgs Processes", BSM part: a 500 GeV heavy CP-even H2 (gg fusion) -> Z Z -> 4 leptons
    # (e, mu): few, isolated, hard particles (a signal "simpler" than QCD).
    "h2_zz4l": (
        "Higgs:useBSM = on", "HiggsBSM:gg2H2 = on", "35:m0 = 500.", "35:onMode = off",
        "35:onIfMatch = 23 23", "23:onMode = off", "23:onIfAny = 11 13",
    ),
    # "Leptoquark Processes": 1 TeV scalar leptoquark pairs (gg and qqbar) decaying to b tau.
    "lq_btau": ("LeptoQuark:all = on", "42:m0 = 1000.", "42:0:products = 5 -15"),
    # "Hidden Valleys": a 1 TeV Zv -> qv qvbar dark shower, SU(3)_v with one flavour, running
    # alpha_v (Lambda_v = 10 GeV), dark mesons of 20 GeV decaying promptly to SM quark pairs
    # (r_inv = 0; the semi-visible-jet benchmarks of Cohen, Lisanti, Lou, PRL 115 (2015) 171804
    # use the same switches with part of the mesons stable).
    "hv_dark": (
        "HiddenValley:ffbar2Zv = on", "4900023:m0 = 1000.", "4900023:mWidth = 10.",
        "4900023:onMode = off", "4900023:onIfAny = 4900101",
        "HiddenValley:Ngauge = 3", "HiddenValley:nFlav = 1", "HiddenValley:FSR = on",
        "HiddenValley:fragment = on", "HiddenValley:alphaOrder = 1", "HiddenValley:Lambda = 10.",
        "HiddenValley:pTminFSR = 11.", "HiddenValley:probVector = 0.75",
        "4900101:m0 = 10.", "4900111:m0 = 20.", "4900113:m0 = 20.",
        "4900111:onMode = off", "4900111:addChannel = 1 1.0 91 -3 3",
        "4900113:onMode = off", "4900113:addChannel = 1 0.3 91 -1 1",
        "4900113:addChannel = 1 0.3 91 -2 2", "4900113:addChannel = 1 0.4 91 -3 3",
    ),
}  # fmt: skip

# Cache |PDG id| -> charge, filled from Pythia's particle table on first use.
_CHARGE_CACHE: dict[int, float] = {}


def process_settings(process: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """All Pythia settings for a preset, with ``extra`` settings appended (they win)."""
    if process not in PROCESSES:
        raise ConfigError(
            f"unknown process {process!r}; choose one of {', '.join(sorted(PROCESSES))}"
        )
    return (*COMMON_SETTINGS, *PROCESSES[process], *extra)


def pythia_seed(seed_sequence: np.random.SeedSequence) -> int:
    """A Pythia ``Random:seed`` in its allowed range [1, 900000000] drawn from a seed sequence."""
    return int(seed_sequence.generate_state(1, dtype=np.uint64)[0] % 900_000_000) + 1


def make_pythia(settings: Sequence[str], seed: int) -> Any:
    """An initialised, silent ``pythia8mc.Pythia`` with the given settings and random seed."""
    pythia8mc: Any = require("pythia8mc", "sim")
    pythia = pythia8mc.Pythia("", False)
    for line in (*settings, "Random:setSeed = on", f"Random:seed = {int(seed)}"):
        if not pythia.readString(line):
            raise ConfigError(f"Pythia rejected the setting {line!r}")
    if not pythia.init():
        raise ConfigError(f"Pythia failed to initialise with settings {list(settings)}")
    return pythia


def charges(pythia: Any, pid: np.ndarray) -> np.ndarray:
    """Electric charge [e] for each PDG id in ``pid`` (P,), looked up once per distinct id."""
    uniq, inverse = np.unique(pid, return_inverse=True)
    values = np.empty(uniq.shape[0], dtype=np.float64)
    for i, code in enumerate(uniq.tolist()):
        if code not in _CHARGE_CACHE:
            _CHARGE_CACHE[code] = pythia.particleData.chargeType(code) / 3.0
        values[i] = _CHARGE_CACHE[code]
    return values[inverse]


def next_events(pythia: Any, n: int) -> list[Particles]:
    """Generate ``n`` events and return their final-state (status > 0) particles.

    The whole batch is flattened with awkward once; the loop only slices per event.
    """
    import awkward as ak

    out: list[Particles] = []
    while len(out) < n:
        batch = pythia.nextBatch(n - len(out))
        if len(batch) == 0:  # pragma: no cover - Pythia gave up on every event
            raise ConfigError("Pythia failed to generate events (nextBatch returned nothing)")
        prt = batch.prt[batch.prt.status > 0]
        counts = ak.to_numpy(ak.num(prt)).astype(np.int64)
        flat = ak.flatten(prt)
        pid = ak.to_numpy(flat.id).astype(np.int32)
        q = charges(pythia, pid)
        cols = [ak.to_numpy(getattr(flat.p, c)).astype(np.float64) for c in ("px", "py", "pz", "e")]
        # vProd is missing (None) for particles made at the origin.
        vtx = [
            ak.to_numpy(ak.fill_none(getattr(flat.vProd, c), 0.0)).astype(np.float64)
            for c in ("px", "py", "pz")
        ]
        offsets = np.concatenate([[0], np.cumsum(counts)])
        for a, b in itertools.pairwise(offsets.tolist()):
            out.append(Particles(pid[a:b], q[a:b], *(c[a:b] for c in cols), *(v[a:b] for v in vtx)))
    return out
