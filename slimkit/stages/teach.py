"""Stage ``teach``: the teacher writes a three-step rationale for a sample of users.

1. ``teacher.num_users`` users are sampled (seeded by ``teacher.seed``);
2. each gets the ``prompt.teacher`` template rendered over the items before their
   validation and test targets (``dataset.train_items(u)``): the last
   ``prompt.max_items`` of them, each cut to ``prompt.max_item_chars`` characters;
3. the teacher answers (LLM teachers cache every response on its own, so an interrupted
   run resumes and a repeated run sends nothing);
4. ``rationales.jsonl`` (one row per sampled user) and ``summary.json`` are written into
   the stage folder (docs/architecture.md lists the fields).

A finished run whose summary lists failed users (a budget that ran out, a server that
kept failing) is resumed by the next ``run_teach``: answered users come from the record
cache, only the failed ones are asked again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.spec import PipelineSpec
from slimkit.stages import StageResult, stage_keys, stage_spec
from slimkit.teachers.base import RECORD_NAMESPACE, Progress, TeachContext, TeacherJob

STAGE = "teach"
RATIONALES_FILE = "rationales.jsonl"
SUMMARY_FILE = "summary.json"


# -- prompts -------------------------------------------------------------------------------
def user_history(dataset, user: int, max_items: int, max_item_chars: int) -> list[str]:
    """Item texts a rationale may see: the last ``max_items`` training items, oldest first,
    each cut to ``max_item_chars`` (the validation and test targets are never included)."""
    items = dataset.train_items(user)[-max_items:] if max_items > 0 else []
    texts = []
    for item in items:
        text = " ".join(str(dataset.item_text[int(item)]).split())
        if not text:
            text = " ".join(str(dataset.item_titles[int(item)]).split()) or f"item {dataset.item_ids[int(item)]}"
        if len(text) > max_item_chars:
            text = text[: max_item_chars - 1].rstrip() + "…"
        texts.append(text)
    return texts


def sample_users(num_users: int, wanted: int, seed: int) -> list[int]:
    """``wanted`` distinct user indices out of ``num_users`` (all of them when fewer), sorted."""
    if wanted >= num_users:
        return list(range(num_users))
    rng = np.random.default_rng(seed)
    return sorted(int(u) for u in rng.choice(num_users, size=wanted, replace=False))


def teacher_template(spec: PipelineSpec):
    from slimkit.registry import registry

    return registry("prompts").get(spec.prompt.teacher)


def build_jobs(spec: PipelineSpec, dataset) -> list[TeacherJob]:
    """One job per sampled user; a template that renders empty is a user error."""
    template = teacher_template(spec)
    users = sample_users(dataset.num_users, spec.teacher.num_users, spec.teacher.seed)
    jobs = []
    for user in users:
        history = user_history(dataset, user, spec.prompt.max_items, spec.prompt.max_item_chars)
        messages = template.render(history)
        if not any(str(m.get("content", "")).strip() for m in messages):
            raise SlimkitError(
                f"prompt.teacher: the template '{spec.prompt.teacher}' renders an empty prompt "
                f"(user {dataset.user_ids[user]}); nothing was sent.",
                hint="Give the template text around {history}; `slimkit plugins list` shows "
                "where the built-in templates are.",
            )
        shown = dataset.train_items(user)[-spec.prompt.max_items :]
        jobs.append(
            TeacherJob(
                user_index=user,
                user=str(dataset.user_ids[user]),
                messages=messages,
                history=tuple(int(i) for i in shown),
            )
        )
    return jobs


def build_teacher(spec: PipelineSpec):
    """The teacher the spec names, built from its parameters (plain keyword arguments)."""
    from slimkit.components import implementation

    impl = implementation("teachers", spec.teacher.kind)
    return impl(**spec.teacher.model_dump(exclude={"kind"}))


# -- the stage -----------------------------------------------------------------------------
def _versions(spec: PipelineSpec) -> dict[str, str]:
    from slimkit.registry import component_versions

    return component_versions([("teachers", spec.teacher.kind), ("prompts", spec.prompt.teacher)])


def summarize(rows: list[dict[str, Any]], stats, wall_s: float, label: str) -> dict[str, Any]:
    """The numbers of the summary table (and of ``summary.json``)."""
    done = [r for r in rows if r["status"] == "done"]
    costs = [r["cost_usd"] for r in rows if r["status"] == "done"]
    unknown = sum(c is None for c in costs)
    errors: dict[str, int] = {}
    for row in rows:
        if row["status"] == "failed":
            kind = (row.get("error") or "error").split(":")[0]
            errors[kind] = errors.get(kind, 0) + 1
    return {
        "teacher": label,
        "users": len(rows),
        "done": len(done),
        "failed": len(rows) - len(done),
        "well_formed": sum(r["well_formed"] for r in done),
        "malformed": sum(not r["well_formed"] for r in done),
        "cached": sum(bool(r.get("cached")) for r in rows),
        "requests_sent": stats.requests_sent,
        "responses_cached": stats.responses_cached,
        "retries": stats.retries,
        "malformed_retries": stats.malformed_retries,
        "prompt_tokens": sum(r["prompt_tokens"] for r in done),
        "completion_tokens": sum(r["completion_tokens"] for r in done),
        "cost_usd": None if (unknown and unknown == len(costs)) else round(sum(c or 0.0 for c in costs), 6),
        "cost_unknown_users": unknown,
        "spent_this_run_usd": round(stats.spent_usd, 6),
        "stopped": stats.stopped,
        "errors": stats.errors,
        "failures": errors,
        "wall_s": round(wall_s, 2),
    }


def _read_summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / SUMMARY_FILE).read_text(encoding="utf-8"))


def run_teach(spec: PipelineSpec, cache: StageCache | None = None, *, progress: bool = True) -> StageResult:
    """Have the spec's teacher write rationales for the sampled users (or take them from the cache)."""
    cache = cache or StageCache()
    key = stage_keys(spec, cache)[STAGE]
    hit = cache.get(STAGE, key)
    if hit is not None:
        try:
            summary = _read_summary(hit)
        except (OSError, ValueError) as exc:
            cache.invalidate(STAGE, key, f"summary.json unreadable: {exc}")
        else:
            if summary.get("failed", 0) == 0:
                return StageResult(STAGE, key, hit, cached=True, summary=summary)
            # Some users failed last time: ask again for those only (the rest is cached).

    from slimkit.stages.data import load_prepared

    start = time.perf_counter()
    dataset = load_prepared(spec, cache, progress=progress)
    jobs = build_jobs(spec, dataset)
    teacher = build_teacher(spec)
    label = getattr(teacher, "label", spec.teacher.kind)
    bar = Progress(len(jobs), f"teach ({label})", enabled=progress)
    records = cache.records(RECORD_NAMESPACE) if getattr(teacher, "uses_records", True) else None
    ctx = TeachContext(dataset=dataset, records=records, progress=bar)
    try:
        rows = teacher.teach(jobs, ctx)
    finally:
        bar.close()
    ctx.stats.stopped = getattr(teacher, "_stop", None) or ctx.stats.stopped
    wall = time.perf_counter() - start
    summary = summarize(rows, ctx.stats, wall, label)
    if not summary["done"]:
        first = next((r["error"] for r in rows if r.get("error")), "no answer")
        raise SlimkitError(
            f"The teacher '{label}' answered for none of the {len(rows)} sampled users "
            f"(first error: {first}).",
            hint="Answers that did arrive are cached; fix the cause and run again.",
        )
    with cache.write(STAGE, key, stage_spec(spec, STAGE), _versions(spec), summary) as out:
        with open(out / RATIONALES_FILE, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return StageResult(STAGE, key, cache.path(STAGE, key), cached=False, seconds=wall, summary=summary)


def read_rationales(folder: str | Path) -> list[dict[str, Any]]:
    """Every row of a teach stage folder's ``rationales.jsonl``."""
    path = Path(folder) / RATIONALES_FILE
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_teacher_rationales(spec: PipelineSpec, cache: StageCache | None = None) -> list[dict[str, Any]]:
    """The teach stage's rows (``status`` "done" only): from the cache, or taught now.

    A cached output with failed users is used as it is (run ``slimkit teach`` to retry
    them); rows keep ``well_formed`` so callers can skip malformed answers.
    """
    cache = cache or StageCache()
    key = stage_keys(spec, cache)[STAGE]
    folder = cache.get(STAGE, key)
    if folder is None:
        folder = run_teach(spec, cache).path
    try:
        rows = read_rationales(folder)
    except (OSError, ValueError) as exc:
        cache.invalidate(STAGE, key, f"rationales.jsonl unreadable: {exc}")
        rows = read_rationales(run_teach(spec, cache).path)
    return [row for row in rows if row.get("status") == "done"]
