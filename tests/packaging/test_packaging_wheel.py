"""A wheel built from the tree works outside the source checkout.

Builds the wheel, installs it (without dependencies) into a fresh virtual environment that sees
the already-installed third-party packages (torch and friends) through a ``.pth`` line, and runs
the installed ``particlegraph`` script from a folder outside the repository: the shipped configs
must come from the installed package (importlib.resources), not from the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str | Path], cwd: Path) -> str:
    # without PYTHONPATH: a source tree on it would shadow the installed wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_wheel_installs_and_finds_its_shipped_configs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT], tmp_path)
    (wheel,) = dist.glob("particlegraph-*.whl")

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = Path(
        _run(
            [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).strip()
    )
    # third-party packages of the current environment, after the fresh env's own site-packages
    (site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([py, "-m", "pip", "install", "--no-deps", "-q", wheel], tmp_path)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = (
        "import particlegraph, particlegraph.config as c;"
        "print(particlegraph.__file__);"
        "print(c.resolve_config('demo', 'particlegraph.tasks.mlpf'));"
        "print(','.join(c.shipped_configs('particlegraph.tasks.mlpf')))"
    )
    pkg_file, demo_cfg, names = _run([py, "-c", code], outside).split()
    assert Path(pkg_file).is_relative_to(site), "imported the source tree, not the wheel"
    assert Path(demo_cfg).is_relative_to(site) and Path(demo_cfg).is_file()
    assert {"demo", "small", "paper"} <= set(names.split(","))
    assert (Path(pkg_file).parent / "py.typed").is_file()

    help_text = _run([env_dir / "bin" / "particlegraph", "mlpf", "demo", "--help"], outside)
    assert "--config" in help_text
    assert "particlegraph" in _run([py, "-m", "particlegraph", "--help"], outside)
