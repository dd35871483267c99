"""Explain a trained MLPF run on a few events: relevance maps, figures, faithfulness, summary.

:func:`explain` is what ``particlegraph mlpf explain`` runs. For each requested output neuron
(a class logit such as ``class:neutral_hadron`` or a regression output such as ``pt``) it
explains every element of each event with LRP and writes into ``run_dir/explain/``:

* ``relmap_single_<output>.png``: relevance maps (element + its most relevant neighbours x the
  12 input features) of one element of each true class present in the first event;
* ``relmap_avg_<output>.png``: the same averaged per true class, correct / wrong predictions;
* ``feature_hist_<output>.png``: per-class histograms of each feature's relevance share;
* ``relmap_<output>.npz``: the arrays behind those figures;
* ``event_display.png``: eta-phi display of the first event for the first output;
* ``flipping_element.png``, ``flipping_feature.png``: flipping curves (first ``flip_events``);
* ``randomization.png``: the cascading model-randomisation test on the first event;
* ``summary.json``: conservation figures, flipping AUC gaps, rank correlations, counts.

Flipping and randomisation measure the mean output over the "relevant" targets of an output:
the elements whose true class is that class for a class logit (all elements when there are
none), the elements with a true particle for a regression or charge output; at most
``check_targets`` of them (a seeded random subset).

Why ~520 lines: the per-event explanation workflow and its figure writers share the output
grammar and the per-output accumulators; the dataset-scale study lives in
:mod:`.explain_study`, its findings in :mod:`.findings`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from particlegraph.atomic import atomic_path, write_json
from particlegraph.cli.common import progress
from particlegraph.device import resolve_device
from particlegraph.errors import ConfigError, DataFileError, ParticlegraphError
from particlegraph.explain import faithfulness, rmaps
from particlegraph.explain.lrp.output import parse_output
from particlegraph.plot import save_figure
from particlegraph.sim.elements import CLASS_LABELS, CLASS_NAMES, NUM_X_FEATURES, X_FEATURES
from particlegraph.tasks.mlpf.model import MLPF_OUTPUTS

#: Every class logit and every regression output.
DEFAULT_OUTPUTS = (
    *(f"class:{name}" for name in CLASS_NAMES),
    "pt",
    "eta",
    "sin_phi",
    "cos_phi",
    "energy",
)
log = logging.getLogger(__name__)

RULES = ("epsilon", "gamma", "zplus")

#: ``relevance_fn(model, x, output, targets) -> SparseRelevance``-like (see rmaps.as_pairs),
#: with ``targets`` (T,) long or None for every element.
RelevanceFn = Callable[[nn.Module, Tensor, str, Tensor | None], Any]


def output_column(name: str) -> tuple[str, int]:
    """``(head, column)`` of an output name in the model's grammar (:data:`MLPF_OUTPUTS`):
    ``class:<class name or index>``, ``charge:-1|0|+1``, ``pt``, ``eta``, ``sin_phi``,
    ``cos_phi``, ``energy``; the same parser as the LRP engine's.
    """
    spec = parse_output(name, MLPF_OUTPUTS)
    return spec.head, spec.index


def output_values(out: Any, name: str) -> Tensor:
    """(N,) value of output ``name`` for every element from an ``MLPFOutput``."""
    kind, col = output_column(name)
    head = {"class": out.logits, "charge": out.charge_logits, "regression": out.regression}[kind]
    return head[:, col]


def lrp_relevance(rule: Any = "epsilon", chunk_size: int | None = None) -> RelevanceFn:
    """Relevance function backed by the LRP engine (:func:`particlegraph.explain.lrp.explain_event`).

    ``rule`` is a rule name (one rule for every layer) or an LRP ``Rule`` / ``Composite`` object.
    """
    if isinstance(rule, str) and rule not in RULES:
        raise ConfigError(f"unknown LRP rule {rule!r}; choose one of {', '.join(RULES)}")
    from particlegraph.explain import lrp

    def fn(model: nn.Module, x: Tensor, output: str, targets: Tensor | None) -> Any:
        spec = lrp.parse_output(output, MLPF_OUTPUTS)
        return lrp.explain_event(
            model, x, None, output=spec, targets=targets, composite=rule, chunk_size=chunk_size
        )

    return fn


def slug(name: str) -> str:
    """File-name form of an output name: ``class:neutral_hadron`` -> ``neutral_hadron``,
    ``charge:+1`` -> ``charge_plus1``, ``energy`` -> ``energy``."""
    key = name.strip().lower().replace("+", "plus").replace("-", "minus")
    key = key.removeprefix("class:")
    return re.sub(r"[^a-z0-9]+", "_", key).strip("_")


def relevant_targets(
    name: str, true_class: np.ndarray, max_targets: int | None = None, seed: int = 0
) -> np.ndarray:
    """Elements whose output is measured in flipping / randomisation (module docstring).

    At most ``max_targets`` of them, drawn at random (seeded) and sorted, when more qualify.
    """
    kind, col = output_column(name)
    chosen = (
        np.flatnonzero(true_class == col) if kind == "class" else np.flatnonzero(true_class != 0)
    )
    if chosen.size == 0:
        chosen = np.arange(true_class.size)
    if max_targets is not None and chosen.size > max_targets:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, max_targets, replace=False))
    return chosen


def _save(fig: Any, path: Path) -> str:
    """Write one explanation figure (110 dpi) through :func:`particlegraph.plot.save_figure`;
    the summary lists figures by file name."""
    return save_figure(fig, path, dpi=110).name


def _save_npz(path: Path, **arrays: np.ndarray) -> str:
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    return path.name


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


def _single_maps_figure(
    rel: Any, picks: list[int], true: np.ndarray, pred: np.ndarray, name: str, k: int
) -> Any:
    from particlegraph.plot.explain import neighbour_labels, relevance_maps_figure

    panels = []
    for t in picks:
        m = rmaps.relevance_map(rel, t, num_neighbours=k)
        label = f"element {t}: true {CLASS_LABELS[true[t]]}, pred {CLASS_LABELS[pred[t]]}, "
        label += f"sum R = {m.total:.3g}"
        panels.append((m.values, neighbour_labels(m.sources, m.values.shape[0]), label))
    return relevance_maps_figure(
        panels, title=f"relevance maps for output {name}", feature_names=X_FEATURES
    )


def _event_display_figure(
    x: np.ndarray, rel: Any, targets: np.ndarray, single: int | None, name: str
) -> Any:
    from particlegraph.plot.explain import event_display_figure

    def panel(sel: Any, highlight: int | None, title: str) -> tuple[Any, ...]:
        sub = rmaps.restrict_targets(rel, sel)
        element = rmaps.source_feature_relevance(sub, x.shape[0]).sum(axis=1)
        return element, rmaps.edge_relevance(sub), highlight, title

    panels = [panel(targets, None, f"{name}: relevance summed over {targets.size} targets")]
    if single is not None:
        panels.append(panel([single], single, f"{name}: relevance for element {single}"))
    phi = np.arctan2(x[:, 3], x[:, 4])
    return event_display_figure(x[:, 2], phi, panels, is_track=x[:, 0] == 2)


def explain(
    run_dir: str | Path,
    data: str | Path,
    events: int = 10,
    outputs: Sequence[str] = DEFAULT_OUTPUTS,
    rule: Any = "epsilon",
    device: str = "auto",
    *,
    which: str = "best",
    num_neighbours: int = 8,
    flip_events: int = 1,
    randomize: bool = True,
    figures: bool = True,
    check_targets: int | None = 256,
    out_dir: str | Path | None = None,
    relevance_fn: RelevanceFn | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Explain the model of ``run_dir`` on the first ``events`` events of ``data``.

    Args:
        run_dir: a training run directory (``config.yaml`` + ``checkpoints/``).
        data: a dataset directory or event file (Parquet shards or Delphes ``.pkl.bz2``).
        events: number of events to explain (from the start of the dataset).
        outputs: output neurons, e.g. ``("class:neutral_hadron", "pt", "energy")``.
        rule: LRP rule for every layer, ``epsilon``, ``gamma`` or ``zplus``, or an LRP
            ``Composite`` choosing a rule per layer.
        device: ``auto``, ``cpu`` or ``cuda``.
        which: checkpoint, ``best`` (falls back to ``last``) or ``last``.
        num_neighbours: K, neighbours per relevance map after the element itself.
        flip_events: number of events (from the first) whose flipping curves are averaged.
        randomize: run the model-randomisation test on the first event.
        figures: write the PNG figures (the summary and ``.npz`` arrays are always written).
        check_targets: at most this many measured targets per event in flipping and
            randomisation (random subset; None: all), which bounds their LRP cost.
        out_dir: where to write (default ``run_dir/explain``).
        relevance_fn: override of the relevance method (default LRP with ``rule``).
        seed: seed of the random flipping orders and of the re-initialisation.

    Returns:
        The summary written to ``summary.json``.
    """
    from particlegraph.plot.explain import (
        class_maps_figure,
        feature_histograms_figure,
        flipping_figure,
        randomization_figure,
    )
    from particlegraph.tasks.mlpf.store import iter_events
    from particlegraph.tasks.mlpf.train import load_model, run_output_dir

    if events < 1:
        raise ConfigError(f"--events must be at least 1; got {events}")
    outputs = tuple(dict.fromkeys(outputs))  # unique, order kept
    if not outputs:
        raise ConfigError("give at least one output to explain")
    for name in outputs:
        output_column(name)
    if check_targets is not None and check_targets < 1:
        raise ConfigError(f"--check-targets must be at least 1; got {check_targets}")
    fn = relevance_fn if relevance_fn is not None else lrp_relevance(rule)
    dev = resolve_device(device)
    model, _ = load_model(run_dir, which=which)
    model = model.to(dev).eval()
    out = Path(out_dir) if out_dir is not None else run_output_dir(run_dir) / "explain"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timing = dict.fromkeys(("lrp", "aggregation", "flipping", "randomization", "figures"), 0.0)

    num_classes = len(CLASS_NAMES)
    maps = {
        n: rmaps.ClassMapAccumulator(num_classes, NUM_X_FEATURES, num_neighbours) for n in outputs
    }
    hists = {n: rmaps.FeatureHistogram(num_classes, NUM_X_FEATURES) for n in outputs}
    conservation = {n: _Conservation() for n in outputs}
    flips: dict[str, dict[str, list[faithfulness.FlippingCurve]]] = {
        n: {"element": [], "feature": []} for n in outputs
    }
    randomization: dict[str, faithfulness.RandomizationResult] = {}
    failures: dict[str, str] = {}
    files: list[str] = []
    num_events = num_elements = 0
    correct = 0

    stream = itertools.islice(iter_events(data), events)
    for index, event in enumerate(progress(stream, total=events, desc="explain", unit="event")):
        x = torch.as_tensor(event.X, dtype=torch.float32, device=dev)
        true = np.rint(event.ygen[:, 0]).astype(np.int64)
        with torch.no_grad():
            net = model(x)
        pred = net.logits.argmax(-1).cpu().numpy()
        num_events += 1
        num_elements += x.shape[0]
        correct += int((pred == true).sum())
        for name in outputs:
            with _timer(timing, "lrp"):
                raw = fn(model, x, name, None)
            explained = _numpy(getattr(raw, "explained", output_values(net, name)))
            targets = _numpy(getattr(raw, "targets", np.arange(x.shape[0]))).astype(np.int64)
            absorbed = getattr(raw, "absorbed", None)
            rel = rmaps.as_pairs(raw)  # one conversion to numpy for all the aggregations
            del raw
            with _timer(timing, "aggregation"):
                conservation[name].add(rel, explained, targets, absorbed)
                maps[name].add(rel, true, pred)
                hists[name].add(rel, true)
            chosen = relevant_targets(name, true, check_targets, seed + index)
            chosen_t = torch.as_tensor(chosen, device=dev)
            if index == 0 and figures:
                tick = time.perf_counter()
                picks = _pick_single_elements(true, pred)
                files.append(_save(
                    _single_maps_figure(rel, picks, true, pred, name, num_neighbours),
                    out / f"relmap_single_{slug(name)}.png",
                ))  # fmt: skip
                if name == outputs[0]:
                    kind, col = output_column(name)
                    wanted = col if kind == "class" else -1  # -1: any element with a particle
                    single = next(
                        (t for t in picks if true[t] == wanted or (wanted < 0 and true[t] != 0)),
                        None,
                    )
                    files.append(_save(
                        _event_display_figure(event.X, rel, chosen, single, name),
                        out / "event_display.png",
                    ))  # fmt: skip
                timing["figures"] += time.perf_counter() - tick
            if index == 0 and randomize:
                with _timer(timing, "randomization"):
                    try:
                        randomization[name] = _randomization(model, x, fn, name, chosen_t, seed)
                    except ParticlegraphError as err:
                        # A sanity check that cannot run on a randomised model must not cost
                        # the rest of the explanation; the summary records why it is missing.
                        failures[name] = str(err)
                        log.warning("randomisation test of %s failed: %s", name, err)
            if index < flip_events:
                scores = rmaps.source_feature_relevance(
                    rmaps.restrict_targets(rel, chosen), x.shape[0]
                )

                def output_fn(x_in: Tensor, name: str = name, sel: Tensor = chosen_t) -> Tensor:
                    return output_values(model(x_in), name)[sel]

                with _timer(timing, "flipping"):
                    for unit in ("element", "feature"):
                        flips[name][unit].append(faithfulness.flipping_curve(
                            output_fn, x, torch.as_tensor(scores, dtype=x.dtype), unit=unit,
                            num_random=3, seed=seed + index,
                        ))  # fmt: skip
    if num_events == 0:
        raise DataFileError(f"no events found in {data}")

    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "data": str(data),
        "events": num_events,
        "elements": num_elements,
        "accuracy": correct / max(num_elements, 1),
        "rule": (rule if isinstance(rule, str) else repr(rule))
        if relevance_fn is None
        else "custom",
        "device": str(dev),
        "num_neighbours": num_neighbours,
        "outputs": {},
    }
    tick = time.perf_counter()  # from here on the time goes to figures (the rest is small)
    for name in outputs:
        res = maps[name].result()
        hist = hists[name]
        if figures:
            files.append(_save(
                class_maps_figure(
                    res["mean"], res["count"], title=f"averaged maps: {name}",
                    class_names=CLASS_LABELS, feature_names=X_FEATURES,
                ),
                out / f"relmap_avg_{slug(name)}.png",
            ))  # fmt: skip
            files.append(_save(
                feature_histograms_figure(
                    hist.counts, hist.edges, title=f"feature relevance: {name}",
                    class_names=CLASS_LABELS, feature_names=X_FEATURES,
                ),
                out / f"feature_hist_{slug(name)}.png",
            ))  # fmt: skip
        files.append(_save_npz(
            out / f"relmap_{slug(name)}.npz", mean=res["mean"], count=res["count"],
            hist_counts=hist.counts, hist_edges=hist.edges, features=np.array(X_FEATURES),
        ))  # fmt: skip
        entry: dict[str, Any] = {
            "conservation": conservation[name].summary(),
            "class_counts": {CLASS_NAMES[c]: res["count"][c].tolist() for c in range(num_classes)},
        }
        for unit in ("element", "feature"):
            if flips[name][unit]:
                curve = _mean_curve(flips[name][unit])
                entry[f"flipping_{unit}"] = curve.to_dict()
        if name in randomization:
            entry["randomization"] = randomization[name].to_dict()
        elif name in failures:
            entry["randomization"] = {"error": failures[name]}
        summary["outputs"][name] = entry

    for unit in ("element", "feature"):
        curves = {n: _mean_curve(flips[n][unit]) for n in outputs if flips[n][unit]}
        if curves and figures:
            fig = flipping_figure(curves, title=f"{unit} flipping ({summary['rule']})")
            files.append(_save(fig, out / f"flipping_{unit}.png"))
    if randomization and figures:
        fig = randomization_figure(
            randomization, title="cascading model randomisation (layers reset from the output)"
        )
        files.append(_save(fig, out / "randomization.png"))
    timing["figures"] += time.perf_counter() - tick
    summary["seconds"] = time.perf_counter() - started
    summary["timing_s"] = timing
    summary["files"] = [*sorted(set(files)), "summary.json"]
    write_json(out / "summary.json", summary)
    from particlegraph.tasks.mlpf.report import report_explanation

    report_explanation(run_dir, out, summary)  # the run's index.html gains the explanation part
    return summary


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
        return rmaps.source_feature_relevance(rmaps.restrict_targets(rel, targets.cpu()), n)[live]

    return faithfulness.randomization_test(model, relevance, x, seed=seed)
