"""Shared CLI plumbing: the spec options, error panels, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:
    from slimkit.spec import PipelineSpec

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    help="Pipeline spec (YAML). Without it, the built-in defaults are used.",
    show_default=False,
)
SetOption = typer.Option(
    None,
    "--set",
    help="Override one spec value, e.g. --set train.epochs=5 (value parsed as YAML). Repeatable.",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout, nothing else.")


def load_spec_from_cli(config: Optional[Path], overrides: Optional[list[str]]) -> PipelineSpec:
    from slimkit.spec import load_spec

    return load_spec(config, overrides or [])


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def stdout_console():
    from rich.console import Console

    return Console()
