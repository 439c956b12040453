"""The numbers ``slimkit data stats`` prints for a prepared dataset."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from slimkit.data.dataset import PreparedDataset


def _date(seconds: int) -> str:
    try:
        return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def dataset_stats(dataset: PreparedDataset) -> dict[str, Any]:
    """Users, items, interactions, sequence lengths, density, share of items with text."""
    lengths = np.diff(dataset.offsets)
    users, items, events = dataset.num_users, dataset.num_items, dataset.num_interactions
    info = dataset.info
    with_text = int(dataset.has_text[1:].sum())
    stats: dict[str, Any] = {
        "name": dataset.name,
        "users": users,
        "items": items,
        "interactions": events,
        "avg_seq_len": round(float(lengths.mean()), 3) if users else 0.0,
        "median_seq_len": float(np.median(lengths)) if users else 0.0,
        "min_seq_len": int(lengths.min()) if users else 0,
        "max_seq_len": int(lengths.max()) if users else 0,
        "density": float(events / (users * items)) if users and items else 0.0,
        "items_with_text": with_text,
        "items_with_text_share": round(with_text / items, 4) if items else 0.0,
        "model_input_len": dataset.max_seq_len,
    }
    if info.get("time_unit") != "order" and events:
        stats["first_event"] = _date(dataset.timestamps.min())
        stats["last_event"] = _date(dataset.timestamps.max())
    for key in (
        "events_read",
        "duplicates_dropped",
        "events_dropped_by_filter",
        "skipped_lines",
        "source",
        "item_source",
        "origin",
        "terms",
    ):
        if key in info and info[key] not in (None, "", []):
            stats[key] = info[key]
    return stats
