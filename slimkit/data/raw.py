"""What a dataset loader returns: the interaction log as read, before any preparation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

TimeUnit = Literal["s", "ms", "order"]


@dataclass
class RawLog:
    """An interaction log in source order plus an optional item table.

    ``interactions`` has the columns ``user``, ``item`` (strings) and ``timestamp``
    (int64, in ``time_unit``: seconds, milliseconds, or ``"order"`` when the source has
    no time and the file order is the chronology). ``items`` is indexed by raw item id
    and holds text fields already flattened to strings (``title``, ``categories``,
    ``brand``, ...); ``text_fields`` names every field the format can provide, so a
    template naming a field that is merely empty for some items is not an error.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    time_unit: TimeUnit = "s"
    text_fields: tuple[str, ...] = ()
    source: str = ""  # files or folder, for messages
    item_source: str | None = None  # the metadata file, for messages
    info: dict[str, Any] = field(default_factory=dict)  # provenance, terms, skipped lines

    def __post_init__(self) -> None:
        missing = {"user", "item", "timestamp"} - set(self.interactions.columns)
        if missing:
            raise ValueError(f"RawLog.interactions lacks columns {sorted(missing)}")

    @property
    def num_events(self) -> int:
        return len(self.interactions)


def make_interactions(users: Any, items: Any, timestamps: Any) -> pd.DataFrame:
    """The interactions frame from three equal-length columns (ids become strings)."""
    return pd.DataFrame(
        {
            "user": pd.Series(users, dtype="string"),
            "item": pd.Series(items, dtype="string"),
            "timestamp": np.asarray(timestamps, dtype=np.int64),
        }
    )


def skipped_info(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """``info`` entries for skipped lines: a total and one report per file with skips."""
    total = sum(r["skipped"] for r in reports)
    out: dict[str, Any] = {"skipped_lines": total}
    if total:
        out["skipped_lines_detail"] = [r for r in reports if r["skipped"]]
    return out
