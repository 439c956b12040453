"""Training examples: a tokenised (prompt, rationale) pair whose loss counts the rationale only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slimkit.errors import SlimkitError

IGNORE_INDEX = -100
"""Label of tokens that do not count in the loss (the prompt, padding)."""


@dataclass
class TrainingExample:
    """One tokenised (prompt, rationale) pair; ``labels`` is ``-100`` on prompt tokens."""

    user_index: int
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False

    @property
    def num_target_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def build_example(user_index: int, prompt: Sequence[int], target: Sequence[int],
                  max_length: int) -> TrainingExample:
    """Prompt + target ids with labels masked to the target; the target cut to ``max_length``."""
    prompt, target = list(prompt), list(target)
    room = max_length - len(prompt)
    if room < 8:
        raise SlimkitError(
            f"student.max_length={max_length} is shorter than the prompt of user "
            f"index {user_index} ({len(prompt)} tokens) plus room for a rationale.",
            hint=f"Raise student.max_length (at least {len(prompt) + 64} for this prompt) "
            "or shorten prompts with prompt.max_items / prompt.max_item_chars.",
        )
    truncated = len(target) > room
    target = target[:room]
    return TrainingExample(
        user_index=user_index,
        input_ids=prompt + target,
        labels=[IGNORE_INDEX] * len(prompt) + target,
        truncated=truncated,
    )


def collate(batch: Sequence[TrainingExample], pad_id: int, device: str):
    """(input_ids (B, T), attention_mask (B, T), labels (B, T)), right padded, on ``device``."""
    from slimkit.runtime import setup_torch

    torch = setup_torch()
    width = max(len(ex.input_ids) for ex in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)  # (B, T)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(batch), width), dtype=torch.long)  # (B, T)
    for row, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids)
        labels[row, :n] = torch.tensor(ex.labels)
        mask[row, :n] = 1
    return ids.to(device), mask.to(device), labels.to(device)
