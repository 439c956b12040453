"""``check_teacher``: a teacher's ``teach(jobs, context)`` on a tiny dataset returns one
well-formed ``rationales.jsonl`` row per job, in order, with three-step rationales."""

from __future__ import annotations

from typing import Any

from slimkit.checks._common import fail, teacher_jobs, tiny_dataset

__all__ = ["check_teacher"]

_ROW_FIELDS = {
    "user": str, "user_index": int, "messages": list, "rationale": str, "well_formed": bool,
    "model": str, "prompt_tokens": int, "completion_tokens": int, "latency_s": (int, float),
    "status": str,
}


def check_teacher(teacher: Any, *, dataset: Any = None, template: Any = None,
                  min_well_formed: float = 1.0) -> dict[str, Any]:
    """Check a teacher's ``teach(jobs, context) -> rows`` on a tiny dataset.

    One ``rationales.jsonl`` row per job, in order, with the fields docs/architecture.md
    lists; ``steps``/``well_formed`` must agree with :func:`slimkit.rationale.parse_steps`
    of the rationale; at least ``min_well_formed`` of the rows must be well formed.
    """
    from slimkit.teachers.base import Progress, TeachContext

    component = f"teacher {type(teacher).__name__}"
    dataset = dataset if dataset is not None else tiny_dataset()
    jobs = teacher_jobs(dataset, template)
    context = TeachContext(dataset=dataset, records=None,
                           progress=Progress(len(jobs), "check", enabled=False))
    rows = list(teacher.teach(jobs, context))
    if len(rows) != len(jobs):
        raise fail(component, f"returned {len(rows)} rows for {len(jobs)} jobs")
    for job, row in zip(jobs, rows):
        _row_well_formed(job, row, component)
    share = sum(bool(r["well_formed"]) for r in rows) / len(rows)
    if share < min_well_formed:
        bad = next(r for r in rows if not r["well_formed"])
        raise fail(
            component,
            f"only {share:.0%} of rationales have three steps (need {min_well_formed:.0%}); "
            f"e.g. {bad['rationale'][:200]!r}",
            'answer with lines starting "Step 1:", "Step 2:", "Step 3:"',
        )
    return {"component": component, "rows": len(rows), "well_formed": share}


def _row_well_formed(job: Any, row: Any, component: str) -> None:
    from slimkit.rationale import parse_steps

    if not isinstance(row, dict):
        raise fail(component, f"rows must be dicts, got {type(row).__name__}",
                   "build rows with slimkit.teachers.base.make_row")
    for key, kind in _ROW_FIELDS.items():
        if not isinstance(row.get(key), kind):
            raise fail(component, f"row for user {job.user} has {key}={row.get(key)!r}",
                       "build rows with slimkit.teachers.base.make_row")
    if (row["user_index"], row["user"]) != (job.user_index, job.user):
        raise fail(component, "rows must come back in the order of the jobs")
    if row["status"] not in ("done", "failed"):
        raise fail(component, f"status must be done or failed, got {row['status']!r}")
    steps = parse_steps(row["rationale"]) if row["status"] == "done" else None
    if row["well_formed"] != (steps is not None):
        raise fail(component, f"well_formed={row['well_formed']} disagrees with "
                   f"parse_steps for {row['rationale'][:120]!r}")
