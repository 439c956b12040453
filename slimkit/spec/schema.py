"""The spec described for people and tools: a JSON Schema and the Markdown config reference,
both listing every registered component kind with its keys, defaults and help."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from slimkit.components import params_model
from slimkit.errors import SlimkitError
from slimkit.registry import SECTION_KIND, registry
from slimkit.spec.sections import DEFAULT_KINDS, FIXED_SECTIONS, SECTION_ORDER


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of the whole spec, one alternative per registered component kind."""
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "slimkit pipeline spec",
        "type": "object",
        "additionalProperties": False,
        "properties": {},
        "$defs": {},
    }
    for section in SECTION_ORDER:
        if section in FIXED_SECTIONS:
            sub = FIXED_SECTIONS[section].model_json_schema()
            schema["$defs"].update(sub.pop("$defs", {}))
            schema["properties"][section] = sub
            continue
        kind_name = SECTION_KIND[section]
        alternatives = []
        for name in registry(kind_name).names():
            try:
                model = params_model(kind_name, name)
            except SlimkitError:
                continue
            sub = model.model_json_schema()
            schema["$defs"].update(sub.pop("$defs", {}))
            sub["properties"]["kind"] = {"const": name, "description": f"{kind_name[:-1]} kind"}
            sub["title"] = f"{section}: {name}"
            alternatives.append(sub)
        schema["properties"][section] = {
            "description": f"The {kind_name[:-1]} and its parameters (default kind: "
            f"{DEFAULT_KINDS[section]}).",
            "oneOf": alternatives,
        }
    return schema


def spec_reference_markdown() -> str:
    """The config reference as Markdown: every section, kind and key with its default and help."""
    lines: list[str] = []

    def rows(model: type[BaseModel]) -> None:
        lines.append("| key | default | meaning |")
        lines.append("| --- | --- | --- |")
        for name, field in model.model_fields.items():
            if name == "kind":
                continue
            default = (
                "required"
                if field.is_required()
                else (field.get_default(call_default_factory=True))
            )
            text = (field.description or "").replace("|", "\\|")
            lines.append(
                f"| `{name}` | `{default!r}` | {text} |".replace("`'", "`").replace("'`", "`")
            )
        lines.append("")

    for section in SECTION_ORDER:
        lines.append(f"### `{section}`")
        lines.append("")
        if section in FIXED_SECTIONS:
            rows(FIXED_SECTIONS[section])
            continue
        kind_name = SECTION_KIND[section]
        lines.append(
            f"`kind:` one of the registered {kind_name} (default `{DEFAULT_KINDS[section]}`)."
        )
        lines.append("")
        for name in registry(kind_name).names():
            try:
                model = params_model(kind_name, name)
            except SlimkitError:
                continue
            lines.append(f"#### `{section}.kind: {name}`")
            lines.append("")
            rows(model)
    return "\n".join(lines)
