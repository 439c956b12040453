"""``student.scaffold_steps``: the student's generation writes the step headers itself (the
local teacher's scaffold), on a tiny random Llama that never writes them on its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.tiny_student import build_tiny_student

from slimkit.errors import SlimkitError
from slimkit.llm.scaffold import SCAFFOLD
from slimkit.rationale import parse_steps

CATALOGUE = ["", "Matrix, The (1999)", "Toy Story (1995)", "Heat (1995)", "Die Hard (1988)",
             "Die Hard 2 (1990)", "Casino (1995)", "Babe (1995)", "Fargo (1996)"]
HISTORIES = [{1, 2, 3}, {4, 6}, {5, 7, 8}, set(), {1, 4}, {2}, {3, 5, 6, 7}]
# prompts of different lengths, so batches are left padded
MESSAGES = [[{"role": "user", "content": f"User history (most recent last):\n1. Movie {n}; Comedy"
              + "; Drama" * n}] for n in range(len(HISTORIES))]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_student(tmp_path_factory.mktemp("tiny-scaffold") / "model")


def make_student(model_dir: Path, **params):
    from slimkit.students.hf_lora import HFLoraStudent

    defaults = {"model": str(model_dir), "max_length": 256, "precision": "none",
                "max_new_tokens": 64, "gen_batch_size": 3}
    return HFLoraStudent(**{**defaults, **params}).load()


def rationales(student, **options) -> dict[int, tuple[str, int]]:
    out: dict[int, tuple[str, int]] = {}
    student.generate([student.prompt_ids(m) for m in MESSAGES], progress=False,
                     on_done=lambda i, text, new: out.update({i: (text, new)}), **options)
    assert sorted(out) == list(range(len(MESSAGES)))
    return out


@pytest.mark.parametrize("budget", [48, 96])
@pytest.mark.parametrize("rules", [{}, {"repetition_penalty": 1.3, "no_repeat_ngram_size": 3}])
def test_every_scaffolded_rationale_has_three_steps_within_the_budget(tiny_model_dir, budget, rules):
    free = rationales(make_student(tiny_model_dir, max_new_tokens=budget, **rules))
    # the random model never writes the format itself ...
    assert all(parse_steps(text) is None for text, _ in free.values())
    scaffolded = rationales(make_student(tiny_model_dir, max_new_tokens=budget, scaffold_steps=True,
                                         **rules))
    for text, new_tokens in scaffolded.values():  # ... under the scaffold every answer does
        assert text.startswith(SCAFFOLD[0])
        assert all(header.strip() in text for header in SCAFFOLD[1:]), text
        steps = parse_steps(text)
        assert steps is not None, text
        assert new_tokens <= budget  # step 3 reached (and ended) within max_new_tokens


def test_scaffolded_constrained_step3_names_only_unseen_catalogue_titles(tiny_model_dir):
    from slimkit.llm.constraints import ItemConstraint

    student = make_student(tiny_model_dir, max_new_tokens=120, scaffold_steps=True,
                           constrain_items=True, repetition_penalty=1.3)
    out = rationales(student, item_constraint=ItemConstraint(CATALOGUE, HISTORIES))
    for index, (text, new_tokens) in out.items():
        steps = parse_steps(text)
        assert steps is not None, text
        assert new_tokens <= 120
        step3 = text.split(SCAFFOLD[2].strip(), 1)[1]
        names = [part.strip() for part in step3.split(";") if part.strip()]
        assert names, text
        for name in names:
            assert name in CATALOGUE, f"not a catalogue title: {name!r} in {text!r}"
            assert CATALOGUE.index(name) not in HISTORIES[index], f"history item named: {text!r}"


def test_off_is_the_unscaffolded_generation_and_its_cache_key(tiny_model_dir):
    """Off: the very call generation made before the switch existed, and the same key."""
    from slimkit.llm.generate import generate, step_marker_tokens

    student = make_student(tiny_model_dir, repetition_penalty=1.3)
    assert student.generation_params() == {"max_new_tokens": 64, "do_sample": False,
                                           "quantize": "none", "answer_repetition_penalty": 1.3}
    before: dict[int, str] = {}
    generate(student._generation_model(), student.tokenizer,
             [student.prompt_ids(m) for m in MESSAGES], max_new_tokens=64, batch_size=3,
             order="length", answer_repetition_penalty=1.3, progress=False,
             repetition_exempt=step_marker_tokens(student.tokenizer),
             on_done=lambda done: before.update({done.index: done.text.strip()}))
    assert {i: text for i, (text, _) in rationales(student).items()} == before


def test_the_rationale_cache_key_includes_the_switch(tiny_model_dir):
    from slimkit.stages.distill import RationaleGenerator

    keys = {}
    for on in (False, True):
        student = make_student(tiny_model_dir, scaffold_steps=on)
        generator = RationaleGenerator(student, {}, lambda who: MESSAGES[who])
        keys[on] = generator.record_key(0)
        assert ("scaffold_steps" in student.generation_params()) is on
    assert keys[False] != keys[True]


def test_a_budget_too_small_for_the_headers_is_refused(tiny_model_dir):
    student = make_student(tiny_model_dir, max_new_tokens=20, scaffold_steps=True)
    with pytest.raises(SlimkitError, match="too small for student.scaffold_steps"):
        student.generate([student.prompt_ids(MESSAGES[0])], progress=False)
    with pytest.raises(SlimkitError, match="too small for student.scaffold_steps"):
        student.fit_lengths({0: MESSAGES[0]}, None)


def test_teacher_rationales_without_the_headers_are_warned_about(tiny_model_dir):
    student = make_student(tiny_model_dir, scaffold_steps=True, max_new_tokens=64)
    plain = ["Step 1: likes comedy. Step 2: Comedy. Step 3: Movie 12."] * 3
    warnings = student.fit_lengths({0: MESSAGES[0]}, plain)["warnings"]
    assert any("scaffold_steps" in w for w in warnings)
    scaffolded = [("Step 1: The user likes comedy.\nStep 2: Recommended categories or brands: "
                   "Comedy\nStep 3: Recommended items: Movie 12")] * 3
    warnings = student.fit_lengths({0: MESSAGES[0]}, scaffolded).get("warnings", [])
    assert not any("scaffold_steps" in w for w in warnings)


def test_vllm_with_the_scaffold_is_refused_up_front(tmp_path, monkeypatch):
    """By the student, and by a stage command before any upstream stage (the teacher) runs."""
    from helpers.teach_fixtures import tiny_spec

    from slimkit.cache import StageCache
    from slimkit.pipeline import Pipeline, run_stage_tracked
    from slimkit.spec import validate_spec
    from slimkit.students.hf_lora import HFLoraStudent

    with pytest.raises(SlimkitError, match="scaffold_steps apply to the transformers backend"):
        HFLoraStudent(backend="vllm", scaffold_steps=True)

    def no_stage(self, stage):
        raise AssertionError(f"the {stage} stage ran before the refusal")

    monkeypatch.setattr(Pipeline, "run", no_stage)
    spec = validate_spec(tiny_spec(tmp_path / "data", {"kind": "statistics"},
                                   student={"backend": "vllm", "scaffold_steps": True}))
    with pytest.raises(SlimkitError, match="scaffold_steps apply to the transformers backend"):
        run_stage_tracked(spec, "distill", StageCache(tmp_path / "cache"), progress=False)


def test_the_scaffold_header_counts_as_answer_for_the_repetition_rules(tiny_model_dir):
    """Step 1's header sits at the end of the prompt, yet it is part of the rationale (as
    when the student writes it itself): the answer-only rules see it (``answer_prefix``)."""
    from slimkit.llm.generate import generate

    student = make_student(tiny_model_dir)
    model, tokenizer = student._generation_model(), student.tokenizer
    header = tokenizer.encode(SCAFFOLD[0], add_special_tokens=False)
    prompts = [tokenizer.encode(f"User history: Movie {n}; Comedy" + " Drama" * n,
                                add_special_tokens=False) + header for n in range(12)]
    repeats = {}
    for prefix in (0, len(header)):
        out: dict[int, list[int]] = {}
        generate(model, tokenizer, prompts, max_new_tokens=30, batch_size=4, progress=False,
                 answer_no_repeat_ngram_size=1, answer_prefix=prefix,
                 on_done=lambda done, out=out: out.update({done.index: tokenizer.encode(done.text)}))
        repeats[prefix] = sum(any(t in out[i] for t in header) for i in out)
    assert repeats[0] > 0  # the prompt's header tokens come again when not counted ...
    assert repeats[len(header)] == 0  # ... and never once they are


@pytest.mark.parametrize("min_step", [1, 5])
def test_a_step_line_ends_only_after_min_step_tokens(tiny_model_dir, min_step):
    """A model that would end every line at once writes exactly ``min_step`` tokens and
    the line break per step (1: the local teacher's rule, content before the break)."""
    from transformers import LogitsProcessor

    from slimkit.llm.generate import generate
    from slimkit.llm.scaffold import StepScaffold

    student = make_student(tiny_model_dir)
    tokenizer = student.tokenizer
    scaffold = StepScaffold(tokenizer, len(tokenizer))

    class LineBreakFirst(LogitsProcessor):
        def __call__(self, input_ids, scores):  # (B, T), (B, V)
            scores[:, scaffold.newline_id] = 1e4
            return scores

    def processors(rows: int, width: int):
        inner = scaffold.processor(rows, width, per_step=10, min_step=min_step)
        return lambda ids, scores: inner(ids, LineBreakFirst()(ids, scores))

    out = {}
    prompts = [student.prompt_ids(m) + tokenizer.encode(SCAFFOLD[0]) for m in MESSAGES]
    generate(student._generation_model(), tokenizer, prompts, max_new_tokens=80, batch_size=3,
             logits_processor=processors, progress=False,
             on_done=lambda done: out.update({done.index: done}))
    forced = sum(len(h) + 1 for h in scaffold.headers)  # headers of steps 2 and 3, a break each
    for done in out.values():  # per step: min_step tokens, the break; then the end
        assert done.new_tokens == forced - 2 + 3 * (min_step + 1) + 1, done
