"""Helpers for tests that pip-install real packages (plugins, scaffolds, docs)."""

from __future__ import annotations

import importlib.util


def pip_build_env() -> dict[str, str]:
    """Build offline with this environment's setuptools when it can build wheels itself
    (>= 70.1, or with `wheel`); otherwise let pip fetch a build backend from the index."""
    try:
        import setuptools
    except ImportError:
        return {}
    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())
    if version >= (70, 1) or importlib.util.find_spec("wheel") is not None:
        return {"PIP_NO_BUILD_ISOLATION": "0", "PIP_NO_INDEX": "1"}
    return {}
