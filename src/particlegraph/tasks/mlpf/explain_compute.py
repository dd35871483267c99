"""The computing half of ``mlpf explain``: relevance, aggregation and checks, no drawing.

:func:`explain_events` streams events through the model and the relevance method and folds each
output's relevance into running accumulators (class maps, feature-share histograms,
conservation); on the first events it also runs the flipping curves and the cascading
model-randomisation test and keeps the panels of the first event's figures. The relevance of an
event is dropped once folded in, so memory does not grow with the number of events. The result
is an :class:`~particlegraph.tasks.mlpf.explain_result.Explanation`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from particlegraph.cli.common import progress
from particlegraph.errors import DataFileError, ParticlegraphError
from particlegraph.explain import faithfulness, rmaps
from particlegraph.sim.elements import CLASS_LABELS, CLASS_NAMES, NUM_X_FEATURES, MLPFEvent
from particlegraph.tasks.mlpf import explain_outputs as grammar
from particlegraph.tasks.mlpf.explain_outputs import (
    ExplainSettings,
    RelevanceFn,
    output_column,
    output_values,
    relevant_targets,
)
from particlegraph.tasks.mlpf.explain_result import (
    DisplayPanel,
    EventDisplay,
    Explanation,
    MapPanel,
    OutputExplanation,
)

log = logging.getLogger(__name__)


class _Conservation:
    """Running conservation figures of one output over all explained targets.

    Per target t with explained output f_t, input relevance R_t = sum_{s,f} R[t, s, f] and
    absorbed share A_t (biases and the epsilon stabiliser, reported by the engine):

    * ``rel_err``: |R_t + A_t - f_t| / |f_t|, the bookkeeping check (0 up to round-off);
    * ``input_rel_err``: |R_t - f_t| / |f_t|, how far the input relevance is from the output;
    * ``absorbed_share``: |A_t| / |f_t|.

    Per-target ratios are meaningless for outputs near 0, so only targets with |f_t| above
    1e-3 of the event's largest |f| enter them; the ``event_*`` figures use sums over targets.
    """

    def __init__(self) -> None:
        self.rel_err: list[np.ndarray] = []
        self.input_rel_err: list[np.ndarray] = []
        self.absorbed_share: list[np.ndarray] = []
        self.event_rel_err: list[float] = []
        self.event_absorbed: list[float] = []

    def add(self, rel: Any, explained: np.ndarray, targets: np.ndarray, absorbed: Any) -> None:
        p = rmaps.as_pairs(rel)
        inputs = np.bincount(
            rmaps.row_of(targets, p.target), weights=p.values.sum(axis=1), minlength=targets.size
        )
        absorbed_np = np.zeros_like(inputs) if absorbed is None else _numpy(absorbed).reshape(-1)
        scale = np.abs(explained)
        ok = scale > 1e-3 * max(float(scale.max(initial=0.0)), 1e-12)
        self.rel_err.append(np.abs(inputs + absorbed_np - explained)[ok] / scale[ok])
        self.input_rel_err.append(np.abs(inputs - explained)[ok] / scale[ok])
        self.absorbed_share.append(np.abs(absorbed_np)[ok] / scale[ok])
        total = float(scale.sum())
        if total > 0:
            resid = float((inputs + absorbed_np - explained).sum())
            self.event_rel_err.append(abs(resid) / total)
            self.event_absorbed.append(float(np.abs(absorbed_np).sum()) / total)

    def summary(self) -> dict[str, Any]:
        def cat(parts: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0)

        def stat(a: np.ndarray | list[float], fn: Callable[[Any], Any]) -> float | None:
            return float(fn(a)) if len(a) else None

        err, input_err, absorbed = map(cat, (self.rel_err, self.input_rel_err, self.absorbed_share))
        return {
            "targets": int(err.size),
            "mean_rel_err": stat(err, np.mean),
            "max_rel_err": stat(err, np.max),
            "mean_input_rel_err": stat(input_err, np.mean),
            "median_input_rel_err": stat(input_err, np.median),
            "mean_absorbed_share": stat(absorbed, np.mean),
            "event_rel_err_max": stat(self.event_rel_err, np.max),
            "event_absorbed_share_mean": stat(self.event_absorbed, np.mean),
        }


@contextlib.contextmanager
def _timer(timing: dict[str, float], key: str) -> Iterator[None]:
    """Add the wall time of the block to ``timing[key]`` [s]."""
    tick = time.perf_counter()
    try:
        yield
    finally:
        timing[key] += time.perf_counter() - tick


def _numpy(a: Any) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def _mean_curve(curves: Sequence[faithfulness.FlippingCurve]) -> faithfulness.FlippingCurve:
    first = curves[0]
    return faithfulness.FlippingCurve(
        unit=first.unit,
        fractions=first.fractions,
        relevance=np.mean([c.relevance for c in curves], axis=0),
        random=np.mean([c.random for c in curves], axis=0),
        random_std=np.sqrt(np.mean([c.random_std**2 for c in curves], axis=0)),
        by=first.by,
    )


def _pick_single_elements(true: np.ndarray, pred: np.ndarray) -> list[int]:
    """One element per true class present: the first correct one, else the first one."""
    picks = []
    for c in range(len(CLASS_NAMES)):
        members = np.flatnonzero(true == c)
        if members.size == 0:
            continue
        correct = members[pred[members] == c]
        picks.append(int(correct[0] if correct.size else members[0]))
    return picks


def _single_maps(
    rel: Any, picks: list[int], true: np.ndarray, pred: np.ndarray, k: int
) -> tuple[MapPanel, ...]:
    """The relevance map of each picked element, with its row labels and panel title."""
    from particlegraph.plot.explain import neighbour_labels

    panels = []
    for t in picks:
        m = rmaps.relevance_map(rel, t, num_neighbours=k)
        title = f"element {t}: true {CLASS_LABELS[true[t]]}, pred {CLASS_LABELS[pred[t]]}, "
        title += f"sum R = {m.total:.3g}"
        rows = tuple(neighbour_labels(m.sources, m.values.shape[0]))
        panels.append(MapPanel(m.values, rows, title))
    return tuple(panels)


def _event_display(
    x: np.ndarray, rel: Any, targets: np.ndarray, single: int | None, name: str
) -> EventDisplay:
    """The first event's display: relevance summed over ``targets``, then of ``single``."""

    def panel(sel: Any, highlight: int | None, title: str) -> DisplayPanel:
        sub = rmaps.restrict_targets(rel, sel)
        element = rmaps.source_feature_relevance(sub, x.shape[0]).sum(axis=1)
        return DisplayPanel(element, rmaps.edge_relevance(sub), highlight, title)

    panels = [panel(targets, None, f"{name}: relevance summed over {targets.size} targets")]
    if single is not None:
        panels.append(panel([single], single, f"{name}: relevance for element {single}"))
    phi = np.arctan2(x[:, 3], x[:, 4])
    return EventDisplay(x[:, 2], phi, x[:, 0] == 2, tuple(panels))


def _display_element(name: str, picks: list[int], true: np.ndarray) -> int | None:
    """The picked element shown alone in the event display: one of the output's class (any
    element with a particle for a regression or charge output)."""
    kind, col = output_column(name)
    wanted = col if kind == "class" else -1
    return next((t for t in picks if true[t] == wanted or (wanted < 0 and true[t] != 0)), None)


class _Running:
    """Accumulators of one output while the events stream by."""

    def __init__(self, name: str, num_neighbours: int) -> None:
        self.name = name
        self.maps = rmaps.ClassMapAccumulator(len(CLASS_NAMES), NUM_X_FEATURES, num_neighbours)
        self.hist = rmaps.FeatureHistogram(len(CLASS_NAMES), NUM_X_FEATURES)
        self.conservation = _Conservation()
        self.flips: dict[str, list[faithfulness.FlippingCurve]] = {"element": [], "feature": []}
        self.randomization: faithfulness.RandomizationResult | None = None
        self.randomization_error: str | None = None
        self.single_maps: tuple[MapPanel, ...] = ()

    def result(self) -> OutputExplanation:
        res = self.maps.result()
        return OutputExplanation(
            name=self.name, maps=res["mean"], counts=res["count"], hist_counts=self.hist.counts,
            hist_edges=self.hist.edges, conservation=self.conservation.summary(),
            flipping={u: _mean_curve(c) for u, c in self.flips.items() if c},
            randomization=self.randomization, randomization_error=self.randomization_error,
            single_maps=self.single_maps,
        )  # fmt: skip


@dataclass(frozen=True)
class _Event:
    """One event on its way through :func:`explain_events`."""

    index: int  # position in the stream
    X: np.ndarray  # (N, 12) inputs as read
    x: Tensor  # (N, 12) float32 on the model's device
    true: np.ndarray  # (N,) true class
    pred: np.ndarray  # (N,) predicted class
    net: Any  # the model's MLPFOutput


class _Explainer:
    """The per-event work of :func:`explain_events` (relevance, aggregation, checks, panels)."""

    def __init__(self, model: nn.Module, fn: RelevanceFn, settings: ExplainSettings) -> None:
        self.model, self.fn, self.s = model, fn, settings
        self.running = {n: _Running(n, settings.num_neighbours) for n in settings.outputs}
        keys = ("lrp", "aggregation", "flipping", "randomization", "figures")
        self.timing = dict.fromkeys(keys, 0.0)
        self.display: EventDisplay | None = None

    def event(self, index: int, X: np.ndarray, true: np.ndarray, device: torch.device) -> _Event:
        x = torch.as_tensor(X, dtype=torch.float32, device=device)
        with torch.no_grad():
            net = self.model(x)
        return _Event(index, X, x, true, net.logits.argmax(-1).cpu().numpy(), net)

    def add(self, ev: _Event) -> None:
        for name in self.s.outputs:
            self._output(ev, self.running[name])

    def _output(self, ev: _Event, run: _Running) -> None:
        s, name, timing = self.s, run.name, self.timing
        with _timer(timing, "lrp"):
            raw = self.fn(self.model, ev.x, name, None)
        explained = _numpy(getattr(raw, "explained", output_values(ev.net, name)))
        targets = _numpy(getattr(raw, "targets", np.arange(ev.x.shape[0]))).astype(np.int64)
        absorbed = getattr(raw, "absorbed", None)
        rel = rmaps.as_pairs(raw)  # one conversion to numpy for all the aggregations
        del raw
        with _timer(timing, "aggregation"):
            run.conservation.add(rel, explained, targets, absorbed)
            run.maps.add(rel, ev.true, ev.pred)
            run.hist.add(rel, ev.true)
        chosen = relevant_targets(name, ev.true, s.check_targets, s.seed + ev.index)
        if ev.index == 0 and s.panels:
            with _timer(timing, "figures"):
                picks = _pick_single_elements(ev.true, ev.pred)
                run.single_maps = _single_maps(rel, picks, ev.true, ev.pred, s.num_neighbours)
                if name == s.outputs[0]:
                    single = _display_element(name, picks, ev.true)
                    self.display = _event_display(ev.X, rel, chosen, single, name)
        if ev.index == 0 and s.randomize:
            with _timer(timing, "randomization"):
                self._randomize(ev, run, chosen)
        if ev.index < s.flip_events:
            with _timer(timing, "flipping"):
                self._flip(ev, run, rel, chosen)

    def _randomize(self, ev: _Event, run: _Running, chosen: np.ndarray) -> None:
        sel = torch.as_tensor(chosen, device=ev.x.device)
        try:
            run.randomization = _randomization(
                self.model, ev.x, self.fn, run.name, sel, self.s.seed
            )
        except ParticlegraphError as err:
            # A sanity check that cannot run on a randomised model must not cost the rest of
            # the explanation; the summary records why it is missing.
            run.randomization_error = str(err)
            log.warning("randomisation test of %s failed: %s", run.name, err)

    def _flip(self, ev: _Event, run: _Running, rel: Any, chosen: np.ndarray) -> None:
        scores = rmaps.source_feature_relevance(rmaps.restrict_targets(rel, chosen), ev.x.shape[0])
        sel = torch.as_tensor(chosen, device=ev.x.device)

        def output_fn(x_in: Tensor) -> Tensor:
            return output_values(self.model(x_in), run.name)[sel]

        for unit in ("element", "feature"):
            run.flips[unit].append(faithfulness.flipping_curve(
                output_fn, ev.x, torch.as_tensor(scores, dtype=ev.x.dtype), unit=unit,
                num_random=3, seed=self.s.seed + ev.index,
            ))  # fmt: skip


def explain_events(
    model: nn.Module,
    events: Iterable[MLPFEvent],
    settings: ExplainSettings | None = None,
    *,
    rule: Any = "epsilon",
    relevance_fn: RelevanceFn | None = None,
    device: torch.device | str = "cpu",
    source: tuple[str, str] = ("", ""),
) -> Explanation:
    """Explain ``model`` on the first ``settings.events`` of ``events``; draws and writes nothing.

    Args:
        model: a trained MLPF (moved to ``device``, eval mode).
        events: the events (inputs ``X`` (N, 12), truth ``ygen`` (N, 7)); only the first
            ``settings.events`` are read.
        settings: what to compute (default :class:`ExplainSettings`).
        rule: LRP rule for every layer (``epsilon``, ``gamma``, ``zplus``) or an LRP
            ``Composite`` choosing a rule per layer.
        relevance_fn: override of the relevance method (default LRP with ``rule``).
        device: where the model runs.
        source: ``(run, data)`` as the user named them, recorded in the result.

    Raises:
        ConfigError: an unknown rule or output. DataFileError: no events.
    """
    s = settings if settings is not None else ExplainSettings()
    fn = relevance_fn if relevance_fn is not None else grammar.lrp_relevance(rule)
    dev = torch.device(device)
    model = model.to(dev).eval()
    work = _Explainer(model, fn, s)
    started = time.perf_counter()
    num_elements = correct = num_events = 0
    stream = itertools.islice(events, s.events)
    for index, event in enumerate(progress(stream, total=s.events, desc="explain", unit="event")):
        ev = work.event(index, event.X, np.rint(event.ygen[:, 0]).astype(np.int64), dev)
        num_events, num_elements = num_events + 1, num_elements + len(ev.true)
        correct += int((ev.pred == ev.true).sum())
        work.add(ev)
    if num_events == 0:
        raise DataFileError(f"no events found in {source[1] or 'the input'}")
    return Explanation(
        run_dir=source[0], data=source[1], events=num_events, elements=num_elements,
        accuracy=correct / max(num_elements, 1),
        rule=(rule if isinstance(rule, str) else repr(rule)) if relevance_fn is None else "custom",
        device=str(dev), num_neighbours=s.num_neighbours,
        outputs={n: r.result() for n, r in work.running.items()}, event_display=work.display,
        seconds=time.perf_counter() - started, timing_s=work.timing,
    )  # fmt: skip


def _randomization(
    model: nn.Module, x: Tensor, fn: RelevanceFn, name: str, targets: Tensor, seed: int
) -> faithfulness.RandomizationResult:
    """Cascading randomisation on one event; relevance = source relevance of ``targets`` (N, 12)."""
    n = x.shape[0]

    # Cells whose input is 0 (e.g. the track-only columns of towers) get zero relevance under
    # any weights; their ties would inflate the rank correlation, so only non-zero inputs count.
    live = (x != 0).cpu().numpy()

    subset_ok = [True]

    def relevance(m: nn.Module, x_in: Tensor) -> np.ndarray:
        if subset_ok[0]:
            try:
                rel = fn(m, x_in, name, targets)
            except ParticlegraphError as err:
                # Explaining a subset of targets failed (seen on CUDA with the LRP engine's
                # trace check); every target costs more but gives the same restricted relevance.
                log.warning("%s: explaining a subset of targets failed (%s); explaining every "
                            "element instead", name, err)  # fmt: skip
                subset_ok[0] = False
        if not subset_ok[0]:
            rel = fn(m, x_in, name, None)
        shares: np.ndarray = rmaps.source_feature_relevance(
            rmaps.restrict_targets(rel, targets.cpu()), n
        )[live]
        return shares

    return faithfulness.randomization_test(model, relevance, x, seed=seed)
