"""Constrained step 3: a random tiny model can only name catalogue titles outside the
history, whatever it would write on its own (greedy and sampled, alone and under the
local teacher's step scaffold)."""

from __future__ import annotations

import pytest
from helpers.tiny_student import build_tiny_student

CATALOGUE = ["", "Matrix, The (1999)", "Toy Story (1995)", "Heat (1995)", "Die Hard (1988)",
             "Die Hard 2 (1990)", "Casino (1995)", "Babe (1995)", "Fargo (1996)"]
HISTORIES = [{1, 2, 3}, {4, 6}, {5, 7, 8}, set()]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from slimkit.llm.loading import load_causal_lm

    return load_causal_lm(build_tiny_student(tmp_path_factory.mktemp("tiny-constraint") / "model"))


def _decode(model, tokenizer, prompts, constraint, **options) -> dict[int, str]:
    from slimkit.llm.constraints import TitleTrie, constraint_factory
    from slimkit.llm.generate import generate

    out: dict[int, str] = {}
    generate(model, tokenizer, prompts, progress=False, constraint=constraint_factory(
        TitleTrie(tokenizer, CATALOGUE), constraint),
        on_done=lambda done: out.update({done.index: done.text}), **options)
    return out


def _named(step3: str) -> list[str]:
    return [part.strip() for part in step3.split(";") if part.strip()]


@pytest.mark.parametrize("temperature", [0.0, 1.5])
@pytest.mark.parametrize("budget", [200, 30])
def test_step3_names_only_unseen_catalogue_titles(tiny, temperature, budget):
    from slimkit.llm.constraints import ItemConstraint

    model, tokenizer = tiny
    prompt = list(tokenizer("User history: Movie 3; Comedy\nStep 3:", add_special_tokens=False)["input_ids"])
    histories = HISTORIES * 3
    constraint = ItemConstraint(CATALOGUE, histories, max_items=3, max_new_tokens=budget)
    for seed in range(3):
        out = _decode(model, tokenizer, [prompt] * len(histories), constraint, max_new_tokens=budget,
                      batch_size=4, temperature=temperature, seed=seed)
        for index, text in out.items():
            names = _named(text)
            assert names, f"nothing named: {text!r}"
            assert len(names) <= 3 and len(set(names)) == len(names)
            for name in names:
                assert name in CATALOGUE, f"not a catalogue title: {name!r} in {text!r}"
                assert CATALOGUE.index(name) not in histories[index], f"history item named: {text!r}"
            assert text.rstrip().endswith(names[-1])  # no cut title after the last one
            if budget == 200:  # room for all: exactly max_items (fewer when few are left)
                assert len(names) == min(3, len(CATALOGUE) - 1 - len(histories[index]))


def test_without_the_marker_nothing_is_constrained_and_an_exhausted_catalogue_ends(tiny):
    from slimkit.llm.constraints import ItemConstraint

    model, tokenizer = tiny
    free_prompt = list(tokenizer("User history: Movie 3; Comedy\n", add_special_tokens=False)["input_ids"])
    step3 = list(tokenizer("Step 3:", add_special_tokens=False)["input_ids"])
    everything = set(range(1, len(CATALOGUE)))
    constraint = ItemConstraint(CATALOGUE, [set(), everything])
    out = _decode(model, tokenizer, [free_prompt, free_prompt + step3], constraint, max_new_tokens=12)
    assert not all(name in CATALOGUE for name in _named(out[0]))  # free text: the model's own
    assert out[1] == ""  # every title is in the history: step 3 ends at once


def test_under_the_teacher_scaffold_step3_is_constrained(tiny):
    from slimkit.llm.constraints import ItemConstraint, TitleTrie, constraint_factory
    from slimkit.llm.generate import generate
    from slimkit.llm.scaffold import SCAFFOLD, StepScaffold
    from slimkit.rationale import parse_steps

    model, tokenizer = tiny
    scaffold = StepScaffold(tokenizer, model.config.vocab_size)
    prompt = list(tokenizer("A user watched Heat.\n" + SCAFFOLD[0], add_special_tokens=False)["input_ids"])
    histories = [{3}, {1, 2, 3, 4}]
    constraint = ItemConstraint(CATALOGUE, histories, marker=SCAFFOLD[2].strip(), max_new_tokens=160)
    out: dict[int, str] = {}
    generate(model, tokenizer, [prompt, prompt], max_new_tokens=160, progress=False,
             logits_processor=lambda rows, width: scaffold.processor(rows, width, 8, last_step=160),
             constraint=constraint_factory(TitleTrie(tokenizer, CATALOGUE), constraint),
             on_done=lambda done: out.update({done.index: SCAFFOLD[0] + done.text}))
    for index, text in out.items():
        steps = parse_steps(text)
        assert steps is not None, text
        names = _named(steps[3].replace("Recommended items:", ""))
        assert names and all(n in CATALOGUE and CATALOGUE.index(n) not in histories[index] for n in names)
