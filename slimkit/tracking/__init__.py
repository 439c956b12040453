"""Run tracking: a pipeline run's figures logged to TensorBoard and/or MLflow.

The spec's ``tracking`` section picks the backends (``backends: [tensorboard, mlflow]``),
the folder (default ``<cache dir>/tracking``), the experiment and the run name; it never
enters a cache key. Logged: the spec's values (secrets removed, :mod:`.secrets`), every
training epoch's loss and validation metric as it ends, each stage's time and whether it
came from the cache, the teacher's spend, the distillation quality figures and the final
metrics (:mod:`.figures`). The libraries come with ``pip install "slimkit[track]"`` and are
imported only when a backend is used.
"""

from slimkit.tracking.extra import EXTRA_HINT
from slimkit.tracking.run import BACKENDS, Tracker, tracked_run

__all__ = ["BACKENDS", "EXTRA_HINT", "Tracker", "tracked_run"]
