"""`slimkit distill --shard I/N`: shards share the generation, the adapter is trained once,
and a final plain run assembles the stage with no rationale generated twice.

The count is real: every rationale the student generates is written once to the
``rationales`` record store under its key, so the generations summed over every run
equal the store's entries only when no rationale was generated twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.teach_fixtures import tiny_spec
from helpers.tiny_student import build_tiny_student

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.spec import validate_spec
from slimkit.stages.distill_shards import Shard, parse_shard, shard_status


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny-shards") / "model")


def make_raw(tmp_path: Path, model_dir: Path, **student):
    raw = tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 20})
    raw["student"] = {"model": str(model_dir), "max_length": 512, "batch_size": 4, "lr": 2e-2,
                      "epochs": 1, "max_new_tokens": 16, "gen_batch_size": 8, "quality_users": 4,
                      "valid_share": 0.2, "precision": "none", **student}
    raw["encoder"] = {"batch_size": 16}
    return raw


def stored_rationales(cache: StageCache) -> int:
    return len(cache.records("rationales"))


def status_row(spec, cache: StageCache) -> dict:
    from slimkit.pipeline import pipeline_status

    return {r["stage"]: r for r in pipeline_status(spec, cache)}["distill"]


def test_parse_shard_accepts_i_of_n_and_refuses_the_rest():
    assert parse_shard("2/4") == Shard(2, 4) and str(parse_shard(" 1 / 1 ")) == "1/1"
    for bad in ("0/2", "3/2", "1/0", "2", "a/b", "-1/2", ""):
        with pytest.raises(SlimkitError, match="--shard"):
            parse_shard(bad)
    shards = [Shard(i, 3) for i in (1, 2, 3)]
    users = list(range(10))
    parts = [s.take(users) for s in shards]
    assert sorted(u for p in parts for u in p) == users  # disjoint and covering
    assert parts[0] == [0, 3, 6, 9]


def test_two_shards_then_whole_generate_no_rationale_twice(tmp_path, tiny_model_dir):
    from slimkit.pipeline import Pipeline, run_distill_shard

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir))
    cache = StageCache(tmp_path / "cache")
    assert status_row(spec, cache)["status"] == "missing"

    first = run_distill_shard(spec, Shard(1, 2), cache, progress=False)
    assert first["stage_complete"] is False and first["adapter"] == "trained"
    assert cache.get("distill", first["key"]) is None  # a shard is not the stage output
    row = status_row(spec, cache)
    assert row["status"] == "partial"
    assert row["shards"]["done"] == first["users"] == 15 and row["shards"]["total"] == 30
    assert "15/30 users done" in row["reason"] and "1 not started" in row["reason"]

    second = run_distill_shard(spec, Shard(2, 2), cache, progress=False)
    assert second["adapter"] == "restored"  # trained once, by shard 1
    assert second["users"] == 15
    row = status_row(spec, cache)
    assert row["shards"]["done"] == 30 and row["shards"]["finished"] == 2
    assert "assembles the stage" in row["reason"]

    whole = Pipeline(spec, cache, progress=False).run("distill")
    assert not whole.cached and whole.summary["adapter"] == "restored"
    assert whole.summary["generated"] == 0  # every rationale from the cache
    # 30 fine-tuned rationales + the base student's on the 20 teacher users
    assert whole.summary["cached"] == 50 == first["generated"] + second["generated"]
    assert stored_rationales(cache) == 50  # 30 users + 20 base (teacher users); none was generated twice
    assert whole.summary["users"] == 30
    assert whole.summary["quality"]["users"] == 4
    assert status_row(spec, cache)["status"] == "cached"
    # A shard of a completed stage does nothing.
    assert run_distill_shard(spec, Shard(1, 2), cache, progress=False)["stage_complete"] is True


def test_shards_give_the_same_rationales_as_one_run(tmp_path, tiny_model_dir):
    """Sharding changes who generates, not what: the assembled stage equals an unsharded run
    of the same spec in a fresh cache (the adapter trained the same, greedy decoding)."""
    from slimkit.pipeline import Pipeline, run_distill_shard

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir))
    sharded = StageCache(tmp_path / "sharded")
    for index in (1, 2, 3):
        run_distill_shard(spec, Shard(index, 3), sharded, progress=False)
    assembled = Pipeline(spec, sharded, progress=False).run("distill")
    assert assembled.summary["generated"] == 0
    single = Pipeline(spec, StageCache(tmp_path / "single"), progress=False).run("distill")
    assert (assembled.path / "rationales.jsonl").read_text() == (single.path / "rationales.jsonl").read_text()


def test_cli_shard_json_and_bad_shard_exit_2(tmp_path, tiny_model_dir, capsys, monkeypatch):
    from slimkit.cli import main

    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(tmp_path / "cache"))
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(make_raw(tmp_path, tiny_model_dir, num_users=6)))

    def cli(*args):
        with pytest.raises(SystemExit) as info:
            main(list(args))
        return info.value.code

    assert cli("distill", "-c", str(config), "--shard", "3/2") == 2
    err = capsys.readouterr().err
    assert "--shard" in err and "Traceback" not in err
    assert cli("distill", "-c", str(config), "--shard", "1/2", "--adapter-only") == 2
    assert "do not go together" in capsys.readouterr().err
    assert cli("distill", "-c", str(config), "--shard", "1/2", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shard"] == "1/2" and out["users"] == 3 and out["stage_complete"] is False
    assert cli("status", "-c", str(config)) == 0
    text = capsys.readouterr().out
    assert "partial" in text and "3/6 users done" in text
    assert cli("distill", "-c", str(config), "--shard", "2/2") == 0
    assert "not the stage output" in capsys.readouterr().out


def test_status_reports_a_killed_shard_as_stopped(tmp_path):
    from slimkit.stages.distill_shards import ShardRun

    folder = tmp_path / "progress"
    run = ShardRun(Shard(1, 2), folder)
    run.info.update(state="generating", users=10, total_users=20, done=4, pid=2**22 + 12345)
    run.write(force=True)
    status = shard_status(folder)
    assert status["done"] == 4 and status["shards"][0]["state"] == "stopped"
    assert "4/20 users done" in status["line"] and "1 not started" in status["line"]


def _shard_process(config: Path, cache_dir: Path, shard: str) -> subprocess.Popen:
    env = {**os.environ, "SLIMKIT_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen([sys.executable, "-m", "slimkit", "distill", "-c", str(config),
                             "--shard", shard, "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_shard_processes_train_once_and_generate_once(tmp_path, tiny_model_dir):
    """Two `slimkit distill --shard` processes started together on one cache: one trains
    the adapter, the other waits for it; the final run generates nothing."""
    from slimkit.pipeline import Pipeline

    raw = make_raw(tmp_path, tiny_model_dir)
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(raw))
    cache_dir = tmp_path / "cache"
    started = time.perf_counter()
    procs = [_shard_process(config, cache_dir, f"{i}/2") for i in (1, 2)]
    results, waited = [], False
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out))
        waited |= "waiting for it" in err
    shards_seconds = time.perf_counter() - started
    assert sorted(r["adapter"] for r in results) == ["restored", "trained"]
    assert sorted(r["users"] for r in results) == [15, 15]
    cache = StageCache(cache_dir)
    whole = Pipeline(validate_spec(raw), cache, progress=False).run("distill")
    assert whole.summary["generated"] == 0
    assert sum(r["generated"] for r in results) == 50 == stored_rationales(cache)
    # Whether the second reached training while the first held the lock depends on timing;
    # either way it must not train (checked above).
    print(f"two concurrent shard processes: {shards_seconds:.1f} s, lock waited on: {waited}")


def test_adapter_training_waits_for_the_process_holding_its_lock(tmp_path, tiny_model_dir, capsys):
    """Deterministic half of the concurrent test: while another holder has the adapter's
    training lock, train_or_restore_once waits; it trains once the lock is free and the
    store still has no adapter (the holder died without one)."""
    import threading

    from slimkit.cache import RequestLock
    from slimkit.factories import build_student
    from slimkit.pipeline import Pipeline
    from slimkit.stages import distill

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir))
    cache = StageCache(tmp_path / "cache")
    pipeline = Pipeline(spec, cache, progress=False)
    dataset, rows = pipeline.dataset(), pipeline.teacher_rationales()
    usable = distill.usable_teacher_records(rows, dataset.num_users)
    train, held = distill.split_held_out(usable, spec.student.valid_share, spec.student.seed)
    student = build_student(spec.student).load()

    def prompt_of(user):
        return distill.student_messages(spec, dataset, user)

    store = cache.records(distill.ADAPTER_STORE)
    key = distill._adapter_key(spec, train, held, prompt_of)
    held_lock, release = threading.Event(), threading.Event()

    def holder():
        lock = RequestLock(store, f"train-{key}")
        assert lock.try_acquire()
        held_lock.set()
        release.wait(30)
        lock.release(answered=False)

    thread = threading.Thread(target=holder)
    thread.start()
    held_lock.wait(30)
    threading.Timer(1.5, release.set).start()
    began = time.perf_counter()
    training = distill.train_or_restore_once(student, spec, train, held, prompt_of,
                                             tmp_path / "adapter", store, progress=True)
    waited = time.perf_counter() - began
    thread.join(30)
    assert "waiting for it" in capsys.readouterr().err
    assert waited >= 1.4 and training["adapter"] == "trained"
    assert key in store


def test_shards_on_machines_with_their_own_cache_merge_back(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """Machines that share no cache folder: `distill --adapter-only` trains the adapter
    into cache A, A is copied to the second machine's cache B, shard 1 runs on A and
    shard 2 on B (both restoring the adapter), `slimkit cache merge B` copies B's
    rationales back into A, which assembles the stage with nothing generated twice."""
    import shutil

    from slimkit.cli import main
    from slimkit.pipeline import Pipeline, run_distill_shard

    config = tmp_path / "spec.yaml"
    raw = make_raw(tmp_path, tiny_model_dir)
    config.write_text(yaml.safe_dump(raw))
    spec = validate_spec(raw)
    monkeypatch.setenv("SLIMKIT_CACHE_DIR", str(tmp_path / "a"))
    with pytest.raises(SystemExit) as info:
        main(["distill", "-c", str(config), "--adapter-only", "--json"])
    assert info.value.code == 0
    prepared = json.loads(capsys.readouterr().out)
    assert prepared["adapter"] == "trained" and prepared["generated"] == 0
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # what rsync to the second machine does
    first = run_distill_shard(spec, Shard(1, 2), StageCache(tmp_path / "a"), progress=False)
    second = run_distill_shard(spec, Shard(2, 2), StageCache(tmp_path / "b"), progress=False)
    assert (first["adapter"], second["adapter"]) == ("restored", "restored")

    with pytest.raises(SystemExit) as info:
        main(["cache", "merge", str(tmp_path / "b"), "--json"])
    assert info.value.code == 0
    merged = json.loads(capsys.readouterr().out)
    assert merged["records"]["rationales"]["copied"] == second["generated"] > 0
    assert merged["shard_progress_files"] == 1  # shard 2's (shard 1's is the same in both)
    cache = StageCache(tmp_path / "a")
    assert status_row(spec, cache)["shards"]["done"] == 30
    whole = Pipeline(spec, cache, progress=False).run("distill")
    assert whole.summary["generated"] == 0
    assert stored_rationales(cache) == 50 == first["generated"] + second["generated"]
    with pytest.raises(SystemExit) as info:
        main(["cache", "merge", str(tmp_path / "nowhere")])
    assert info.value.code == 2


def test_a_failed_shard_is_reported_stopped_with_its_error(tmp_path, tiny_model_dir):
    from slimkit.pipeline import run_distill_shard

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir, model=str(tmp_path / "no-model")))
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(SlimkitError, match="not found"):
        run_distill_shard(spec, Shard(2, 3), cache, progress=False)
    row = status_row(spec, cache)
    assert row["status"] == "partial" and row["shards"]["shards"][0]["state"] == "stopped"
    assert "0/? users done; 2/3 stopped; 2 not started" in row["reason"]
