"""`slimkit cache`: inspect and clear the stage cache."""

from __future__ import annotations

import typer

from slimkit.cli._common import JsonOption, human_size, print_json

cache_app = typer.Typer(
    help="Inspect or clear cached stage outputs and LLM responses "
    "(location: --cache-dir, SLIMKIT_CACHE_DIR, or the user cache dir).",
    no_args_is_help=True,
)


@cache_app.command("info")
def info(as_json: bool = JsonOption) -> None:
    """Where the cache is, its size, and entries per stage and per record kind."""
    from slimkit.cache import StageCache

    data = StageCache().info()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    from slimkit.console import stdout_console

    table = Table(title=f"slimkit cache: {data['path']} ({human_size(data['bytes'])})")
    table.add_column("stage / records")
    table.add_column("entries", justify="right")
    table.add_column("size", justify="right")
    for name, row in data["stages"].items():
        table.add_row(name, str(row["entries"]), human_size(row["bytes"]))
    for name, row in data["records"].items():
        table.add_row(f"records: {name}", str(row["entries"]), human_size(row["bytes"]))
    stdout_console().print(table)


@cache_app.command("clear")
def clear(
    stage: str | None = typer.Option(
        None, "--stage", help="Only this stage (data, teach, distill, encode, train, compare).",
        show_default=False,
    ),
    yes: bool = typer.Option(True, "--yes/--ask", help="Ask before clearing everything."),
) -> None:
    """Remove cached outputs of one stage, or everything (LLM responses included)."""
    from slimkit.cache import STAGES, StageCache
    from slimkit.errors import SlimkitError, did_you_mean

    if stage is not None and stage not in STAGES:
        raise SlimkitError(
            f"Unknown stage '{stage}'.{did_you_mean(stage, STAGES)} Stages: {', '.join(STAGES)}."
        )
    if stage is None and not yes:
        typer.confirm("Clear the whole slimkit cache, LLM responses included?", abort=True)
    removed = StageCache().clear(stage)
    typer.echo(f"Removed {removed} cached {stage or 'stage'} output(s).")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
