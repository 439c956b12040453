"""CLI: exit codes, --json output, error panels, and the import budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from slimkit.cli import app

runner = CliRunner()
HEAVY = ("torch", "transformers", "litellm", "sentence_transformers", "peft")


def run(*args: str):
    """Run the CLI through its real entry point in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "slimkit", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "teach", "distill", "train", "recommend", "run", "plugins", "config", "cache"):
        assert command in result.output


@pytest.mark.parametrize("args", [["--help"], ["plugins", "list"], ["plugins", "list", "--json"]])
def test_import_budget(args):
    code = (
        "import sys, runpy; sys.argv = ['slimkit', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('slimkit', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert "HEAVY=" in result.stderr
    assert result.stderr.rsplit("HEAVY=", 1)[1].strip() == "", result.stderr


def test_help_is_fast():
    start = time.perf_counter()
    result = run("--help")
    assert result.returncode == 0
    # Generous bound for a shared CI machine; the import budget test is the real guard.
    assert time.perf_counter() - start < 5


def test_config_validate_ok(repo):
    result = run("config", "validate", str(repo / "examples" / "quickstart.yaml"))
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout and "teacher=local" in result.stdout


def test_config_typo_exits_2_with_path_and_suggestion(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("backbone:\n  kind: sasrec\n  hiden_size: 8\n")
    result = run("config", "validate", str(bad))
    assert result.returncode == 2
    assert "backbone.hiden_size" in result.stderr and "hidden_size" in result.stderr
    assert "Traceback" not in result.stderr


def test_set_override_with_bad_kind_exits_2():
    result = run("config", "validate", "--set", "fusion.kind=slimm")
    assert result.returncode == 2 and "slim" in result.stderr


def test_missing_config_file_exits_2():
    result = run("config", "show", "-c", "nope.yaml")
    assert result.returncode == 2 and "not found" in result.stderr


def test_config_show_json_is_pure_json(repo):
    result = run("config", "show", str(repo / "examples" / "quickstart.yaml"), "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert list(data)[0] == "dataset"


def test_config_schema_is_json():
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    assert "properties" in json.loads(result.output)


def test_plugins_list_json_lists_builtins():
    result = run("plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"kind", "name", "distribution", "version", "status", "error"} <= set(rows[0])
    names = {(r["kind"], r["name"]) for r in rows}
    for pair in [("backbones", "sasrec"), ("fusions", "slim"), ("teachers", "litellm"),
                 ("prompts", "slim-cot"), ("datasets", "movielens-100k")]:
        assert pair in names
    builtin = [r for r in rows if r["distribution"] == "slimkit"]
    assert all(r["status"] == "ok" for r in builtin)


def test_cache_info_on_empty_cache_json(tmp_path):
    result = run("--cache-dir", str(tmp_path / "c"), "cache", "info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["bytes"] == 0 and info["stages"]["data"]["entries"] == 0


def test_cache_clear_unknown_stage_exits_2():
    result = run("cache", "clear", "--stage", "trian")
    assert result.returncode == 2 and "train" in result.stderr


def test_unknown_command_exits_2():
    assert run("frobnicate").returncode == 2


def test_installed_console_script_runs():
    import os
    import shutil
    import sysconfig

    # The running interpreter's scripts folder first: a venv need not be activated.
    exe = shutil.which("slimkit", path=os.pathsep.join([sysconfig.get_path("scripts"),
                                                         os.environ.get("PATH", "")]))
    assert exe, "the slimkit console script is not installed"
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("slimkit "), result.stderr
