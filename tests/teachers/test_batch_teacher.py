"""The litellm teacher through the batch API (``teacher.batch: true``), end to end: the
real litellm client against a local server speaking OpenAI's files and batches endpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.fake_batch_server import FakeBatchServer
from helpers.fake_openai_server import rationale_for
from helpers.teach_fixtures import tiny_spec

from slimkit.artifacts.rationales import read_rationales
from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.pipeline import Pipeline
from slimkit.spec import validate_spec

SECRET = "sk-test-BATCH-4242-do-not-store"


@pytest.fixture(autouse=True)
def teacher_key(monkeypatch):
    monkeypatch.setenv("FAKE_TEACHER_KEY", SECRET)


def batch_teacher(server: FakeBatchServer, **extra) -> dict:
    teacher = {
        "kind": "litellm",
        "model": "openai/gpt-4o-mini",
        "api_base": server.url,
        "api_key_env": "FAKE_TEACHER_KEY",
        "num_users": 30,
        "timeout": 10.0,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "batch": True,
        "batch_poll_s": 0.05,
    }
    teacher.update(extra)
    return teacher


def _spec(tmp_path: Path, server: FakeBatchServer, **extra):
    return validate_spec(tiny_spec(tmp_path / "data", batch_teacher(server, **extra)))


def _run(spec, cache_root: Path):
    result = Pipeline(spec, StageCache(cache_root), progress=False).run("teach")
    return result, read_rationales(result.path)


def _batch_price(prompt_tokens: int, completion_tokens: int) -> float:
    """gpt-4o-mini at litellm's listed batch rates (half its online rates)."""
    from slimkit.teachers.litellm_teacher import import_litellm

    info = import_litellm().model_cost["gpt-4o-mini"]
    assert info["input_cost_per_token_batches"] == info["input_cost_per_token"] / 2
    return (prompt_tokens * info["input_cost_per_token_batches"]
            + completion_tokens * info["output_cost_per_token_batches"])


def test_all_users_done_in_one_batch_at_the_batch_price(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=3) as server:
        result, rows = _run(_spec(tmp_path, server), isolated_cache)
        summary = result.summary
        assert summary["done"] == 30 and summary["well_formed"] == 30 and summary["failed"] == 0
        # One upload, one batch of 30 requests, polled until completed; no online request.
        assert (server.uploads, server.creates) == (1, 1)
        assert len(server.batches["batch_1"]["lines"]) == 30 and server.log == []
        assert summary["requests_sent"] == 30 and summary["batches_submitted"] == ["batch_1"]
        assert summary["price"] == "batch" and summary["batches_resumed"] == []
        # Each answer costs its tokens at the batch price; the summary adds them up.
        for row in rows:
            assert row["cost_usd"] == pytest.approx(_batch_price(row["prompt_tokens"], row["completion_tokens"]))
        assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows), abs=1e-6)
        assert summary["cost_usd"] > 0
        # Every batch request carries the online path's sampling, and the model without its prefix.
        bodies = [line["body"] for line in server.batches["batch_1"]["lines"]]
        assert {b["model"] for b in bodies} == {"gpt-4o-mini"}
        assert all(b["temperature"] == 0.0 and b["max_tokens"] == 512 for b in bodies)
        # The key reached the server only as a header; nothing under the cache holds it.
        for path in isolated_cache.rglob("*"):
            assert not (path.is_file() and SECRET.encode() in path.read_bytes()), path


def test_batch_and_online_answers_share_one_cache(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1) as server:
        # Online first, for 8 users: the batch then asks only for the 22 others...
        online = _spec(tmp_path, server, batch=False, num_users=8)
        first, _ = _run(online, isolated_cache)
        assert first.summary["done"] == 8 and len(server.log) == 8
        result, rows = _run(_spec(tmp_path, server), isolated_cache)
        assert result.summary["done"] == 30 and result.summary["cached"] == 8
        assert len(server.batches["batch_1"]["lines"]) == 22
        # ...and the online teacher finds every batch answer in the cache (no request).
        again, again_rows = _run(_spec(tmp_path, server, batch=False, num_users=30, concurrency=2),
                                 isolated_cache)
        assert len(server.log) == 8 and again.summary["requests_sent"] == 0
        assert again.summary["cached"] == 30
        assert [r["rationale"] for r in again_rows] == [r["rationale"] for r in rows]


def test_malformed_answers_are_asked_again_in_a_second_batch(tmp_path, isolated_cache):
    def malformed(body):  # the first (greedy, seedless) answer of every third user
        return "seed" not in body and sum(map(ord, body["messages"][-1]["content"])) % 3 == 0

    with FakeBatchServer(complete_after_polls=1, malformed_when=malformed) as server:
        result, rows = _run(_spec(tmp_path, server), isolated_cache)
        bad = sum(malformed(line["body"]) for line in server.batches["batch_1"]["lines"])
        assert 0 < bad < 30
        assert server.creates == 2 and len(server.batches["batch_2"]["lines"]) == bad
        retry_bodies = [line["body"] for line in server.batches["batch_2"]["lines"]]
        assert all(b["seed"] == 1 and b["temperature"] == 0.7 for b in retry_bodies)
        assert result.summary["well_formed"] == 30 and result.summary["malformed_retries"] == bad
        assert sorted(r["attempts"] for r in rows).count(2) == bad
        # Both answers of a retried user are paid at the batch price and add up in its row.
        assert all(r["cost_usd"] == pytest.approx(_batch_price(r["prompt_tokens"], r["completion_tokens"]))
                   for r in rows)


def test_error_lines_fail_their_users_and_the_next_run_asks_only_them(tmp_path, isolated_cache):
    refused = {"Movie 3;", "Movie 9;"}

    def error_when(prompt):
        return any(title in prompt for title in refused)

    with FakeBatchServer(complete_after_polls=1, error_when=error_when) as server:
        spec = _spec(tmp_path, server)
        first, rows = _run(spec, isolated_cache)
        failed = [r for r in rows if r["status"] == "failed"]
        assert failed and first.summary["done"] == 30 - len(failed)
        assert all(r["error"] == "http_400: This prompt is not allowed." for r in failed)
        assert first.summary["failures"] == {"http_400": len(failed)}
        assert first.summary["errors"] == {"http_400": len(failed)}
        server.error_when = None
        second, _ = _run(spec, isolated_cache)
        assert second.summary["done"] == 30
        assert server.creates == 2 and len(server.batches["batch_2"]["lines"]) == len(failed)


def test_max_wait_leaves_the_batch_pending_and_the_next_run_collects_it(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1) as server:
        spec = _spec(tmp_path, server, batch_max_wait_s=0.2)
        server.hold_batches.set()
        with pytest.raises(SlimkitError, match="still in_progress after 0.2 s"):
            _run(spec, isolated_cache)  # no user answered: the stage stops with the reason
        assert server.creates == 1
        server.hold_batches.clear()
        result, _ = _run(spec, isolated_cache)
        assert result.summary["done"] == 30 and server.creates == 1
        assert result.summary["batches_resumed"] == ["batch_1"]
        assert result.summary["batches_submitted"] == [] and result.summary["requests_sent"] == 0


def test_answers_go_to_their_own_users_when_another_run_collected_the_batch(
        tmp_path, isolated_cache, monkeypatch):
    from slimkit.teachers.batch import LiteLLMBatchTeacher

    with FakeBatchServer(complete_after_polls=1) as server:
        server.hold_batches.set()
        with pytest.raises(SlimkitError):  # 30 requests submitted, left pending
            _run(_spec(tmp_path, server, batch_max_wait_s=0.0), isolated_cache)
        server.hold_batches.clear()
        collect = LiteLLMBatchTeacher._collect

        def collected_elsewhere_first(self, litellm, batch, keys, ctx, results):
            self._forget(batch.id, ctx)  # as a second run sharing the cache would
            return collect(self, litellm, batch, keys, ctx, results)

        monkeypatch.setattr(LiteLLMBatchTeacher, "_collect", collected_elsewhere_first)
        result, rows = _run(_spec(tmp_path, server, num_users=10), isolated_cache)  # 10 of the 30
        assert result.summary["done"] == 10 and server.creates == 1
        for row in rows:
            prompt = "\n".join(m["content"] for m in row["messages"])
            assert row["rationale"] == rationale_for(prompt)


def test_a_batch_the_provider_forgot_is_submitted_again(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1) as server:
        spec = _spec(tmp_path, server, batch_max_wait_s=0.0, num_users=5)
        server.hold_batches.set()
        with pytest.raises(SlimkitError):
            _run(spec, isolated_cache)
        server.batches.clear()  # e.g. deleted, or another account
        server.hold_batches.clear()
        result, _ = _run(spec, isolated_cache)
        assert result.summary["done"] == 5 and server.creates == 2


def test_a_lost_create_answer_does_not_create_a_second_batch(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1, lose_create_answers=1) as server:
        result, _ = _run(_spec(tmp_path, server, num_users=5), isolated_cache)
        assert result.summary["done"] == 5
        assert server.creates == 1 and result.summary["batches_submitted"] == ["batch_1"]


def test_own_prices_times_the_batch_discount(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1) as server:
        spec = _spec(tmp_path, server, num_users=4, input_cost_per_million_tokens=100.0,
                     output_cost_per_million_tokens=300.0, batch_discount=0.4)
        _, rows = _run(spec, isolated_cache)
        for row in rows:
            listed = (row["prompt_tokens"] * 100.0 + row["completion_tokens"] * 300.0) / 1e6
            assert row["cost_usd"] == pytest.approx(0.4 * listed)


def test_unknown_price_falls_back_to_null(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1) as server:
        result, rows = _run(_spec(tmp_path, server, model="openai/my-own-finetune", num_users=3),
                            isolated_cache)
        assert result.summary["cost_usd"] is None and all(r["cost_usd"] is None for r in rows)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_cost_usd": 1.0}, "cannot be enforced with teacher.batch"),
        ({"model": "ollama/llama3.1"}, "served by ollama"),
        ({"api_key_env": "NO_SUCH_KEY_VAR"}, "NO_SUCH_KEY_VAR is not set"),
    ],
)
def test_preflight_errors_send_nothing(tmp_path, isolated_cache, change, message):
    with FakeBatchServer() as server:
        with pytest.raises(SlimkitError, match=message):
            _run(_spec(tmp_path, server, **change), isolated_cache)
        assert (server.uploads, server.creates, server.log) == (0, 0, [])


def test_a_refused_key_stops_the_run_and_a_failed_batch_fails_its_users(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1, batch_key="sk-the-right-one") as server:
        with pytest.raises(SlimkitError, match="refused to upload the requests: authentication"):
            _run(_spec(tmp_path, server, num_users=3), isolated_cache)
        assert server.creates == 0
        server.batch_key = None
        server.batch_failure = "Line 1: the model is not available for batches."
        with pytest.raises(SlimkitError, match="batch_failed: batch batch_1 gave no answer .1 error.s., "
                                               "first: Line 1: the model is not available"):
            _run(_spec(tmp_path, server, num_users=3), isolated_cache)
        server.batch_failure = None
        result, _ = _run(_spec(tmp_path, server, num_users=3), isolated_cache)
        assert result.summary["done"] == 3 and server.creates == 2


def test_killed_between_submit_and_fetch_resumes_without_resubmitting(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1) as server:
        raw = tiny_spec(tmp_path / "data", batch_teacher(server))
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(raw))
        command = [sys.executable, "-m", "slimkit", "teach", "-c", str(path), "--json"]
        server.hold_batches.set()  # the batch stays in_progress until the client is dead
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ})
        deadline = time.monotonic() + 120
        while (server.creates < 1 or server.polls < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.creates == 1 and server.polls >= 2, "the batch was not submitted"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        server.hold_batches.clear()
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)["summary"]
        assert summary["done"] == 30 and summary["well_formed"] == 30
        assert server.creates == 1 and server.uploads == 1  # resumed, never resubmitted
        assert summary["batches_resumed"] == ["batch_1"] and summary["requests_sent"] == 0
        assert summary["cost_usd"] == pytest.approx(
            _batch_price(summary["prompt_tokens"], summary["completion_tokens"]), abs=1e-6)


def test_two_runs_sharing_a_cache_submit_one_batch(tmp_path, isolated_cache):
    with FakeBatchServer(complete_after_polls=1) as server:
        # Two specs whose teach stages differ (poll interval) but whose requests are the same:
        # the runs share the per-request cache, not a stage output folder.
        commands = []
        for n, poll in enumerate((0.05, 0.06)):
            raw = tiny_spec(tmp_path / "data", batch_teacher(server, batch_poll_s=poll))
            path = tmp_path / f"spec{n}.yaml"
            path.write_text(yaml.safe_dump(raw))
            commands.append([sys.executable, "-m", "slimkit", "teach", "-c", str(path), "--json"])
        server.hold_batches.set()
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for command in commands]
        deadline = time.monotonic() + 120
        while server.batches.get("batch_1", {}).get("polls", 0) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.hold_batches.clear()
        summaries = []
        for run in runs:
            out, err = run.communicate(timeout=300)
            assert run.returncode == 0, err
            summaries.append(json.loads(out)["summary"])
        assert server.creates == 1 and server.uploads == 1
        assert all(s["done"] == 30 for s in summaries)
        assert sorted(len(s["batches_submitted"]) for s in summaries) == [0, 1]
