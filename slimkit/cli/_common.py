"""Shared CLI plumbing: the spec options, error panels, JSON output."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def load_spec_from_cli(config: Path | None, overrides: list[str] | None) -> PipelineSpec:
    from slimkit.spec import load_spec

    return load_spec(config, overrides or [])


def run_stage(config: Path | None, overrides: list[str] | None, stage: str, *,
              progress: bool = True):
    """(spec, StageResult): the spec loaded from the options and ``stage`` run through the
    pipeline (upstream stages first, every stage from the cache when unchanged), tracked
    when the spec's ``tracking`` section names backends."""
    from slimkit.pipeline.run import run_stage_tracked

    spec = load_spec_from_cli(config, overrides)
    return spec, run_stage_tracked(spec, stage, progress=progress)


def stage_json(result: Any) -> dict[str, Any]:
    """What ``--json`` prints for a stage command: stage, key, path, cached, summary."""
    return {"stage": result.stage, "key": result.key, "path": str(result.path),
            "cached": result.cached, "summary": result.summary}


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def human_size(size: float) -> str:
    """Bytes as B / KB / MB / GB for tables."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)
