"""The ``particlegraph`` command: ``particlegraph <task> <action>``."""

from __future__ import annotations

import typer

from particlegraph.tasks.anomaly import cli as anomaly_cli
from particlegraph.tasks.mlpf import cli as mlpf_cli
from particlegraph.tasks.tabular import cli as tabular_cli
from particlegraph.tasks.tracking import cli as tracking_cli

app = typer.Typer(
    name="particlegraph",
    help="Collider events as graphs: generate, train, evaluate and explain GNNs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(mlpf_cli.app, name="mlpf")
app.add_typer(tabular_cli.app, name="tabular")
app.add_typer(tracking_cli.app, name="tracking")
app.add_typer(anomaly_cli.app, name="anomaly")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
