"""Copy a finished default-pipeline run into the package as ``pretrained:<name>``.

    python bench/tracking_ship.py --run runs/lp2_mu50 --name ttbar_pu50 --pileup 50 \\
        --command "particlegraph tracking train ..." [--note TEXT]

Writes ``src/particlegraph/tasks/tracking/pretrained/<name>/``: ``config.yaml`` (the run's, with
``data`` emptied: the training events are not shipped), ``module_map.json``, ``model.pt`` (the
weights only), ``run.json`` (with ``trained_on``: pile-up, the training command) and
``README.md`` (how it was made). Refuses to replace a shipped run of another name's files.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from particlegraph.config import dump_config, load_config
from particlegraph.tasks.tracking.learned import CONFIG_NAME, MAP_NAME, LayerPairRunConfig
from particlegraph.train.checkpoint import load_checkpoint, save_checkpoint

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src/particlegraph/tasks/tracking/pretrained"


def ship(args: argparse.Namespace) -> Path:
    run = Path(args.run)
    dest = PACKAGE_DIR / args.name
    dest.mkdir(parents=True, exist_ok=True)
    cfg = load_config(LayerPairRunConfig, run / CONFIG_NAME)
    training_data = cfg.data
    dump_config(_with_data(cfg, ""), dest / CONFIG_NAME)
    shutil.copyfile(run / MAP_NAME, dest / MAP_NAME)
    state = load_checkpoint(run / "model.pt")["model"]
    save_checkpoint(dest / "model.pt", {"model": state})
    info = json.loads((run / "run.json").read_text())
    info["trained_on"] = {"pileup": args.pileup, "data": training_data, "command": args.command}
    if args.note:
        info["trained_on"]["note"] = args.note
    (dest / "run.json").write_text(json.dumps(info, indent=1) + "\n")
    (dest / "README.md").write_text(
        f"# pretrained:{args.name}\n\n"
        f"Default tracking pipeline (layer-pair graph + filter + interaction network) trained "
        f"on ttbar events at pile-up {args.pileup:g}. Made with\n\n```\n{args.command}\n```\n\n"
        f"then `python bench/tracking_ship.py --run {args.run} --name {args.name} "
        f"--pileup {args.pileup:g} --command ...`. {args.note}\n"
        'Results: docs/tracking.md ("Results of the default pipeline").\n'
    )
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"shipped {dest} ({size / 1e3:.0f} kB)")
    return dest


def _with_data(cfg: LayerPairRunConfig, data: str) -> LayerPairRunConfig:
    import dataclasses

    return dataclasses.replace(cfg, data=data, init_from="")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--pileup", type=float, required=True)
    p.add_argument("--command", required=True, help="the training command, recorded")
    p.add_argument("--note", default="")
    ship(p.parse_args())


if __name__ == "__main__":
    main()
