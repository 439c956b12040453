"""A teach output with failed users: `teach` and `run` exit 1 saying how many and how to
retry; --allow-partial continues, and what is built on the partial output gets keys of
its own, so it is not reused once every user is answered."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from helpers.fake_openai_server import FakeOpenAIServer
from helpers.teach_fixtures import tiny_spec

from slimkit.cache import StageCache
from slimkit.errors import IncompleteStageError
from slimkit.pipeline import Pipeline, stage_keys
from slimkit.spec import validate_spec


def _teacher(server, **extra):
    section = {"kind": "litellm", "model": "openai/gpt-4o-mini", "api_base": server.url,
               "api_key_env": "FAKE_TEACHER_KEY", "num_users": 20, "timeout": 10.0,
               "retry_base_delay": 0.01, "retry_max_delay": 0.05, "max_retries": 0}
    section.update(extra)
    return section


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv("FAKE_TEACHER_KEY", "sk-test-partial")


def test_partial_teach_stops_or_marks_everything_built_on_it(tmp_path, isolated_cache):
    cache = StageCache(isolated_cache)
    with FakeOpenAIServer(fail_when=lambda prompt: "Movie 1;" in prompt) as server:
        spec = validate_spec(tiny_spec(tmp_path / "data", _teacher(server)))
        full_keys = stage_keys(spec, cache)
        teach = Pipeline(spec, cache, progress=False).run("teach")
        failed = teach.summary["failed"]
        assert failed and teach.summary["incomplete"] == f"{20 - failed}/20"
        # Without --allow-partial nothing downstream is built on it.
        with pytest.raises(IncompleteStageError) as info:
            Pipeline(spec, cache, progress=False).teacher_rationales()
        assert info.value.exit_code == 1
        assert f"{failed} of 20 users failed" in info.value.message
        assert "--allow-partial" in info.value.hint and "again" in info.value.hint
        # With it, the later stages get keys of their own.
        partial = Pipeline(spec, cache, progress=False, allow_partial=True)
        assert len(partial.teacher_rationales()) == 20 - failed
        for stage in ("distill", "encode", "train"):
            assert partial.keys[stage] != full_keys[stage]
        assert partial.keys["teach"] == full_keys["teach"]
        # The server recovers; the next run answers the rest: the keys are the complete ones.
        server.fail_when = None
        complete = Pipeline(spec, cache, progress=False)
        assert len(complete.teacher_rationales()) == 20
        assert complete.incomplete == {}
        assert complete.keys["distill"] == full_keys["distill"]
        assert max(server.paid_per_body().values()) == 1


def test_cli_teach_and_run_exit_1_on_failed_users(tmp_path, isolated_cache):
    with FakeOpenAIServer(fail_when=lambda prompt: "Movie 1;" in prompt) as server:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(tiny_spec(tmp_path / "data", _teacher(server))))
        env = {**os.environ}

        def slimkit(*args):
            return subprocess.run([sys.executable, "-m", "slimkit", *args], check=False, capture_output=True,
                                  text=True, env=env, timeout=300)

        teach = slimkit("teach", "-c", str(path))
        assert teach.returncode == 1, teach.stderr
        assert "user(s) failed" in teach.stderr and "again" in teach.stderr
        assert "Traceback" not in teach.stderr
        assert slimkit("teach", "-c", str(path), "--allow-partial").returncode == 0
        run = slimkit("run", "-c", str(path))
        assert run.returncode == 1, run.stderr[-2000:]
        assert "users failed" in run.stderr and "--allow-partial" in run.stderr
        assert "Traceback" not in run.stderr
