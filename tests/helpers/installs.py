"""Helpers for tests that pip-install real packages (plugins, scaffolds, docs)."""

from __future__ import annotations

import importlib.util
import site
import subprocess
import sys
from pathlib import Path


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


def make_child_venv(path: Path) -> Path:
    """A virtual environment at `path` that sees this environment's packages; its python.

    What it installs stays in it (it comes first on its own sys.path), while slimkit,
    torch, pytest, pip and setuptools come from the environment running the tests.
    `--system-site-packages` cannot do that when the tests themselves run in a venv: it
    exposes the base interpreter's packages, not this venv's. A `.pth` file that calls
    `site.addsitedir` on this environment's site directories works in both cases, and
    also reads their own `.pth` files (editable installs such as slimkit's).
    """
    # --without-pip: `python -m pip` finds this environment's pip through the .pth.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    child_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip()
    sites = site.getsitepackages()
    if site.ENABLE_USER_SITE:
        sites.append(site.getusersitepackages())  # `pip install --user` on a system python
    lines = [f"import site; site.addsitedir({d!r})" for d in sites if Path(d).is_dir()]
    (Path(child_site) / "_outer_environment.pth").write_text("\n".join(lines) + "\n")
    return python
