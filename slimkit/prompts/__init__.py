"""Prompt templates: the teacher's chain-of-thought prompt and the student's simpler one.

A template is a text file a user can copy and change. It may start with a
``### system`` block, followed by a ``### user`` block; ``{history}`` (required) is
replaced by the user's numbered item texts, most recent last, and ``{num_items}`` by how
many there are. Register a template in the ``slimkit.prompts`` entry point group as a
:class:`PromptTemplate` (``PromptTemplate.from_file(path)``) or give a path in the spec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REQUIRED_VARIABLES = ("history",)
KNOWN_VARIABLES = ("history", "num_items")
_VARIABLE = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")
_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class PromptTemplate:
    """A chat prompt with a system part (optional) and a user part."""

    name: str
    user: str
    system: str = ""
    description: str = ""

    @classmethod
    def from_text(cls, name: str, text: str, description: str = "") -> PromptTemplate:
        system, user = "", text
        if "### user" in text:
            head, _, user = text.partition("### user")
            system = head.replace("### system", "", 1)
        return cls(name=name, user=user.strip() + "\n", system=system.strip(), description=description)

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None, description: str = "") -> PromptTemplate:
        path = Path(path)
        return cls.from_text(name or path.stem, path.read_text(encoding="utf-8"), description)

    def variables(self) -> set[str]:
        return set(_VARIABLE.findall(self.system + self.user))

    def validate_for(self, role: str) -> list[str]:
        """Problems that make this template unusable (empty list when fine)."""
        found = self.variables()
        problems = [f"template '{self.name}' lacks the required variable {{{v}}}"
                    for v in REQUIRED_VARIABLES if v not in found]
        problems += [f"template '{self.name}' uses unknown variable {{{v}}}; known: "
                     f"{', '.join(KNOWN_VARIABLES)}" for v in sorted(found - set(KNOWN_VARIABLES))]
        return problems

    def render(self, history: list[str]) -> list[dict[str, str]]:
        """Chat messages for a history of item texts (oldest first, most recent last)."""
        lines = "\n".join(f"{i}. {text}" for i, text in enumerate(history, start=1))
        values = {"history": lines, "num_items": str(len(history))}

        def fill(text: str) -> str:
            return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

        messages = []
        if self.system:
            messages.append({"role": "system", "content": fill(self.system)})
        messages.append({"role": "user", "content": fill(self.user)})
        return messages


slim_cot = PromptTemplate.from_file(
    _TEMPLATES / "slim-cot.txt",
    name="slim-cot",
    description="The teacher's three-step chain-of-thought prompt (SLIM, section 2.2.1).",
)
slim_student = PromptTemplate.from_file(
    _TEMPLATES / "slim-student.txt",
    name="slim-student",
    description="The simpler prompt the student is trained and run on.",
)
