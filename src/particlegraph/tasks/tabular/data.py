"""Tabular toy data: three observables per event and a label, in ``events.data`` or Parquet.

Toy (all observables dimensionless, standard-normal scale):

* observable 1 separates directly: N(+mu, 1) for signal, N(-mu, 1) for background;
* observable 2 separates only through |obs2|: both centred on 0, widths ``sigma_sig`` and
  ``sigma_bkg``, so a plain cut on obs2 has ROC AUC ~ 0.5 while |obs2| separates;
* observable 3 is N(0, 1) for both classes and carries no information.

``events.data`` layout (DESIGN.md): four whitespace-separated columns ``obs1 obs2 obs3 label`` per
line, labels 0/1 = background/signal for training, 2/3 = background/signal for testing. Blank
lines and lines starting with ``#`` are skipped. Parquet files hold columns ``obs1, obs2, obs3``
(float32) and ``label`` (int8), the generation settings as JSON in the key-value metadata.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from particlegraph.atomic import atomic_path
from particlegraph.errors import ConfigError, DataFileError

OBSERVABLES = ("obs1", "obs2", "obs3")
"""Column names of the three observables."""

TRAIN_LABELS = (0, 1)
TEST_LABELS = (2, 3)
_META_KEY = b"particlegraph.tabular"


@dataclass(frozen=True)
class ToyConfig:
    """Settings of the three-observable toy."""

    events: int = 20_000  # total events, training + test
    test_fraction: float = 0.5  # share of events labelled 2/3 (test)
    signal_fraction: float = 0.5  # share of signal among all events
    mu: float = 0.75  # obs1 means are +mu (signal) and -mu (background)
    sigma_sig: float = 0.6  # obs2 width for signal
    sigma_bkg: float = 1.6  # obs2 width for background
    seed: int = 0

    def __post_init__(self) -> None:
        if self.events < 2:
            raise ConfigError(f"events must be at least 2, got {self.events}")
        for name in ("test_fraction", "signal_fraction"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ConfigError(f"{name} must lie strictly between 0 and 1, got {v}")
        if self.sigma_sig <= 0 or self.sigma_bkg <= 0:
            raise ConfigError("sigma_sig and sigma_bkg must be positive")


class TabularData(NamedTuple):
    """Observables ``x`` (N, 3) float32 and ``label`` (N,) int64 in 0..3 (events.data labels)."""

    x: np.ndarray
    label: np.ndarray

    @property
    def is_test(self) -> np.ndarray:
        """(N,) bool, True for test rows (labels 2, 3)."""
        return self.label >= 2

    @property
    def y(self) -> np.ndarray:
        """(N,) int64 class, 1 = signal, 0 = background (train and test alike)."""
        return self.label % 2

    def part(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the ``"train"`` or ``"test"`` rows."""
        if which not in ("train", "test"):
            raise ConfigError(f"part must be 'train' or 'test', got {which!r}")
        mask = self.is_test if which == "test" else ~self.is_test
        return self.x[mask], self.y[mask]


def generate_toy(cfg: ToyConfig) -> TabularData:
    """Draw the toy (seeded, reproducible); rows are shuffled, train and test interleaved."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.events
    sig = rng.random(n) < cfg.signal_fraction  # (N,)
    test = rng.random(n) < cfg.test_fraction  # (N,)
    obs1 = rng.normal(np.where(sig, cfg.mu, -cfg.mu), 1.0)
    obs2 = rng.normal(0.0, np.where(sig, cfg.sigma_sig, cfg.sigma_bkg))
    obs3 = rng.normal(0.0, 1.0, n)
    x = np.stack([obs1, obs2, obs3], axis=1).astype(np.float32)
    label = sig.astype(np.int64) + 2 * test.astype(np.int64)
    return TabularData(x=x, label=label)


def _validate(x: np.ndarray, label: np.ndarray, where: str) -> TabularData:
    if x.ndim != 2 or x.shape[1] != len(OBSERVABLES):
        raise DataFileError(
            f"{where}: expected {len(OBSERVABLES)} observables, got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        bad = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise DataFileError(f"{where}: row {bad} holds a non-finite observable")
    bad_lab = (label < 0) | (label > 3)
    if bad_lab.any():
        i = int(np.argmax(bad_lab))
        raise DataFileError(f"{where}: row {i} has label {label[i]}; labels must be 0, 1, 2 or 3")
    return TabularData(x=x.astype(np.float32), label=label.astype(np.int64))


# ---------------------------------------------------------------------------------------------
# events.data (plain text)
# ---------------------------------------------------------------------------------------------


def read_events_data(path: str | os.PathLike[str]) -> TabularData:
    """Read an ``events.data`` text file; a malformed line raises :class:`DataFileError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(f"cannot read tabular data file {path}: {err}") from err
    rows: list[list[float]] = []
    labels: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split()
        if len(parts) != 4:
            raise DataFileError(
                f"{path}:{lineno}: expected 4 whitespace-separated columns "
                f"(obs1 obs2 obs3 label), found {len(parts)}"
            )
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise DataFileError(f"{path}:{lineno}: non-numeric value in {s!r}") from None
        lab = vals[3]
        if lab not in (0.0, 1.0, 2.0, 3.0):
            raise DataFileError(
                f"{path}:{lineno}: label {parts[3]!r} is not one of 0, 1 (train bkg/sig), "
                "2, 3 (test bkg/sig)"
            )
        if not all(np.isfinite(vals[:3])):
            raise DataFileError(f"{path}:{lineno}: non-finite observable in {s!r}")
        rows.append(vals[:3])
        labels.append(int(lab))
    if not rows:
        raise DataFileError(f"{path}: no events found")
    return TabularData(
        x=np.asarray(rows, dtype=np.float32), label=np.asarray(labels, dtype=np.int64)
    )


#: First characters of the comment line holding the generation settings of an ``events.data``.
DATA_META_PREFIX = "# particlegraph: "


def write_events_data(
    path: str | os.PathLike[str], data: TabularData, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``data`` as an ``events.data`` text file (atomic).

    ``metadata`` (the generation settings) goes into a first comment line
    ``# particlegraph: {json}``; readers of the layout (``np.loadtxt`` too) skip ``#`` lines.
    """
    data = _validate(data.x, data.label, str(path))
    lines = [DATA_META_PREFIX + json.dumps(metadata)] if metadata is not None else []
    lines += ["# obs1 obs2 obs3 label (0/1 = train bkg/sig, 2/3 = test bkg/sig)"]
    lines += [
        f"{a:.7g} {b:.7g} {c:.7g} {lab}"
        for (a, b, c), lab in zip(data.x.tolist(), data.label.tolist(), strict=True)
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------


def write_parquet(
    path: str | os.PathLike[str], data: TabularData, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``data`` as Parquet (atomic), ``metadata`` as JSON in the key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = _validate(data.x, data.label, str(path))
    cols = {name: pa.array(data.x[:, i]) for i, name in enumerate(OBSERVABLES)}
    cols["label"] = pa.array(data.label.astype(np.int8))
    table = pa.table(cols)
    table = table.replace_schema_metadata({_META_KEY: json.dumps(metadata or {}).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | os.PathLike[str]) -> TabularData:
    """Read a Parquet file written by :func:`write_parquet` (or any with the same columns)."""
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:  # ArrowInvalid subclasses ValueError
        raise DataFileError(f"cannot read Parquet file {path}: {err}") from err
    missing = [c for c in (*OBSERVABLES, "label") if c not in table.column_names]
    if missing:
        raise DataFileError(
            f"{path}: missing column(s) {missing}; expected {[*OBSERVABLES, 'label']}"
        )
    try:
        x = np.stack([table[c].to_numpy().astype(np.float32) for c in OBSERVABLES], axis=1)
        label = table["label"].to_numpy().astype(np.int64)
    except (ValueError, TypeError) as err:
        raise DataFileError(f"{path}: columns are not numeric ({err})") from err
    return _validate(x, label, str(path))


def read_parquet_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Generation settings stored by :func:`write_parquet` (empty dict when absent)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(_META_KEY)
    return json.loads(raw) if raw else {}


# ---------------------------------------------------------------------------------------------
# dispatch on suffix
# ---------------------------------------------------------------------------------------------


def read_table(path: str | os.PathLike[str]) -> TabularData:
    """Read ``.data``/``.txt`` (events.data layout) or ``.parquet`` by suffix."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"tabular data file {path} does not exist")
    if path.suffix == ".parquet":
        return read_parquet(path)
    if path.suffix in (".data", ".txt", ".dat"):
        return read_events_data(path)
    raise DataFileError(f"{path}: unknown suffix {path.suffix!r}; use .data or .parquet")


def write_table(
    path: str | os.PathLike[str], data: TabularData, metadata: dict[str, Any] | None = None
) -> None:
    """Write ``.data`` (events.data layout) or ``.parquet`` by suffix."""
    path = Path(path)
    if path.suffix == ".parquet":
        write_parquet(path, data, metadata)
    elif path.suffix in (".data", ".txt", ".dat"):
        write_events_data(path, data, metadata)
    else:
        raise ConfigError(f"output {path}: unknown suffix {path.suffix!r}; use .data or .parquet")


#: ``generator`` entry of the metadata of a toy written by ``tabular generate``.
TOY_GENERATOR = "particlegraph.tasks.tabular.toy"


def toy_metadata(cfg: ToyConfig) -> dict[str, Any]:
    """Metadata dict recorded with a generated toy."""
    return {"generator": TOY_GENERATOR, **asdict(cfg)}


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Generation settings stored in a ``.parquet`` or ``.data`` file (empty dict when none)."""
    path = Path(path)
    try:
        if path.suffix == ".parquet":
            return read_parquet_metadata(path)
        with path.open() as f:
            first = f.readline(1 << 16)
        if first.startswith(DATA_META_PREFIX):
            meta = json.loads(first[len(DATA_META_PREFIX) :])
            return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return {}


def is_generated_toy(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file written by ``tabular generate`` (its metadata says so)."""
    return read_metadata(path).get("generator") == TOY_GENERATOR
