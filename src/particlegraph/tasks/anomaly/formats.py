"""The exercise's graph files: a Python list of ``torch_geometric.data.Data`` saved with ``torch.save``.

Each ``Data`` has ``x`` (n, 5) with columns ``(pT, eta, phi, m, pdg_id)`` and ``edge_index``
(2, E). Such a file is a pickle, and unpickling can run arbitrary code, so it is read with
``torch.load(weights_only=True)`` and only the PyG classes a ``Data`` list needs are allowed
(:data:`SAFE_GLOBALS`); anything else is refused with a :class:`DataFileError`. The input limits of
:mod:`particlegraph.io.limits` apply: declared zip sizes and compression ratio before loading,
graphs and values (shared tensors once per use) before any graph is processed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch_geometric.data import Data
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage

from particlegraph.atomic import atomic_path
from particlegraph.errors import DataFileError
from particlegraph.graph.etaphi import knn_etaphi
from particlegraph.io.limits import Limits, check_declared, check_zip_entries

#: Most nodes (particles) in one graph; the eta-phi kNN of a graph costs nodes^2 in memory.
MAX_GRAPH_NODES = 10_000
#: The classes a pickled list of ``Data`` refers to; nothing else is unpickled.
SAFE_GLOBALS = [Data, DataEdgeAttr, DataTensorAttr, GlobalStorage]


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) < 200 else text[:197] + "..."


def _check_size(path: Path, graphs: list[Data] | tuple[Data, ...], limits: Limits) -> None:
    """Graphs at most ``max_rows``, values at most ``max_bytes / 4``, counting every reference:
    a list that repeats one graph (or shares one tensor) is processed once per reference."""
    check_declared(path, "graphs", len(graphs), limits.max_rows, "set PARTICLEGRAPH_MAX_ROWS "
                   "higher if the file is genuine", stage="processing")  # fmt: skip
    nodes = max((g.num_nodes or 0 for g in graphs), default=0)
    check_declared(path, "nodes in one graph (its kNN edges cost nodes^2)", nodes,
                   MAX_GRAPH_NODES, "the exercise's graphs hold at most a few hundred",
                   stage="processing")  # fmt: skip
    values = sum(v.numel() for g in graphs for v in g.to_dict().values() if torch.is_tensor(v))
    check_declared(path, "values (counting shared tensors once per use)", values,
                   limits.max_bytes // 4, stage="processing")  # fmt: skip


def read_pt_graphs(
    path: str | Path, *, k: int = 3, symmetric: bool = False, rebuild_edges: bool = False
) -> list[Data]:
    """Read an exercise ``.pt`` file safely and return its graphs.

    Args:
        path: the file.
        k, symmetric: eta-phi kNN settings used when a graph has no ``edge_index`` or when
            ``rebuild_edges`` (the exercise's own edges did not wrap phi).
        rebuild_edges: replace the stored edges by :func:`~particlegraph.graph.etaphi.knn_etaphi`.

    Raises:
        DataFileError: missing file, not a torch file, a pickle that needs classes other than
            :data:`SAFE_GLOBALS`, or graphs without ``x`` of shape (n, 5).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    limits = Limits.from_env()
    check_zip_entries(path, limits.max_bytes)  # a deflated entry can hide gigabytes
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise DataFileError(
            f"{path}: cannot be read safely as a list of torch_geometric Data "
            f"(weights_only=True; {_short(err)})"
        ) from err
    if isinstance(obj, Data):
        obj = [obj]
    if not isinstance(obj, list | tuple) or not all(isinstance(g, Data) for g in obj):
        raise DataFileError(
            f"{path}: expected a list of torch_geometric Data, got {type(obj).__name__}"
        )
    _check_size(path, obj, limits)
    out = []
    for i, g in enumerate(obj):
        x = getattr(g, "x", None)
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != 5:
            shape = None if not isinstance(x, torch.Tensor) else tuple(x.shape)
            raise DataFileError(
                f"{path}: graph {i} has x of shape {shape}; expected (n, 5) = (pT, eta, phi, m, pdg_id)"
            )
        x = x.float()
        ei = getattr(g, "edge_index", None)
        if ei is None or rebuild_edges:
            ei = knn_etaphi(x[:, 1], x[:, 2], k, symmetric=symmetric)
        elif ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= x.shape[0]):
            raise DataFileError(f"{path}: graph {i} has edge indices outside [0, {x.shape[0]})")
        y = getattr(g, "y", None)
        label = torch.as_tensor(y).reshape(-1)[:1].long() if y is not None else torch.tensor([0])
        out.append(Data(x=x, edge_index=ei.long(), y=label if label.numel() else torch.tensor([0]),
                        ht=torch.tensor([float("nan")]), lead_jet_mass=torch.tensor([float("nan")]),
                        n_cand=torch.tensor([x.shape[0]]), event=torch.tensor([i])))  # fmt: skip
    return out


def write_pt_graphs(path: str | Path, graphs: list[Data]) -> None:
    """Write graphs in the exercise's layout (``x`` (n, 5), ``edge_index``, ``y``), atomically."""
    plain = [Data(x=g.x, edge_index=g.edge_index, y=g.y) for g in graphs]
    with atomic_path(path) as tmp:
        torch.save(plain, tmp)
