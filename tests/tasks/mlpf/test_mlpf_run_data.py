"""mlpf evaluate refuses events simulated with another detector than the run was trained on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from particlegraph.errors import ConfigError
from particlegraph.tasks.mlpf.evaluate import check_run_data
from particlegraph.tasks.mlpf.generate import generate, mlpf_detector
from particlegraph.tasks.mlpf.train import data_identity
from particlegraph.train.run import create_run


@dataclass(frozen=True)
class _Cfg:
    epochs: int = 1  # stands in for the run's config


def test_evaluate_refuses_another_detector(tmp_path: Path) -> None:
    separate = generate("ttbar", 2, 0, 1, tmp_path / "separate", events_per_file=2, progress=False)
    merged_detector = mlpf_detector().__class__(separate_ecal_towers=False)
    merged = generate(
        "ttbar", 2, 0, 1, tmp_path / "merged", events_per_file=2, progress=False,
        detector=merged_detector,
    )  # fmt: skip
    identity = data_identity(separate[0])
    assert identity["detector"]["separate_ecal_towers"] is True  # type: ignore[index]
    run = create_run(tmp_path / "run", "mlpf", _Cfg(), data=identity)
    check_run_data(run.path, tmp_path / "separate")  # the same detector passes
    with pytest.raises(ConfigError, match=r"detector\.separate_ecal_towers = False.*= True"):
        check_run_data(run.path, merged)
    legacy = create_run(tmp_path / "legacy", "mlpf", _Cfg())  # nothing recorded: nothing compared
    check_run_data(legacy.path, merged)
