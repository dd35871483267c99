"""Bad inputs for the CLI table test (a helper module, not a test module).

:func:`make_world` writes, into one folder, every file the cases of ``test_cli_bad_inputs.py``
point at: a small valid dataset and run, physically wrong datasets (NaN, negative energy, class
ids 17 and -2, element type 9, a non-unit (sin, cos)), damaged files (truncated Parquet / ROOT /
bz2), size bombs (a bz2 pickle expanding past the limit, a Parquet footer declaring too many
rows, a nested-list pickle) and outputs that cannot be written.
"""

from __future__ import annotations

import bz2
import math
import os
import pickle
from pathlib import Path

import numpy as np

from particlegraph.sim.elements import MLPFEvent
from particlegraph.tasks.mlpf.store import write_events

#: Limits the table test runs under (environment of every invocation), so bombs are small.
TEST_LIMITS = {"PARTICLEGRAPH_MAX_INPUT_MB": "2", "PARTICLEGRAPH_MAX_ROWS": "50"}


def physical_events(n_events: int, seed: int) -> list[MLPFEvent]:
    """Small events that pass every physics check (tracks -> charged hadrons, towers -> photons)."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n_events):
        n = int(rng.integers(8, 16))
        track = rng.random(n) < 0.5
        pt = rng.exponential(3.0, n) + 0.5
        eta = rng.uniform(-2.4, 2.4, n)
        phi = rng.uniform(-math.pi, math.pi, n)
        e = pt * np.cosh(eta)
        x = np.zeros((n, 12), np.float32)
        x[:, 0] = np.where(track, 2, 1)
        x[:, 1], x[:, 2], x[:, 3], x[:, 4], x[:, 5] = pt, eta, np.sin(phi), np.cos(phi), e
        x[:, 6] = np.where(track, eta, 0.6 * e)
        x[:, 7] = np.where(track, np.sin(phi), 0.4 * e)
        x[:, 8] = np.where(track, np.cos(phi), 0.0)
        x[:, 9] = np.where(track, 1.0, 0.0)
        cls = np.where(track, 1, 3)
        y = np.stack([cls, np.where(track, 1.0, 0.0), pt, eta, np.sin(phi), np.cos(phi), e], 1)
        events.append(MLPFEvent(x, y.astype(np.float32), y.astype(np.float32)))
    return events


def _spoiled(column: int, row_col: tuple[int, int], value: float) -> list[MLPFEvent]:
    events = physical_events(2, 1)
    arrays = [a.copy() for a in events[1]]
    arrays[column][row_col] = value
    events[1] = MLPFEvent(*arrays)
    return events


def _folder(path: Path, events: list[MLPFEvent], n_files: int = 1) -> Path:
    path.mkdir(parents=True)
    for i in range(n_files):
        write_events(path / f"events_{i:03d}.parquet", events, {"synthetic": True})
    return path


def _pkl(path: Path, data: object) -> Path:
    path.write_bytes(bz2.compress(pickle.dumps(data, protocol=4)))
    return path


def unwritable_dir(root: Path) -> Path:
    """A folder this process cannot create files in (root ignores permission bits: use /sys)."""
    if os.geteuid() == 0:
        return Path("/sys/kernel/particlegraph-test")
    folder = root / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


def fake_run(run: Path) -> Path:
    """A run directory as ``mlpf train`` writes it: config.yaml + checkpoints/best.pt, untrained."""
    import torch

    from particlegraph.config import dump_config
    from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig
    from particlegraph.tasks.mlpf.train import MLPFRunConfig
    from particlegraph.train.checkpoint import checkpoint_path, save_checkpoint

    torch.manual_seed(0)
    cfg = MLPFRunConfig(model=MLPFConfig(kind="fcn", hidden=8))
    dump_config(cfg, run / "config.yaml")
    save_checkpoint(checkpoint_path(run, "best"), {"model": MLPF(cfg.model).state_dict()})
    return run


class Payload:
    """Pickles to ``os.mkdir(canary)``: a checkpoint carrying it must be refused unrun."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, ...]:
        return (os.mkdir, (str(self.canary),))


def _evil(path: Path, canary: Path) -> Path:
    """A checkpoint-shaped file whose pickle runs ``os.mkdir(canary)`` when loaded unsafely."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 2, "model": {}, "extra": Payload(canary)}, path)
    return path


def evil_runs(root: Path, canary: Path, tabular_run: Path, mlpf_run: Path) -> dict[str, Path]:
    """One run folder per task whose config is valid and whose checkpoints carry a payload."""
    import shutil

    from particlegraph.config import dump_config
    from particlegraph.tasks.anomaly.train import AnomalyRunConfig
    from particlegraph.tasks.tracking.train import TrackingRunConfig

    out = {}
    for task, src in (("tabular", tabular_run), ("mlpf", mlpf_run)):
        run = root / f"evil_{task}"
        shutil.copytree(src, run)
        for which in ("best", "last"):
            _evil(run / "checkpoints" / f"{which}.pt", canary)
        out[f"evil_{task}"] = run
    run = root / "evil_tracking"
    run.mkdir()
    dump_config(TrackingRunConfig(data=str(root / "good")), run / "config.yaml")
    (run / "run.json").write_text("{}\n")
    for name in ("model.pt", "checkpoints/last.pt", "checkpoints/best.pt"):
        _evil(run / name, canary)
    out["evil_tracking"] = run
    run = root / "evil_anomaly"
    run.mkdir()
    dump_config(AnomalyRunConfig(data=str(root / "good")), run / "config.yaml")
    for which in ("best", "last"):
        _evil(run / "checkpoints" / f"{which}.pt", canary)
    out["evil_anomaly"] = run
    from particlegraph.outputs import claim

    for task in ("tabular", "mlpf", "tracking", "anomaly"):  # marked as their task's runs
        claim(out[f"evil_{task}"], f"{task} train")
    return out


def tabular_world(root: Path) -> dict[str, Path]:
    """A generated toy, a trained one-epoch tabular run, and bad tabular files."""
    import shutil

    from particlegraph.tasks.tabular import generate, train

    w: dict[str, Path] = {}
    w["tabular_toy"] = generate.generate(root / "toy.data", events=400, seed=1)
    w["tabular_run"] = root / "tabular_run"
    train.train(w["tabular_toy"], w["tabular_run"], epochs=1, seed=0)
    lines = {
        "tabular_only_test": "".join(f"{i / 9:.3f} 0.5 0.1 {2 + i % 2}\n" for i in range(20)),
        "tabular_one_class": "".join(f"{i / 9:.3f} 0.5 0.1 0\n" for i in range(20)),
        "tabular_label7": "0.1 0.2 0.3 7\n0.2 0.3 0.4 1\n",
        "tabular_five_cols": "0.1 0.2 0.3 0.4 1\n",
        "tabular_words": "a b c 1\n",
        "tabular_inf": "0.1 inf 0.3 1\n0.2 0.3 0.4 0\n",
    }
    for name, text in lines.items():
        w[name] = root / f"{name}.data"
        w[name].write_text(text)
    w["tabular_no_test"] = root / "tabular_no_test.data"
    w["tabular_no_test"].write_text("".join(f"{i / 9:.3f} 0.5 0.1 {i % 2}\n" for i in range(20)))
    w["tabular_demo"] = root / "tabular_demo"  # an earlier demo (its layout, without training)
    w["tabular_demo"].mkdir()
    (w["tabular_demo"] / "particlegraph.json").write_text('{"command": "tabular demo"}\n')
    shutil.copytree(w["tabular_run"], w["tabular_demo"] / "run_3obs")
    w["tabular_bad_suffix"] = root / "toy.csv"
    w["tabular_bad_suffix"].write_text("0.1,0.2,0.3,1\n")
    return w


def trackml_folder(folder: Path, n_events: int = 2) -> Path:
    """A few small TrackML events (written with the task's own writer)."""
    from particlegraph.tasks.tracking.notebook import NotebookSample, sample_to_event
    from particlegraph.tasks.tracking.trackml import write_event

    rng = np.random.default_rng(5)
    for i in range(n_events):
        xyz = rng.normal(0.0, 100.0, (40, 3))
        pid = np.repeat(np.arange(1, 9), 5)
        write_event(
            folder, sample_to_event(NotebookSample(xyz, np.zeros((40, 0)), pid, {}), 1000 + i)
        )
    return folder


def anomaly_sample(folder: Path, n_events: int = 20) -> Path:
    """One shard of PF candidates (written with the task's own writer)."""
    from particlegraph.tasks.anomaly.samples import write_candidates

    rng = np.random.default_rng(6)
    rows = []
    for _ in range(n_events):
        n = int(rng.integers(5, 30))
        pt = np.sort(rng.exponential(2.0, n) + 0.5)[::-1].astype(np.float32)
        eta = rng.normal(0, 1.5, n).astype(np.float32)
        rows.append({
            "pt": pt, "eta": eta, "phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
            "cls": np.ones(n, np.int8), "charge": np.ones(n, np.int8),
            "energy": (pt * np.cosh(eta)).astype(np.float32), "n_cand": np.int32(n),
            "ht": float(pt.sum()), "lead_jet_pt": float(pt[0]), "lead_jet_mass": 10.0, "n_jets": 1,
        })  # fmt: skip
    write_candidates(folder / "bkg_00000.parquet", rows, {"sample": "bkg", "pileup": 0})
    return folder


def generated_samples(root: Path) -> dict[str, Path]:
    """A tracking sample and an anomaly sample folder claimed as made with --seed 1 (no events)."""
    from particlegraph.config import apply_overrides
    from particlegraph.outputs import claim
    from particlegraph.sim.silicon import SiliconConfig
    from particlegraph.tasks.anomaly import generate as anomaly_generate
    from particlegraph.tasks.anomaly.configs import read_config
    from particlegraph.tasks.anomaly.samples import samples_config_from_dict
    from particlegraph.tasks.tracking import simulate

    trk = root / "tracking_generated"
    claim(trk, simulate.COMMAND, {"process": "ttbar", "pileup": 0.0, "seed": 1,
          "first_event_id": 1000, "detector": simulate.detector_hash(SiliconConfig())})  # fmt: skip
    ano = root / "anomaly_generated"
    cfg = samples_config_from_dict(apply_overrides(read_config("samples"), ["pileup=0"]))
    claim(ano, anomaly_generate.COMMAND)
    identity = anomaly_generate.sample_identity("zerobias", cfg.spec("zerobias"), cfg, 2, 1)
    claim(ano / "zerobias", anomaly_generate.COMMAND, identity)
    return {"tracking_generated": trk, "anomaly_generated": ano}


def _truncated_root(path: Path) -> Path:
    import uproot

    with uproot.recreate(path) as f:
        f["Delphes"] = {"x": np.arange(2000, dtype=np.float64)}
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_world(root: Path) -> dict[str, Path]:
    """Write every input of the table test under ``root`` and return them by name."""
    w: dict[str, Path] = {"root": root}
    w["good"] = _folder(root / "good", physical_events(4, 0), n_files=3)
    w["run"] = fake_run(root / "run")
    w["run_nockpt"] = root / "run_nockpt"
    w["run_nockpt"].mkdir()
    (w["run_nockpt"] / "config.yaml").write_text("model:\n  kind: fcn\n")
    w["run_corrupt"] = root / "run_corrupt"
    (w["run_corrupt"] / "checkpoints").mkdir(parents=True)
    (w["run_corrupt"] / "config.yaml").write_text("model:\n  kind: fcn\n")
    (w["run_corrupt"] / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    w["nan"] = _folder(root / "nan", _spoiled(0, (3, 1), float("nan")))
    w["inf"] = _folder(root / "inf", _spoiled(1, (2, 2), float("inf")))
    w["negative_energy"] = _folder(root / "negative_energy", _spoiled(1, (2, 6), -4.0))
    w["class17"] = _folder(root / "class17", _spoiled(1, (0, 0), 17.0))
    w["class_minus2"] = _folder(root / "class_minus2", _spoiled(2, (1, 0), -2.0))
    w["type9"] = _folder(root / "type9", _spoiled(0, (0, 0), 9.0))
    w["not_unit"] = _folder(root / "not_unit", _spoiled(0, (0, 3), 0.9))
    w["file"] = root / "a_file.txt"
    w["file"].write_text("not a folder\n")
    w["truncated_parquet"] = root / "trunc.parquet"
    good_shard = (w["good"] / "events_000.parquet").read_bytes()
    w["truncated_parquet"].write_bytes(good_shard[: len(good_shard) // 2])
    w["many_rows"] = root / "many_rows"  # 60 events > PARTICLEGRAPH_MAX_ROWS=50
    _folder(w["many_rows"], physical_events(60, 2))
    # 9 KB that expand to 8 MB (> PARTICLEGRAPH_MAX_INPUT_MB=2): a pickled array of zeros
    w["bomb"] = _pkl(root / "bomb.pkl.bz2", {"X": [np.zeros((8 << 20) // 4, np.float32)]})
    nested: list = [0.0]
    for _ in range(6):  # 100**6 numbers in about 1 KB of pickle (shared references)
        nested = [nested] * 100
    w["nested"] = _pkl(
        root / "nested.pkl.bz2", {"X": [nested], "ygen": [nested], "ycand": [nested]}
    )
    strings = np.array([["a"] * 12] * 3)
    w["strings"] = _pkl(
        root / "strings.pkl.bz2", {"X": [strings], "ygen": [strings], "ycand": [strings]}
    )
    w["truncated_bz2"] = root / "trunc.pkl.bz2"
    w["truncated_bz2"].write_bytes(bz2.compress(pickle.dumps({"X": []}))[:20])
    w["truncated_root"] = _truncated_root(root / "trunc.root")
    w["junk_root"] = root / "junk.root"
    w["junk_root"].write_bytes(b"root" * 100)
    # a generated-looking folder made with seed 1 (re-running with seed 2 must fail)
    gen = root / "generated"
    meta = {"generator": "particlegraph.sim", "process": "minbias", "seed": 1, "events": 2}
    gen.mkdir()
    write_events(gen / "minbias_pu0_00000.parquet", physical_events(2, 3), meta)
    from particlegraph.outputs import claim

    claim(gen, "mlpf generate", {"process": "minbias", "pileup": 0.0, "format": "parquet"})
    w["generated"] = gen
    w["unwritable"] = unwritable_dir(root)
    w["tabular_data"] = root / "tabular.data"
    w["tabular_data"].write_text("1.0 2.0 nan 0\n0.5 0.1 0.2 1\n")
    w["tabular_good"] = root / "tabular_good.data"
    w["tabular_good"].write_text("".join(f"{i / 40:.3f} 0.5 -0.5 {i % 4}\n" for i in range(40)))
    w["foreign"] = root / "foreign"  # a folder of the user's that no command made
    w["foreign"].mkdir()
    (w["foreign"] / "notes.txt").write_text("mine\n")
    w["foreign_file"] = root / "foreign.data"  # a data file no command made
    w["foreign_file"].write_text(w["tabular_good"].read_text())
    w.update(tabular_world(root))
    from particlegraph.outputs import claim

    claim(w["run"], "mlpf train")  # the MLPF run is marked as such (another task's run)
    # copies for the cases whose command (still) replaces what it reads: they would spoil the rest
    import shutil

    w["good_copy"] = Path(shutil.copytree(w["good"], root / "good_copy"))
    w["run_copy"] = Path(shutil.copytree(w["run"], root / "run_copy"))
    w["trackml"] = trackml_folder(root / "trackml", n_events=6)
    w["anomaly_sample"] = anomaly_sample(root / "anomaly_sample")
    w.update(generated_samples(root))
    w["canary"] = root / "canary"  # must never appear: the payloads would create it
    w.update(evil_runs(root, w["canary"], w["tabular_run"], w["run"]))
    # own copies for the cases whose command (still) trains into what it was given
    for name in ("evil_tracking", "evil_anomaly", "foreign"):
        for task in ("tracking", "anomaly"):
            key = f"{name}_{task}" if name == "foreign" else f"{name}_resume"
            if key not in w:
                w[key] = Path(shutil.copytree(w[name], root / key))
    return w
