"""Raw user and item ids (or titles) a user types, resolved to dataset indices with
suggestions when they do not exist."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from slimkit.errors import SlimkitError


def close_ids(wanted: str, ids: Sequence[str], n: int = 5) -> list[str]:
    """Ids that look like ``wanted``: spelled alike, or numerically near for numbers."""
    out = difflib.get_close_matches(str(wanted), list(ids), n=n, cutoff=0.6)
    if str(wanted).strip().lstrip("-").isdigit():
        target = int(wanted)
        numeric = sorted((abs(int(i) - target), i) for i in ids if str(i).isdigit())
        for _, candidate in numeric[:n]:
            if candidate not in out:
                out.append(candidate)
    return out[:n]


def user_index(dataset: Any, user: str) -> int:
    """Index of raw user id ``user``; an unknown id is a SlimkitError suggesting close ids."""
    try:
        return dataset.user_index(str(user))
    except KeyError:
        close = close_ids(str(user), dataset.user_ids)
        raise SlimkitError(
            f"Unknown user '{user}': dataset {dataset.name} has no such user id "
            f"({dataset.num_users} users after preparation).",
            hint=(f"Close ids: {', '.join(close)}. " if close else "")
            + "Users with fewer than 3 interactions (or removed by k-core filtering) are not "
            "in the prepared dataset; `--history ITEM,ITEM,...` recommends for a new user.",
        ) from None


def item_indices(dataset: Any, items: Sequence[str]) -> list[int]:
    """Item indices of raw item ids (or titles, as :class:`~slimkit.data.titles.TitleIndex`
    resolves them: "The Matrix" for "Matrix, The (1999)"); unknown ones are one SlimkitError."""
    from slimkit.data.titles import TitleIndex

    titles = None
    out, problems = [], []
    for raw in items:
        raw = str(raw).strip()
        if not raw:
            continue
        try:
            out.append(dataset.item_index(raw))
            continue
        except KeyError:
            pass
        titles = titles or TitleIndex(dataset.item_titles)
        found = titles.resolve(raw)
        if found is not None:
            out.append(found)
            continue
        close = close_ids(raw, dataset.item_ids[1:], n=3)
        problems.append(
            f"'{raw}' is neither an item id nor a title"
            + (f" (close ids: {', '.join(close)})" if close else "")
        )
    if problems:
        raise SlimkitError(
            f"--history: {len(problems)} unknown item{'s' if len(problems) > 1 else ''} in "
            f"dataset {dataset.name}:",
            problems=problems,
            hint="Give raw item ids as in the dataset's files, separated by commas.",
        )
    if not out:
        raise SlimkitError("--history is empty: give at least one item id, e.g. --history 50,181")
    return out
