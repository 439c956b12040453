"""Shared test fixtures: every test gets its own stage cache.

Fetched datasets and models (minutes to download and convert) are shared with the
user's slimkit data and model dirs, so they are fetched once per machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import REPO

# Before any slimkit or litellm import in the test process.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from slimkit.paths import data_dir, model_dir

SHARED_DATA_DIR = str(data_dir())
SHARED_MODEL_DIR = str(model_dir())


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """A fresh stage cache per test; data and model dirs shared across the session."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(cache))
    monkeypatch.setenv("SLIMKIT_DATA_DIR", SHARED_DATA_DIR)
    monkeypatch.setenv("SLIMKIT_MODEL_DIR", SHARED_MODEL_DIR)
    return cache


@pytest.fixture
def repo() -> Path:
    return REPO
