"""Reading a spec: the YAML file, ``--set a.b=value`` overrides, then validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from slimkit.errors import ConfigError
from slimkit.spec.validate import PipelineSpec, validate_spec


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"backbone.hidden_size=128"`` -> (["backbone", "hidden_size"], 128)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=5")
    path, _, value = text.partition("=")
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"--set {text!r}: the key before '=' is empty")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {exc}") from exc
    return keys, parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with ``--set a.b=value`` overrides applied (values parsed as YAML)."""
    out = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: '{key}' is not a section or mapping")
            node = child
        node[keys[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML spec file, turning every failure into a ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"Config file not found: {path}", hint="Check the path given to -c/--config."
        )
    if path.is_dir():
        raise ConfigError(f"Config path is a directory, not a YAML file: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    return raw


def load_spec(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineSpec:
    """Read, override and validate a spec. ``path=None`` starts from the defaults."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    return validate_spec(raw, source=str(path) if path is not None else None)
