"""`slimkit distill`: fine-tune the student and write every user's rationale."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def distill_command(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Fine-tune the student LLM with LoRA on the teacher's rationales, then write a rationale for every user."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit distill` is not built yet (tracked in issue #6).")


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)
