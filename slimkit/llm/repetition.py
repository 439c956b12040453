"""Repetition control over the answer only, not the prompt.

transformers' ``repetition_penalty`` and ``no_repeat_ngram_size`` look at the whole
sequence, prompt included. A student prompt says "Step 1 ... Step 2 ... Step 3", so both
push the model off its own format: measured on the quickstart student with 1.3 and 4,
it wrote "Step I - ..." and lost the three steps. :class:`AnswerRepetition` applies the
same two rules to the tokens generated after the prompt only.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def answer_repetition(start: int, penalty: float | None, ngram: int | None,
                      exempt: Collection[int] = ()) -> Any:
    """A logits processor for prompts ``start`` tokens wide (left padded): tokens already
    in the answer get ``penalty`` (as transformers applies it: logits > 0 divided, < 0
    multiplied), and no ``ngram``-gram of the answer is written twice. ``exempt`` tokens
    (the step markers' "Step", digits, ":" and line breaks, which every answer repeats)
    are neither penalised nor banned."""
    from transformers import LogitsProcessor

    keep = sorted({int(t) for t in exempt})

    class AnswerRepetition(LogitsProcessor):
        def __call__(self, input_ids, scores):  # (B, T), (B, V)
            import torch

            if input_ids.shape[1] <= start:
                return scores
            answer = input_ids[:, start:]  # (B, A)
            if penalty is not None and penalty != 1.0:
                kept = scores[:, keep].clone() if keep else None  # (B, K)
                picked = torch.gather(scores, 1, answer)  # (B, A)
                picked = torch.where(picked < 0, picked * penalty, picked / penalty)
                scores = scores.scatter(1, answer, picked)
                if keep:
                    scores[:, keep] = kept
            if ngram and answer.shape[1] >= ngram:
                rows = answer.tolist()
                for b, tokens in enumerate(rows):
                    tail = tuple(tokens[len(tokens) - ngram + 1 :]) if ngram > 1 else ()
                    banned = {tokens[i + ngram - 1] for i in range(len(tokens) - ngram + 1)
                              if tuple(tokens[i : i + ngram - 1]) == tail} - set(keep)
                    if banned:
                        scores[b, list(banned)] = float("-inf")
            return scores

    return AnswerRepetition()
