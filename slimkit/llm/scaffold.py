"""The step scaffold: a logits processor that writes the three "Step N:" headers itself.

Tiny models do not follow a three-step format on their own (SmolLM2-135M copies the
instructions back). With the scaffold the prompt ends with step 1's header, the model
writes each step's content on one line, and when it ends the line (or spends
``per_step`` tokens) the next header is forced token by token, in the same decoding
pass; after step 3's line comes the end of sequence. Line breaks and end of sequence
are banned until a step has content (``min_step`` tokens; the student asks for more).
"""

from __future__ import annotations

from collections import deque
from typing import Any

SCAFFOLD = (
    "Step 1: The user",
    "\nStep 2: Recommended categories or brands:",
    "\nStep 3: Recommended items:",
)
"""The headers: the first ends the prompt, the others are forced between steps."""

MIN_STEP_TOKENS = 4
"""Fewest free tokens per step a budgeted scaffold (:meth:`StepScaffold.per_step_within`) allows."""

MIN_STEP_SHARE = 0.5
"""Under the student's budgeted scaffold a step's line may end only after this share of
its tokens: the quickstart student ends step 1 after "The user's preferences are:" for 40
of 100 users otherwise (its habit is a list on the next lines, which the scaffold cuts)."""

HEADER_ROOM = 24
"""Extra new tokens a scaffolded answer may take: the forced headers of steps 2 and 3."""


class StepScaffold:
    """What the scaffold needs from a tokenizer, computed once; :meth:`processor` makes
    the per-batch logits processor (each batch keeps its own per-row state)."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        from slimkit.runtime import setup_torch

        torch = setup_torch()
        vocab = tokenizer.get_vocab()
        # (V,) bool: tokens whose text contains a line break
        self.newline = torch.zeros(max(max(vocab.values()) + 1, vocab_size), dtype=torch.bool)
        for token, index in vocab.items():
            if "\n" in tokenizer.convert_tokens_to_string([token]):
                self.newline[index] = True
        self.newline_id = tokenizer.encode("\n", add_special_tokens=False)[-1]
        self.headers = [tokenizer.encode(h.lstrip("\n"), add_special_tokens=False)
                        for h in SCAFFOLD[1:]]
        self.eos = tokenizer.eos_token_id

    def per_step(self, max_new_tokens: int) -> int:
        """Free tokens a step may take before its line is ended for it (the local teacher:
        the headers come on top, :data:`HEADER_ROOM`)."""
        return max(8, max_new_tokens // len(SCAFFOLD))

    @property
    def forced_tokens(self) -> int:
        """Tokens the scaffold forces into an answer at most: the headers of steps 2 and 3,
        a line break before each, and one more line break and the end after step 3."""
        return sum(len(h) + 1 for h in self.headers) + 2

    def per_step_within(self, max_new_tokens: int) -> int:
        """Free tokens per step so that the whole answer, forced tokens included, fits in
        ``max_new_tokens`` (the student: its budget is what it learned, headers included);
        below 1 when it cannot fit."""
        return (max_new_tokens - self.forced_tokens) // len(SCAFFOLD)

    def processor(self, batch: int, start: int, per_step: int, last_step: int | None = None,
                  min_step: int = 1):
        """A fresh logits processor for ``batch`` rows whose prompts are ``start`` tokens
        wide (left padded); step 3 may take ``last_step`` free tokens (default ``per_step``;
        larger when a title constraint ends the row itself); a line may end only after
        ``min_step`` free tokens of its step (at most ``per_step``)."""
        min_step = max(1, min(min_step, per_step))
        from transformers import LogitsProcessor

        newline, newline_id, headers, eos = self.newline, self.newline_id, self.headers, self.eos

        class Scaffold(LogitsProcessor):
            def __init__(self):
                self.step = [0] * batch  # 0, 1, 2: the step being written
                self.count = [0] * batch  # free tokens written in this step
                self.queue = [deque() for _ in range(batch)]
                self.forced = [False] * batch  # the last token was forced
                self.done = [False] * batch

            def __call__(self, input_ids, scores):  # (B, T), (B, V)
                generated = input_ids.shape[1] > start
                vocab = scores.shape[1]
                for b in range(batch):
                    if generated and not self.done[b] and not self.forced[b]:
                        last = int(input_ids[b, -1])
                        self.count[b] += 1
                        ended = last < newline.shape[0] and bool(newline[last])
                        limit = per_step if self.step[b] < 2 or last_step is None else last_step
                        if ended or self.count[b] >= limit:
                            if not ended:
                                self.queue[b].append(newline_id)
                            if self.step[b] < 2:
                                self.queue[b].extend(headers[self.step[b]])
                                self.step[b] += 1
                                self.count[b] = 0
                            else:
                                self.queue[b].append(eos)
                                self.done[b] = True
                    if self.queue[b]:
                        token = self.queue[b].popleft()
                        scores[b, :] = float("-inf")
                        scores[b, token] = 0.0
                        self.forced[b] = True
                    else:
                        self.forced[b] = False
                        if self.count[b] < min_step or self.step[b] < 2:
                            scores[b, eos] = float("-inf")
                        if self.count[b] < min_step:
                            scores[b, newline[:vocab].nonzero().squeeze(1)] = float("-inf")
                return scores

        return Scaffold()
