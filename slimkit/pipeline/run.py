"""``slimkit run``: every stage the spec needs, in order, each from the cache when its
inputs are unchanged; a report of what ran, what was cached, time, cost and metrics.

Stages cache their per-item work (one LLM response, one student rationale, one vector) as
it finishes, so an interrupted run loses at most the unfinished batch of the stage that
was running; the next run resumes there.
"""

from __future__ import annotations

import time
from pathlib import Path

from slimkit.artifacts.trained import read_metrics
from slimkit.cache import StageCache
from slimkit.console import quiet_libraries, stderr_console
from slimkit.errors import SlimkitError, did_you_mean
from slimkit.pipeline.keys import PIPELINE, needed_stages
from slimkit.pipeline.report import (
    PipelineReport,
    StageOutcome,
    describe,
    print_report,
    teacher_cost,
)
from slimkit.pipeline.runner import Pipeline
from slimkit.spec import PipelineSpec


def check_stage_name(name: str, option: str) -> str:
    """``name`` when it is a pipeline stage, else a SlimkitError naming the option."""
    if name not in PIPELINE:
        raise SlimkitError(
            f"{option}: unknown stage '{name}'.{did_you_mean(name, PIPELINE)} "
            f"Stages, in order: {', '.join(PIPELINE)}."
        )
    return name


def run_pipeline(
    spec: PipelineSpec,
    cache: StageCache | None = None,
    *,
    until: str | None = None,
    force: str | None = None,
    progress: bool = True,
    allow_partial: bool = False,
) -> PipelineReport:
    """Run every stage the spec needs, each from the cache when its inputs are unchanged.

    ``until`` stops after that stage; ``force`` drops the cached outputs of that stage and
    of every stage after it first, so they are recomputed (per-request LLM responses stay
    cached: ``slimkit cache clear --llm`` removes those). When the teacher failed for some
    users, the run stops after teach (:class:`~slimkit.errors.IncompleteStageError`, exit
    code 1) unless ``allow_partial``: then the later stages use the answered users and are
    marked as built on an incomplete teach (rebuilt once every user is answered). When the
    spec's ``tracking`` section names backends, the run is logged there
    (:mod:`slimkit.tracking`).
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
    pipeline = Pipeline(spec, cache, progress=progress, allow_partial=allow_partial)
    keys = pipeline.keys
    console = stderr_console() if progress else None
    start = time.perf_counter()
    corrupt_before = len(StageCache.corruption_reports)

    forced: list[str] = []
    if force is not None:
        for stage in PIPELINE[PIPELINE.index(force) :]:
            if cache.manifest(stage, keys[stage]) is not None or cache.path(stage, keys[stage]).exists():
                cache.delete(stage, keys[stage])
                forced.append(stage)

    preflight(pipeline, needed_stages(spec), until)
    with track(spec, cache) as tracker:
        with quiet_libraries(progress):
            outcomes = _run_stages(pipeline, needed_stages(spec), until, console)

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
            report.teacher = teacher_cost(teach.summary)
        train = report.stage("train")
        if train.path:
            report.metrics = read_metrics(Path(train.path))
        if tracker is not None:
            tracker.finish(report.to_dict())
    if console is not None:
        print_report(report, console)
        if tracker is not None:
            console.print(f"[dim]tracked: {tracker.where()}[/]")
    return report


def preflight(pipeline: Pipeline, skip: dict[str, str | None], until: str | None) -> None:
    """Refuse, before any stage runs, what a later stage of this run would refuse on this
    machine: a student backend or precision it lacks (vLLM, 4-bit QLoRA) and
    ``train.device: cuda`` without a GPU, so nothing is paid for (a teacher) first."""
    spec = pipeline.spec
    last = PIPELINE.index(until) if until is not None else len(PIPELINE) - 1
    todo = [s for s in PIPELINE[: last + 1] if skip[s] is None and pipeline.cached(s) is None]
    if "distill" in todo:
        from slimkit.factories import build_student

        student = build_student(spec.student)  # its constructor checks the backend (vLLM)
        check = getattr(student, "check_environment", None)
        if check is not None:
            check()
    if "train" in todo and spec.train.device == "cuda":
        from slimkit.runtime import resolve_device

        resolve_device("cuda")


def run_stage_tracked(spec: PipelineSpec, stage: str, cache: StageCache | None = None, *,
                      progress: bool = True):
    """``Pipeline(spec).run(stage)`` (upstream stages first, each from the cache when
    unchanged), tracked like :func:`run_pipeline` when the spec names tracking backends:
    the stages this call touched, their times and summaries, the metrics after train."""
    cache = cache or StageCache()
    pipeline = Pipeline(spec, cache, progress=progress)
    preflight(pipeline, needed_stages(spec), stage)  # as `run` does: refused before upstream work
    start = time.perf_counter()
    with track(spec, cache) as tracker:
        result = pipeline.run(stage)
        if tracker is not None:
            needed = needed_stages(spec)
            upto = PIPELINE[: PIPELINE.index(stage) + 1]
            touched = [pipeline.run(s) for s in upto
                       if needed[s] is None and pipeline.cached(s) is not None]
            report = PipelineReport(
                spec=spec.source, cache=str(cache.root),
                seconds=round(time.perf_counter() - start, 3),
                stages=[StageOutcome(r.stage, "cached" if r.cached else "ran", r.key, str(r.path),
                                     round(r.seconds, 3), dict(r.summary or {})) for r in touched],
            )
            if any(r.stage == "teach" for r in touched):
                report.teacher = teacher_cost(report.stage("teach").summary)
            if stage == "train":
                report.metrics = read_metrics(result.path)
            tracker.finish(report.to_dict())
    return result


def track(spec: PipelineSpec, cache: StageCache):
    """The run tracked on the spec's ``tracking.backends`` (a context giving None when
    there are none); logs go to ``tracking.dir``, by default ``<cache>/tracking``."""
    from slimkit.tracking import tracked_run

    section = spec.tracking
    experiment = section.experiment or (Path(spec.source).stem if spec.source else "slimkit")
    return tracked_run(
        section.backends,
        folder=Path(section.dir).expanduser() if section.dir else cache.root / "tracking",
        experiment=experiment,
        spec=spec.to_dict(),
        valid_metric=spec.train.valid_metric,
        seeds=len(spec.eval.seeds),
        run_name=section.run_name,
        mlflow_uri=section.mlflow_uri,
        tags={"slimkit.spec": spec.source or "", **section.tags},
    )


def _run_stages(pipeline: Pipeline, skip: dict[str, str | None], until: str | None,
                console) -> list[StageOutcome]:
    keys = pipeline.keys
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
            result = pipeline.run(stage)
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
                detail = describe(outcome.summary, stage=stage)
                console.print(
                    f"  {mark} {stage} in {seconds:.1f} s" + (f"  [dim]{detail}[/]" if detail else "")
                )
        if stage == last:
            stopped = True
    return outcomes


