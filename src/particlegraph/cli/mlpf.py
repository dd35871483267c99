"""``particlegraph mlpf ...``: machine-learned particle flow.

Each group of actions lives in its own module with a ``register(app)`` function.
"""

from __future__ import annotations

import typer

from particlegraph.cli import (
    mlpf_convert,
    mlpf_data,
    mlpf_demo,
    mlpf_evaluate,
    mlpf_explain,
    mlpf_train,
)

app = typer.Typer(
    help="Machine-learned particle flow: generate, inspect, convert, train, evaluate, explain.",
    no_args_is_help=True,
)
for module in (mlpf_data, mlpf_convert, mlpf_train, mlpf_evaluate, mlpf_explain, mlpf_demo):
    module.register(app)
