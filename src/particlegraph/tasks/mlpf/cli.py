"""``particlegraph mlpf ...``: machine-learned particle flow.

Each group of actions lives in its own module with a ``register(app)`` function.
"""

from __future__ import annotations

import typer

from particlegraph.tasks.mlpf import (
    cli_convert,
    cli_data,
    cli_demo,
    cli_evaluate,
    cli_explain,
    cli_export,
    cli_train,
)

app = typer.Typer(
    help="Machine-learned particle flow: generate, inspect, convert, train, evaluate, explain.",
    no_args_is_help=True,
)
for module in (cli_data, cli_convert, cli_train, cli_export, cli_evaluate, cli_explain, cli_demo):
    module.register(app)
