"""`slimkit run`: the whole pipeline end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def run_command(
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    until: str | None = typer.Option(
        None,
        "--until",
        help="Stop after this stage (data, teach, distill, encode, train).",
        show_default=False,
    ),
    force: str | None = typer.Option(
        None,
        "--force",
        help="Recompute this stage and every stage after it (their cached outputs are "
        "dropped first; cached LLM responses are kept).",
        show_default=False,
    ),
    allow_partial: bool = typer.Option(
        False,
        "--allow-partial",
        help="When the teacher failed for some users, continue with the users it answered "
        "(later stages are marked incomplete and rebuilt once every user is answered). "
        "Without it the run stops after teach with exit code 1.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Run data -> teach -> distill -> encode -> train -> evaluate, each stage from the cache when unchanged.

    Progress goes to stderr; an interrupted run resumes where it stopped.
    """
    from slimkit.cli._common import load_spec_from_cli, print_json
    from slimkit.pipeline import check_stage_name, run_pipeline

    if until is not None:
        check_stage_name(until, "--until")
    if force is not None:
        check_stage_name(force, "--force")
    spec = load_spec_from_cli(config, overrides)
    report = run_pipeline(spec, until=until, force=force, progress=True, allow_partial=allow_partial)
    if as_json:
        print_json(report.to_dict())


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
