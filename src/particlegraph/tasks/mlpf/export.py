"""ONNX export of a trained MLPF model, checked against the torch outputs with onnxruntime.

The training-time GravNet layer builds its kNN graph with a chunked, data-dependent loop and PyG
scatter operations, which exporters cannot trace into a fixed graph. For export every GravNet
block is swapped for :class:`DenseGravNetConv`, the same computation for one event written with
an (N, N) distance matrix and ``topk`` (static shapes except the number of elements N), while the
rest of ``MLPF.forward`` is reused unchanged. The exported graph takes one event::

    x (N, 12) float32  ->  logits (N, 6), charge_logits (N, 3), regression (N, 5)

with N dynamic and N >= k (realistic events have thousands of elements). Memory is O(N^2), fine
for inference on events of up to ~10^4 elements.

Two exporters are supported: TorchScript tracing (fast; deprecated by torch but present in 2.13)
and the torch.export-based one (``dynamo``); ``auto`` uses the first and falls back to the second.

:func:`export_run` is what ``particlegraph mlpf export`` runs: it opens the run (``PATH`` or
``pretrained:NAME``), declares the ``.onnx`` file with the output guard before any work (never
the run's checkpoints or config; an existing file only when this command wrote it, which the
file's ONNX metadata records, or with ``overwrite``) and exports.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from particlegraph.atomic import atomic_path
from particlegraph.errors import ConfigError, DataFileError, ParticlegraphError, require
from particlegraph.nn.gravnet import DISTANCE_SCALE, GravNetConv
from particlegraph.sim.elements import ELEM_TOWER, ELEM_TRACK
from particlegraph.train.run import check_checkpoint as check_checkpoint

OUTPUT_NAMES = ("logits", "charge_logits", "regression")
#: The command that writes ``.onnx`` files, recorded in their metadata.
COMMAND = "mlpf export"
#: ONNX ``metadata_props`` key naming the command that wrote the file.
METADATA_KEY = "particlegraph"
#: Largest existing file read to find out whether this command wrote it [bytes].
MAX_OWN_CHECK_BYTES = 1 << 30
#: Checkpoints a run offers (``best`` falls back to ``last``).


class DenseGravNetConv(nn.Module):
    """Single-event, export-friendly twin of a :class:`GravNetConv` sharing its weights.

    Neighbours are ranked with the same formula as ``graph.knn.knn_graph`` (``|b|^2 - 2 a.b``,
    the point itself first) so both pick the same k neighbours.

    Shapes:
        h (N, H_in) -> (N, H_out)
    """

    def __init__(self, conv: GravNetConv) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, h: Tensor, batch: Tensor | None = None) -> Tensor:
        c = self.conv
        n = h.shape[0]
        s = c.lin_s(h)  # (N, S)
        # |s_i - s_j|^2 up to the row constant |s_i|^2, as graph.knn ranks neighbours
        d2 = torch.addmm((s * s).sum(-1)[None, :], s, s.T, alpha=-2.0)  # (N, N)
        ar = torch.arange(n, device=s.device)
        d2 = torch.where(ar[:, None] == ar[None, :], -math.inf, d2)  # the point itself comes first
        _, idx = torch.topk(d2, c.k, dim=1, largest=False, sorted=True)  # (N, k)
        diff = s[idx] - s[:, None, :]  # (N, k, S)
        w = torch.exp(-DISTANCE_SCALE * (diff * diff).sum(-1))  # (N, k)
        msg = w[..., None] * c.lin_h(h)[idx]  # (N, k, P)
        if c.aggr == "sum":
            agg = msg.sum(1)
        elif c.aggr == "mean":
            agg = msg.mean(1)
        else:
            agg = msg.amax(1)
        out: Tensor = c.lin_out(torch.cat([h, agg], dim=-1))
        return out


class ExportableMLPF(nn.Module):
    """``MLPF`` for one event with dense GravNet blocks; returns ``(logits, charge_logits, regression)``.

    Shares every parameter with the wrapped model (nothing is copied).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        clone = object.__new__(type(model))
        clone.__dict__ = dict(model.__dict__)
        clone._modules = dict(
            model._modules
        )  # own module table: swapping blocks leaves `model` intact
        blocks = getattr(model, "blocks", None)
        if blocks is not None:
            clone._modules["blocks"] = nn.ModuleList(
                DenseGravNetConv(b) if isinstance(b, GravNetConv) else b for b in blocks
            )
        self.inner = clone
        #: smallest event size the exported graph accepts (topk needs k candidates)
        self.k = max((b.k for b in blocks or () if isinstance(b, GravNetConv)), default=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        out = self.inner(x, None)
        return out.logits, out.charge_logits, out.regression


def example_event(n_elements: int, seed: int = 0) -> Tensor:
    """A synthetic event X (n_elements, 12) with plausible tracks and towers, for tracing/checks."""
    rng = np.random.default_rng(seed)
    is_track = rng.random(n_elements) < 0.4
    pt = rng.exponential(3.0, n_elements) + 0.5
    eta = rng.uniform(-2.5, 2.5, n_elements)
    phi = rng.uniform(-math.pi, math.pi, n_elements)
    energy = pt * np.cosh(eta)
    x = np.zeros((n_elements, 12), np.float32)
    x[:, 0] = np.where(is_track, ELEM_TRACK, ELEM_TOWER)
    x[:, 1], x[:, 2], x[:, 3], x[:, 4], x[:, 5] = pt, eta, np.sin(phi), np.cos(phi), energy
    x[:, 6] = np.where(is_track, eta, 0.6 * energy)
    x[:, 7] = np.where(is_track, np.sin(phi), 0.4 * energy)
    x[:, 8] = np.where(is_track, np.cos(phi), 0.0)
    x[:, 9] = np.where(is_track, rng.choice([-1.0, 1.0], n_elements), 0.0)
    return torch.from_numpy(x)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings (e.g. "torchvision is not installed") for one export."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class ExportResult:
    """Outcome of :func:`export_onnx`."""

    path: Path  # the .onnx file
    elements: int  # size of the event used for the check
    max_abs_diff: float | None  # max |onnxruntime - torch| over all outputs (None: not checked)


def onnx_outputs(path: str | os.PathLike[str], x: Tensor | np.ndarray) -> list[np.ndarray]:
    """Run an exported model with onnxruntime on one event ``x`` (N, 12); returns the 3 outputs."""
    ort = require("onnxruntime", "export")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    arr = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    name = sess.get_inputs()[0].name
    return list(sess.run(None, {name: arr.astype(np.float32)}))


@torch.no_grad()
def check_onnx(
    path: str | os.PathLike[str], model: nn.Module, x: Tensor, atol: float = 1e-4
) -> float:
    """Max abs difference between onnxruntime and the torch model on event ``x`` (N, 12).

    Raises:
        ParticlegraphError: the difference exceeds ``atol`` (relative to the output scale).
    """
    model.eval()
    out = model(x, None)
    ref = [out.logits, out.charge_logits, out.regression]
    got = onnx_outputs(path, x)
    diff = 0.0
    for name, r, g in zip(OUTPUT_NAMES, ref, got, strict=True):
        r_np = r.float().cpu().numpy()
        if g.shape != r_np.shape:
            raise ParticlegraphError(
                f"{path}: output {name} has shape {g.shape}, torch gives {r_np.shape}"
            )
        d = float(np.abs(g - r_np).max()) if r_np.size else 0.0
        if d > atol * max(1.0, float(np.abs(r_np).max())):
            raise ParticlegraphError(
                f"{path}: onnxruntime output {name} differs from torch by {d:.3g} (tolerance {atol})"
            )
        diff = max(diff, d)
    return diff


EXPORTERS = ("auto", "torchscript", "dynamo")


def _export_torchscript(wrapper: nn.Module, x: Tensor, path: Path, opset: int) -> None:
    """The TorchScript-tracing exporter: fast (well under a second), N dynamic via dynamic_axes."""
    torch.onnx.export(
        wrapper,
        (x,),
        str(path),
        input_names=["x"],
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        dynamo=False,
        dynamic_axes={"x": {0: "elements"}, **{name: {0: "elements"} for name in OUTPUT_NAMES}},
    )


def _export_dynamo(wrapper: ExportableMLPF, x: Tensor, path: Path, opset: int) -> None:
    """The torch.export-based exporter (the future default of torch; ~10-30 s per export)."""
    elements_dim = torch.export.Dim("elements", min=wrapper.k, max=1_000_000)
    program = torch.onnx.export(
        wrapper,
        (x,),
        input_names=["x"],
        output_names=list(OUTPUT_NAMES),
        opset_version=opset,
        dynamo=True,
        verbose=False,
        dynamic_shapes={"x": {0: elements_dim}},
        external_data=False,
    )
    if program is None:
        raise ParticlegraphError("ONNX export returned no program")
    program.save(str(path), external_data=False)


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    elements: int = 256,
    opset: int = 18,
    check: bool = True,
    exporter: str = "auto",
) -> ExportResult:
    """Export ``model`` (an ``MLPF`` in eval mode) to ONNX at ``path`` (written atomically).

    Args:
        model: trained MLPF; moved to CPU.
        path: output ``.onnx`` file (one self-contained file).
        elements: size of the synthetic event used to trace and to check the export.
        opset: ONNX opset version.
        check: compare onnxruntime with torch on that event (raises when they differ).
        exporter: ``torchscript`` (TorchScript tracing, fast), ``dynamo`` (torch.export based),
            or ``auto``: torchscript, and dynamo where the torchscript exporter fails or is
            missing (it is deprecated in recent torch releases).
    """
    require("onnx", "export")
    if exporter not in EXPORTERS:
        raise ConfigError(f"exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    path = Path(path)
    model = model.cpu().eval()
    wrapper = ExportableMLPF(model).eval()
    n = max(elements, wrapper.k + 1)
    x = example_event(n)
    with atomic_path(path) as tmp, _quiet_exporter():
        try:
            if exporter == "dynamo":
                _export_dynamo(wrapper, x, tmp, opset)
            else:
                try:
                    _export_torchscript(wrapper, x, tmp, opset)
                except Exception:
                    if exporter == "torchscript":
                        raise
                    _export_dynamo(wrapper, x, tmp, opset)
            _stamp(tmp)
        except ParticlegraphError:
            raise
        except Exception as err:  # exporter failures come in many types
            raise ParticlegraphError(f"ONNX export of the model failed: {err}") from err
    if not path.is_file():
        raise DataFileError(f"ONNX export did not write {path}")
    diff = check_onnx(path, model, x) if check else None
    return ExportResult(path, n, diff)


def _stamp(path: Path) -> None:
    """Record in the ONNX file's metadata that :data:`COMMAND` wrote it (see :func:`is_own_export`)."""
    onnx = require("onnx", "export")
    proto = onnx.load(str(path))  # type: ignore[attr-defined]
    proto.metadata_props.add(key=METADATA_KEY, value=COMMAND)
    onnx.save(proto, str(path))  # type: ignore[attr-defined]


def is_own_export(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an ONNX file written by ``mlpf export`` (its metadata says so).

    Anything else (another file, a damaged or huge file) is not, and is never replaced
    without ``--overwrite``.
    """
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > MAX_OWN_CHECK_BYTES:
            return False
        onnx = require("onnx", "export")
        proto = onnx.load(str(path), load_external_data=False)  # type: ignore[attr-defined]
    except Exception:  # not ONNX at all: protobuf raises several types
        return False
    return any(p.key == METADATA_KEY and p.value == COMMAND for p in proto.metadata_props)


def export_run(
    run: str | os.PathLike[str],
    onnx_path: str | os.PathLike[str],
    *,
    which: str = "best",
    elements: int = 256,
    opset: int = 18,
    check: bool = True,
    exporter: str = "auto",
    overwrite: bool = False,
) -> ExportResult:
    """Export the model of a run folder or ``pretrained:NAME`` to ``onnx_path``.

    Every option and the output are checked before the model is loaded: ``onnx_path`` is never
    one of the run's checkpoints or its config (not even with ``overwrite``), and an existing
    file is replaced only when ``mlpf export`` wrote it, or with ``overwrite``.

    Args:
        run: the ``--run`` value.
        onnx_path: the ``.onnx`` file to write.
        which: checkpoint, ``best`` (falls back to ``last``) or ``last``.
        elements, opset, check, exporter: see :func:`export_onnx`.
        overwrite: replace an existing file that ``mlpf export`` did not write.

    Raises:
        ConfigError: a bad option or a refused output. DataFileError: no such run.
    """
    from particlegraph.cli.common import check_output_file, check_range, removed_on_failure
    from particlegraph.outputs import Output, guard_outputs
    from particlegraph.tasks.mlpf.train import PACKAGE, load_model
    from particlegraph.train.checkpoint import CHECKPOINT_DIR
    from particlegraph.train.run import open_run

    check_checkpoint(which)
    check_range("--elements", elements, 1, 1_000_000, what="elements of the synthetic event")
    if exporter not in EXPORTERS:
        raise ConfigError(f"--exporter must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    opened = open_run(run, "mlpf", PACKAGE)
    path = Path(onnx_path)
    output = Output(path, "file", "--onnx", own=is_own_export)
    inputs = (opened.path / CHECKPOINT_DIR, opened.config_path)
    check_output_file(path, "--onnx")  # a folder, an unwritable parent
    guard_outputs(COMMAND, [output], inputs, overwrite=overwrite)
    model, _ = load_model(opened.path, which)
    with removed_on_failure(path):
        return export_onnx(
            model, path, elements=elements, opset=opset, check=check, exporter=exporter
        )
