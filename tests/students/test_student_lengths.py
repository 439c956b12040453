"""Student lengths from the teacher's measured rationales: the arithmetic, and the hf-lora
student measuring prompts and rationales with its tokenizer alone (no weights loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tiny_student import build_tiny_student

from slimkit.errors import SlimkitError
from slimkit.students.hf_lora.lengths import MIN_ROOM, percentile_tokens, plan_lengths, round_up


def test_percentile_is_the_nearest_rank():
    assert percentile_tokens(range(1, 101)) == 95
    assert percentile_tokens([7]) == 7
    assert percentile_tokens([10, 500] + [20] * 38) == 20  # 2 of 40 longer: the 95th is 20
    assert round_up(1) == 8 and round_up(16) == 16 and round_up(17) == 24


def test_auto_follows_the_teacher_and_leaves_five_percent_cut():
    rationales = [100] * 95 + [400] * 5  # a hosted teacher: most short, a few long
    plan = plan_lengths(max_length="auto", max_new_tokens="auto",
                        prompt_tokens={0: 300, 1: 569, 2: 120}, rationale_tokens=rationales,
                        context=8192)
    assert plan.rationale_p95 == 100 and plan.rationale_max == 400
    assert plan.max_new_tokens == 104  # 100 rounded up to a multiple of 8
    assert plan.max_length == 672  # 569 + 100 = 669, rounded up
    assert plan.longest_prompt_user == "1" and not plan.problems and not plan.warnings
    assert plan.auto == ["max_length", "max_new_tokens"]


def test_before_teach_auto_stays_auto_and_only_prompts_are_checked():
    plan = plan_lengths(max_length="auto", max_new_tokens="auto", prompt_tokens={3: 200},
                        rationale_tokens=None, context=8192)
    assert plan.max_length == "auto" and plan.max_new_tokens == "auto" and not plan.problems


def test_a_set_max_length_that_cannot_hold_the_prompt_names_user_tokens_and_fix():
    """The issue's case: 20 history items overflow the old default of 384."""
    plan = plan_lengths(max_length=384, max_new_tokens=64, prompt_tokens={679: 300, 680: 569},
                        rationale_tokens=None, user_name=lambda u: f"A{u}, index {u}")
    [problem] = plan.problems
    assert "student.max_length=384" in problem and "569 tokens" in problem
    assert "user A680, index 680" in problem
    assert f"{569 + MIN_ROOM}" in problem and "student.max_length: auto" in problem
    assert "prompt.max_items" in problem


def test_after_teach_a_set_max_length_must_hold_the_teachers_rationale_too():
    plan = plan_lengths(max_length=384, max_new_tokens=64, prompt_tokens={0: 250},
                        rationale_tokens=[500] * 20)
    [problem] = plan.problems
    assert "median rationale (500 student tokens)" in problem
    assert "750 tokens are needed" in problem and "auto (it follows" in problem and "here 752" in problem
    # ... and a set max_new_tokens below the teacher's is obeyed, with a warning
    [warning] = plan.warnings
    assert "student.max_new_tokens=64" in warning and "500" in warning and "auto (here 504)" in warning
    assert plan.max_new_tokens == 64


def test_a_set_max_length_that_cuts_only_the_longest_rationales_is_warned_about():
    plan = plan_lengths(max_length=384, max_new_tokens="auto", prompt_tokens={0: 184},
                        rationale_tokens=[150] * 18 + [203] * 2)  # median 150, p95 203
    assert not plan.problems and plan.max_length == 384 and plan.max_new_tokens == 208
    [warning] = plan.warnings
    assert "cuts the end of more than 5%" in warning and "387 tokens" in warning


def test_lengths_beyond_the_context_window_are_refused():
    plan = plan_lengths(max_length="auto", max_new_tokens="auto", prompt_tokens={0: 900},
                        rationale_tokens=[200] * 10, context=1024)
    [problem] = plan.problems
    assert "1100 tokens" in problem and "context window (1024 tokens)" in problem


def test_no_teacher_rationale_to_measure_needs_a_number():
    plan = plan_lengths(max_length="auto", max_new_tokens="auto", prompt_tokens={},
                        rationale_tokens=[])
    assert any("student.max_new_tokens" in p for p in plan.problems)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny-lengths") / "model")


MESSAGES = [{"role": "user", "content": "User history (most recent last):\n1. Movie 3; Comedy"}]
RATIONALE = "Step 1: Comedy. Step 2: Comedy; Acme. Step 3: Movie 12."


def test_student_fits_auto_lengths_from_its_tokenizer_without_loading_weights(tiny_model_dir):
    from slimkit.students.hf_lora import HFLoraStudent

    student = HFLoraStudent(model=str(tiny_model_dir), precision="none")
    found = student.fit_lengths({0: MESSAGES, 1: MESSAGES[:1]}, [RATIONALE, RATIONALE * 3])
    assert student.model is None  # the tokenizer alone
    prompt = len(student.prompt_ids(MESSAGES))
    longest = len(student.target_ids(RATIONALE * 3))
    assert found["checked"] and found["rationale_p95"] == longest  # 2 rationales: the 95th is the longer
    assert student.max_new_tokens == round_up(longest)
    assert student.settings.max_length == round_up(prompt + longest)
    assert found["context"] == 1024  # the tiny model's max_position_embeddings
    params = student.generation_params()
    assert params["max_new_tokens"] == student.max_new_tokens


def test_auto_lengths_must_be_fitted_before_training_or_generating(tiny_model_dir):
    from slimkit.students.hf_lora import HFLoraStudent

    student = HFLoraStudent(model=str(tiny_model_dir), precision="none")
    with pytest.raises(RuntimeError, match="fit_lengths"):
        student.generation_params()
    with pytest.raises(RuntimeError, match="fit_lengths"):
        student.build_example(0, student.prompt_ids(MESSAGES), RATIONALE)


def test_student_refuses_a_set_max_length_with_a_slimkit_error(tiny_model_dir):
    from slimkit.students.hf_lora import HFLoraStudent

    student = HFLoraStudent(model=str(tiny_model_dir), precision="none", max_length=16)
    with pytest.raises(SlimkitError) as info:
        student.fit_lengths({0: MESSAGES}, None)
    assert info.value.exit_code == 2 and "student.max_length=16" in str(info.value)


def test_a_model_not_on_this_machine_is_not_checked_without_fetching(tmp_path, monkeypatch):
    from slimkit.students.hf_lora import HFLoraStudent

    monkeypatch.setenv("SLIMKIT_MODEL_DIR", str(tmp_path / "models"))  # nothing fetched here
    student = HFLoraStudent()  # the smollm2 alias
    found = student.fit_lengths({0: MESSAGES}, None, fetch=False)
    assert found["checked"] is False and "not on this machine" in found["reason"]
