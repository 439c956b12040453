"""End to end: `slimkit run` on a small MovieLens-100K slice, killed and resumed, then
`slimkit recommend --json`, status, a warm run, and recovery from a corrupted entry.

The slice: the 16 ml-100k users with at least 400 ratings (1,551 items), the statistics
teacher on 4 of them, the real SmolLM2 student (one LoRA step, 24 new tokens), the real
MiniLM encoder, a tiny SASRec with the slim fusion head for 2 epochs. Real components
only; the pipeline runs once per module and every test reads its outputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.processes import default_sigint

from slimkit.paths import data_dir, model_dir

pytestmark = pytest.mark.slow

SPEC = """\
dataset:
  kind: movielens-100k
  min_user_interactions: 400
teacher:
  kind: statistics
  num_users: 4
prompt:
  max_items: 6
  max_item_chars: 60
student:
  kind: hf-lora
  epochs: 1
  batch_size: 4
  max_new_tokens: 24
  gen_batch_size: 8
  valid_share: 0.25
backbone:
  kind: sasrec
  hidden_size: 16
  num_layers: 1
  num_heads: 1
  inner_size: 32
fusion:
  kind: slim
train:
  epochs: 2
  batch_size: 64
  patience: 2
eval:
  ks: [10]
"""
USERS = 16
SHARED_DATA_DIR = str(data_dir())  # conftest keeps these shared across tests
SHARED_MODEL_DIR = str(model_dir())


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SLIMKIT_CACHE_DIR=str(cache),
        SLIMKIT_DATA_DIR=SHARED_DATA_DIR,
        SLIMKIT_MODEL_DIR=SHARED_MODEL_DIR,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        COLUMNS="120",
    )
    return env


def _slimkit(args, cache, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "slimkit", *args],
        capture_output=True,
        text=True,
        env=_env(cache),
        timeout=timeout,
    )


def _records(cache: Path, namespace: str) -> int:
    folder = cache / "records" / namespace
    if not (folder / "cache.db").exists():
        return 0
    import diskcache

    with diskcache.Cache(str(folder)) as store:
        return len(store)


def _start(args, cache, log):
    return subprocess.Popen(
        [sys.executable, "-m", "slimkit", *args],
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        env=_env(cache),
        preexec_fn=default_sigint,  # noqa: PLW1509 (see its docstring); it gets Ctrl-C
    )


def _wait_for(condition, proc, what, timeout=400):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"slimkit run ended (code {proc.returncode}) before {what}")
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The pipeline, killed during the student's generation, resumed, interrupted
    (Ctrl-C) during training with --force train, and finished."""
    root = tmp_path_factory.mktemp("e2e")
    cache = root / "cache"
    config = root / "spec.yaml"
    config.write_text(SPEC)
    out = {"cache": cache, "config": config, "root": root}

    # 1. Kill -9 once the student has written its first batch of rationales.
    first = _start(["run", "-c", str(config)], cache, root / "kill.log")
    # The base student writes the teacher users' rationales first, then batches of 8.
    _wait_for(lambda: _records(cache, "rationales") >= 2, first, "the first student batch")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    out["records_at_kill"] = _records(cache, "rationales")
    out["distill_cached_before"] = list((cache / "stages").glob("distill/*/manifest.json"))

    # 2. Resume to the end.
    resumed = _slimkit(["run", "-c", str(config), "--json"], cache)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out["resumed"] = json.loads(resumed.stdout)
    out["resumed_stderr"] = resumed.stderr

    # 3. --force train, interrupted with Ctrl-C while it trains.
    log = root / "interrupt.log"
    # Enough epochs that Ctrl-C lands during training (an epoch here takes well under 1 s);
    # step 4 runs the same spec.
    longer = ["--set", "train.epochs=60", "--set", "train.patience=60"]
    forced = _start(["run", "-c", str(config), "--force", "train", *longer], cache, log)
    _wait_for(lambda: "epoch" in log.read_text(), forced, "the first training epoch")
    forced.send_signal(signal.SIGINT)
    forced.wait(60)
    out["interrupted_code"] = forced.returncode
    out["interrupted_log"] = log.read_text()

    # 4. The next run retrains only what was lost.
    final = _slimkit(["run", "-c", str(config), "--json", *longer], cache)
    assert final.returncode == 0, final.stderr[-3000:]
    out["final"] = json.loads(final.stdout)
    out["longer"] = longer
    return out


def _stage(report, name):
    return next(s for s in report["stages"] if s["stage"] == name)


def test_a_killed_run_resumes_without_redoing_finished_work(run):
    assert run["records_at_kill"] >= 2
    assert run["distill_cached_before"] == []  # nothing half-written looks finished
    distill = _stage(run["resumed"], "distill")
    assert distill["status"] == "ran"
    # Every rationale finished before the kill is reused, not generated again.
    assert distill["summary"]["cached"] >= run["records_at_kill"]
    # Every user once, plus the base student on the 4 teacher users: nothing twice.
    assert distill["summary"]["generated"] + distill["summary"]["cached"] == USERS + 4
    assert _stage(run["resumed"], "data")["status"] == "cached"
    assert _stage(run["resumed"], "teach")["status"] == "cached"


def test_ctrl_c_is_reported_and_the_next_run_finishes(run):
    assert run["interrupted_code"] == 130
    assert "Interrupted" in run["interrupted_log"]
    assert "Traceback" not in run["interrupted_log"]
    statuses = {s["stage"]: s["status"] for s in run["final"]["stages"]}
    assert statuses == {
        "data": "cached", "teach": "cached", "distill": "cached", "encode": "cached", "train": "ran"
    }


def test_every_stage_output(run):
    report = run["final"]
    paths = {s["stage"]: Path(s["path"]) for s in report["stages"]}

    from slimkit.data.dataset import PreparedDataset

    data = PreparedDataset.load(paths["data"])
    assert data.num_users == USERS and data.num_items > 1000

    teach = [json.loads(x) for x in (paths["teach"] / "rationales.jsonl").read_text().splitlines()]
    assert len(teach) == 4 and all(r["well_formed"] and r["status"] == "done" for r in teach)
    assert all(set(r["steps"]) == {"1", "2", "3"} for r in teach)

    assert (paths["distill"] / "adapter" / "adapter_model.safetensors").is_file()
    student = [json.loads(x) for x in (paths["distill"] / "rationales.jsonl").read_text().splitlines()]
    assert sorted(r["user_index"] for r in student) == list(range(USERS))
    assert all(r["rationale"].strip() for r in student)
    assert json.loads((paths["distill"] / "quality.json").read_text()) is not None

    items = np.load(paths["encode"] / "item_vectors.npy")
    assert items.shape == (data.num_items + 1, 384) and not items[0].any() and items[1:].any()
    assert np.load(paths["encode"] / "student_vectors.npy").shape == (USERS, 384)
    assert int(np.load(paths["encode"] / "teacher_mask.npy").sum()) == 4

    assert (paths["train"] / "model.safetensors").stat().st_size > 0
    metrics = json.loads((paths["train"] / "metrics.json").read_text())
    assert metrics["protocol"] == "full" and metrics["masked_history"] is True
    assert 0.0 <= metrics["test"]["hit@10"] <= 1.0
    assert report["metrics"]["test"] == metrics["test"]
    assert report["teacher"]["cost_usd"] in (0, 0.0, None)


def test_warm_run_does_no_work(run):
    from slimkit.cache import StageCache
    from slimkit.pipeline import run_pipeline
    from slimkit.spec import load_spec

    spec = load_spec(run["config"], [])
    start = time.perf_counter()
    report = run_pipeline(spec, StageCache(run["cache"]), progress=False)
    assert {s.status for s in report.stages} == {"cached"}
    assert time.perf_counter() - start < 30


def test_status_reports_everything_cached_then_what_changed(run):
    last = ["status", "-c", str(run["config"]), *run["longer"], "--json"]  # the final run's spec
    status = _slimkit(last, run["cache"])
    assert status.returncode == 0, status.stderr
    assert {r["status"] for r in json.loads(status.stdout)} == {"cached"}
    changed = _slimkit([*last, "--set", "train.epochs=3"], run["cache"])
    rows = {r["stage"]: r for r in json.loads(changed.stdout)}
    assert rows["encode"]["status"] == "cached"
    assert rows["train"]["status"] == "stale"
    assert rows["train"]["changes"] == ["train.epochs: 60 -> 3"]


def test_recommend_json(run):
    user = "13"
    result = _slimkit(
        ["recommend", "-c", str(run["config"]), "--user", user, "--json"], run["cache"]
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["user"] == user
    assert data["history"] and all(h["title"] for h in data["history"])
    assert data["rationale"]["source"] == "student" and data["rationale"]["text"].strip()
    items = data["items"]
    assert len(items) == 10
    assert len({i["item_id"] for i in items}) == 10
    history_ids = set()
    from slimkit.data.dataset import PreparedDataset

    dataset = PreparedDataset.load(Path(_stage(run["final"], "data")["path"]))
    history_ids = {dataset.item_ids[i] for i in dataset.sequence(dataset.user_index(user))}
    assert not history_ids & {i["item_id"] for i in items}  # history excluded
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert all(i["title"] and ("step" in i) for i in items)
    named = set(data["rationale"]["named_items"])  # raw ids of the items step 3 names
    assert named <= set(dataset.item_ids[1:])
    assert all(i["step"] == 3 for i in items if i["item_id"] in named)


def test_train_json_reports_the_rationales_own_hit_rate(run):
    result = _slimkit(["train", "-c", str(run["config"]), "--json"], run["cache"])
    assert result.returncode == 0, result.stderr
    rates = json.loads(result.stdout)["rationale_hit_rate"]
    assert set(rates) == {"teacher", "student"} and all(0 <= r <= 1 for r in rates.values())


def test_recommend_table_shows_history_rationale_and_items(run):
    result = _slimkit(["recommend", "-c", str(run["config"]), "--user", "13", "--k", "5"], run["cache"])
    assert result.returncode == 0, result.stderr
    assert "Recent history" in result.stdout and "rationale" in result.stdout
    assert "Top 5" in result.stdout


def test_recommend_unknown_user_suggests_ids(run):
    result = _slimkit(["recommend", "-c", str(run["config"]), "--user", "12"], run["cache"])
    assert result.returncode == 2
    assert "Unknown user '12'" in result.stderr and "13" in result.stderr
    assert "Traceback" not in result.stderr


def test_recommend_new_user_from_history(run):
    result = _slimkit(
        ["recommend", "-c", str(run["config"]), "--history", "50,181,172", "--k", "5", "--json"],
        run["cache"],
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["new_user"] is True and data["rationale"]["text"].strip()
    assert len(data["items"]) == 5
    assert not {"50", "181", "172"} & {i["item_id"] for i in data["items"]}


def test_recommend_before_run_says_to_run_first(tmp_path, run):
    result = _slimkit(["recommend", "-c", str(run["config"]), "--user", "13"], tmp_path / "empty")
    assert result.returncode == 2
    assert "slimkit run" in result.stderr


def test_corrupted_entry_is_detected_and_recomputed(run):
    from slimkit.cache import StageCache
    from slimkit.pipeline import run_pipeline
    from slimkit.spec import load_spec

    data_folder = Path(_stage(run["final"], "data")["path"])
    target = data_folder / "interactions.npz"
    blob = bytearray(target.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    target.write_bytes(bytes(blob))

    report = run_pipeline(load_spec(run["config"], []), StageCache(run["cache"]), progress=False)
    assert report.stage("data").status == "ran"
    assert any("interactions.npz" in line for line in report.recomputed)
    # Same inputs, same key: everything downstream is still valid and reused.
    assert report.stage("train").status == "cached"
    assert (data_folder / "interactions.npz").read_bytes() != bytes(blob)
