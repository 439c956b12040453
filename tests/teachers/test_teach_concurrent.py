"""Two `slimkit teach` processes on one cache at once: no answer is bought twice, both
finish, and the stage output they both commit is one complete folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from helpers.fake_openai_server import FakeOpenAIServer
from helpers.teach_fixtures import tiny_spec


def test_two_concurrent_teach_runs_never_pay_twice(tmp_path, isolated_cache):
    with FakeOpenAIServer(latency=0.15, faults={"malformed": 0.1, "500": 0.1}) as server:
        teacher = {"kind": "litellm", "model": "openai/gpt-4o-mini", "api_base": server.url,
                   "api_key_env": "FAKE_TEACHER_KEY", "num_users": 30, "timeout": 10.0,
                   "retry_base_delay": 0.01, "retry_max_delay": 0.05, "concurrency": 4}
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(tiny_spec(tmp_path / "data", teacher)))
        env = {**os.environ, "FAKE_TEACHER_KEY": "sk-test-concurrent"}
        # The data stage first, so both runs reach the teacher at the same moment.
        subprocess.run([sys.executable, "-m", "slimkit", "run", "-c", str(path), "--until", "data"], check=True,
                       capture_output=True, env=env, timeout=300)
        procs = [subprocess.Popen([sys.executable, "-m", "slimkit", "teach", "-c", str(path), "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for _ in range(2)]
        outs = [proc.communicate(timeout=300) for proc in procs]
        for proc, (out, err) in zip(procs, outs):
            assert proc.returncode == 0, err
            assert "Traceback" not in err
        summaries = [json.loads(out)["summary"] for out, _ in outs]
        assert all(s["done"] == 30 for s in summaries)
        # Every identical request was answered (paid) once, across both processes.
        paid = server.paid_per_body()
        assert max(paid.values()) == 1, sorted(paid.values())[-5:]
        assert sum(s["requests_sent"] for s in summaries) >= len(paid)
        # Both runs agree, and the committed output is one readable folder.
        paths = {json.loads(out)["path"] for out, _ in outs}
        assert len(paths) == 1
        lines = Path(paths.pop(), "rationales.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == 30 and all(r["status"] == "done" for r in rows)
