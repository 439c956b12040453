"""``slimkit tune``: Optuna sweeps over spec values that reuse every cached stage.

* :mod:`.space`: the search-space file (dotted spec keys -> distributions), validated
  against the spec;
* :mod:`.study`: :func:`tune`, one pipeline run per trial, resumable through Optuna's
  SQLite storage;
* :mod:`.results`: the results table (CSV, JSON, rich) and the best spec as YAML.

Optuna is imported only when a study runs (``pip install "slimkit[tune]"``).
"""

from slimkit.tune.space import SearchSpace, load_space
from slimkit.tune.study import TuneReport, study_name, tune

__all__ = ["SearchSpace", "TuneReport", "load_space", "study_name", "tune"]
