"""`slimkit cache clear` / `cache info`: asks, lists what goes, keeps paid LLM answers."""

from __future__ import annotations

import json
import subprocess
import sys

from slimkit.cache import StageCache


def _cache_with_everything(root) -> StageCache:
    cache = StageCache(root)
    with cache.write("data", "a", {}) as out:
        (out / "x").write_text("1")
    with cache.write("train", "b", {}) as out:
        (out / "y").write_text("2")
    for i in range(3):
        cache.records("llm")[f"chat:{i}"] = {"text": "Step 1: a", "cost_usd": 0.25}
    cache.records("vectors")["v"] = [0.0, 1.0]
    cache.close()
    return cache


def run(*args: str, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "slimkit", *args], check=False, capture_output=True, text=True,
                          timeout=120, input=stdin)


def test_clear_without_a_terminal_asks_for_yes_and_deletes_nothing(tmp_path):
    _cache_with_everything(tmp_path / "c")
    result = run("--cache-dir", str(tmp_path / "c"), "cache", "clear")
    assert result.returncode == 2, result.stderr
    assert "--yes" in result.stderr and "Traceback" not in result.stderr
    # It said what it would delete, with counts and sizes, and that LLM answers stay.
    assert "stage outputs: data: 1 entries" in result.stderr
    assert "records: vectors: 1 entries" in result.stderr
    assert "Kept: 3 cached LLM answers ($0.7500 paid)" in result.stderr
    info = StageCache(tmp_path / "c").info()
    assert info["stages"]["data"]["entries"] == 1 and info["records"]["llm"]["entries"] == 3


def test_clear_yes_keeps_paid_answers_unless_named(tmp_path):
    root = tmp_path / "c"
    _cache_with_everything(root)
    result = run("--cache-dir", str(root), "cache", "clear", "--yes")
    assert result.returncode == 0, result.stderr
    info = StageCache(root).info()
    assert all(row["entries"] == 0 for row in info["stages"].values())
    assert "vectors" not in info["records"]
    assert info["records"]["llm"] == {"entries": 3, "bytes": info["records"]["llm"]["bytes"],
                                      "paid": True, "cost_usd": 0.75}
    # One stage only: paid answers untouched too.
    _cache_with_everything(root)
    assert run("--cache-dir", str(root), "cache", "clear", "train", "--yes").returncode == 0
    info = StageCache(root).info()
    assert info["stages"]["train"]["entries"] == 0 and info["stages"]["data"]["entries"] == 1
    assert info["records"]["llm"]["entries"] == 3
    # Asked by name, they go (and the listing says they are paid).
    result = run("--cache-dir", str(root), "cache", "clear", "--llm", "--yes")
    assert result.returncode == 0, result.stderr
    assert "PAID LLM ANSWERS" in result.stderr
    assert "llm" not in StageCache(root).info()["records"]


def test_clear_asks_on_a_terminal_and_no_keeps_everything(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import slimkit.cli.cache as cache_cli
    from slimkit.cli import app

    root = tmp_path / "c"
    _cache_with_everything(root)

    class Tty:
        @staticmethod
        def isatty():
            return True

    # CliRunner swaps sys.stdin for a pipe; the command asks only when stdin is a terminal.
    monkeypatch.setattr(cache_cli, "sys", type("FakeSys", (), {"stdin": Tty}))
    result = CliRunner().invoke(app, ["--cache-dir", str(root), "cache", "clear"], input="n\n")
    assert "Delete these?" in result.output and result.exit_code == 1
    assert StageCache(root).info()["stages"]["data"]["entries"] == 1


def test_info_json_shows_paid_answers_and_their_cost(tmp_path):
    root = tmp_path / "c"
    _cache_with_everything(root)
    result = run("--cache-dir", str(root), "cache", "info", "--json")
    info = json.loads(result.stdout)
    assert info["records"]["llm"]["paid"] is True and info["records"]["llm"]["cost_usd"] == 0.75
    assert info["records"]["vectors"]["paid"] is False
