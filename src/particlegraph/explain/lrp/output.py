"""Which output neuron to explain: ``OutputSpec`` and its string form (CLI ``--output``)."""

from __future__ import annotations

from dataclasses import dataclass

from particlegraph.data.schema import CLASS_NAMES
from particlegraph.errors import ConfigError

#: Heads of the MLPF model and the width of each.
HEADS = {"class": len(CLASS_NAMES), "charge": 3, "regression": 5}
#: Names of the regression outputs (MLPF ``regression`` columns, see models/mlpf.py).
REGRESSION_OUTPUTS = ("pt", "eta", "sin_phi", "cos_phi", "energy")
#: Charge head columns: logits of charge -1, 0, +1.
CHARGE_OUTPUTS = ("-1", "0", "+1")


@dataclass(frozen=True)
class OutputSpec:
    """One output neuron: ``head`` (``"class"``, ``"charge"``, ``"regression"`` or, for a
    generic model, the name of one of its traced outputs such as ``"output"``) and column ``index``.
    """

    head: str
    index: int

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ConfigError(f"output index must be >= 0, got {self.index}")
        width = HEADS.get(self.head)
        if width is not None and self.index >= width:
            raise ConfigError(
                f"output index {self.index} out of range for head {self.head!r} ({width} columns)"
            )

    def __str__(self) -> str:
        if self.head == "class":
            return f"class:{CLASS_NAMES[self.index]}"
        if self.head == "charge":
            return f"charge:{CHARGE_OUTPUTS[self.index]}"
        if self.head == "regression":
            return REGRESSION_OUTPUTS[self.index]
        return f"{self.head}:{self.index}"


def parse_output(text: str | OutputSpec) -> OutputSpec:
    """Parse ``"class:neutral_hadron"``, ``"class:2"``, ``"charge:+1"``, ``"pt"``, ``"eta"``,
    ``"sin_phi"``, ``"cos_phi"``, ``"energy"`` (or ``"regression:4"``, ``"output:0"``).
    """
    if isinstance(text, OutputSpec):
        return text
    s = text.strip().lower()
    if s in REGRESSION_OUTPUTS:
        return OutputSpec("regression", REGRESSION_OUTPUTS.index(s))
    head, sep, value = s.partition(":")
    if not sep or not value:
        raise ConfigError(
            f"cannot parse output {text!r}; use class:<name>, charge:-1|0|+1 or one of "
            + ", ".join(REGRESSION_OUTPUTS)
        )
    if head == "class" and value in CLASS_NAMES:
        return OutputSpec("class", CLASS_NAMES.index(value))
    if head == "charge":  # the value is a charge, never a column index
        if value not in ("-1", "0", "+1", "1"):
            raise ConfigError(f"unknown output {text!r}: charge must be -1, 0 or +1")
        return OutputSpec("charge", {"-1": 0, "0": 1, "+1": 2, "1": 2}[value])
    if head == "regression" and value in REGRESSION_OUTPUTS:
        return OutputSpec("regression", REGRESSION_OUTPUTS.index(value))
    if value.isdigit():
        return OutputSpec(head, int(value))
    raise ConfigError(f"unknown output {text!r}: {value!r} is not a valid {head!r} output")
