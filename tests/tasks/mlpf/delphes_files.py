"""A tiny Delphes ROOT file written with uproot in the Delphes branch layout (test helper)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np

# event 0, hand-made. Particles: (PID, Status, Charge, PT, Eta, Phi, E)
PARTICLES = [
    (211, 1, 1, 10.0, 0.5, 0.1, 11.3),  # 0: has track 0
    (22, 1, 0, 5.0, 0.0, 1.0, 5.0),  # 1: -> tower 0
    (130, 1, 0, 3.0, 0.02, 1.02, 3.1),  # 2: -> tower 0
    (11, 1, -1, 20.0, -1.0, -2.0, 30.9),  # 3: has track 1 (electron)
    (12, 1, 0, 7.0, 0.0, 1.0, 7.0),  # 4: neutrino, ignored
    (6, 22, 1, 50.0, 0.3, 0.3, 200.0),  # 5: top quark, not final state
    (-211, 1, -1, 2.0, 3.0, 3.1, 20.1),  # 6: forward, no track -> tower 1 (across phi = pi)
]
TRACKS = {  # PT, Eta, Phi, P, EtaOuter, PhiOuter, Charge, PID, Particle (UID = index + 1)
    "PT": [10.0, 20.0], "Eta": [0.5, -1.0], "Phi": [0.1, -2.0], "P": [11.276, 30.862],
    "EtaOuter": [0.51, -1.01], "PhiOuter": [0.2, -2.1], "Charge": [1, -1], "PID": [211, 11],
    "Particle": [1, 4],
}  # fmt: skip
TOWERS = {
    "ET": [7.9, 0.2, 1.0], "Eta": [0.0, 3.0, -0.5], "Phi": [1.0, -3.1, 2.5],
    "E": [7.9, 2.0, 1.13], "Eem": [5.0, 0.0, 1.13], "Ehad": [2.9, 2.0, 0.0],
}  # fmt: skip


def collection(rows: list[dict[str, list]], dtypes: dict[str, type]) -> ak.Array:
    return ak.zip(
        {k: ak.values_astype(ak.Array([r[k] for r in rows]), dt) for k, dt in dtypes.items()}
    )


def write_delphes(
    path: Path, *, refs: bool = True, eflow: bool = True, towers: bool = True
) -> Path:
    """Two events (event 1 has no track and no tower) in the Delphes branch layout."""
    import uproot

    particles0 = {k: [p[i] for p in PARTICLES] for i, k in enumerate(["PID", "Status", "Charge", "PT", "Eta", "Phi", "E"])}  # fmt: skip
    particles0["fUniqueID"] = list(range(1, len(PARTICLES) + 1))
    particles1 = {"PID": [22], "Status": [1], "Charge": [0], "PT": [1.0], "Eta": [0.0], "Phi": [0.0], "E": [1.0], "fUniqueID": [1]}  # fmt: skip
    f32, i32, u32 = np.float32, np.int32, np.uint32
    pdt = {"PID": i32, "Status": i32, "Charge": i32, "PT": f32, "Eta": f32, "Phi": f32, "E": f32, "fUniqueID": u32}  # fmt: skip
    tdt = dict.fromkeys(("PT", "Eta", "Phi", "P", "EtaOuter", "PhiOuter"), f32) | {
        "Charge": i32,
        "PID": i32,
    }
    if refs:
        tdt["Particle"] = u32
    wdt = dict.fromkeys(TOWERS, f32)
    empty_t = {k: [] for k in tdt}
    data = {
        "Particle": collection([particles0, particles1], pdt),
        "Track": collection([TRACKS, empty_t], tdt),
    }
    if towers:
        data["Tower"] = collection([TOWERS, {k: [] for k in wdt}], wdt)
    if eflow:
        efdt = {"PT": f32, "Eta": f32, "Phi": f32, "Charge": i32, "PID": i32}
        data["EFlowTrack"] = collection([{k: TRACKS[k] for k in efdt}, {k: [] for k in efdt}], efdt)
        ndt = {"ET": f32, "Eta": f32, "Phi": f32, "E": f32}
        photons = {"ET": [4.9], "Eta": [0.0], "Phi": [1.0], "E": [4.9]}
        neutrals = {"ET": [2.0, 0.5], "Eta": [0.01, 3.0], "Phi": [1.0, -3.1], "E": [2.0, 5.0]}
        data["EFlowPhoton"] = collection([photons, {k: [] for k in ndt}], ndt)
        data["EFlowNeutralHadron"] = collection([neutrals, {k: [] for k in ndt}], ndt)
    with uproot.recreate(path) as f:
        f.mktree(
            "Delphes",
            {k: v.type.content for k, v in data.items()},
            counter_name=lambda c: f"{c}_size",
            field_name=lambda outer, inner: f"{outer}.{inner}",
        )
        f["Delphes"].extend(data)
    return path
