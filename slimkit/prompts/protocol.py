"""What a prompt template implements (:class:`slimkit.prompts.PromptTemplate` does).

A template is registered in the ``slimkit.prompts`` group as an object with this shape,
usually ``PromptTemplate.from_file(path)``. ``slimkit.plugins.check_prompt`` checks one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Prompt(Protocol):
    """A chat prompt rendered from a user's history of item texts."""

    name: str

    def variables(self) -> set[str]:
        """The ``{variables}`` it uses (``history`` required, ``num_items`` optional)."""
        ...

    def validate_for(self, role: str) -> list[str]:
        """Problems that make it unusable for ``role`` (``"teacher"``/``"student"``); [] if fine."""
        ...

    def render(self, history: list[str]) -> list[dict[str, str]]:
        """Chat messages (``{"role", "content"}``) for item texts, oldest first; the last
        message is the user's. A teacher template asks for "Step 1:", "Step 2:", "Step 3:".
        A template that uses fact variables (``slimkit.prompts.FACT_VARIABLES``) is called
        as ``render(history, facts={variable: text})``."""
        ...
