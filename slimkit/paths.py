"""Where slimkit keeps its cache, fetched data and fetched models.

Each directory can be set by an environment variable; ``SLIMKIT_HOME`` moves all three.
"""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """Root of slimkit's files: ``$SLIMKIT_HOME``, else ``$XDG_CACHE_HOME/slimkit``."""
    if os.environ.get("SLIMKIT_HOME"):
        return Path(os.environ["SLIMKIT_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "slimkit"


def cache_dir() -> Path:
    """Stage outputs and per-request LLM caches: ``$SLIMKIT_CACHE_DIR`` or ``<home>/cache``."""
    env = os.environ.get("SLIMKIT_CACHE_DIR")
    return Path(env).expanduser() if env else home_dir() / "cache"


def data_dir() -> Path:
    """Fetched datasets: ``$SLIMKIT_DATA_DIR`` or ``<home>/data``."""
    env = os.environ.get("SLIMKIT_DATA_DIR")
    return Path(env).expanduser() if env else home_dir() / "data"


def model_dir() -> Path:
    """Fetched model weights: ``$SLIMKIT_MODEL_DIR`` or ``<home>/models``."""
    env = os.environ.get("SLIMKIT_MODEL_DIR")
    return Path(env).expanduser() if env else home_dir() / "models"
