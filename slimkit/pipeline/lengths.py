"""Whether the student's prompts and the teacher's rationales fit the student's lengths,
told before the stages that would fail run: :func:`check_before_teach` (the pipeline, before
any teacher call) and :func:`check_lengths` (``slimkit config validate`` and ``slimkit
status`` through :func:`slimkit.pipeline.status.student_length_check`). Only a tokenizer
is loaded, never a model.
"""

from __future__ import annotations

from typing import Any

from slimkit.errors import SlimkitError
from slimkit.factories import build_student
from slimkit.pipeline.keys import needed_stages
from slimkit.spec import PipelineSpec
from slimkit.stages import distill, teach


def not_checked(reason: str) -> dict[str, Any]:
    """A length check that could not be made yet, and why."""
    return {"checked": False, "reason": reason}


def check_lengths(spec: PipelineSpec, dataset: Any, student: Any, users: list[int],
                  records: list[dict[str, Any]] | None, *, fetch: bool) -> dict[str, Any]:
    """The distill stage's length fit for ``users`` (and the teacher ``records``, None before
    teach), on a student that is thrown away afterwards."""
    if getattr(spec.student, "adapter", None):
        users = []  # a given adapter: no training example, only max_new_tokens matters
    found = distill.fit_student_lengths(student, dataset, records, users,
                                        lambda u: distill.student_messages(spec, dataset, u),
                                        fetch=fetch)
    return found if found is not None else not_checked("the student does not size its lengths")


def check_before_teach(spec: PipelineSpec, dataset: Any) -> None:
    """Refuse (SlimkitError) a spec whose student ``max_length`` is set and cannot hold the
    prompts of the users the teacher is about to answer, before any teacher call is paid
    for. ``auto`` lengths follow the teacher, so they are sized (and checked) in distill."""
    if needed_stages(spec)["distill"] is not None or getattr(spec.student, "max_length", "auto") == "auto":
        return
    try:
        student = build_student(spec.student)
    except SlimkitError:  # e.g. vLLM missing: teaching here to distill elsewhere is fine
        return
    if not hasattr(student, "fit_lengths"):
        return
    users = teach.sample_users(dataset.num_users, spec.teacher.num_users, spec.teacher.seed)
    check_lengths(spec, dataset, student, users, None, fetch=False)
