"""`slimkit status`: which stages are cached, stale or missing."""

from __future__ import annotations

from pathlib import Path

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def status_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Show per stage whether it is cached, stale (and which setting changed) or missing,
    and whether the student's prompts and the teacher's rationales fit its lengths (exit
    code 2 when they cannot)."""
    from slimkit.cli._common import load_spec_from_cli, print_json
    from slimkit.pipeline import pipeline_status
    from slimkit.pipeline.status import student_length_check

    spec = load_spec_from_cli(config, overrides)
    rows = pipeline_status(spec)
    if as_json:
        print_json(rows)
        student_length_check(spec)  # a spec that cannot fit: the error, exit code 2
        return
    from rich.table import Table

    from slimkit.console import stdout_console

    styles = {"cached": "green", "stale": "yellow", "missing": "red", "skipped": "dim",
              "partial": "yellow"}
    table = Table(title=f"slimkit status: {spec.source or 'built-in defaults'}", title_justify="left")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("key")
    table.add_column("why", overflow="fold")
    for row in rows:
        why = row.get("reason") or "\n".join(row.get("changes") or [])
        table.add_row(
            row["stage"],
            f"[{styles[row['status']]}]{row['status']}[/]",
            row["key"][:12] if row["status"] != "skipped" else "",
            why,
        )
    console = stdout_console()
    console.print(table)
    todo = [r["stage"] for r in rows if r["status"] in ("stale", "missing", "partial")]
    if todo:
        console.print(f"[dim]`slimkit run` would compute: {', '.join(todo)}[/]")
    else:
        console.print("[dim]Everything is cached: `slimkit run` does no work.[/]")
    from slimkit.cli.config import print_lengths

    print_lengths(console, student_length_check(spec))  # a spec that cannot fit: exit code 2


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
