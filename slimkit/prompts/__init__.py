"""Prompt templates: the teacher's chain-of-thought prompt and the student's simpler one.

A template is a text file a user can copy and change. It may start with a
``### system`` block, followed by a ``### user`` block; ``{history}`` (required) is
replaced by the user's numbered item texts, most recent last, and ``{num_items}`` by how
many there are. Grounded templates may also use facts computed from the data for that
user (training items only, :mod:`slimkit.data.facts`), filled in only when a template
uses them:

* ``{top_categories}``: the most frequent categories/brands of the history with counts,
  ``"Drama (12), Comedy (8), Thriller (5)"``;
* ``{recent_items}``: titles of the latest items, ``"Heat (1995); Casino (1995)"``;
* ``{candidate_items}``: titles of unseen items that co-occur with the user's recent
  items in other users' histories (most frequent first), ``"Fargo (1996); Seven (1995)"``.

Register a template in the ``slimkit.prompts`` entry point group as a
:class:`PromptTemplate` (``PromptTemplate.from_file(path)``) or give a path in the spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REQUIRED_VARIABLES = ("history",)
FACT_VARIABLES = ("top_categories", "recent_items", "candidate_items")
"""Variables filled from :class:`slimkit.data.facts.UserFacts` (see the module docstring)."""
KNOWN_VARIABLES = ("history", "num_items", *FACT_VARIABLES)
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

    def render(self, history: list[str], facts: Mapping[str, str] | None = None) -> list[dict[str, str]]:
        """Chat messages for a history of item texts (oldest first, most recent last) and,
        for a grounded template, the user's ``facts`` (``{variable: text}``)."""
        lines = "\n".join(f"{i}. {text}" for i, text in enumerate(history, start=1))
        values = {**(facts or {}), "history": lines, "num_items": str(len(history))}

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
slim_cot_grounded = PromptTemplate.from_file(
    _TEMPLATES / "slim-cot-grounded.txt",
    name="slim-cot-grounded",
    description="The teacher's prompt with facts from the data: top categories with counts, "
    "candidate items (grounds steps 2 and 3).",
)
slim_student_grounded = PromptTemplate.from_file(
    _TEMPLATES / "slim-student-grounded.txt",
    name="slim-student-grounded",
    description="The student's prompt with the same facts as slim-cot-grounded.",
)
slim_student = PromptTemplate.from_file(
    _TEMPLATES / "slim-student.txt",
    name="slim-student",
    description="The simpler prompt the student is trained and run on.",
)
