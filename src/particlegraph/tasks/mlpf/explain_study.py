"""Relevance at dataset scale: every output of every element of N events, constant memory.

:func:`study` is what ``particlegraph mlpf explain --events N --outputs all`` runs. Each event
is explained once for all requested outputs (:func:`~particlegraph.explain.lrp.explain_outputs`:
one forward trace, shared pair bookkeeping) and folded into a
:class:`~particlegraph.explain.aggregate.RelevanceStudy` (maps, histograms, feature and
neighbour-rank shares per output x true class x correct/wrong, bootstrap replicas, flipping
curves); the relevance itself is dropped, so memory does not grow with N. The state is saved
atomically every ``save_every`` events into ``OUT/state_shard<i>of<n>.npz``; running the same
command again resumes where it stopped (same result as an uninterrupted run).

Shards: ``shard=i, num_shards=n`` explains the events whose index j in the dataset has
``j % n == i``; :func:`merge` adds the shard states of a folder (exactly) and writes the results:

* ``summary.json``: events, elements, accuracy, progress, the findings table, the two quoted
  findings of the MLPF explainability study checked on this sample (``claims``) and the AUC gap
  (relevance-order minus random-order area, in units of the output) of the mean flipping curves;
* ``findings.html``: the findings table as a stand-alone page (a report can link or embed it);
* ``study_<output>.npz``: mean maps (C, 2, 1 + K, F), histograms, shares and their bootstrap
  standard deviations, flipping curves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from particlegraph.atomic import atomic_path, write_json
from particlegraph.device import resolve_device
from particlegraph.errors import ConfigError, DataFileError
from particlegraph.explain import faithfulness
from particlegraph.explain.aggregate import FLIP_UNITS, RelevanceStudy, StudySpec
from particlegraph.sim.elements import CLASS_NAMES, ELEM_TRACK, TRACK_FEATURES
from particlegraph.tasks.mlpf.explain import lrp_relevance, output_column, relevant_targets, slug
from particlegraph.tasks.mlpf.findings import check_claims, findings_html, findings_table

log = logging.getLogger(__name__)

#: The 12 outputs of the MLPF explainability study: 6 class scores, the charge (the +1 logit of
#: the charge head) and the 5 regression outputs.
STUDY_OUTPUTS = (
    *(f"class:{name}" for name in CLASS_NAMES), "charge:+1", "pt", "eta", "sin_phi", "cos_phi",
    "energy",
)  # fmt: skip
#: Input columns under neutral names (tower and track meanings are split by the source groups).
TOWER_COLUMNS = ("type", "Et", "eta", "sin_phi", "cos_phi", "E", "E_em", "E_had", "-8", "-9",
                 "-10", "-11")  # fmt: skip
GROUPS = ("tower", "track")


def parse_outputs(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"`` -> :data:`STUDY_OUTPUTS`; otherwise a comma list or sequence of output names."""
    names = [text] if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in names:
        for name in str(item).split(","):
            name = name.strip()
            if name == "all":
                out.extend(STUDY_OUTPUTS)
            elif name:
                output_column(name)  # raises ConfigError with the valid names
                out.append(name)
    if not out:
        raise ConfigError("give at least one output to explain, or --outputs all")
    return tuple(dict.fromkeys(out))


def study_spec(outputs: Sequence[str], num_neighbours: int = 8, seed: int = 0) -> StudySpec:
    """The accumulator settings of an MLPF study; typed features ``tower:E_em``, ``track:pt``."""
    features = tuple(
        f"{a}|{b}" if a != b else a for a, b in zip(TOWER_COLUMNS, TRACK_FEATURES, strict=True)
    )
    return StudySpec(
        outputs=tuple(outputs), num_classes=len(CLASS_NAMES), features=features, groups=GROUPS,
        num_neighbours=num_neighbours, seed=seed,
    )  # fmt: skip


def typed_names() -> tuple[str, ...]:
    """Readable names of the 24 typed features (towers' then tracks' columns)."""
    return tuple(f"tower:{c}" for c in TOWER_COLUMNS) + tuple(f"track:{c}" for c in TRACK_FEATURES)


def state_path(out: Path, shard: int, num_shards: int) -> Path:
    return out / f"state_shard{shard}of{num_shards}.npz"


def study_folder(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """The study's folder: ``out_dir``, else ``RUN/explain_study`` (see
    :func:`~particlegraph.tasks.mlpf.explain.output_folder`)."""
    from particlegraph.tasks.mlpf.explain import output_folder

    return output_folder(run_dir, out_dir, "explain_study")


def _check_options(events: int, shard: int, num_shards: int, save_every: int, flip_every: int,
                   which: str) -> None:  # fmt: skip
    from particlegraph.tasks.mlpf.export import check_checkpoint

    if events < 1 or save_every < 1 or flip_every < 0:
        raise ConfigError("--events and --save-every must be >= 1 and --flip-every >= 0")
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ConfigError(f"--shard must lie in 0..{num_shards - 1}; got {shard}")
    check_checkpoint(which)


def _open_state(path: Path, spec: StudySpec) -> RelevanceStudy:
    """The saved state of this shard (to resume), or a fresh one; refuses other settings."""
    acc = RelevanceStudy.load(path) if path.exists() else RelevanceStudy(spec)
    if acc.spec != spec:
        raise ConfigError(
            f"{path} was made with other settings (outputs, neighbours or seed); "
            "use another --out or delete it"
        )
    return acc


def study(
    run_dir: str | Path,
    data: str | Path,
    events: int = 100,
    outputs: str | Sequence[str] = "all",
    rule: Any = "epsilon",
    device: str = "auto",
    *,
    shard: int = 0,
    num_shards: int = 1,
    out_dir: str | Path | None = None,
    which: str = "best",
    num_neighbours: int = 8,
    save_every: int = 10,
    flip_every: int = 0,
    check_targets: int = 256,
    seed: int = 0,
    max_seconds: float | None = None,
    overwrite: bool = False,
    validate: bool = True,
) -> dict[str, Any]:
    """Explain every output of every element of the first ``events`` events (this shard's part).

    Options, run and output folder are checked before any work (guarded as ``mlpf explain``).

    Args:
        run_dir: training run folder or ``pretrained:<name>``.
        data: dataset directory or event file.
        events: events of the dataset taken (from the start; shards split them).
        outputs: ``"all"`` (the 12 of :data:`STUDY_OUTPUTS`) or output names.
        rule: LRP rule (``epsilon``, ``gamma``, ``zplus``) or an LRP ``Composite``.
        device: ``auto``, ``cpu`` or ``cuda``.
        shard, num_shards: this process explains the events j with ``j % num_shards == shard``.
        out_dir: where states and results go (default :func:`study_folder`).
        which: checkpoint, ``best`` or ``last``.
        num_neighbours: K, neighbour ranks in the maps.
        save_every: save the state every this many events (and at the end).
        flip_every: also compute flipping curves (all outputs) on every ``flip_every``-th event
            of the shard, starting with its first; 0 = never (they cost 2 x 11 x 4 forward passes
            per output and event).
        check_targets: most measured targets per output in the flipping curves.
        seed: seed of the bootstrap and the random flipping orders.
        max_seconds: stop (after saving) once this much wall time is spent; rerun to continue.
        overwrite: write into a folder that ``mlpf explain`` did not make.
        validate: run the physics checks of the input events.

    Returns:
        A progress summary; with ``num_shards == 1`` the merged results (see :func:`merge`).
    """
    from particlegraph.outputs import Output, claim_unowned, guard_outputs
    from particlegraph.tasks.mlpf.explain import COMMAND
    from particlegraph.tasks.mlpf.schema import reading
    from particlegraph.tasks.mlpf.train import PACKAGE, load_model
    from particlegraph.train.run import open_run

    names = parse_outputs(outputs)
    _check_options(events, shard, num_shards, save_every, flip_every, which)
    lrp_relevance(rule)  # an unknown rule name fails here
    run = open_run(run_dir, "mlpf", PACKAGE)
    if not Path(data).exists():
        raise DataFileError(f"{data}: no such dataset folder or event file (--data)")
    out = study_folder(run_dir, out_dir)
    inputs = (data, run.checkpoint(which), run.config_path)
    guard_outputs(COMMAND, [Output(out, "dir", "--out")], inputs, overwrite=overwrite)
    path = state_path(out, shard, num_shards)
    acc = _open_state(path, study_spec(names, num_neighbours, seed))
    model, _ = load_model(run.path, which=which)
    model = model.to(resolve_device(device)).eval()
    claim_unowned(out, COMMAND)
    plan = _Shard(shard, num_shards, events, save_every, flip_every, max_seconds, path)
    flip_fn = _flipper(model, names, check_targets, seed) if flip_every else None
    with reading(validate):
        progress = _run_shard(model, data, acc, plan, rule, flip_fn)
    if num_shards == 1 and acc.events > 0:
        summary = merge(out, extra={"progress": progress})
        report_study(run.output_dir, out)
        return {**summary, "progress": progress}
    return progress


@dataclass(frozen=True)
class _Shard:
    """What one call of :func:`study` explains and when it saves."""

    shard: int
    num_shards: int
    events: int  # events of the dataset taken, all shards together
    save_every: int
    flip_every: int
    max_seconds: float | None
    path: Path  # the shard's state file

    @property
    def planned(self) -> int:
        return len(range(self.shard, self.events, self.num_shards))


def _add_event(model: Any, acc: RelevanceStudy, event: Any, j: int, rule: Any, step: int,
               check: bool) -> tuple[torch.Tensor, Any, np.ndarray]:  # fmt: skip
    """Explain event ``j`` for every output of the study and fold it into ``acc``."""
    from particlegraph.explain.lrp import explain_outputs, trace_model
    from particlegraph.explain.lrp.models import CHECK_ELEMENTS

    dev = next(model.parameters()).device
    x = torch.as_tensor(event.X, dtype=torch.float32, device=dev)
    true = torch.as_tensor(np.rint(event.ygen[:, 0]).astype(np.int64))
    # the adapter check (traced == model outputs) costs a second forward pass: once per call
    program = trace_model(model, x, check=CHECK_ELEMENTS if check else False)
    pred = program.values[program.outputs["class"]].argmax(-1).cpu()
    rel = explain_outputs(model, x, acc.spec.outputs, composite=rule, program=program)
    del program
    group = torch.as_tensor(event.X[:, 0] == ELEM_TRACK).long()
    acc.add_event(j, rel, true, pred, group, step=step)
    return x, rel, true.numpy()


def _run_shard(model: Any, data: str | Path, acc: RelevanceStudy, plan: _Shard, rule: Any,
               flip_fn: Any) -> dict[str, Any]:  # fmt: skip
    """Explain this shard's events not yet in ``acc``, saving its state; returns the progress."""
    from particlegraph.tasks.mlpf.store import iter_events

    todo = plan.planned - acc.events
    started = time.perf_counter()
    done_now = 0
    for j, event in enumerate(iter_events(data)):
        if j >= plan.events:
            break
        if j % plan.num_shards != plan.shard or acc.holds(j):
            continue
        x, rel, true = _add_event(model, acc, event, j, rule, plan.num_shards, done_now == 0)
        if flip_fn is not None and (acc.events - 1) % plan.flip_every == 0:
            flip_fn(acc, x, rel, true, j)
        del rel
        done_now += 1
        elapsed = time.perf_counter() - started
        if acc.events % plan.save_every == 0 or acc.events == plan.planned:
            acc.save(plan.path)
            rate = done_now / elapsed
            eta = (plan.planned - acc.events) / rate if rate > 0 else float("inf")
            log.info("explain study shard %d/%d: %d/%d events, %.2f events/s, ETA %.0f s",
                     plan.shard, plan.num_shards, acc.events, plan.planned, rate, eta)  # fmt: skip
        if plan.max_seconds is not None and elapsed > plan.max_seconds:
            break
    acc.save(plan.path)
    seconds = time.perf_counter() - started
    return {
        "shard": plan.shard, "num_shards": plan.num_shards, "events_done": acc.events,
        "events_planned": plan.planned, "events_this_call": done_now,
        "seconds_this_call": seconds,
        "events_per_second": done_now / seconds if seconds > 0 else None,
        "state": str(plan.path), "todo_before": todo,
    }  # fmt: skip


def report_study(run_dir: str | Path, out_dir: str | Path) -> None:
    """Add the findings table and claims of a finished study to the run's HTML report
    (``RUN/index.html``, section "Relevance findings"), linking the study's own page."""
    from particlegraph.tasks.mlpf.findings import findings_section
    from particlegraph.tasks.mlpf.report import write_run_page

    section = findings_section(out_dir)
    if section is None:
        return
    write_run_page(run_dir, "explanation_study", [section])


def _flipper(model: Any, names: tuple[str, ...], check_targets: int, seed: int) -> Any:
    """Adds element and feature flipping curves of every output of one event to the study."""
    from particlegraph.explain import rmaps
    from particlegraph.tasks.mlpf.explain import output_values

    def run(acc: RelevanceStudy, x: torch.Tensor, rel: Any, true: np.ndarray, index: int) -> None:
        for o, name in enumerate(names):
            chosen = relevant_targets(name, true, check_targets, seed + index)
            sel = torch.as_tensor(chosen, device=x.device)
            scores = rmaps.source_feature_relevance(rmaps.restrict_targets(rel.output(o), chosen),
                                                    x.shape[0])  # fmt: skip

            def output_fn(x_in: torch.Tensor, name: str = name, sel: torch.Tensor = sel) -> Any:
                return output_values(model(x_in), name)[sel]

            for unit in FLIP_UNITS:
                with torch.no_grad():
                    curve = faithfulness.flipping_curve(
                        output_fn, x, torch.as_tensor(scores, dtype=x.dtype), unit=unit,  # type: ignore[arg-type]
                        num_random=3, seed=seed + index,
                    )  # fmt: skip
                acc.add_flipping(o, unit, curve.relevance, curve.random)

    return run


def merge(
    out_dir: str | Path,
    states: Sequence[str | Path] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Add the shard states of ``out_dir`` (or ``states``) and write the results there.

    Returns the summary written to ``summary.json``.
    """
    out = Path(out_dir)
    paths = [Path(p) for p in states] if states else sorted(out.glob("state_shard*of*.npz"))
    if not paths:
        raise DataFileError(f"no study states (state_shard*of*.npz) in {out}; run the study first")
    acc = RelevanceStudy.load(paths[0])
    for p in paths[1:]:
        acc = acc.merge(RelevanceStudy.load(p))
    spec = acc.spec
    table = findings_table(acc, typed_names())
    claims = check_claims(acc, typed_names())
    events, elements, correct = (int(v) for v in acc.arrays["totals"])
    summary: dict[str, Any] = {
        "events": events,
        "elements": elements,
        "accuracy": correct / max(elements, 1),
        "states": [p.name for p in paths],
        "outputs": list(spec.outputs),
        "num_neighbours": spec.num_neighbours,
        "bootstrap_replicas": spec.num_boot,
        "typed_features": list(typed_names()),
        "claims": claims,
        "findings": table,
        **(extra or {}),
    }
    flips = acc.flipping()
    frac = np.linspace(0.0, 1.0, spec.flip_fractions)
    summary["flipping_auc_gap"] = {
        name: {unit: (None if np.isnan(flips[o, u]).any() else
                      float(np.trapezoid(flips[o, u, 0] - flips[o, u, 1], frac)))
               for u, unit in enumerate(FLIP_UNITS)}
        for o, name in enumerate(spec.outputs)
    }  # fmt: skip
    summary["flipped_events"] = int(acc.arrays["flip_count"].max(initial=0))
    for o, name in enumerate(spec.outputs):
        arrays = {
            "maps": acc.mean("maps")[o], "count": acc.arrays["count"][o],
            "hist_counts": acc.arrays["hist"][o], "hist_edges": np.linspace(-1, 1, spec.bins + 1),
            "abs_share": acc.mean("abs_share")[o], "abs_share_std": acc.boot_std("abs_share")[o],
            "signed_share": acc.mean("signed_share")[o], "rank_share": acc.mean("rank_share")[o],
            "rank_share_std": acc.boot_std("rank_share")[o], "flipping": flips[o],
            "typed_features": np.array(typed_names()),
        }  # fmt: skip
        with atomic_path(out / f"study_{slug(name)}.npz") as tmp, tmp.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
    from particlegraph.atomic import write_text

    write_text(out / "findings.html", findings_html(summary))
    write_json(out / "summary.json", summary)
    return summary


def format_summary(summary: Mapping[str, Any], out: str | Path) -> list[str]:
    """The lines ``mlpf explain --outputs ...`` prints: this shard's progress, then (once merged)
    the totals and the verdict on each quoted finding."""
    lines = []
    progress = summary.get("progress")
    if progress is not None:
        lines.append(
            f"shard {progress['shard']}/{progress['num_shards']}: {progress['events_done']}/"
            f"{progress['events_planned']} events, {progress['events_this_call']} in "
            f"{progress['seconds_this_call']:.1f} s -> {progress['state']}"
        )
    if "claims" in summary:
        out = Path(out)
        lines.append(f"study of {summary['events']} events, {summary['elements']} elements -> "
                     f"{out / 'summary.json'}, {out / 'findings.html'}")  # fmt: skip
        for claim in summary["claims"]:
            share = f" (share {100 * claim['share']:.2f} %)" if "share" in claim else ""
            lines.append(f"  {claim['claim']}: {claim['verdict']}{share}")
    return lines
