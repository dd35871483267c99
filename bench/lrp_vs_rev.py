"""The LRP engine of this checkout against the engine of a git revision, interleaved in one process.

    python bench/lrp_vs_rev.py --rev main [--rounds 2] [--threads 2] [--out bench/results/FILE.json]

The revision's ``src/particlegraph/explain/lrp`` is exported (``git archive``) into a temporary
package ``lrp_rev`` with its imports renamed, so both engines explain the same traced events of the
paper-size MLPF model (hidden 256, 2 GravNet blocks, k 16, random events of bench/lrp.py) in the
same process: one output at 6,400 and 12,800 elements (``--elements``) and the 12 outputs at 6,400, ``--rounds``
rounds, best wall and CPU time of each. Prints and saves, for both engines, the multi-output ratio
t(12 outputs) / t(1) and the size ratio t(12,800) / t(6,400), and the largest difference between
the two engines' relevance (relative to the largest value).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lrp import ALL_OUTPUTS, random_event
from particlegraph.atomic import write_json
from particlegraph.explain import lrp as lrp_new
from particlegraph.tasks.mlpf.model import MLPF, MLPFConfig


def export_revision(rev: str, dest: Path) -> None:
    """Write the engine of ``rev`` as package ``dest/lrp_rev`` (imports renamed)."""
    root = Path(__file__).resolve().parents[1]
    prefix = "src/particlegraph/explain/lrp/"
    blob = subprocess.run(
        ["git", "-C", str(root), "archive", rev, prefix], check=True, capture_output=True
    ).stdout
    pkg = dest / "lrp_rev"
    pkg.mkdir()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".py"):
                text = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
                text = text.replace("particlegraph.explain.lrp", "lrp_rev")
                (pkg / Path(member.name).name).write_text(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rev", default="main")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--elements", default="6400,12800", help="the two sizes N1,N2 (N2 = 2 N1)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = tempfile.TemporaryDirectory()
    export_revision(args.rev, Path(tmp.name))
    sys.path.insert(0, tmp.name)
    import lrp_rev  # type: ignore[import-not-found]

    torch.manual_seed(0)
    model = MLPF(MLPFConfig(hidden=256, num_blocks=2, k=16, propagate_dim=64)).eval()
    n1, n2 = (int(v) for v in args.elements.split(","))
    events = {n: random_event(n, 0, torch.device("cpu")) for n in (n1, n2)}
    with torch.no_grad():
        model(events[n1][:256])
    engines = {args.rev: lrp_rev, "this": lrp_new}
    times: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    diff = 0.0
    for _ in range(args.rounds):
        for n, outputs in ((n1, 1), (n1, 12), (n2, 1)):
            results = {}
            for name, eng in engines.items():
                names = ALL_OUTPUTS[:outputs] if outputs > 1 else ("class:neutral_hadron",)
                t0, c0 = time.perf_counter(), time.process_time()
                comp = eng.rules.as_composite(eng.rules.Epsilon(eps=1e-6))  # each its own class
                rel = eng.explain_outputs(model, events[n], names, composite=comp)
                times[f"{name} {outputs}x{n}"].append(
                    (time.perf_counter() - t0, time.process_time() - c0)
                )
                results[name] = rel
            a, b = results.values()
            assert torch.equal(a.target, b.target) and torch.equal(a.source, b.source)
            scale = float(a.values.abs().max())
            diff = max(diff, float((a.values - b.values).abs().max()) / scale)
            del results, a, b
    best = {k: [min(w for w, _ in v), min(c for _, c in v)] for k, v in times.items()}
    root = Path(__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", args.rev], check=True, capture_output=True, text=True
    ).stdout.strip()
    out: dict[str, object] = {
        "rev": args.rev,
        "rev_commit": commit,
        "best_wall_cpu_s": best,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "elements": [n1, n2],
        "max_rel_diff": diff,
        "load_average_at_end": os.getloadavg(),
    }
    for name in engines:
        for what, num, den in (("multi", f"12x{n1}", f"1x{n1}"), ("size", f"1x{n2}", f"1x{n1}")):
            out[f"{name} {what} ratio wall/cpu"] = [
                best[f"{name} {num}"][i] / best[f"{name} {den}"][i] for i in (0, 1)
            ]
    print(json.dumps(out, indent=1))
    if args.out is not None:
        write_json(args.out, out)


if __name__ == "__main__":
    main()
