"""The stage cache: keys, atomic writes, corruption detection, info and clear."""

from __future__ import annotations

import json

import pytest

from slimkit.cache import StageCache
from slimkit.pipeline import stage_keys, stage_spec
from slimkit.spec import validate_spec


def test_same_spec_same_keys(tmp_path):
    cache = StageCache(tmp_path)
    assert stage_keys(validate_spec({}), cache) == stage_keys(validate_spec({}), cache)


@pytest.mark.parametrize(
    "change, first_changed",
    [
        ({"dataset": {"max_seq_len": 20}}, "data"),
        ({"teacher": {"num_users": 7}}, "teach"),
        ({"prompt": {"max_items": 5}}, "teach"),
        ({"student": {"lora_r": 4}}, "distill"),
        ({"encoder": {"batch_size": 8}}, "encode"),
        ({"backbone": {"hidden_size": 32}}, "train"),
        ({"fusion": {"mode": "add"}}, "train"),
        ({"train": {"epochs": 2}}, "train"),
        ({"eval": {"seeds": [1, 2]}}, "train"),
    ],
)
def test_a_change_reruns_its_stage_and_everything_downstream_only(tmp_path, change, first_changed):
    cache = StageCache(tmp_path)
    base = stage_keys(validate_spec({}), cache)
    changed = stage_keys(validate_spec(change), cache)
    order = list(base)
    start = order.index(first_changed)
    for stage in order[:start]:
        assert changed[stage] == base[stage], f"{stage} should be reused"
    for stage in order[start:]:
        assert changed[stage] != base[stage], f"{stage} should be recomputed"


def test_plain_backbone_training_does_not_depend_on_llm_stages(tmp_path):
    cache = StageCache(tmp_path)
    plain = validate_spec({"fusion": {"kind": "none"}})
    other_teacher = validate_spec({"fusion": {"kind": "none"}, "teacher": {"num_users": 3}})
    assert stage_keys(plain, cache)["train"] == stage_keys(other_teacher, cache)["train"]


def test_key_includes_code_versions(tmp_path):
    cache = StageCache(tmp_path)
    assert cache.key("data", {"a": 1}, versions={"p": "1"}) != cache.key(
        "data", {"a": 1}, versions={"p": "2"}
    )


def test_write_commits_output_with_spec_versions_and_manifest(tmp_path):
    cache = StageCache(tmp_path)
    spec = validate_spec({})
    with cache.write("data", "k1", stage_spec(spec, "data"), summary={"users": 3}) as out:
        (out / "result.txt").write_text("hello")
    folder = cache.get("data", "k1")
    assert folder is not None and (folder / "result.txt").read_text() == "hello"
    assert "dataset" in (folder / "spec.yaml").read_text()
    assert json.loads((folder / "versions.json").read_text())["slimkit"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["summary"] == {"users": 3} and "result.txt" in manifest["files"]


def test_interrupted_write_leaves_nothing(tmp_path):
    cache = StageCache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with cache.write("teach", "k2", {}) as out:
            (out / "partial.jsonl").write_text("{}")
            raise KeyboardInterrupt
    assert cache.get("teach", "k2") is None
    assert not any(p.name.startswith(".tmp") for p in cache.stage_root("teach").iterdir())


def test_corrupted_entry_is_detected_and_dropped(tmp_path, caplog):
    cache = StageCache(tmp_path)
    with cache.write("train", "k3", {}) as out:
        (out / "model.bin").write_bytes(b"\x00" * 64)
    (cache.path("train", "k3") / "model.bin").write_bytes(b"\x01" * 64)
    assert cache.get("train", "k3") is None
    assert "corrupted" in caplog.text
    assert cache.manifest("train", "k3") is None  # recomputed next time


def test_info_and_clear(tmp_path):
    cache = StageCache(tmp_path)
    with cache.write("data", "a", {}) as out:
        (out / "x").write_text("1")
    with cache.write("train", "b", {}) as out:
        (out / "y").write_text("2")
    cache.records("llm")["req"] = {"text": "hi"}
    info = cache.info()
    assert info["stages"]["data"]["entries"] == 1 and info["stages"]["train"]["entries"] == 1
    assert info["records"]["llm"]["entries"] == 1
    assert cache.clear("data") == 1
    assert cache.info()["stages"]["data"]["entries"] == 0
    assert cache.get("train", "b") is not None
    cache.clear()
    assert StageCache(tmp_path).info()["stages"]["train"]["entries"] == 0


def test_info_on_empty_cache(tmp_path):
    info = StageCache(tmp_path / "never-created").info()
    assert info["bytes"] == 0 and all(row["entries"] == 0 for row in info["stages"].values())


def test_two_writers_of_one_key_finish_together(tmp_path):
    cache = StageCache(tmp_path)
    with cache.write("teach", "k", {}, summary={"failed": 0}) as first:
        (first / "x").write_text("first")
        with StageCache(tmp_path).write("teach", "k", {}, summary={"failed": 0}) as second:
            (second / "x").write_text("second")
    # The second run committed while the first was computing: the first keeps that output
    # instead of replacing a complete folder under a reader's feet.
    folder = cache.get("teach", "k")
    assert folder is not None and (folder / "x").read_text() == "second"
    assert [p.name for p in cache.stage_root("teach").iterdir() if p.is_dir()] == ["k"]


def test_a_killed_writers_temporary_folder_is_removed(tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    cache = StageCache(tmp_path)
    leftover = cache.stage_root("teach") / f".tmp-k-{dead.pid}-abcd1234"
    leftover.mkdir(parents=True)
    (leftover / "rationales.jsonl").write_text("{}")
    with cache.write("teach", "k2", {}) as out:
        (out / "x").write_text("1")
    assert not leftover.exists()
