"""A tracked run: the backends the spec names, opened before the stages run and closed
with the run's status; per-epoch figures arrive live through the trainer's epoch hook."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError
from slimkit.tracking.figures import epoch_figures, run_figures, run_tags
from slimkit.tracking.secrets import safe_params, scrub, secret_values

BACKENDS = ("tensorboard", "mlflow")


class Tracker:
    """Fans each call out to every backend of one run."""

    def __init__(self, backends: list[Any], *, valid_metric: str, per_seed: bool):
        self.backends = backends
        self.valid_metric = valid_metric
        self.per_seed = per_seed
        self.epochs_logged = 0
        self.final: dict[str, float] = {}

    def where(self) -> str:
        """Where this run is logged, for the last line of ``slimkit run``."""
        return "; ".join(backend.where() for backend in self.backends)

    def log_params(self, params: Mapping[str, Any]) -> None:
        for backend in self.backends:
            backend.log_params(params)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for backend in self.backends:
            backend.set_tags(tags)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        for backend in self.backends:
            backend.log_metrics(metrics, step)

    def log_text(self, name: str, text: str) -> None:
        for backend in self.backends:
            backend.log_text(name, text)

    def epoch(self, epoch: int, figures: Mapping[str, float]) -> None:
        """One training epoch (the trainer's hook): loss, validation metric, seconds."""
        self.log_metrics(epoch_figures(figures, self.valid_metric, per_seed=self.per_seed), epoch)
        self.epochs_logged += 1

    def finish(self, report: Mapping[str, Any]) -> None:
        """A finished run's report (``PipelineReport.to_dict()``): stage times and cache
        hits, teacher spend, distillation quality, metrics; a cached train stage's epochs
        come from its saved history."""
        metrics = report.get("metrics") or {}
        if not self.epochs_logged:
            for run in metrics.get("seeds") or []:
                for row in run.get("history") or []:
                    self.epoch(int(row["epoch"]), {**row, "seed": run.get("seed", 0)})
        self.final = run_figures(report)
        self.log_metrics(self.final, 0)
        self.set_tags(run_tags(report))

    def close(self, status: str) -> None:
        final = {k: v for k, v in self.final.items() if k.startswith(("valid/", "test/"))}
        errors = []
        for backend in self.backends:
            try:
                backend.close(status, final)
            except Exception as exc:  # noqa: BLE001 - one backend failing must not hide the others
                errors.append(f"{backend.name}: {exc}")
        if errors:
            raise SlimkitError("Closing the tracked run failed: " + "; ".join(errors))


def _unique_run_name(folder: Path, name: str | None) -> str:
    base = name or time.strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while (folder / candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def open_backends(backends: list[str], *, folder: Path, experiment: str, run_name: str | None,
                  mlflow_uri: str | None, tags: Mapping[str, str]) -> list[Any]:
    """The backends, opened (a missing library: SlimkitError naming the extra)."""
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise SlimkitError(f"tracking.backends: unknown backend(s) {unknown}; "
                           f"available: {', '.join(BACKENDS)}.")
    name = _unique_run_name(folder / "tensorboard" / experiment, run_name)
    opened: list[Any] = []
    try:
        for backend in backends:
            opened.append(_open(backend, folder=folder, experiment=experiment, name=name,
                                mlflow_uri=mlflow_uri, tags=tags))
    except BaseException:
        for backend in opened:  # a later backend failed: leave no run half open
            backend.close("FAILED", {})
        raise
    return opened


def _open(backend: str, *, folder: Path, experiment: str, name: str, mlflow_uri: str | None,
          tags: Mapping[str, str]) -> Any:
    if backend == "tensorboard":
        from slimkit.tracking.tensorboard_backend import TensorBoardBackend

        return TensorBoardBackend(folder / "tensorboard" / experiment / name)
    from slimkit.tracking.mlflow_backend import MlflowBackend

    local = mlflow_uri is None
    if local:
        folder.mkdir(parents=True, exist_ok=True)
    return MlflowBackend(
        uri=mlflow_uri or f"sqlite:///{(folder / 'mlflow.db').resolve()}",
        experiment=experiment, run_name=name, tags=tags,
        artifact_root=(folder / "mlflow-artifacts").resolve() if local else None,
    )


@contextmanager
def tracked_run(
    backends: list[str],
    *,
    folder: Path,
    experiment: str,
    spec: Mapping[str, Any],
    valid_metric: str,
    seeds: int = 1,
    run_name: str | None = None,
    mlflow_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Tracker | None]:
    """A run on ``backends`` (None when empty) for the block: the spec's values (secrets
    removed) as parameters and as YAML, every training epoch as it ends (through
    :func:`slimkit.training.progress.on_epoch_end`); closed FINISHED, FAILED or KILLED."""
    if not backends:
        yield None
        return
    import yaml

    from slimkit.training.progress import on_epoch_end

    secrets = secret_values()
    tags = {k: scrub(str(v), secrets) for k, v in (tags or {}).items()}
    tracker = Tracker(open_backends(list(backends), folder=folder, experiment=experiment,
                                    run_name=run_name, mlflow_uri=mlflow_uri, tags=tags),
                      valid_metric=valid_metric, per_seed=seeds > 1)
    params = safe_params(spec)
    tracker.log_params(params)
    tracker.set_tags(tags)
    tracker.log_text("spec.yaml", yaml.safe_dump(_nest(params), sort_keys=False))
    status = "FAILED"
    try:
        with on_epoch_end(tracker.epoch):
            yield tracker
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.close(status)


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the logged spec, readable again)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out
