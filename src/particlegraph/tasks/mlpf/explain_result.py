"""What :func:`~particlegraph.tasks.mlpf.explain_compute.explain_events` returns.

Plain frozen dataclasses of numpy arrays, with units and shapes: an :class:`Explanation` holds
one :class:`OutputExplanation` per explained output and the first event's :class:`EventDisplay`;
:func:`~particlegraph.tasks.mlpf.explain_writer.write_explanation` turns it into files and
:meth:`Explanation.summary` into the content of ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from particlegraph.explain import faithfulness
from particlegraph.sim.elements import CLASS_NAMES


@dataclass(frozen=True)
class MapPanel:
    """One element's relevance map, as drawn in ``relmap_single_<output>.png``.

    Attributes:
        values: (1 + K, 12) relevance of the element itself (row 0) and its K most relevant
            neighbours, per input feature [units of the explained output].
        rows: (1 + K,) row labels.
        title: the panel title (element, true and predicted class, sum of relevance).
    """

    values: np.ndarray
    rows: tuple[str, ...]
    title: str


@dataclass(frozen=True)
class DisplayPanel:
    """One panel of ``event_display.png``.

    Attributes:
        element: (N,) relevance per element, summed over its features and the panel's targets.
        edges: ``(target (E,), source (E,), relevance (E,))`` of the element pairs.
        highlight: element drawn as the explained one, or None.
        title: the panel title.
    """

    element: np.ndarray
    edges: tuple[np.ndarray, np.ndarray, np.ndarray]
    highlight: int | None
    title: str


@dataclass(frozen=True)
class EventDisplay:
    """Eta-phi display of the first event for the first output.

    Attributes:
        eta, phi: (N,) element directions [rad for phi].
        is_track: (N,) bool, tracks drawn apart from calorimeter towers.
        panels: relevance summed over the measured targets, then of one chosen element.
    """

    eta: np.ndarray
    phi: np.ndarray
    is_track: np.ndarray
    panels: tuple[DisplayPanel, ...]


@dataclass(frozen=True)
class OutputExplanation:
    """Everything computed for one output neuron over all explained events.

    Attributes:
        name: the output (``class:photon``, ``pt``, ...).
        maps: (C, 2, 1 + K, 12) mean relevance maps per true class x (correct, wrong), each
            element's map normalised by its total absolute relevance (see ``rmaps``).
        counts: (C, 2) elements averaged into each map.
        hist_counts: (C, 12, B) histogram of each feature's share of the element's relevance.
        hist_edges: (B + 1,) the histogram's bin edges (shares, -1..1).
        conservation: conservation figures (see :class:`_Conservation`).
        flipping: mean flipping curve per unit (``element``, ``feature``); empty without flipping.
        randomization: the model-randomisation test on the first event, or None.
        randomization_error: why that test failed (then ``randomization`` is None).
        single_maps: the first event's map of one element per true class present.
    """

    name: str
    maps: np.ndarray
    counts: np.ndarray
    hist_counts: np.ndarray
    hist_edges: np.ndarray
    conservation: dict[str, Any]
    flipping: dict[str, faithfulness.FlippingCurve] = field(default_factory=dict)
    randomization: faithfulness.RandomizationResult | None = None
    randomization_error: str | None = None
    single_maps: tuple[MapPanel, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The output's entry in ``summary.json`` (JSON-ready)."""
        entry: dict[str, Any] = {
            "conservation": self.conservation,
            "class_counts": {c: self.counts[i].tolist() for i, c in enumerate(CLASS_NAMES)},
        }
        for unit, curve in self.flipping.items():
            entry[f"flipping_{unit}"] = curve.to_dict()
        if self.randomization is not None:
            entry["randomization"] = self.randomization.to_dict()
        elif self.randomization_error is not None:
            entry["randomization"] = {"error": self.randomization_error}
        return entry


@dataclass(frozen=True)
class Explanation:
    """The result of :func:`explain_events`; :func:`write_explanation` turns it into files.

    Attributes:
        run_dir, data: what was explained (as given).
        events, elements: events and elements explained.
        accuracy: fraction of elements whose predicted class is the true one.
        rule: the LRP rule (``custom`` for a user relevance function).
        device: where the model ran.
        num_neighbours: K of the maps.
        outputs: per output, in the requested order.
        event_display: the first event's display, or None (no panels requested).
        seconds: wall time of the computation [s].
        timing_s: wall time per stage [s]: lrp, aggregation, flipping, randomization, figures
            (here: extracting the panels; the writer adds the drawing).
    """

    run_dir: str
    data: str
    events: int
    elements: int
    accuracy: float
    rule: str
    device: str
    num_neighbours: int
    outputs: dict[str, OutputExplanation]
    event_display: EventDisplay | None
    seconds: float
    timing_s: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` content without ``files`` (JSON-ready)."""
        return {
            "run_dir": self.run_dir,
            "data": self.data,
            "events": self.events,
            "elements": self.elements,
            "accuracy": self.accuracy,
            "rule": self.rule,
            "device": self.device,
            "num_neighbours": self.num_neighbours,
            "outputs": {name: entry.to_dict() for name, entry in self.outputs.items()},
            "seconds": self.seconds,
            "timing_s": dict(self.timing_s),
        }
