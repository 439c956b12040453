"""`slimkit config`: validate, show and describe pipeline specs."""

from __future__ import annotations

from pathlib import Path

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption, print_json

config_app = typer.Typer(
    help="Validate a pipeline spec, show it fully resolved, or print its JSON Schema.",
    no_args_is_help=True,
)


@config_app.command("validate")
def validate(
    file: Path | None = typer.Argument(None, help="Spec file (YAML).", show_default=False),
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Check a spec: every problem is listed at once; exit code 2 if any. With the data
    stage cached, also whether the student's prompts (and, after teach, the teacher's
    rationales) fit its lengths: only a tokenizer is loaded, never a model."""
    from slimkit.pipeline.status import student_length_check
    from slimkit.spec import load_spec

    path = file or config
    spec = load_spec(path, overrides or [])
    lengths = student_length_check(spec)
    if as_json:
        print_json({"valid": True, "file": str(path) if path else None, "student_lengths": lengths})
    else:
        from slimkit.console import stdout_console

        kinds = ", ".join(f"{s}={spec.section(s).kind}" for s in
                          ("dataset", "teacher", "student", "encoder", "backbone", "fusion"))
        console = stdout_console()
        console.print(f"[green]✓[/] {path or 'defaults'} is valid ({kinds})")
        print_lengths(console, lengths)


def print_lengths(console, lengths: dict) -> None:
    """The student length check in one or two lines (and its warnings)."""
    from slimkit.students.hf_lora.lengths import describe

    if not lengths.get("checked"):
        console.print(f"[dim]student lengths not checked yet: {lengths.get('reason')}[/]")
        return
    console.print(f"[green]✓[/] {describe(lengths)}", highlight=False)
    for warning in lengths.get("warnings", []):
        console.print(f"[yellow]Warning:[/] {warning}", highlight=False)


@config_app.command("show")
def show(
    file: Path | None = typer.Argument(None, help="Spec file (YAML).", show_default=False),
    config: Path | None = ConfigOption,
    overrides: list[str] | None = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the fully resolved spec, defaults included, as YAML (or JSON)."""
    from slimkit.spec import load_spec

    spec = load_spec(file or config, overrides or [])
    if as_json:
        print_json(spec.to_dict())
    else:
        typer.echo(spec.to_yaml(), nl=False)


@config_app.command("schema")
def schema(
    markdown: bool = typer.Option(
        False, "--markdown", help="Print a Markdown reference table instead of JSON Schema."
    ),
) -> None:
    """Print the JSON Schema of the spec, with the help text of every field."""
    if markdown:
        from slimkit.spec import spec_reference_markdown

        typer.echo(spec_reference_markdown())
        return
    from slimkit.spec import spec_json_schema

    print_json(spec_json_schema())


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
