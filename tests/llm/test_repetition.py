"""Repetition control over the answer only: the prompt's tokens are neither penalised nor
counted as n-grams (a student prompt names "Step 1 ... Step 3", which the answer repeats)."""

from __future__ import annotations

import pytest


def test_penalty_and_ngrams_see_the_answer_only():
    torch = pytest.importorskip("torch")
    from slimkit.llm.repetition import answer_repetition

    prompt = [1, 2, 9, 5]  # "1 2 9" is an n-gram of the prompt only
    answer = [1, 2, 3, 7, 1, 2]
    ids = torch.tensor([prompt + answer])  # (1, T)
    scores = torch.full((1, 12), 2.0)
    scores[0, 11] = -2.0
    out = answer_repetition(len(prompt), 2.0, 3)(ids, scores.clone())
    assert out[0, 5] == 2.0  # the prompt's last token: untouched
    assert out[0, 9] == 2.0  # in the prompt, not in the answer: untouched
    assert out[0, 7] == 1.0  # in the answer: 2.0 / 2
    assert out[0, 3] == -float("inf")  # "1 2" was followed by 3 in the answer: banned
    assert out[0, 11] == -2.0  # never seen
    # before any answer token nothing changes
    assert torch.equal(answer_repetition(len(prompt), 2.0, 3)(torch.tensor([prompt]), scores.clone()), scores)
