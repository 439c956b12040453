"""The student's lengths through the pipeline: ``auto`` sized from the teacher's measured
rationales in distill, and a student that cannot fit refused up front (before the teacher
runs, by `slimkit config validate` and by `slimkit status`) with the numbers and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.teach_fixtures import tiny_spec
from helpers.tiny_student import build_tiny_student

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError
from slimkit.spec import validate_spec


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny-lengths-stage") / "model")


def make_raw(tmp_path: Path, model_dir: Path, **student):
    raw = tiny_spec(tmp_path / "data", {"kind": "statistics", "num_users": 12})
    raw["prompt"] = {"max_items": 5, "max_item_chars": 60}
    raw["student"] = {"model": str(model_dir), "batch_size": 4, "lr": 2e-2, "epochs": 1,
                      "gen_batch_size": 16, "quality_users": 2, "valid_share": 0.2,
                      "precision": "none", "num_users": 6, **student}
    raw["encoder"] = {"batch_size": 32}
    return raw


def test_auto_lengths_follow_the_teachers_rationales(tmp_path, tiny_model_dir):
    from slimkit.artifacts.rationales import read_rationales
    from slimkit.factories import build_student
    from slimkit.pipeline import Pipeline
    from slimkit.stages.distill import student_lengths_as_run

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir))
    assert spec.student.max_length == "auto" and spec.student.max_new_tokens == "auto"
    pipeline = Pipeline(spec, StageCache(tmp_path / "cache"), progress=False)
    result = pipeline.run("distill")
    lengths = result.summary["student_lengths"]
    assert lengths["checked"] and lengths["auto"] == ["max_length", "max_new_tokens"]
    teacher = pipeline.teacher_rationales()
    student = build_student(spec.student)
    student.load_tokenizer()
    measured = sorted(len(student.target_ids(r["rationale"])) for r in teacher)
    assert lengths["rationales"] == len(teacher) == 12
    assert lengths["rationale_max"] == measured[-1]
    assert lengths["max_new_tokens"] == -(-lengths["rationale_p95"] // 8) * 8
    assert lengths["max_length"] >= lengths["longest_prompt"] + lengths["rationale_p95"]
    training = json.loads((result.path / "training.json").read_text())
    assert training["truncated_examples"] <= 1  # at most 5% of the rationales cut (of 10)
    rows = read_rationales(result.path)
    assert all(row["new_tokens"] <= lengths["max_new_tokens"] for row in rows)
    # a later generation (a new user's rationale) uses the lengths this run resolved
    as_run = student_lengths_as_run(spec.student, result.summary)
    assert as_run.max_new_tokens == lengths["max_new_tokens"]
    assert as_run.max_length == lengths["max_length"]


def test_a_student_that_cannot_fit_is_refused_before_the_teacher_runs(tmp_path, tiny_model_dir):
    from slimkit.pipeline import Pipeline

    spec = validate_spec(make_raw(tmp_path, tiny_model_dir, max_length=32))
    cache = StageCache(tmp_path / "cache")
    with pytest.raises(SlimkitError) as info:
        Pipeline(spec, cache, progress=False).run("distill")
    text = str(info.value)
    assert "student.max_length=32" in text and "tokens are needed" in text
    assert "student.max_length: auto" in text
    pipeline = Pipeline(spec, cache, progress=False)
    assert pipeline.cached("data") is not None and pipeline.cached("teach") is None


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "3000")  # one line per message, whole phrases to match


def _cli(args) -> int:
    from slimkit.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


def test_validate_and_status_refuse_with_the_numbers(tmp_path, tiny_model_dir, capsys):
    from slimkit.pipeline import Pipeline

    raw = make_raw(tmp_path, tiny_model_dir, max_length=32)
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(raw))
    # before the data stage ran nothing can be measured: valid, and it says when it will be
    assert _cli(["config", "validate", str(config)]) in (0, None)
    assert "not checked yet" in capsys.readouterr().out
    Pipeline(validate_spec(raw), StageCache(), progress=False).run("data")  # the test's cache
    for args in (["config", "validate", str(config)], ["status", "-c", str(config)]):
        assert _cli(args) == 2
        err = capsys.readouterr().err
        assert "student.max_length=32" in err and "prompts measured" in err, args
        assert "Traceback" not in err
    # auto lengths pass, and say what they were measured from
    assert _cli(["config", "validate", str(config), "--set", "student.max_length=auto"]) in (0, None)
    out = capsys.readouterr().out
    assert "max_length=auto (sized after teach)" in out and "prompts:" in out


def test_validate_after_teach_measures_the_teachers_rationales(tmp_path, tiny_model_dir, capsys):
    from slimkit.pipeline import Pipeline

    raw = make_raw(tmp_path, tiny_model_dir)
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(raw))
    Pipeline(validate_spec(raw), StageCache(), progress=False).run("teach")
    assert _cli(["config", "validate", str(config), "--json"]) in (0, None)
    found = json.loads(capsys.readouterr().out)["student_lengths"]
    assert found["checked"] and found["rationales"] == 12
    assert isinstance(found["max_length"], int) and isinstance(found["max_new_tokens"], int)
    # a set max_length that holds the prompts but not the teacher's rationales: refused
    too_short = found["longest_prompt"] + 8
    assert _cli(["config", "validate", str(config), "--set", f"student.max_length={too_short}"]) == 2
    err = capsys.readouterr().err
    assert "median rationale" in err and f"student.max_length={too_short}" in err
