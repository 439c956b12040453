"""`slimkit teach`: the teacher LLM writes rationales."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def teach_command(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Sample users and have the teacher LLM write a three-step rationale for each (cached per request, resumable)."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit teach` is not built yet (tracked in issue #5).")


def register(app: typer.Typer) -> None:
    app.command("teach")(teach_command)
