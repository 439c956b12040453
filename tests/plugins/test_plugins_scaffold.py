"""`slimkit plugins new`: the scaffolded packages install with pip install -e and pass
their own tests as generated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.installs import make_child_venv, pip_build_env
from typer.testing import CliRunner

from slimkit.cli import app, main
from slimkit.errors import SlimkitError
from slimkit.plugins import check_backbone, check_prompt
from slimkit.scaffold import new_plugin


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def _main(capsys, *args: str) -> tuple[int, str]:
    """Run the console entry point (error panels, exit codes) in-process."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    text = (captured.out + captured.err).replace("│", " ")
    return info.value.code, " ".join(text.split())  # panels wrap lines


def test_new_backbone_writes_a_package(tmp_path):
    result = _invoke("plugins", "new", "backbone", "my-model", "--dir", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert made["distribution"] == "slimkit-my-model" and made["package"] == "slimkit_my_model"
    assert made["entry_points"] == ["slimkit.backbones: my-model = slimkit_my_model:MY_MODEL"]
    root = tmp_path / "slimkit-my-model"
    assert sorted(made["files"]) == sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
    )
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."slimkit.backbones"]' in pyproject
    assert 'my-model = "slimkit_my_model:MY_MODEL"' in pyproject
    model = (root / "src/slimkit_my_model/model.py").read_text()
    assert "# (B, L, D)" in model and "def encode_embedded" in model


def test_generated_code_meets_the_contracts_in_process(tmp_path, monkeypatch):
    backbone = new_plugin("backbone", "pool-rec", tmp_path)
    prompt = new_plugin("prompt", "terse", tmp_path)
    for made in (backbone, prompt):
        monkeypatch.syspath_prepend(str(made.root / "src"))
    from slimkit_pool_rec import POOL_REC, PoolRecParams
    from slimkit_pool_rec.model import PoolRec
    from slimkit_terse import STUDENT, TEACHER

    assert POOL_REC.params is PoolRecParams and POOL_REC.load() is PoolRec
    assert all(f.description for n, f in PoolRecParams.model_fields.items() if n != "kind")
    check_backbone(PoolRec, hidden_size=8)
    check_backbone(PoolRec, hidden_size=16, dropout=0.0, max_seq_len=3)
    check_prompt(TEACHER, role="teacher")
    check_prompt(STUDENT, role="student")
    for module in [m for m in sys.modules if m.startswith(("slimkit_pool_rec", "slimkit_terse"))]:
        del sys.modules[module]


@pytest.mark.parametrize(
    "args, message",
    [
        (["backbone", "My_Model"], "is not valid"),
        (["backbone", "sasrec"], "already registered by slimkit"),
        (["prompt", "slim"], "prompt named 'slim-student' is already registered"),
        (["prompt", "catalog"], "registered by slimkit-prompts-catalog"),
        (["prompt", "grocery"], None),
        (["fusion", "x"], "No such command"),
    ],
)
def test_new_rejects_bad_names(tmp_path, capsys, args, message):
    code, output = _main(capsys, "plugins", "new", *args, "--dir", str(tmp_path))
    if message is None:
        assert code == 0, output
        return
    assert code == 2 and message in output and "Traceback" not in output


def test_new_refuses_to_overwrite(tmp_path):
    new_plugin("backbone", "my-model", tmp_path)
    with pytest.raises(SlimkitError, match="already exists and is not empty"):
        new_plugin("backbone", "my-model", tmp_path)
    assert new_plugin("backbone", "slimkit-other", tmp_path).distribution == "slimkit-other"


@pytest.mark.slow
def test_scaffolded_packages_install_and_pass_their_tests(tmp_path):
    """pip install -e into a venv (never this environment), then the packages' own tests."""
    backbone = new_plugin("backbone", "my-model", tmp_path)
    prompt = new_plugin("prompt", "terse", tmp_path)
    python = str(make_child_venv(tmp_path / "venv"))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", **pip_build_env())
    env.pop("SLIMKIT_LOAD_PLUGINS", None)
    env.pop("PYTHONPATH", None)

    def run(*args: str, cwd: Path = tmp_path):
        done = subprocess.run([python, *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    run("-m", "pip", "install", "-e", str(backbone.root), "-e", str(prompt.root))
    for made in (backbone, prompt):
        out = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=made.root)
        assert " passed" in out and "failed" not in out
    rows = {r["name"]: r for r in json.loads(run("-m", "slimkit", "plugins", "list", "--json"))}
    assert rows["my-model"]["distribution"] == "slimkit-my-model"
    assert rows["my-model"]["status"] == "ok" and rows["terse-teacher"]["status"] == "ok"
    run("-m", "slimkit", "config", "validate", "--set", "backbone.kind=my-model",
        "--set", "prompt.teacher=terse-teacher", "--set", "prompt.student=terse-student")
