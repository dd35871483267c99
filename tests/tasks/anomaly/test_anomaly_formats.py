"""Safe loading of the exercise's ``.pt`` graph lists; bad files give one clear error."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from particlegraph.errors import DataFileError
from particlegraph.tasks.anomaly.formats import read_pt_graphs, write_pt_graphs


def _graphs() -> list[Data]:
    g = torch.Generator().manual_seed(0)
    return [
        Data(x=torch.randn(n, 5, generator=g), edge_index=torch.tensor([[0, 1], [1, 0]]),
             y=torch.tensor([i % 2]))
        for i, n in enumerate((4, 7, 2))
    ]  # fmt: skip


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "graphs.pt"
    write_pt_graphs(path, _graphs())
    back = read_pt_graphs(path)
    assert [g.num_nodes for g in back] == [4, 7, 2]
    assert torch.equal(back[1].x, _graphs()[1].x)
    assert back[1].y.tolist() == [1]
    rebuilt = read_pt_graphs(path, k=1, rebuild_edges=True)
    assert rebuilt[1].edge_index.shape == (2, 7)


def test_torch_save_of_plain_list_is_read(tmp_path: Path) -> None:
    # what the exercise did: torch.save(list_of_data, path)
    path = tmp_path / "exercise.pt"
    torch.save(_graphs(), path)
    assert len(read_pt_graphs(path)) == 3


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"not a torch file", "cannot be read safely"),
        (pickle.dumps(_Evil()), "cannot be read safely"),
    ],
    ids=["garbage", "plain-pickle-with-code"],
)
def test_unsafe_or_garbage_files_are_refused(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=match):
        read_pt_graphs(path)


def test_arbitrary_code_in_a_torch_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save([_Evil()], path)
    with pytest.raises(DataFileError, match="weights_only"):
        read_pt_graphs(path)


def test_wrong_layout(tmp_path: Path) -> None:
    path = tmp_path / "wrong.pt"
    torch.save([Data(x=torch.zeros(3, 4))], path)
    with pytest.raises(DataFileError, match=r"expected \(n, 5\)"):
        read_pt_graphs(path)
    torch.save({"x": torch.zeros(2)}, path)
    with pytest.raises(DataFileError, match="list of torch_geometric Data"):
        read_pt_graphs(path)
    with pytest.raises(DataFileError, match="no such file"):
        read_pt_graphs(tmp_path / "missing.pt")
