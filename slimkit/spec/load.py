"""Reading a spec: the YAML file, ``--set a.b=value`` overrides, then validation.

An empty file and a key written twice in one mapping are errors (YAML itself would keep
the last value silently). ``--set teacher.kind=litellm`` on a spec written for another
kind drops the keys only the old kind knows, with a warning naming them.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import yaml

from slimkit.errors import ConfigError
from slimkit.spec.validate import PipelineSpec, kind_fields, validate_spec

log = logging.getLogger(__name__)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key repeated in one mapping."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                first = seen[key].start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key '{key}' (first at line {first}; YAML would silently keep "
                    "the last one)", key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


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
    """A copy of ``raw`` with ``--set a.b=value`` overrides applied (values parsed as YAML).

    ``--set <section>.kind=<new>`` switches a component's kind: keys of that section that
    the new kind does not know, and that no ``--set`` gave, are dropped with a warning.
    """
    out = copy.deepcopy(raw)
    switched: dict[str, Any] = {}
    explicit: dict[str, set[str]] = {}
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
        if len(keys) == 2:
            explicit.setdefault(keys[0], set()).add(keys[1])
            if keys[1] == "kind" and node.get("kind") != value:
                switched[keys[0]] = value
        node[keys[-1]] = value
    for section, kind in switched.items():
        fields = kind_fields(section, kind)
        body = out.get(section)
        if fields is None or not isinstance(body, dict):
            continue  # an unknown kind or section: validation reports it
        dropped = [k for k in body if k not in fields and k not in explicit.get(section, set())]
        for key in dropped:
            del body[key]
        if dropped:
            log.warning("--set %s.kind=%s: dropped %s, which only the previous kind uses.",
                        section, kind, ", ".join(f"{section}.{k}" for k in dropped))
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
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from exc
    if raw is None:
        raise ConfigError(
            f"{path}: the file is empty (or only comments).",
            hint="Write at least one section (e.g. `dataset:`); without -c the built-in "
            "defaults are used. `slimkit config schema` lists every key.",
        )
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections.")
    return raw


def load_spec(path: str | Path | None = None, overrides: list[str] | None = None) -> PipelineSpec:
    """Read, override and validate a spec. ``path=None`` starts from the defaults."""
    raw = read_yaml(path) if path is not None else {}
    raw = apply_overrides(raw, overrides or [])
    return validate_spec(raw, source=str(path) if path is not None else None)
