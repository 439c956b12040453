"""`slimkit plugins`: what components are registered, from which distribution."""

from __future__ import annotations

from pathlib import Path

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

    from slimkit.console import stdout_console

    table = Table(title="slimkit components")
    for column in ("kind", "name", "distribution", "version", "status"):
        table.add_column(column)
    for row in rows:
        status = "[green]ok[/]" if row["status"] == "ok" else f"[red]failed[/]: {row['error']}"
        table.add_row(row["kind"], row["name"], row["distribution"], row["version"], status)
    stdout_console().print(table)


new_app = typer.Typer(
    help="Scaffold a plugin package that installs with `pip install -e` and passes its tests.",
    no_args_is_help=True,
)
plugins_app.add_typer(new_app, name="new")

DirOption = typer.Option(
    Path("."), "--dir", "-d", help="Folder to create the package folder `slimkit-NAME` in.",
)


def _report_scaffold(scaffold, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "kind": scaffold.kind,
                "name": scaffold.name,
                "distribution": scaffold.distribution,
                "package": scaffold.package,
                "root": str(scaffold.root),
                "files": [str(f.relative_to(scaffold.root)) for f in scaffold.files],
                "entry_points": scaffold.entry_points,
            }
        )
        return
    from slimkit.console import stdout_console

    console = stdout_console()
    console.print(f"[green]✓[/] created {scaffold.distribution} in {scaffold.root}")
    for path in scaffold.files:
        console.print(f"  {path.relative_to(scaffold.root)}")
    console.print("Next:")
    console.print(f"  pip install -e {scaffold.root}")
    console.print(f"  python -m pytest {scaffold.root / 'tests'} -q")


@new_app.command("backbone")
def new_backbone(
    name: str = typer.Argument(..., help="Backbone name used as `backbone: {kind: NAME}`."),
    directory: Path = DirOption,
    as_json: bool = JsonOption,
) -> None:
    """Create slimkit-NAME/: entry point, params model, a model with shape comments, tests."""
    from slimkit.scaffold import new_plugin

    _report_scaffold(new_plugin("backbone", name, directory), as_json)


@new_app.command("prompt")
def new_prompt(
    name: str = typer.Argument(..., help="Registers NAME-teacher and NAME-student templates."),
    directory: Path = DirOption,
    as_json: bool = JsonOption,
) -> None:
    """Create slimkit-NAME/: teacher and student templates (copies of slimkit's), tests."""
    from slimkit.scaffold import new_plugin

    _report_scaffold(new_plugin("prompt", name, directory), as_json)


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
