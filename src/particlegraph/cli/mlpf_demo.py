"""CLI actions: mlpf_demo (placeholder until its module lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the mlpf app."""
