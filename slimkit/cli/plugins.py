"""`slimkit plugins`: what components are registered, from which distribution."""

from __future__ import annotations

import typer

from slimkit.cli._common import JsonOption, print_json

plugins_app = typer.Typer(
    help="List registered components (built-ins and plugins) and scaffold new plugins.",
    no_args_is_help=True,
)


@plugins_app.command("list")
def list_plugins(as_json: bool = JsonOption) -> None:
    """List every component by kind, with its distribution, version and load status.

    A plugin that fails to import shows as failed with its error; nothing else breaks.
    Set SLIMKIT_LOAD_PLUGINS (comma list of distributions; empty: none) to choose plugins.
    """
    from slimkit.registry import plugin_rows

    rows = plugin_rows(load=True)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from slimkit.cli._common import stdout_console

    table = Table(title="slimkit components")
    for column in ("kind", "name", "distribution", "version", "status"):
        table.add_column(column)
    for row in rows:
        status = "[green]ok[/]" if row["status"] == "ok" else f"[red]failed[/]: {row['error']}"
        table.add_row(row["kind"], row["name"], row["distribution"], row["version"], status)
    stdout_console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
