"""``slimkit status``: per stage, cached / stale (with the settings that changed) / missing,
computed from the spec and the cache alone (nothing is run or verified); and
:func:`student_length_check`, what the cache allows to check of the student's lengths
(``slimkit status`` and ``slimkit config validate``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from slimkit.artifacts.files import read_json
from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.factories import build_student
from slimkit.pipeline.keys import PIPELINE, needed_stages, stage_keys, stage_spec, stage_versions
from slimkit.pipeline.lengths import check_lengths, not_checked
from slimkit.pipeline.runner import Pipeline
from slimkit.spec import PipelineSpec
from slimkit.stages import distill, teach


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def spec_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``["teacher.num_users: 200 -> 300", ...]``: settings that differ between two specs."""
    before, after = _flatten(old), _flatten(new)
    changes = []
    for path in list(after) + [p for p in before if p not in after]:
        missing = object()
        a, b = before.get(path, missing), after.get(path, missing)
        if a == b:
            continue
        left = "(unset)" if a is missing else json.dumps(a, default=str)
        right = "(unset)" if b is missing else json.dumps(b, default=str)
        changes.append(f"{path}: {left} -> {right}")
    return changes


def _current_versions(spec: PipelineSpec, stage: str) -> dict[str, str]:
    from slimkit._version import __version__

    return {"slimkit": __version__, **stage_versions(spec, stage)}


def _stale_reason(
    cache: StageCache, spec: PipelineSpec, stage: str, entries: list[dict[str, Any]]
) -> list[str]:
    latest = max(entries, key=lambda m: m.get("created", 0))
    folder = cache.path(stage, latest["key"])
    try:
        old_spec = yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ["the previous entry has no readable spec.yaml"]
    # Round-trip through YAML so both sides have the same types (tuples, paths).
    current = yaml.safe_load(yaml.safe_dump(stage_spec(spec, stage), sort_keys=False))
    changes = spec_changes(old_spec, current)
    if changes:
        return changes
    try:
        old_versions = read_json(folder / "versions.json")
    except (OSError, ValueError):
        old_versions = {}
    now = _current_versions(spec, stage)
    changes = [
        f"version of {name}: {old_versions.get(name, '(unset)')} -> {version}"
        for name, version in now.items()
        if old_versions.get(name) != version
    ]
    return changes or ["an upstream stage's output changed"]


def _shards(cache: StageCache, key: str) -> dict[str, Any] | None:
    """What ``distill --shard`` runs did for the distill output ``key`` (None: none ran)."""
    from slimkit.stages.distill_shards import progress_folder, shard_status

    return shard_status(progress_folder(cache.stage_root("distill"), key)) if cache.root.exists() else None


def pipeline_status(spec: PipelineSpec, cache: StageCache | None = None) -> list[dict[str, Any]]:
    """Per stage: ``cached``, ``stale`` (with the changed settings), ``missing`` or ``skipped``;
    ``partial`` for a distill stage that ``slimkit distill --shard`` runs have begun (the
    row's ``shards`` says how many users are done).

    Nothing is run or verified (``slimkit run`` verifies checksums when it uses an entry).
    """
    cache = cache or StageCache()
    keys = stage_keys(spec, cache)
    skip = needed_stages(spec)
    rows = []
    for stage in PIPELINE:
        row: dict[str, Any] = {"stage": stage, "key": keys[stage], "changes": []}
        if skip[stage] is not None:
            row.update(status="skipped", reason=skip[stage])
            rows.append(row)
            continue
        manifest = cache.manifest(stage, keys[stage]) if cache.root.exists() else None
        if manifest is not None and cache.path(stage, keys[stage]).is_dir():
            row.update(
                status="cached",
                path=str(cache.path(stage, keys[stage])),
                created=manifest.get("created"),
                summary=manifest.get("summary", {}),
            )
        elif stage == "distill" and (shards := _shards(cache, keys[stage])) is not None:
            row.update(status="partial", reason=shards["line"], shards=shards)
        else:
            others = [
                m
                for m in (cache.entries(stage) if cache.root.exists() else [])
                if m.get("key") != keys[stage]
            ]
            if others:
                row.update(status="stale", changes=_stale_reason(cache, spec, stage, others))
            else:
                row.update(status="missing")
        rows.append(row)
    return rows


def student_length_check(spec: PipelineSpec, cache: StageCache | None = None, *,
                         fetch: bool = False) -> dict[str, Any]:
    """What the cache allows to check of the student's lengths, as a dict (``checked``,
    and the measured plan or the ``reason`` it could not be checked yet); a
    :class:`~slimkit.errors.SlimkitError` (exit code 2) naming the fix when they cannot fit.
    ``fetch``: fetch the student's tokenizer when it is not on this machine."""
    skipped = needed_stages(spec)["distill"]
    if skipped is not None:
        return not_checked(f"no student: {skipped}")
    pipeline = Pipeline(spec, cache or StageCache(), progress=False)
    if pipeline.cached("data") is None:
        source = spec.source or "<spec>"
        return not_checked("the data stage has not run, so the prompts cannot be measured yet "
                           f"(`slimkit run -c {source} --until data`; a full run checks them "
                           "after it, before the teacher starts)")
    try:
        student = build_student(spec.student)
    except SlimkitError as exc:  # e.g. vLLM missing here: running says so, validating need not
        return not_checked(f"the student cannot be built on this machine: {exc.message}")
    if not hasattr(student, "fit_lengths"):
        return not_checked(f"student '{spec.student.kind}' does not size its lengths")
    dataset = pipeline.dataset()
    records = None
    if pipeline.cached("teach") is not None:
        records = distill.usable_teacher_records(pipeline.teacher_rationales(), dataset.num_users)
        users = [int(r["user_index"]) for r in records]
    else:
        users = teach.sample_users(dataset.num_users, spec.teacher.num_users, spec.teacher.seed)
    return check_lengths(spec, dataset, student, users, records, fetch=fetch)
