"""`slimkit teach`: the teacher LLM writes rationales."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def _money(value: Any) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def summary_table(summary: dict[str, Any], cached_stage: bool):
    """The rich table `slimkit teach` prints."""
    from rich.table import Table

    title = f"teach: {summary.get('teacher', '?')}" + (" (stage output from the cache)" if cached_stage else "")
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    users = summary.get("users", 0)
    table.add_row("users done", f"{summary.get('done', 0)} / {users}")
    table.add_row("  well formed (three steps)", str(summary.get("well_formed", 0)))
    table.add_row("  malformed (kept, flagged)", str(summary.get("malformed", 0)))
    table.add_row("users failed", str(summary.get("failed", 0)))
    table.add_row("users answered from the cache", str(summary.get("cached", 0)))
    table.add_row("requests sent / retried", f"{summary.get('requests_sent', 0)} / {summary.get('retries', 0)}")
    table.add_row(
        "tokens (prompt + completion)",
        f"{summary.get('prompt_tokens', 0):,} + {summary.get('completion_tokens', 0):,}",
    )
    cost = _money(summary.get("cost_usd"))
    if summary.get("cost_unknown_users") and summary.get("cost_usd") is not None:
        cost += f" (+ {summary['cost_unknown_users']} users of unknown price)"
    batch = summary.get("price") == "batch"
    table.add_row("cost USD (all users" + (", batch price)" if batch else ")"), cost)
    if batch:
        table.add_row("batches submitted / resumed",
                      f"{len(summary.get('batches_submitted') or [])} / {len(summary.get('batches_resumed') or [])}")
    table.add_row("spent in this run", _money(summary.get("spent_this_run_usd")))
    table.add_row("wall time", f"{summary.get('wall_s', 0):.1f} s")
    if summary.get("stopped"):
        table.add_row("stopped", str(summary["stopped"]))
    for kind, count in (summary.get("failures") or {}).items():
        table.add_row(f"  failed: {kind}", str(count))
    return table


def teach_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    allow_partial: bool = typer.Option(
        False, "--allow-partial", help="Exit 0 even when the teacher failed for some users."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Sample users and have the teacher LLM write a three-step rationale for each (cached per request, resumable).

    Exit code 1 when some users failed (unless --allow-partial): run it again to retry them.
    """
    from slimkit.cli._common import print_json, run_stage, stage_json
    from slimkit.console import stderr_console, stdout_console

    _, result = run_stage(config, overrides, "teach")
    failed = result.summary.get("failed", 0)
    if as_json:
        print_json(stage_json(result))
    else:
        stdout_console().print(summary_table(result.summary, result.cached))
        stdout_console().print(f"Rationales: {result.path / 'rationales.jsonl'}")
    if failed:
        stderr_console().print(
            f"[yellow]teach: {failed} of {result.summary.get('users', 0)} user(s) failed[/]; run "
            "the same command again to retry them (answered users are not asked again)."
            + ("" if allow_partial else " Exit code 1; --allow-partial accepts a partial result.")
        )
        if not allow_partial:
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("teach")(teach_command)
