"""Stage ``teach``: the teacher writes a three-step rationale for a sample of users.

1. ``teacher.num_users`` users are sampled (seeded by ``teacher.seed``);
2. each gets the ``prompt.teacher`` template over the items before their validation and
   test targets (:func:`slimkit.prompts.history.user_history`), or, under
   ``prompt.rationale_cut: shared``, before their rationale cut
   (:mod:`slimkit.data.rationale_cut`); under ``separate`` the teacher answers both, the
   rationales from the cut going to ``cut_rationales.jsonl``;
3. the teacher answers; LLM teachers cache every response on its own in the ``llm``
   record store, so an interrupted run resumes and a repeated run sends nothing;
4. ``rationales.jsonl`` (one row per sampled user, :mod:`slimkit.artifacts.rationales`)
   and ``summary.json`` are written.

An output whose summary lists failed users (a budget that ran out, a server that kept
failing) is not reused (:func:`reusable`): the pipeline runs the stage again, answered
users come from the record store and only the failed ones are asked again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.artifacts.files import write_summary
from slimkit.artifacts.rationales import CUT_RATIONALES_FILE, write_rationales
from slimkit.data.rationale_cut import views_of
from slimkit.errors import SlimkitError
from slimkit.factories import build_teacher, prompt_template
from slimkit.prompts.history import user_messages
from slimkit.teachers.base import RECORD_NAMESPACE, Progress, TeachContext, TeacherJob


def sample_users(num_users: int, wanted: int, seed: int) -> list[int]:
    """``wanted`` distinct user indices out of ``num_users`` (all of them when fewer), sorted."""
    if wanted >= num_users:
        return list(range(num_users))
    rng = np.random.default_rng(seed)
    return sorted(int(u) for u in rng.choice(num_users, size=wanted, replace=False))


def build_jobs(spec: Any, dataset: Any) -> list[TeacherJob]:
    """One job per sampled user; a template that renders empty is a user error."""
    template = prompt_template(spec.prompt.teacher)
    users = sample_users(dataset.num_users, spec.teacher.num_users, spec.teacher.seed)
    jobs = []
    for user in users:
        messages = user_messages(template, dataset, user, spec.prompt)
        if not any(str(m.get("content", "")).strip() for m in messages):
            raise SlimkitError(
                f"prompt.teacher: the template '{spec.prompt.teacher}' renders an empty prompt "
                f"(user {dataset.user_ids[user]}); nothing was sent.",
                hint="Give the template text around {history}; `slimkit plugins list` shows "
                "where the built-in templates are.",
            )
        shown = dataset.train_items(user)[-spec.prompt.max_items :]
        jobs.append(TeacherJob(user_index=user, user=str(dataset.user_ids[user]), messages=messages,
                               history=tuple(int(i) for i in shown)))
    return jobs


def summarize(rows: list[dict[str, Any]], stats: Any, wall_s: float, label: str) -> dict[str, Any]:
    """The numbers of the summary table (and of ``summary.json``)."""
    done = [r for r in rows if r["status"] == "done"]
    costs = [r["cost_usd"] for r in done]
    unknown = sum(c is None for c in costs)
    failures: dict[str, int] = {}
    for row in rows:
        if row["status"] == "failed":
            kind = (row.get("error") or "error").split(":")[0]
            failures[kind] = failures.get(kind, 0) + 1
    return {
        "teacher": label,
        "users": len(rows),
        "done": len(done),
        "failed": len(rows) - len(done),
        "well_formed": sum(r["well_formed"] for r in done),
        "malformed": sum(not r["well_formed"] for r in done),
        "cached": sum(bool(r.get("cached")) for r in rows),
        "requests_sent": stats.requests_sent,
        "answered_by_another_run": stats.answered_elsewhere,
        "responses_cached": stats.responses_cached,
        "retries": stats.retries,
        "malformed_retries": stats.malformed_retries,
        "prompt_tokens": sum(r["prompt_tokens"] for r in done),
        "completion_tokens": sum(r["completion_tokens"] for r in done),
        "cost_usd": None if (unknown and unknown == len(costs)) else round(sum(c or 0.0 for c in costs), 6),
        "cost_unknown_users": unknown,
        "spent_this_run_usd": round(stats.spent_usd, 6),
        "tokens_per_s": round(stats.tokens_per_s, 1) if stats.tokens_per_s else None,
        "stopped": stats.stopped,
        "errors": stats.errors,
        "failures": failures,
        "wall_s": round(wall_s, 2),
        **stats.extra,  # e.g. the batch teacher: price "batch", the batch ids
    }


def reusable(summary: dict[str, Any]) -> bool:
    """Whether a finished teach output can be used as it is (no user failed)."""
    return summary.get("failed", 0) == 0


def incomplete_mark(summary: dict[str, Any], rows: list[dict[str, Any]]) -> str | None:
    """``"20/30:<hash of the answered users>"`` for an output with failed users, else None:
    what stages built on it carry in their key."""
    if summary.get("failed", 0) == 0:
        return None
    from slimkit.cache import hash_key

    done = sorted(str(r["user"]) for r in rows if r.get("status") == "done")
    return f"{summary.get('done', len(done))}/{summary.get('users', len(rows))}:{hash_key(done)[:12]}"


def teach(spec: Any, dataset: Any, out: Path, *, records: Callable[[str], Any],
          progress: bool = True) -> dict[str, Any]:
    """Have the spec's teacher write rationales for the sampled users of ``dataset`` into
    ``out``; returns the summary. ``records(namespace)`` gives a per-request store."""
    start = time.perf_counter()
    views = views_of(dataset, spec.prompt)
    jobs = build_jobs(spec, views.main)
    cut_jobs = build_jobs(spec, views.cut) if views.cut is not None else []
    teacher = build_teacher(spec.teacher)
    label = getattr(teacher, "label", spec.teacher.kind)
    bar = Progress(len(jobs) + len(cut_jobs), f"teach ({label})", enabled=progress)
    store = records(RECORD_NAMESPACE) if getattr(teacher, "uses_records", True) else None
    ctx = TeachContext(dataset=views.main, records=store, progress=bar)
    try:
        rows = teacher.teach(jobs, ctx)
        cut_rows = teacher.teach(cut_jobs, TeachContext(
            dataset=views.cut, records=store, progress=bar, stats=ctx.stats)) if cut_jobs else []
    finally:
        bar.close()
    summary = summarize(rows, ctx.stats, time.perf_counter() - start, label)
    summary.update(cut_summary(spec.prompt, cut_rows))
    cut_failed = sum(r["status"] != "done" for r in cut_rows)
    summary["failed"] += cut_failed
    summary["incomplete"] = (f"{summary['done']}/{summary['users']}" if summary["failed"] else None)
    if not summary["done"]:
        first = next((r["error"] for r in rows if r.get("error")), "no answer")
        raise SlimkitError(
            f"The teacher '{label}' answered for none of the {len(rows)} sampled users "
            f"(first error: {first}).",
            hint="Answers that did arrive are cached; fix the cause and run again.",
        )
    write_rationales(out, rows)
    if cut_jobs:
        write_rationales(out, cut_rows, name=CUT_RATIONALES_FILE)
    write_summary(out, summary)
    return summary


def cut_summary(prompt: Any, cut_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary fields of the rationale cut: the mode, and with ``separate`` the counts of
    the rationales from the cut. A failed one counts as a failed user, so the stage runs
    again for it (answers already given come from the record store)."""
    out: dict[str, Any] = {"rationale_cut": prompt.rationale_cut, "cut_items": prompt.cut_items}
    if prompt.rationale_cut == "separate":
        done = [r for r in cut_rows if r["status"] == "done"]
        out["cut_rationales"] = {"users": len(cut_rows), "done": len(done),
                                 "well_formed": sum(r["well_formed"] for r in done)}
    return out
