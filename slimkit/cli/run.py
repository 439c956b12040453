"""`slimkit run`: the whole pipeline end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def run_command(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Run data -> teach -> distill -> encode -> train -> evaluate, each stage from the cache when unchanged."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit run` is not built yet (tracked in issue #8).")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
