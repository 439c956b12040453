"""The Teacher Protocol: what the teach stage calls on a teacher.

A teacher is built from its spec parameters (plain keyword arguments, the fields of its
``Params``). The stage gives it every sampled user's job at once and writes the rows it
returns to ``rationales.jsonl``. :func:`slimkit.plugins.check_teacher` exercises one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from slimkit.teachers.base import TeachContext, TeacherJob


@runtime_checkable
class Teacher(Protocol):
    """A component that writes one three-step rationale per user."""

    label: str
    """The model name written into every row (e.g. ``openai/gpt-4o-mini``)."""

    uses_records: bool
    """Whether the teacher caches answers in ``ctx.records`` (the stage then opens the
    per-request record cache; a teacher that calls no model sets it to False)."""

    def teach(self, jobs: Sequence[TeacherJob], ctx: TeachContext) -> list[dict[str, Any]]:
        """One row per job, in the jobs' order, built with
        :func:`slimkit.teachers.base.make_row`. Call ``ctx.progress.update(...)`` once per
        finished row; count requests, cached answers and retries in ``ctx.stats``; when
        the run stops early (a budget, a fatal error), say why in ``ctx.stats.stopped``
        and return failed rows for the users not answered."""
        ...
