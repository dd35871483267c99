"""Which output neuron to explain: ``OutputSpec`` and the one parser of its string form.

A model names its outputs with an :class:`OutputNames` grammar (its attribute
``lrp_output_names``): heads with one name per column, and heads whose column names may be used
bare (``"pt"`` for ``regression:pt``). Without a grammar only ``head:index`` is understood.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from particlegraph.errors import ConfigError


@dataclass(frozen=True)
class OutputNames:
    """The output grammar of one model.

    Args:
        heads: head name -> names of its columns, e.g. ``{"class": ("none", "photon", ...)}``.
        bare: heads whose column names are accepted without ``head:`` (they must be unique).
        aliases: head -> {alternative value: column name}, e.g. ``{"charge": {"1": "+1"}}``.
    """

    heads: Mapping[str, tuple[str, ...]]
    bare: tuple[str, ...] = ()
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def width(self, head: str) -> int | None:
        """Number of columns of ``head``; None for a head this grammar does not know."""
        names = self.heads.get(head)
        return None if names is None else len(names)

    def numeric_names(self, head: str) -> bool:
        """True when the column names of ``head`` look like numbers (then digits are names)."""
        return any(n.lstrip("+-").isdigit() for n in self.heads.get(head, ()))


@dataclass(frozen=True)
class OutputSpec:
    """One output neuron: head ``head`` (a name of the model's traced outputs, e.g. ``"class"``
    or ``"output"``) and column ``index`` (>= 0)."""

    head: str
    index: int

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ConfigError(f"output index must be >= 0, got {self.index}")

    def check(self, names: OutputNames | None) -> OutputSpec:
        """Raise :class:`ConfigError` when the index is outside the head's columns."""
        width = None if names is None else names.width(self.head)
        if width is not None and self.index >= width:
            raise ConfigError(
                f"output index {self.index} out of range for head {self.head!r} ({width} columns)"
            )
        return self

    def label(self, names: OutputNames | None = None) -> str:
        """Readable form that :func:`parse_output` reads back with the same grammar."""
        cols = None if names is None else names.heads.get(self.head)
        if cols is None or self.index >= len(cols):
            return f"{self.head}:{self.index}"
        if self.head in (names.bare if names else ()):
            return cols[self.index]
        return f"{self.head}:{cols[self.index]}"

    def __str__(self) -> str:
        return f"{self.head}:{self.index}"


def parse_output(text: str | OutputSpec, names: OutputNames | None = None) -> OutputSpec:
    """Parse an output neuron, e.g. with the MLPF grammar ``"class:neutral_hadron"``,
    ``"class:2"``, ``"charge:+1"``, ``"pt"``, ``"regression:energy"``; always ``"head:index"``.

    Raises:
        ConfigError: the text names no output of the grammar, or the index is out of range.
    """
    if isinstance(text, OutputSpec):
        return text.check(names)
    s = text.strip().lower()
    heads = {} if names is None else names.heads
    for head in names.bare if names else ():
        if s in heads[head]:
            return OutputSpec(head, heads[head].index(s))
    head, sep, value = s.partition(":")
    if not sep or not value or not head:
        known = sorted(heads) or ["output"]
        raise ConfigError(
            f"unknown output {text!r}; use <head>:<name or index> with head one of {known}"
            + (f" or one of {', '.join(n for h in names.bare for n in heads[h])}" if names else "")
        )
    cols = heads.get(head)
    if cols is not None and names is not None:
        value = names.aliases.get(head, {}).get(value, value)
        if value in cols:
            return OutputSpec(head, cols.index(value))
        if names.numeric_names(head) or not value.isdigit():
            raise ConfigError(
                f"unknown output {text!r}: unknown {head} {value!r}; choose one of {', '.join(cols)}"
                + ("" if names.numeric_names(head) else " or a column index")
            )
    if value.isdigit():
        return OutputSpec(head, int(value)).check(names)
    raise ConfigError(f"unknown output {text!r}: {value!r} is not a valid {head!r} output")
