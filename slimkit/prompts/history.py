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
    ``user`` (never the validation or test target; from a dataset seen from the rationale
    cut, :class:`~slimkit.data.rationale_cut.CutHistories`, the items before the cut),
    oldest first."""
    return item_texts(dataset, dataset.train_items(user), max_items, max_item_chars)


def user_messages(template: Any, dataset: Any, user: int, prompt: Any) -> list[dict[str, str]]:
    """Chat messages of ``template`` for user index ``user`` under a spec's ``prompt`` section
    (with the user's facts when the template uses any)."""
    history = user_history(dataset, user, prompt.max_items, prompt.max_item_chars)
    return render_with_facts(template, history, dataset, dataset.train_items(user))


def render_with_facts(template: Any, history: list[str], dataset: Any, items: Sequence[int]):
    """``template.render(history)``, plus the facts of the item indices ``items`` (the
    user's training items) when the template uses fact variables."""
    from slimkit.prompts import FACT_VARIABLES

    if not set(FACT_VARIABLES) & set(template.variables()):
        return template.render(history)
    return template.render(history, facts=fact_values(catalogue_facts(dataset), items))


_FACTS: dict[int, Any] = {}


def catalogue_facts(dataset: Any):
    """The dataset's :class:`~slimkit.data.facts.CatalogueFacts` (computed once per dataset)."""
    from slimkit.data.facts import CatalogueFacts

    found = _FACTS.get(id(dataset))
    if found is None or found.dataset is not dataset:
        if len(_FACTS) >= 2:  # a dataset and its view from the rationale cut at a time
            _FACTS.clear()
        found = _FACTS[id(dataset)] = CatalogueFacts(dataset)
    return found


def fact_values(facts: Any, items: Sequence[int]) -> dict[str, str]:
    """Template values of the facts of a history of item indices."""
    user = facts.user_facts(0, history=[int(i) for i in items])
    return {
        "top_categories": ", ".join(f"{c} ({n})" for c, n in user.top_categories) or "none known",
        "recent_items": "; ".join(user.recent_items) or "none",
        "candidate_items": "; ".join(user.candidate_items) or "none",
    }
