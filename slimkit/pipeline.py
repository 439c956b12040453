"""The whole SLIM pipeline: data -> teach -> distill -> encode -> train (-> evaluate).

:func:`run_pipeline` runs every stage the spec's fusion head needs, in order, each taken
from the stage cache when its inputs are unchanged, and returns a :class:`PipelineReport`
(what ran, what came from the cache, time per stage, teacher cost, test metrics).
:func:`pipeline_status` tells, without running anything, whether each stage is cached,
stale (an entry made from other settings exists; the changed settings are named) or
missing.

Stages cache their per-item work (one LLM response, one student rationale, one vector)
as it finishes, so an interrupted run loses at most the unfinished batch of the stage
that was running; the next run resumes there.
"""

from __future__ import annotations

import importlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError, did_you_mean
from slimkit.spec import PipelineSpec
from slimkit.stages import PIPELINE, StageResult, fusion_needs, stage_keys, stage_spec


# ---------------------------------------------------------------------------------------
# Which stages a spec needs
# ---------------------------------------------------------------------------------------
def needed_stages(spec: PipelineSpec) -> dict[str, str | None]:
    """Per stage: ``None`` when the spec needs it, else why it is skipped.

    The encode stage's key covers the teacher's and the student's outputs (it encodes
    their rationales next to the item texts), so any fusion head that reads text vectors
    needs teach and distill as well; the plain backbone (``fusion: none``) needs only
    data and train.
    """
    needs_text, needs_rationales = fusion_needs(spec)
    uses_text = needs_text or needs_rationales
    reason = None if uses_text else f"fusion '{spec.fusion.kind}' uses neither text nor rationales"
    return {
        "data": None,
        "teach": reason,
        "distill": reason,
        "encode": reason,
        "train": None,
    }


def check_stage_name(name: str, option: str) -> str:
    """``name`` when it is a pipeline stage, else a SlimkitError naming the option."""
    if name not in PIPELINE:
        raise SlimkitError(
            f"{option}: unknown stage '{name}'.{did_you_mean(name, PIPELINE)} "
            f"Stages, in order: {', '.join(PIPELINE)}."
        )
    return name


def _stage_runner(stage: str) -> Callable[..., StageResult]:
    module = importlib.import_module(f"slimkit.stages.{stage}")
    return getattr(module, f"run_{stage}")


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
@dataclass
class StageOutcome:
    """One stage of one run: ``ran``, ``cached``, ``skipped`` or ``not run`` (after --until)."""

    stage: str
    status: str
    key: str | None = None
    path: str | None = None
    seconds: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


@dataclass
class PipelineReport:
    """What one :func:`run_pipeline` call did and produced."""

    spec: str | None
    cache: str
    stages: list[StageOutcome]
    seconds: float
    metrics: dict[str, Any] | None = None
    teacher: dict[str, Any] | None = None
    forced: list[str] = field(default_factory=list)
    recomputed: list[str] = field(default_factory=list)

    def stage(self, name: str) -> StageOutcome:
        return next(s for s in self.stages if s.stage == name)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


_COST_KEYS = (
    "teacher",
    "done",
    "failed",
    "cached",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "cost_unknown_users",
    "wall_s",
)


def teacher_cost(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The teach stage's usage and cost, as far as its summary reports them."""
    if not summary:
        return None
    flat = dict(summary)
    for nested in ("usage", "tokens", "cost"):
        if isinstance(flat.get(nested), Mapping):
            flat = {**flat, **flat[nested]}
    out = {k: flat[k] for k in _COST_KEYS if k in flat}
    if "cost_usd" not in out:
        # Unknown, not zero: litellm has no price for local or unlisted models.
        out["cost_usd"] = None
    return out


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------
def _console(progress: bool):
    if not progress:
        return None
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def _quiet_libraries(enabled: bool) -> Iterator[None]:
    """Keep library chatter (weight-loading bars, deprecation notices) out of the display.

    The stages draw their own progress; a second tqdm bar or a FutureWarning from
    transformers in the middle of it only makes the view harder to read.
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    with warnings.catch_warnings():
        for module in ("transformers", "peft", "sentence_transformers", "torch", "huggingface_hub"):
            warnings.filterwarnings("ignore", category=FutureWarning, module=module)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=module)
        yield


_SHOWN = {
    "data": ("users", "items", "interactions"),
    "teach": ("teacher", "done", "failed", "well_formed", "cached", "completion_tokens"),
    "distill": ("users", "generated", "cached", "well_formed_share", "tokens_per_s", "adapter"),
    "encode": ("dim", "num_items", "num_users", "texts_encoded", "texts_reused"),
    "train": ("ndcg@10", "hit@10"),
}
"""Summary entries worth a glance per stage (others show their first few scalars)."""


def _describe(summary: Mapping[str, Any], limit: int = 4, stage: str | None = None) -> str:
    """A few scalar summary entries as ``key=value`` for the one-line stage footer."""
    flat = dict(summary)
    if isinstance(flat.get("test"), Mapping):
        flat = {**flat["test"], **flat}
    wanted = [k for k in _SHOWN.get(stage or "", ()) if k in flat]
    keys = wanted or list(flat)
    parts = []
    for key in keys:
        value = flat[key]
        if value is None or not isinstance(value, (int, float, str)):
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}={value}")
        if len(parts) == max(limit, len(wanted)):
            break
    return ", ".join(parts)


def run_pipeline(
    spec: PipelineSpec,
    cache: StageCache | None = None,
    *,
    until: str | None = None,
    force: str | None = None,
    progress: bool = True,
) -> PipelineReport:
    """Run every stage the spec needs, each from the cache when its inputs are unchanged.

    ``until`` stops after that stage; ``force`` drops the cached outputs of that stage and
    of every stage after it first, so they are recomputed (per-request LLM responses stay
    cached: ``slimkit cache clear`` removes those).
    """
    cache = cache or StageCache()
    if until is not None:
        check_stage_name(until, "--until")
    if force is not None:
        check_stage_name(force, "--force")
    if until is not None and force is not None and PIPELINE.index(force) > PIPELINE.index(until):
        raise SlimkitError(
            f"--force {force} comes after --until {until}: nothing would be recomputed.",
            hint=f"Stages run in this order: {' -> '.join(PIPELINE)}.",
        )
    keys = stage_keys(spec, cache)
    skip = needed_stages(spec)
    console = _console(progress)
    start = time.perf_counter()
    corrupt_before = len(StageCache.corruption_reports)

    forced: list[str] = []
    if force is not None:
        for stage in PIPELINE[PIPELINE.index(force) :]:
            if cache.manifest(stage, keys[stage]) is not None or cache.path(stage, keys[stage]).exists():
                cache.delete(stage, keys[stage])
                forced.append(stage)

    with _quiet_libraries(progress):
        outcomes = _run_stages(spec, cache, keys, skip, until, progress, console)

    report = PipelineReport(
        spec=spec.source,
        cache=str(cache.root),
        stages=outcomes,
        seconds=round(time.perf_counter() - start, 3),
        forced=forced,
        recomputed=list(StageCache.corruption_reports[corrupt_before:]),
    )
    teach = report.stage("teach")
    if teach.path:
        report.teacher = teacher_cost(_read_json(Path(teach.path) / "summary.json") or teach.summary)
    train = report.stage("train")
    if train.path:
        report.metrics = _read_json(Path(train.path) / "metrics.json")
    if console is not None:
        print_report(report, console)
    return report


def _run_stages(spec, cache, keys, skip, until, progress, console) -> list[StageOutcome]:
    outcomes: list[StageOutcome] = []
    stopped = False
    active = [s for s in PIPELINE if skip[s] is None]
    last = until if until is not None else PIPELINE[-1]
    for stage in PIPELINE:
        if stopped:
            outcomes.append(StageOutcome(stage, "not run", keys[stage], reason=f"--until {until}"))
            continue
        if skip[stage] is not None:
            outcomes.append(StageOutcome(stage, "skipped", reason=skip[stage]))
        else:
            number = active.index(stage) + 1
            if console is not None:
                console.rule(f"[bold]{number}/{len(active)} {stage}[/]", align="left")
            began = time.perf_counter()
            result = _stage_runner(stage)(spec, cache, progress=progress)
            seconds = time.perf_counter() - began
            outcome = StageOutcome(
                stage,
                "cached" if result.cached else "ran",
                result.key,
                str(result.path),
                round(seconds, 3),
                dict(result.summary or {}),
            )
            outcomes.append(outcome)
            if console is not None:
                mark = "[cyan]cached[/]" if result.cached else "[green]done[/]"
                detail = _describe(outcome.summary, stage=stage)
                console.print(
                    f"  {mark} {stage} in {seconds:.1f} s" + (f"  [dim]{detail}[/]" if detail else "")
                )
        if stage == last:
            stopped = True
    return outcomes


# ---------------------------------------------------------------------------------------
# Display
# ---------------------------------------------------------------------------------------
def _fmt_metric(value: Any) -> str:
    if isinstance(value, Mapping) and "mean" in value:
        std = value.get("std")
        return f"{value['mean']:.4f}" + (f" ± {std:.4f}" if std else "")
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metrics_table(test: Mapping[str, Any], std: Mapping[str, Any] | None = None):
    """Test metrics as a small grid: one row per metric, one column per cut-off K."""
    from rich.table import Table

    names: list[str] = []
    cutoffs: list[str] = []
    for key in test:
        name, _, k = key.partition("@")
        if name not in names:
            names.append(name)
        if k and k not in cutoffs:
            cutoffs.append(k)
    cutoffs.sort(key=lambda k: int(k) if k.isdigit() else 0)
    table = Table(title="test metrics", title_justify="left")
    table.add_column("metric")
    for k in cutoffs:
        table.add_column(f"@{k}", justify="right")
    for name in names:
        cells = []
        for k in cutoffs:
            value = test.get(f"{name}@{k}")
            spread = (std or {}).get(f"{name}@{k}")
            text = "" if value is None else _fmt_metric(value)
            if spread:
                text += f" ± {spread:.4f}"
            cells.append(text)
        table.add_row(name, *cells)
    return table


def print_report(report: PipelineReport, console) -> None:
    """The final tables: stages (status, time, what was cached), metrics, teacher cost."""
    from rich.table import Table

    table = Table(title="slimkit run", title_justify="left")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("details", overflow="fold")
    styles = {"ran": "green", "cached": "cyan", "skipped": "dim", "not run": "dim"}
    for outcome in report.stages:
        detail = outcome.reason or _describe(outcome.summary, limit=5, stage=outcome.stage)
        time_text = f"{outcome.seconds:.1f} s" if outcome.status in ("ran", "cached") else ""
        table.add_row(
            outcome.stage,
            f"[{styles.get(outcome.status, '')}]{outcome.status}[/]",
            time_text,
            detail,
        )
    table.add_row("total", "", f"{report.seconds:.1f} s", "", style="bold")
    console.print(table)

    if report.teacher:
        cost = report.teacher.get("cost_usd")
        parts = [f"{k}={v}" for k, v in report.teacher.items() if k != "cost_usd"]
        cost_text = "unknown (no price for this model)" if cost is None else f"${cost:.4f}"
        console.print(f"Teacher cost: {cost_text}" + (f"  [dim]{', '.join(parts)}[/]" if parts else ""))

    test = (report.metrics or {}).get("test")
    if isinstance(test, Mapping) and test:
        console.print(metrics_table(test, report.metrics.get("test_std")))
        protocol = report.metrics.get("protocol")
        masked = report.metrics.get("masked_history")
        if protocol is not None:
            console.print(
                f"[dim]protocol: {protocol} ranking; items in the history "
                f"{'masked' if masked else 'not masked'}[/]"
            )
    for line in report.recomputed:
        console.print(f"[yellow]corrupted cache entry recomputed:[/] {line}")
    if report.forced:
        console.print(f"[dim]forced: dropped cached {', '.join(report.forced)}[/]")


# ---------------------------------------------------------------------------------------
# Status
# ---------------------------------------------------------------------------------------
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
    from slimkit.registry import component_versions
    from slimkit.stages import _STAGE_COMPONENTS

    kinds = _STAGE_COMPONENTS[stage]
    pairs = [p for p in spec.components() if p[0] in kinds]
    return {"slimkit": __version__, **component_versions(pairs)}


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
    old_versions = _read_json(folder / "versions.json") or {}
    now = _current_versions(spec, stage)
    changes = [
        f"version of {name}: {old_versions.get(name, '(unset)')} -> {version}"
        for name, version in now.items()
        if old_versions.get(name) != version
    ]
    return changes or ["an upstream stage's output changed"]


def pipeline_status(spec: PipelineSpec, cache: StageCache | None = None) -> list[dict[str, Any]]:
    """Per stage: ``cached``, ``stale`` (with the changed settings), ``missing`` or ``skipped``.

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
