"""The litellm teacher, end to end: the real litellm client against a local fake server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.fake_openai_server import FakeOpenAIServer
from helpers.processes import default_sigint
from helpers.teach_fixtures import tiny_spec

from slimkit.artifacts.rationales import read_rationales
from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.pipeline import Pipeline
from slimkit.spec import validate_spec

SECRET = "sk-test-SECRET-4242-do-not-store"
ALL_FAULTS = {"429": 0.1, "500": 0.1, "timeout": 0.05, "truncated": 0.1, "empty": 0.1, "malformed": 0.05}


def litellm_teacher(server: FakeOpenAIServer, **extra) -> dict:
    teacher = {
        "kind": "litellm",
        "model": "openai/gpt-4o-mini",
        "api_base": server.url,
        "api_key_env": "FAKE_TEACHER_KEY",
        "num_users": 30,
        # Generous: a loaded CI machine must not turn slow answers into timeouts.
        "timeout": 10.0,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "concurrency": 8,
    }
    teacher.update(extra)
    return teacher


@pytest.fixture(autouse=True)
def teacher_key(monkeypatch):
    monkeypatch.setenv("FAKE_TEACHER_KEY", SECRET)


def _spec(tmp_path, server, **extra):
    return validate_spec(tiny_spec(tmp_path / "data", litellm_teacher(server, **extra)))


def _files_contain(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            hits.append(str(path))
    return hits


def test_faults_resume_and_no_double_payment(tmp_path, isolated_cache):
    with FakeOpenAIServer(faults=ALL_FAULTS, timeout_sleep=1.5) as server:
        spec = _spec(tmp_path, server, timeout=1.0)
        cache = StageCache(isolated_cache)
        result = Pipeline(spec, cache, progress=False).run("teach")
        summary = result.summary
        rows = read_rationales(result.path)
        # Every sampled user ends done or reported, and the faults really happened.
        assert len(rows) == 30 and summary["users"] == 30
        assert all(r["status"] in ("done", "failed") for r in rows)
        assert summary["done"] + summary["failed"] == 30
        assert all(r["error"] for r in rows if r["status"] == "failed")
        outcomes = {e.outcome for e in server.log}
        assert {"429", "500", "truncated", "empty"} <= outcomes
        assert summary["retries"] > 0 and summary["malformed_retries"] > 0
        assert summary["done"] == 30 and summary["well_formed"] >= 27
        for row in rows:  # malformed answers after every retry are kept and flagged
            assert row["well_formed"] == (row["steps"] is not None)
            assert row["well_formed"] or (row["error"].startswith("no three steps") and row["attempts"] == 3)
        # No identical request was answered (paid) twice.
        assert max(server.paid_per_body().values()) == 1
        # Costs come from litellm's price list for gpt-4o-mini.
        assert summary["cost_usd"] and summary["cost_usd"] > 0
        assert all(r["cost_usd"] > 0 for r in rows)
        # The key reached the server, and nothing under the cache holds it.
        assert all(e.authorization == f"Bearer {SECRET}" for e in server.log)
        assert _files_contain(isolated_cache, SECRET.encode()) == []
        # A second run (stage output dropped) sends no request at all.
        cache.delete("teach", result.key)
        before = len(server.log)
        again = Pipeline(spec, cache, progress=False).run("teach")
        assert len(server.log) == before
        assert again.summary["requests_sent"] == 0 and again.summary["cached"] == 30
        assert [r["rationale"] for r in read_rationales(again.path)] == [r["rationale"] for r in rows]
        # And the stage output itself is reused as is.
        assert Pipeline(spec, cache, progress=False).run("teach").cached


def test_failures_are_reported_then_resumed(tmp_path, isolated_cache):
    with FakeOpenAIServer(faults={"500": 0.5}, max_faults_per_request=5) as server:
        spec = _spec(tmp_path, server, max_retries=0)
        cache = StageCache(isolated_cache)
        first = Pipeline(spec, cache, progress=False).run("teach")
        rows = read_rationales(first.path)
        failed = [r for r in rows if r["status"] == "failed"]
        assert failed and first.summary["failed"] == len(failed)
        assert all(r["error"].startswith("server_error") and r["steps"] is None for r in failed), [r["error"] for r in failed]
        assert first.summary["failures"] == {"server_error": len(failed)}
        paid_before = sum(server.paid_per_body().values())
        # The next run asks again for the failed users only.
        second = Pipeline(spec.replace(teacher={**spec.teacher.model_dump(), "max_retries": 6}), cache,
                          progress=False).run("teach")
        assert second.summary["done"] == 30
        assert second.summary["requests_sent"] >= len(failed)
        assert sum(server.paid_per_body().values()) - paid_before == len(failed)
        assert max(server.paid_per_body().values()) == 1


def test_budget_stops_cleanly_and_keeps_what_was_done(tmp_path, isolated_cache):
    with FakeOpenAIServer(latency=0.05) as server:
        # About 100 prompt + 30 completion tokens per request at $100/M: ~$0.013 each.
        spec = _spec(tmp_path, server, concurrency=2, max_cost_usd=0.05,
                     input_cost_per_million_tokens=100.0, output_cost_per_million_tokens=100.0)
        cache = StageCache(isolated_cache)
        result = Pipeline(spec, cache, progress=False).run("teach")
        summary = result.summary
        rows = read_rationales(result.path)
        done = [r for r in rows if r["status"] == "done"]
        assert 0 < len(done) < 30
        assert "budget" in summary["stopped"]
        per_request = max(r["cost_usd"] for r in done)
        # It may overshoot by the requests already in flight, never by more.
        assert summary["spent_this_run_usd"] <= 0.05 + 2 * per_request
        assert len(server.paid()) == len(done)
        assert all(r["error"].startswith("not sent: budget") for r in rows if r["status"] == "failed")


def test_unknown_price_is_null_not_zero(tmp_path, isolated_cache):
    with FakeOpenAIServer() as server:
        spec = _spec(tmp_path, server, model="openai/my-own-finetune", num_users=3)
        result = Pipeline(spec, StageCache(isolated_cache), progress=False).run("teach")
        assert result.summary["cost_usd"] is None
        assert all(r["cost_usd"] is None for r in read_rationales(result.path))


def test_requests_per_minute_spaces_requests(tmp_path, isolated_cache):
    with FakeOpenAIServer() as server:
        spec = _spec(tmp_path, server, num_users=6, requests_per_minute=300)
        start = time.monotonic()
        Pipeline(spec, StageCache(isolated_cache), progress=False).run("teach")
        starts = sorted(e.finished for e in server.log)
        assert len(starts) == 6
        assert starts[-1] - starts[0] >= 0.8  # 5 gaps of 0.2 s, minus timing slack
        assert time.monotonic() - start >= 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"api_key_env": "NO_SUCH_KEY_VAR"}, "NO_SUCH_KEY_VAR is not set"),
        ({"model": "foo-model"}, "does not know which provider"),
        ({"api_base": "http://127.0.0.1:{port}/v1"}, "cannot connect"),
        ({"model": "openai/my-own-finetune", "max_cost_usd": 1.0}, "budget cannot be enforced"),
        ({"api_base": None, "api_key_env": None}, "OPENAI_API_KEY"),
        ({"api_base": None, "model": "openai/gpt-99-imaginary"}, "has no model"),
    ],
)
def test_preflight_errors_send_nothing(tmp_path, isolated_cache, monkeypatch, change, message):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer() as server:
        if change.get("api_base"):
            change = {**change, "api_base": change["api_base"].format(port=_free_port())}
        spec = _spec(tmp_path, server, **change)
        with pytest.raises(SlimkitError, match=message) as info:
            Pipeline(spec, StageCache(isolated_cache), progress=False).run("teach")
        assert "nothing was sent" in info.value.message or "nothing was sent" in str(info.value)
        assert server.log == []


def test_empty_rendered_prompt_is_an_error(tmp_path, isolated_cache, monkeypatch):
    from slimkit.prompts import PromptTemplate
    from slimkit.stages import teach

    monkeypatch.setattr(teach, "prompt_template", lambda name: PromptTemplate(name="blank", user="  "))
    with FakeOpenAIServer() as server:
        spec = _spec(tmp_path, server)
        with pytest.raises(SlimkitError, match="renders an empty prompt"):
            Pipeline(spec, StageCache(isolated_cache), progress=False).run("teach")
        assert server.log == []


def _write_spec(tmp_path: Path, server, **extra) -> Path:
    raw = tiny_spec(tmp_path / "data", litellm_teacher(server, **extra))
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_preflight_error_is_exit_2(tmp_path, isolated_cache):
    with FakeOpenAIServer() as server:
        path = _write_spec(tmp_path, server, api_key_env="NO_SUCH_KEY_VAR")
        proc = subprocess.run([sys.executable, "-m", "slimkit", "teach", "-c", str(path)],
                              check=False, capture_output=True, text=True, env={**os.environ})
        assert proc.returncode == 2, proc.stderr
        assert "NO_SUCH_KEY_VAR" in proc.stderr and "Traceback" not in proc.stderr
        assert server.log == []


def test_cli_json_summary(tmp_path, isolated_cache):
    with FakeOpenAIServer() as server:
        path = _write_spec(tmp_path, server, num_users=4)
        proc = subprocess.run([sys.executable, "-m", "slimkit", "teach", "-c", str(path), "--json"],
                              check=False, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["summary"]["done"] == 4 and data["summary"]["cost_usd"] > 0


def test_sigint_mid_run_loses_no_finished_response(tmp_path, isolated_cache):
    with FakeOpenAIServer(latency=0.3) as server:
        path = _write_spec(tmp_path, server, num_users=30, concurrency=3)
        proc = subprocess.Popen([sys.executable, "-m", "slimkit", "teach", "-c", str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=default_sigint)  # noqa: PLW1509 (see its docstring)
        deadline = time.monotonic() + 120
        while len(server.paid()) < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.paid()) >= 9, "the run did not start"
        interrupted_at = time.time()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        finished_before = {e.body_hash for e in server.paid() if e.finished < interrupted_at - 0.2}
        assert len(finished_before) >= 6
        # No stage output was committed, but every finished answer is in the record cache:
        # the resumed run asks only for the rest.
        count_before = len(server.log)
        proc = subprocess.run([sys.executable, "-m", "slimkit", "teach", "-c", str(path), "--json"],
                              check=False, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)["summary"]
        assert summary["done"] == 30
        resent = {e.body_hash for e in server.log[count_before:]}
        assert not (resent & finished_before)
        # Only responses in flight at the interrupt (at most `concurrency`) were paid twice.
        assert sum(n - 1 for n in server.paid_per_body().values()) <= 3
        assert summary["cached"] >= len(finished_before)
