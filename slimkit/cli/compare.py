"""`slimkit compare`: the paper's comparison table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def compare_command(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Run the paper's comparisons (plain, item-text, SLIM, text-match) on one dataset over seeds."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit compare` is not built yet (tracked in issue #7).")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
