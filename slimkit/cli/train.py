"""`slimkit train`: train and evaluate the recommender."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimkit.cli._common import ConfigOption, JsonOption, SetOption


def train_command(
    config: Optional[Path] = ConfigOption,
    overrides: Optional[list[str]] = SetOption,
    as_json: bool = JsonOption,
) -> None:
    """Train a backbone with its fusion head and evaluate it (full ranking, HR/NDCG/MRR, popularity bias)."""
    from slimkit.errors import SlimkitError

    raise SlimkitError("`slimkit train` is not built yet (tracked in issue #4).")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
