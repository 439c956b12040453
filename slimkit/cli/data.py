"""`slimkit data`: inspect the prepared dataset of a spec."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption

data_app = typer.Typer(help="Prepare and inspect datasets (statistics, one user's history).",
                       no_args_is_help=True)


@data_app.command("stats")
def stats(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Users, items, interactions, sequence lengths, density, share of items with text."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit data stats` is not built yet (tracked in issue #3).")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
