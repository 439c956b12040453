"""From a raw log to a :class:`PreparedDataset`: the preparation every dataset kind shares.

Steps, in order:

1. de-duplicate repeated ``(user, item, timestamp)`` events, keeping the first;
2. iterative k-core: drop users with fewer than ``max(min_user_interactions, 3)`` events
   (leave-one-out needs 3) and items with fewer than ``min_item_interactions``, until
   nothing changes;
3. sort each user's events by time, stable on ties (file order decides, as in RecBole);
4. remap ids densely: users ``0..U-1`` and items ``1..N`` in order of first appearance in
   the file (``0`` is padding);
5. item text from ``item_text_template`` over the item's fields, cleaned of HTML and
   whitespace, cut to ``item_text_max_tokens`` tokens; items without metadata get an
   explicit placeholder, counted and logged.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from slimkit.data.dataset import PreparedDataset
from slimkit.data.raw import RawLog
from slimkit.data.text import ItemTextTemplate, clean_text, truncate_tokens
from slimkit.errors import DataError
from slimkit.spec import DatasetParams

log = logging.getLogger(__name__)

MIN_EVENTS = 3
"""Leave-one-out needs a training item, a validation target and a test target."""

TITLE_CHARS = 80


def placeholder_text(raw_id: str) -> str:
    """The text of an item that has no metadata: explicit, so nobody mistakes it for data."""
    return f"Item {raw_id} (no metadata)"


def _first_appearance_codes(codes: np.ndarray, size: int) -> np.ndarray:
    """Map codes to 0.. in order of first appearance in ``codes`` (-1 for absent ones)."""
    first = np.full(size, -1, dtype=np.int64)
    uniq, index = np.unique(codes, return_index=True)
    order = uniq[np.argsort(index, kind="stable")]
    first[order] = np.arange(order.size)
    return first


def k_core(
    users: np.ndarray,
    items: np.ndarray,
    keep: np.ndarray,
    *,
    min_user: int,
    min_item: int,
) -> tuple[np.ndarray, int]:
    """Iteratively drop events of users/items below their minimum; returns (keep, rounds)."""
    keep = keep.copy()
    num_users = int(users.max()) + 1 if users.size else 0
    num_items = int(items.max()) + 1 if items.size else 0
    rounds = 0
    while True:
        rounds += 1
        user_count = np.bincount(users[keep], minlength=num_users)
        item_count = np.bincount(items[keep], minlength=num_items)
        drop = keep & ((user_count[users] < min_user) | (item_count[items] < min_item))
        if not drop.any():
            return keep, rounds
        keep &= ~drop


def _item_texts(
    raw: RawLog,
    item_ids: list[str],
    params: DatasetParams,
) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """(text, title, has_text, ids without metadata) per item index (index 0 = padding)."""
    template = ItemTextTemplate(params.item_text_template)
    if raw.items is not None:  # without metadata every item gets the placeholder anyway
        available = set(raw.text_fields) | set(raw.items.columns)
        template.check_fields(available, source=f"the item metadata ({raw.item_source})")
    texts = [""]
    titles = [""]
    has_text = np.zeros(len(item_ids), dtype=bool)
    missing: list[str] = []
    table = raw.items
    if table is not None and len(table):
        table = table[~table.index.duplicated(keep="first")]
        fields = [f for f in dict.fromkeys(template.fields + ["title"]) if f in table.columns]
        rows = table.reindex(pd.Index(item_ids[1:], dtype=table.index.dtype))[fields]
        records = rows.to_dict("records")
    else:
        records = [{} for _ in item_ids[1:]]
    for index, (raw_id, record) in enumerate(zip(item_ids[1:], records), start=1):
        values = {k: clean_text(v) for k, v in record.items() if isinstance(v, str) and v}
        text = truncate_tokens(clean_text(template.render(values)), params.item_text_max_tokens)
        if text:
            has_text[index] = True
            title = values.get("title") or text
        else:
            missing.append(raw_id)
            text = placeholder_text(raw_id)
            title = raw_id
        texts.append(text)
        titles.append(title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…")
    return texts, titles, has_text, missing


def check_metadata_matches(raw: RawLog) -> int:
    """How many interaction items the metadata describes; none at all is a DataError."""
    if raw.items is None or len(raw.items) == 0:
        return 0
    log_items = pd.Index(raw.interactions["item"].unique())
    matched = int(log_items.isin(raw.items.index).sum())
    if matched == 0:
        meta_examples = ", ".join(map(str, raw.items.index[:3]))
        log_examples = ", ".join(map(str, log_items[:3]))
        raise DataError(
            f"{raw.item_source or 'the item metadata'}: none of its {len(raw.items)} item ids "
            f"matches an item of the interactions in {raw.source} (metadata ids look like "
            f"{meta_examples}; interaction item ids like {log_examples}).",
            hint="Check that both files come from the same dataset (and category), and the "
            "item id column of each.",
        )
    return matched


def prepare(raw: RawLog, params: DatasetParams) -> PreparedDataset:
    """Dedupe, k-core, sort, remap and attach item text: the dataset every stage reads."""
    frame = raw.interactions
    total = len(frame)
    if total == 0:
        raise DataError(f"{raw.source or raw.name}: the interaction log is empty.")
    matched = check_metadata_matches(raw)
    user_codes, user_uniques = pd.factorize(frame["user"], sort=False)
    item_codes, item_uniques = pd.factorize(frame["item"], sort=False)
    user_codes = user_codes.astype(np.int64)
    item_codes = item_codes.astype(np.int64)
    timestamps = frame["timestamp"].to_numpy(dtype=np.int64)
    keep = np.ones(total, dtype=bool)

    duplicates = 0
    if params.dedupe:
        dup = pd.DataFrame({"u": user_codes, "i": item_codes, "t": timestamps}).duplicated(
            keep="first"
        )
        keep &= ~dup.to_numpy()
        duplicates = int(dup.sum())

    before_core = int(keep.sum())
    keep, rounds = k_core(
        user_codes,
        item_codes,
        keep,
        min_user=max(params.min_user_interactions, MIN_EVENTS),
        min_item=params.min_item_interactions,
    )
    kept = int(keep.sum())
    if kept == 0:
        raise DataError(
            f"{raw.source or raw.name}: no user is left after filtering ({total} events read, "
            f"{duplicates} duplicates; k-core users >= "
            f"{max(params.min_user_interactions, MIN_EVENTS)}, items >= "
            f"{params.min_item_interactions}).",
            hint="Lower dataset.min_user_interactions / dataset.min_item_interactions; every "
            f"user needs at least {MIN_EVENTS} events for the leave-one-out split.",
        )

    rows = np.flatnonzero(keep)  # file order
    users = _first_appearance_codes(user_codes[rows], len(user_uniques))[user_codes[rows]]
    items = _first_appearance_codes(item_codes[rows], len(item_uniques))[item_codes[rows]] + 1
    times = timestamps[rows]
    # Stable chronological order per user: ties keep file order (np.lexsort is stable).
    order = np.lexsort((np.arange(rows.size), times, users))
    users, items, times = users[order], items[order], times[order]
    num_users = int(users.max()) + 1
    num_items = int(items.max())
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=offsets[1:])

    user_map = np.empty(num_users, dtype=np.int64)
    user_map[users] = user_codes[rows][order]
    item_map = np.empty(num_items + 1, dtype=np.int64)
    item_map[items] = item_codes[rows][order]
    user_ids = [str(u) for u in np.asarray(user_uniques)[user_map]]
    item_ids = [""] + [str(i) for i in np.asarray(item_uniques)[item_map[1:]]]

    if raw.time_unit == "ms":
        times = times // 1000
    elif raw.time_unit == "order":
        times = np.arange(times.size, dtype=np.int64)  # position: the only order known

    texts, titles, has_text, missing = _item_texts(raw, item_ids, params)
    if missing:
        log.warning(
            "%d of %d items have no metadata text and get a placeholder (e.g. %s)",
            len(missing),
            num_items,
            ", ".join(missing[:5]),
        )
    info: dict[str, Any] = dict(raw.info)
    info.update(
        {
            "kind": params.kind,
            "source": raw.source,
            "item_source": raw.item_source,
            "time_unit": raw.time_unit,
            "events_read": total,
            "duplicates_dropped": duplicates,
            "events_dropped_by_filter": before_core - kept,
            "k_core_rounds": rounds,
            "users_read": len(user_uniques),
            "items_read": len(item_uniques),
            "metadata_items": 0 if raw.items is None else len(raw.items),
            "metadata_items_matched": matched,
            "items_without_text": len(missing),
            "items_without_text_examples": missing[:10],
            "placeholder": placeholder_text("<id>"),
        }
    )
    return PreparedDataset(
        name=raw.name,
        user_ids=user_ids,
        item_ids=item_ids,
        offsets=offsets,
        items=items.astype(np.int64),
        timestamps=times.astype(np.int64),
        item_text=texts,
        item_titles=titles,
        has_text=has_text,
        max_seq_len=params.max_seq_len,
        info=info,
    )
