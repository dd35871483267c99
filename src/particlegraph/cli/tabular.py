"""``particlegraph tabular ...``: signal/background MLP with gradient and Taylor analysis."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Tabular signal/background MLP and its Taylor analysis.", no_args_is_help=True
)
