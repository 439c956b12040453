"""`slimkit status`: which stages are cached, stale or missing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def status_command(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Show per stage whether it is cached, stale (and why) or missing."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit status` is not built yet (tracked in issue #8).")


def register(app: typer.Typer) -> None:
    app.command("status")(status_command)
