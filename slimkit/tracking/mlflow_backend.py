"""Logging to MLflow: by default a local SQLite store (``<tracking dir>/mlflow.db``, with
artifacts beside it), or any tracking URI (an MLflow server).

MLflow 3 refuses its plain file store (maintenance mode), so the local default is the
SQLite file MLflow itself recommends; ``mlflow ui --backend-store-uri sqlite:///...``
shows it.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path

from slimkit.tracking.extra import missing_extra

_INVALID = re.compile(r"[^\w./\- :]")
MAX_PARAM_CHARS = 6000


@functools.lru_cache(maxsize=4)
def _client(uri: str):
    """One client per URI per process: opening a SQLite store checks its schema (about 2 s
    here), which a sweep would otherwise pay once per trial."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def metric_name(name: str) -> str:
    """MLflow's allowed characters: ``ndcg@10`` becomes ``ndcg_at_10``."""
    return _INVALID.sub("_", name.replace("@", "_at_"))


class MlflowBackend:
    """One MLflow run in ``experiment``."""

    name = "mlflow"

    def __init__(self, *, uri: str, experiment: str, run_name: str, tags: Mapping[str, str],
                 artifact_root: Path | None):
        try:
            import mlflow.tracking  # noqa: F401
        except ImportError as exc:
            raise missing_extra("MLflow", "mlflow", exc) from exc
        for name in ("mlflow", "alembic"):  # table creation chatter on the first run
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = _client(uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = (artifact_root / experiment).as_uri() if artifact_root else None
            experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        self.uri = uri
        self.run = self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
        self.run_id = self.run.info.run_id

    def where(self) -> str:
        return f"mlflow ui --backend-store-uri {self.uri} (run {self.run_id})"

    def log_params(self, params: Mapping[str, str | int | float | bool]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(metric_name(k), float(v), now, step) for k, v in metrics.items()]
        for start in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[start : start + 1000])

    def log_text(self, name: str, text: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def close(self, status: str, final: Mapping[str, float]) -> None:
        self.client.set_terminated(self.run_id, status)
