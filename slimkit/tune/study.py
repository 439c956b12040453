"""``slimkit tune``: an Optuna study over spec values, one pipeline run per trial.

Every trial is the spec with the trial's values applied as ``--set`` overrides, run by
:func:`slimkit.pipeline.run_pipeline` over the shared stage cache: a stage whose inputs a
trial does not change (data, teach, distill, encode for a sweep over training values) comes
from the cache, so only what the trial changes runs. The objective is a validation metric
(never a test metric). The study lives in Optuna's SQLite storage (by default beside the
results, under the cache), so a sweep that stops resumes: ``--trials N`` is the total.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.pipeline import PIPELINE, run_pipeline
from slimkit.spec import PipelineSpec, load_spec
from slimkit.tune.results import best_spec_yaml, result_row, write_results
from slimkit.tune.space import SearchSpace, override

INTERRUPTED = "interrupted"


@dataclass
class TuneReport:
    """What one ``tune`` call did: the study, every trial's row, the best, the files."""

    study: str
    storage: str
    metric: str
    trials: list[dict[str, Any]]
    new_trials: int
    best: dict[str, Any] | None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "storage": self.storage, "metric": self.metric,
                "new_trials": self.new_trials, "best": self.best, "trials": self.trials,
                "files": self.files}


def study_name(spec: PipelineSpec, space: SearchSpace, metric: str) -> str:
    """``<spec file stem>-<8 hex>``: the digest covers the resolved spec (tracking aside),
    the space and the metric, so changing any of them starts a new study."""
    stem = Path(spec.source).stem if spec.source else "slimkit"
    resolved = {k: v for k, v in spec.to_dict().items() if k != "tracking"}
    blob = json.dumps({"spec": resolved, "space": space.to_dict(), "metric": metric},
                      sort_keys=True, default=str)
    return f"{stem}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def check_metric(metric: str) -> str:
    name, _, k = metric.partition("@")
    if name not in ("hit", "ndcg", "mrr") or not k.isdigit() or int(k) < 1:
        raise SlimkitError(f"--metric {metric!r}: expected a validation metric such as ndcg@10, "
                           "hit@10 or mrr@10 (the study maximises it on the validation split).")
    return metric


def _optuna():
    try:
        import optuna
    except ImportError as exc:
        raise SlimkitError(f"slimkit tune needs Optuna, which is not installed ({exc}).",
                           hint='Install it with: pip install "slimkit[tune]"') from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _lock(folder: Path):
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / "tune.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout as exc:
        raise SlimkitError(f"Another `slimkit tune` is running this study ({folder}).",
                           hint="Wait for it to finish, or give another --study name.") from exc
    return lock


def _trial_overrides(trial_params: dict[str, Any], spec: PipelineSpec, study: str,
                     number: int) -> list[str]:
    sets = [override(k, v) for k, v in trial_params.items()]
    if spec.tracking.backends:  # each trial its own tracked run, named after the study
        sets += [override("tracking.run_name", f"{study}-trial-{number:03d}"),
                 override("tracking.tags.tune_study", study),
                 override("tracking.tags.tune_trial", str(number))]
    return sets


def _interrupted(study) -> set[int]:
    return set(study.user_attrs.get(INTERRUPTED, []))


def _mark_interrupted(study, number: int, params: dict[str, Any]) -> None:
    """Trial ``number`` failed by interruption: remembered as such (it does not count
    toward the total) and queued again with the same values."""
    from optuna.trial import TrialState

    study.set_user_attr(INTERRUPTED, sorted(_interrupted(study) | {number}))
    study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
    study.enqueue_trial(params, skip_if_exists=False)


def _recover(study) -> None:
    """Trials left RUNNING by a killed sweep (this process holds the study's lock, so no
    other one runs them) are marked interrupted and queued again."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _mark_interrupted(study, trial.number, dict(trial.params))


def _counted(trial, interrupted: set[int]) -> bool:
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.number not in interrupted


def tune(
    space: SearchSpace,
    *,
    config: str | Path | None,
    overrides: list[str] | None = None,
    trials: int = 20,
    metric: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    out: Path | None = None,
    seed: int = 0,
    cache: StageCache | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = True,
) -> TuneReport:
    """Run the study until it holds ``trials`` finished trials (earlier sessions count);
    write ``results.csv``, ``results.json`` and ``best.yaml`` into ``out`` (by default
    ``<cache>/tune/<study>``). ``on_trial(row)`` is called after each new trial."""
    if trials < 1:
        raise SlimkitError(f"--trials must be at least 1 (got {trials}).")
    base = list(overrides or [])
    spec = load_spec(config, base)
    metric = check_metric(metric or spec.train.valid_metric)
    optuna = _optuna()
    cache = cache or StageCache()
    name = study or study_name(spec, space, metric)
    folder = Path(out) if out is not None else cache.root / "tune" / name
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    lock = _lock(folder)
    try:
        try:
            the_study = optuna.create_study(study_name=name, storage=url, direction="maximize",
                                            load_if_exists=True)
        except Exception as exc:
            raise SlimkitError(f"--storage {url}: cannot open the Optuna storage ({exc}).",
                               hint="Give an SQLAlchemy URL such as sqlite:///sweep.db.") from exc
        _recover(the_study)
        interrupted = _interrupted(the_study)
        done = sum(_counted(t, interrupted) for t in the_study.get_trials(deepcopy=False))
        # A fresh sampler seed per session: a resumed session must not draw the first
        # session's values again.
        the_study.sampler = optuna.samplers.TPESampler(seed=seed + len(the_study.trials))
        distributions = space.optuna_distributions()
        new = 0
        while done < trials:
            trial = the_study.ask(distributions)
            row = _run_trial(trial, the_study, spec, config, base, metric, name, cache, progress)
            new += 1
            done += 1
            if on_trial is not None:
                on_trial(row)
        interrupted = _interrupted(the_study)
        rows = [result_row(t, interrupted) for t in the_study.get_trials(deepcopy=False)]
        best = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["value"],
                   default=None)
        files = write_results(folder, rows)
        if best is not None:
            path = folder / "best.yaml"
            path.write_text(best_spec_yaml(config, base, best, name, metric), encoding="utf-8")
            files["best_spec"] = str(path)
        files["storage"] = url
        return TuneReport(study=name, storage=url, metric=metric, trials=rows, new_trials=new,
                          best=best, files=files)
    finally:
        lock.release()


def _run_trial(trial, study, spec, config, base, metric, name, cache, progress):
    """Run one asked trial through the pipeline and tell the study how it went."""
    from optuna.trial import TrialState

    started = time.perf_counter()
    params = dict(trial.params)
    trial.set_user_attr("overrides", [override(k, v) for k, v in params.items()])
    try:
        trial_spec = load_spec(config, base + _trial_overrides(params, spec, name, trial.number))
        loud = progress and _runs_more_than_training(trial_spec, cache)
        report = run_pipeline(trial_spec, cache, progress=loud)
    except KeyboardInterrupt:
        _mark_interrupted(study, trial.number, params)  # the next session runs it first
        raise
    except SlimkitError as exc:  # this trial's values do not work: the sweep goes on
        trial.set_user_attr("error", " ".join([exc.message, *exc.problems]))
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
        study.tell(trial, state=TrialState.FAIL)
        return result_row(study.get_trials(deepcopy=False)[trial.number])
    except Exception as exc:
        # A bug (or out of memory): recorded as failed, so the next session does not queue
        # it again as interrupted, then raised with its traceback.
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
        study.tell(trial, state=TrialState.FAIL)
        raise
    metrics = report.metrics or {}
    valid, test = metrics.get("valid") or {}, metrics.get("test") or {}
    trial.set_user_attr("valid", valid)
    trial.set_user_attr("test", test)
    trial.set_user_attr("ran", [s.stage for s in report.stages if s.status == "ran"])
    trial.set_user_attr("cached", [s.stage for s in report.stages if s.status == "cached"])
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
    if metric not in valid:
        trial.set_user_attr("error", f"the run reports no validation {metric} "
                            f"(eval.ks has no {metric.split('@')[1]})")
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, float(valid[metric]))
    return result_row(study.get_trials(deepcopy=False)[trial.number])


def _runs_more_than_training(spec: PipelineSpec, cache: StageCache) -> bool:
    """Whether a stage before train has no cached output (its progress is worth showing)."""
    from slimkit.pipeline import Pipeline, needed_stages

    pipeline = Pipeline(spec, cache, progress=False)
    skip = needed_stages(spec)
    return any(skip[s] is None and cache.get(s, pipeline.keys[s]) is None
               for s in PIPELINE if s != "train")
