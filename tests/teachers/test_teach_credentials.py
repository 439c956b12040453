"""Teacher credentials and request identity: the provider's usual variable with api_base,
a refused key stops the run naming the variable, the key never reaches disk or output,
and the server is part of every request's cache key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.fake_openai_server import FakeOpenAIServer
from helpers.teach_fixtures import tiny_spec

from slimkit.cache import StageCache
from slimkit.errors import ConfigError, SlimkitError
from slimkit.pipeline import Pipeline
from slimkit.spec import validate_spec

KEY = "sk-proj-THE-REAL-KEY-0001"


def teacher(server: FakeOpenAIServer, **extra) -> dict:
    section = {"kind": "litellm", "model": "openai/gpt-4o-mini", "api_base": server.url,
               "num_users": 6, "timeout": 10.0, "retry_base_delay": 0.01, "retry_max_delay": 0.05,
               "concurrency": 2}
    section.update(extra)
    return section


def _files_contain(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_api_base_without_api_key_env_sends_openai_api_key(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(require_key=KEY) as server:
        spec = validate_spec(tiny_spec(tmp_path / "data", teacher(server)))
        result = Pipeline(spec, StageCache(isolated_cache), progress=False).run("teach")
        assert result.summary["done"] == 6
        assert {e.authorization for e in server.log} == {f"Bearer {KEY}"}
    assert _files_contain(isolated_cache, KEY.encode()) == []


def test_refused_key_stops_at_once_naming_the_variable(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-proj-WRONG-KEY-9999")
    with FakeOpenAIServer(require_key=KEY) as server:
        raw = tiny_spec(tmp_path / "data", teacher(server, num_users=30))
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(raw))
        proc = subprocess.run([sys.executable, "-m", "slimkit", "teach", "-c", str(path), "--json"],
                              check=False, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        assert "OPENAI_API_KEY" in proc.stderr and "401" in proc.stderr
        assert "Traceback" not in proc.stderr
        # At once: only the requests already in flight (concurrency 2), not 30 users' worth.
        assert len(server.log) <= 2
        for text in (proc.stdout, proc.stderr):
            assert "WRONG-KEY" not in text
    assert _files_contain(isolated_cache, b"WRONG-KEY") == []


def test_no_key_set_names_the_variable_it_looked_for(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer(require_key=KEY) as server:
        spec = validate_spec(tiny_spec(tmp_path / "data", teacher(server)))
        with pytest.raises(SlimkitError, match="OPENAI_API_KEY is not set, a dummy key was sent"):
            Pipeline(spec, StageCache(isolated_cache), progress=False).run("teach")


def test_the_server_is_part_of_the_request_key(tmp_path, isolated_cache):
    cache = StageCache(isolated_cache)
    with FakeOpenAIServer() as first, FakeOpenAIServer() as second:
        data = tmp_path / "data"
        spec = validate_spec(tiny_spec(data, teacher(first)))
        Pipeline(spec, cache, progress=False).run("teach")
        other = validate_spec(tiny_spec(data, teacher(second)))
        result = Pipeline(other, cache, progress=False).run("teach")
        # Same model name, another server: its own answers, none reused from the first.
        assert len(second.paid()) == 6 and result.summary["requests_sent"] == 6
        # The same server again (trailing slash aside): everything from the cache.
        again = validate_spec(tiny_spec(data, teacher(first, api_base=first.url + "/", max_retries=4)))
        before = len(first.log)
        Pipeline(again, cache, progress=False).run("teach")
        assert len(first.log) == before


@pytest.mark.parametrize("base", ["localhost:8000/v1", "127.0.0.1:11434", "ftp://host/v1", "http://"])
def test_api_base_without_a_scheme_is_a_config_error(base):
    with pytest.raises(ConfigError) as info:
        validate_spec({"teacher": {"kind": "litellm", "model": "openai/x", "api_base": base}})
    text = str(info.value)
    assert "teacher.api_base" in text and "http://" in text


def test_json_output_never_holds_the_key(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAIServer(require_key=KEY) as server:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(tiny_spec(tmp_path / "data", teacher(server, num_users=3))))
        proc = subprocess.run([sys.executable, "-m", "slimkit", "teach", "-c", str(path), "--json"],
                              check=False, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["summary"]["done"] == 3
        assert KEY not in proc.stdout and KEY not in proc.stderr
