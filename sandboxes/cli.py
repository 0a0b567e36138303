"""`agentgym sandbox info`: which isolation is in force on this machine, and the limits."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Code-execution sandboxes.", no_args_is_help=True)


@app.command("info")
def info() -> None:
    """Print the sandbox tier, isolation features and default limits."""
    from agentgym.sandboxes.isolation import describe

    details = describe()
    table = Table("property", "value", title="agentgym sandbox")
    for key, value in details.items():
        if key != "limits":
            table.add_row(key, str(value))
    for key, value in details["limits"].items():
        table.add_row(f"limit: {key}", str(value))
    Console().print(table)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="sandbox")
