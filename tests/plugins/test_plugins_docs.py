"""docs/plugins.md cannot go stale: every code block in it is run here.

* ```python blocks run in order in one namespace (in-process, in a temporary folder);
* ```toml blocks must parse and declare entry points in slimkit's groups;
* ```yaml blocks must validate as pipeline specs (with the example plugins installed);
* ```bash blocks run in order in one shell, inside a virtual environment that sees this
  environment's packages, so `python -m pip install -e` installs into the venv only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import tomllib
import yaml
from helpers import REPO
from helpers.installs import make_child_venv, pip_build_env

from slimkit.registry import KINDS, reset_registries
from slimkit.spec import validate_spec

DOC = REPO / "docs" / "plugins.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)




def blocks(language: str) -> list[str]:
    return [body for lang, body in _BLOCK.findall(DOC.read_text(encoding="utf-8"))
            if lang == language]


def test_the_guide_has_blocks_of_every_kind_and_no_untested_language():
    languages = {lang for lang, _ in _BLOCK.findall(DOC.read_text(encoding="utf-8"))}
    assert languages <= {"python", "bash", "toml", "yaml"}, languages
    assert len(blocks("python")) >= 5 and blocks("bash") and blocks("toml") and blocks("yaml")


def test_python_blocks_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "plugins_doc"}
    try:
        for number, code in enumerate(blocks("python"), start=1):
            exec(compile(code, f"docs/plugins.md python block {number}", "exec"), namespace)
    finally:
        reset_registries()  # drop the runtime registrations the guide makes
    out = capsys.readouterr().out
    assert "Did you mean 'hidden_size'" in out
    assert "'save/load'" in out


def test_toml_blocks_declare_slimkit_entry_points():
    groups = {f"slimkit.{kind}" for kind in KINDS}
    for text in blocks("toml"):
        data = tomllib.loads(text)
        entry_points = data["project"]["entry-points"]
        assert set(entry_points) <= groups
        for group in entry_points.values():
            for target in group.values():
                assert re.fullmatch(r"[\w.]+:[\w.]+", target), target


def test_yaml_blocks_validate():
    specs = [validate_spec(yaml.safe_load(text)) for text in blocks("yaml")]
    assert specs, "docs/plugins.md has no yaml block to check"
    assert all(spec.to_dict()["dataset"]["kind"] for spec in specs)


@pytest.mark.slow
def test_bash_blocks_run_in_a_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    # The venv sees this environment's packages (slimkit, torch, pytest, pip) but
    # nothing it installs leaks out.
    bin_dir = make_child_venv(venv).parent
    shim = bin_dir / "slimkit"
    shim.write_text(f"#!{bin_dir / 'python'}\nfrom slimkit.cli import main\nmain()\n")
    shim.chmod(0o755)
    script = "set -euo pipefail\n" + "\n".join(blocks("bash"))
    assert not re.search(r"^\s*pip ", script, re.MULTILINE), "use `python -m pip` in the guide"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PIP_DISABLE_PIP_VERSION_CHECK="1", VIRTUAL_ENV=str(venv), **pip_build_env())
    env.pop("SLIMKIT_LOAD_PLUGINS", None)
    env.pop("PYTHONPATH", None)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "passed" in done.stdout
    assert '"name": "my-model"' in done.stdout
    wheel = work / "plugins-dev/slimkit-my-model/dist/slimkit_my_model-0.1.0-py3-none-any.whl"
    assert wheel.exists()
    # Nothing was installed into this environment.
    leaked = subprocess.run([sys.executable, "-m", "pip", "show", "slimkit-my-model"],
                            capture_output=True, text=True)
    assert leaked.returncode != 0
