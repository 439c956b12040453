"""``check_prompt``: a prompt template renders well-formed chat messages holding the whole
history and, for a teacher, asks for the three steps slimkit parses."""

from __future__ import annotations

from typing import Any

from slimkit.checks._common import fail

__all__ = ["check_prompt"]

_SAMPLE_HISTORY = [
    "The Legend of Zelda: Breath of the Wild; Games > Switch; Nintendo",
    "Mario Kart 8 Deluxe; Games > Switch; Nintendo",
    "Pro Controller; Accessories > Controllers; Nintendo",
]


def check_prompt(template: Any, *, role: str | None = None) -> dict[str, Any]:
    """Check a prompt template (``slimkit.prompts.PromptTemplate`` or alike).

    ``role`` is ``"teacher"``, ``"student"`` or ``None`` (both). A teacher template must
    ask for "Step 1", "Step 2" and "Step 3": slimkit parses rationales into three steps.
    """
    component = f"prompt template {getattr(template, 'name', template)!r}"
    roles = [role] if role else ["teacher", "student"]
    if not isinstance(getattr(template, "name", None), str) or not template.name:
        raise fail(component, "has no name")
    for needed in ("render", "validate_for", "variables"):
        if not callable(getattr(template, needed, None)):
            raise fail(
                component, f"lacks {needed}()", "register a slimkit.prompts.PromptTemplate"
            )
    for each in roles:
        problems = template.validate_for(each)
        if problems:
            raise fail(component, f"is not valid for the {each}: {'; '.join(problems)}")
    messages = template.render(_SAMPLE_HISTORY)
    _messages_well_formed(messages, component)
    text = "\n".join(m["content"] for m in messages)
    _history_complete(template, text, component)
    if "teacher" in roles:
        missing = [f"Step {k}" for k in (1, 2, 3) if f"step {k}" not in text.lower()]
        if missing:
            raise fail(
                component,
                f"a teacher template must ask for the three steps; it never says "
                f"{', '.join(missing)}",
                'ask the model to start lines with "Step 1:", "Step 2:" and "Step 3:"; '
                "slimkit.rationale.parse_steps splits answers on them",
            )
    return {"component": component, "roles": roles, "messages": len(messages)}


def _messages_well_formed(messages: Any, component: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise fail(component, "render() must return a non-empty list of chat messages")
    for message in messages:
        if (
            not isinstance(message, dict)
            or message.get("role") not in ("system", "user", "assistant")
            or not isinstance(message.get("content"), str)
            or not message["content"].strip()
        ):
            raise fail(component, f"render() produced a malformed message: {message!r}")
    if messages[-1]["role"] != "user":
        raise fail(component, "the last rendered message must be the user's")


def _history_complete(template: Any, text: str, component: str) -> None:
    """Every history item appears, oldest first, and no variable is left unfilled."""
    for item in _SAMPLE_HISTORY:
        if item not in text:
            raise fail(component, f"the rendered prompt lacks the history item {item!r}")
    if _SAMPLE_HISTORY[-1] not in text.split(_SAMPLE_HISTORY[0], 1)[-1]:
        raise fail(component, "history items must appear oldest first, most recent last")
    for var in sorted(set(template.variables()) & {"history", "num_items"}):
        if "{" + var + "}" in text:
            raise fail(component, f"{{{var}}} was not filled in")
