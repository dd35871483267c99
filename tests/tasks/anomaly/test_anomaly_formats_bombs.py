"""Exercise .pt reader: size bombs are refused before torch inflates or a graph is processed."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from particlegraph.errors import DataFileError, ResourceLimitError
from particlegraph.tasks.anomaly.formats import read_pt_graphs


def _saved(graphs: list[Data]) -> bytes:
    buf = io.BytesIO()
    torch.save(graphs, buf)
    return buf.getvalue()


def _deflate_bomb(path: Path, rows: int) -> Path:
    """One graph whose storage entry is deflated zeros of ``rows`` x 5 float32."""
    rows0 = 65_793  # 4-byte BININT counts in data.pkl, patched to the new size
    src = zipfile.ZipFile(io.BytesIO(_saved([Data(x=torch.zeros(rows0, 5))])))
    pkl_name = next(n for n in src.namelist() if n.endswith("data.pkl"))
    data_name = next(n for n in src.namelist() if "/data/" in n)
    pkl = src.read(pkl_name)
    for old, new in ((rows0 * 5, rows * 5), (rows0, rows)):
        pkl = pkl.replace(b"J" + struct.pack("<i", old), b"J" + struct.pack("<i", new))
    with zipfile.ZipFile(path, "w") as out:
        for name in src.namelist():
            info = src.getinfo(name)
            if name == data_name:
                info = zipfile.ZipInfo(name, info.date_time)
                info.compress_type = zipfile.ZIP_DEFLATED
                out.writestr(info, b"\0" * (rows * 20))
            else:
                out.writestr(info, pkl if name == pkl_name else src.read(name))
    return path


def test_the_deflate_bomb_is_real_and_refused(tmp_path: Path) -> None:
    path = _deflate_bomb(tmp_path / "deflate.pt", rows=200_000)  # 4 MB from ~10 kB
    assert path.stat().st_size < 50_000
    assert torch.load(path, weights_only=False)[0].x.shape == (200_000, 5)  # torch inflates it
    with pytest.raises(ResourceLimitError, match=r"a decompression bomb"):
        read_pt_graphs(path)


def test_declared_size_over_the_limit_is_refused(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "big.pt"
    # with their (empty) edges: without them the reader builds kNN edges
    empty = torch.zeros(2, 0, dtype=torch.long)
    graphs = [Data(x=torch.zeros(10_000, 5), edge_index=empty) for _ in range(6)]
    path.write_bytes(_saved(graphs))  # 1.2 MB stored
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "1")
    with pytest.raises(ResourceLimitError, match="bytes uncompressed, more than the limit"):
        read_pt_graphs(path)
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "2")
    assert [g.num_nodes for g in read_pt_graphs(path)] == [10_000] * 6


def test_a_stride_zero_view_counts_its_values(tmp_path: Path) -> None:
    path = tmp_path / "view.pt"
    path.write_bytes(_saved([Data(x=torch.zeros(1, 1).expand(60_000_000, 5))]))
    assert path.stat().st_size < 10_000
    with pytest.raises(ResourceLimitError, match=r"declares 60,000,000 nodes in one graph"):
        read_pt_graphs(path)


def test_repeated_graphs_count_once_per_use(tmp_path: Path, monkeypatch) -> None:
    g = Data(x=torch.zeros(10, 5), edge_index=torch.zeros(2, 0, dtype=torch.long))
    path = tmp_path / "many.pt"
    path.write_bytes(_saved([g] * 60))  # one graph stored, 60 to process
    monkeypatch.setenv("PARTICLEGRAPH_MAX_ROWS", "59")
    with pytest.raises(ResourceLimitError, match="declares 60 graphs, more than the limit of 59"):
        read_pt_graphs(path)
    monkeypatch.setenv("PARTICLEGRAPH_MAX_ROWS", "60")
    assert len(read_pt_graphs(path)) == 60


def test_a_payload_is_refused(tmp_path: Path) -> None:
    import os

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.mkdir, (str(tmp_path / "canary"),))

    path = tmp_path / "evil.pt"
    torch.save([Evil()], path)
    with pytest.raises(DataFileError, match="weights_only=True"):
        read_pt_graphs(path)
    assert not (tmp_path / "canary").exists()


def test_a_graph_too_large_for_knn_is_refused(tmp_path: Path) -> None:
    """10,001 nodes without edges would need a 10,001^2 distance matrix per kNN block."""
    from particlegraph.tasks.anomaly.formats import MAX_GRAPH_NODES

    ok, big = tmp_path / "ok.pt", tmp_path / "big.pt"
    empty = torch.zeros(2, 0, dtype=torch.long)
    ok.write_bytes(_saved([Data(x=torch.zeros(MAX_GRAPH_NODES, 5), edge_index=empty)]))
    assert read_pt_graphs(ok)[0].num_nodes == MAX_GRAPH_NODES
    big.write_bytes(_saved([Data(x=torch.zeros(1, 5).expand(MAX_GRAPH_NODES + 1, 5))]))
    with pytest.raises(ResourceLimitError, match="declares 10,001 nodes in one graph"):
        read_pt_graphs(big)


def test_values_count_every_reference(tmp_path: Path, monkeypatch) -> None:
    g = Data(x=torch.zeros(10, 5), edge_index=torch.zeros(2, 0, dtype=torch.long))
    path = tmp_path / "refs.pt"
    path.write_bytes(_saved([g] * 6000))  # 300,000 values to process, 50 stored
    monkeypatch.setenv("PARTICLEGRAPH_MAX_INPUT_MB", "1")  # 262,144 values
    with pytest.raises(ResourceLimitError, match="declares 300,000 values"):
        read_pt_graphs(path)
