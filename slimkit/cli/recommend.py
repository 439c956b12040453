"""`slimkit recommend`: top-K items for one user with the rationale."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def recommend_command(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Recommend top-K items for a user, with the student's rationale beside them."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit recommend` is not built yet (tracked in issue #8).")


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_command)
