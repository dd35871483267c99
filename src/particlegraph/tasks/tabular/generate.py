"""``tabular generate`` (:func:`generate`): the three-observable toy written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from particlegraph.outputs import Output, guard_outputs
from particlegraph.tasks.tabular.data import (
    ToyConfig,
    generate_toy,
    is_generated_toy,
    toy_metadata,
    write_table,
)


def generate(
    out: str | Path, events: int = 20_000, seed: int = 0, *, overwrite: bool = False, **toy: Any
) -> Path:
    """Write the three-observable toy (``.data`` or ``.parquet`` by suffix) and return its path.

    ``toy`` overrides other :class:`~particlegraph.tasks.tabular.data.ToyConfig` fields. An
    existing ``out`` is replaced only when ``tabular generate`` wrote it (its metadata says so)
    or with ``overwrite``.
    """
    cfg = ToyConfig(events=events, seed=seed, **toy)
    out = Path(out)
    guard_outputs(
        "tabular generate", [Output(out, "file", "--out", own=is_generated_toy)],
        overwrite=overwrite,
    )  # fmt: skip
    write_table(out, generate_toy(cfg), toy_metadata(cfg))
    return out
