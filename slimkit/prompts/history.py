"""What a rationale prompt shows of a user: item texts from before their held-out targets.

The teacher, the student (training and generation) and ``recommend`` for a new history
all build prompts here, so the same truncation rules hold everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def item_texts(dataset: Any, items: Sequence[int], max_items: int, max_item_chars: int) -> list[str]:
    """Texts of the last ``max_items`` of ``items`` (item indices, oldest first), each on one
    line and cut to ``max_item_chars``; an item without text shows its title, else its id."""
    shown = list(items)[-max_items:] if max_items > 0 else []
    texts = []
    for item in shown:
        text = " ".join(str(dataset.item_text[int(item)]).split())
        if not text:
            text = " ".join(str(dataset.item_titles[int(item)]).split()) or f"item {dataset.item_ids[int(item)]}"
        if len(text) > max_item_chars:
            text = text[: max_item_chars - 1].rstrip() + "…"
        texts.append(text)
    return texts


def user_history(dataset: Any, user: int, max_items: int, max_item_chars: int) -> list[str]:
    """Item texts a rationale may see: the last ``max_items`` training items of user index
    ``user`` (never the validation or test target), oldest first."""
    return item_texts(dataset, dataset.train_items(user), max_items, max_item_chars)


def user_messages(template: Any, dataset: Any, user: int, prompt: Any) -> list[dict[str, str]]:
    """Chat messages of ``template`` for user index ``user`` under a spec's ``prompt`` section."""
    return template.render(user_history(dataset, user, prompt.max_items, prompt.max_item_chars))
