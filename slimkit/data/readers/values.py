"""Columns as read turned into ids and event times, each bad value named at its row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from slimkit.data.readers.files import BadLines
from slimkit.errors import DataError


def check_ids(
    values: pd.Series,
    places: Sequence[str],
    *,
    path: Path,
    column: str,
    bad: BadLines,
    keep: np.ndarray,
) -> pd.Series:
    """Ids as strings; a missing/empty id is a problem at its row (``keep`` is updated)."""
    as_text = values.astype("string").str.strip()
    empty = (as_text.isna() | (as_text == "")).to_numpy()
    for i in np.flatnonzero(empty & keep):
        bad.problem(str(places[i]), f"empty {column!r} (every row needs an id)")
        keep[i] = False
    return as_text


def parse_timestamps(
    values: pd.Series,
    places: Sequence[str],
    *,
    path: Path,
    column: str,
    fmt: str | None,
    bad: BadLines,
    keep: np.ndarray,
) -> tuple[np.ndarray, str]:
    """Event times as int64 and their unit (``"s"`` or ``"ms"``).

    Without ``fmt``: numbers (unix seconds; values beyond year 5000 in seconds are
    taken as milliseconds) when the first value is a number, else ISO 8601 dates.
    Rows that do not parse are problems at their place (``keep`` is updated).
    """
    values = values.reset_index(drop=True)
    numbers = pd.to_numeric(values, errors="coerce")
    present = values.notna().to_numpy()
    first = int(np.flatnonzero(present & keep)[0]) if (present & keep).any() else None
    if fmt is None and first is not None and not np.isnan(numbers.iloc[first]):
        parsed = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = np.isfinite(parsed)
        expected = "a unix time number (like the first row's)"
        result = np.zeros(len(values), dtype=np.int64)
        result[ok] = np.floor(parsed[ok]).astype(np.int64)
        valid = result[ok & keep]
        unit = "ms" if valid.size and np.median(valid) > 1e11 else "s"
    else:
        try:
            dates = pd.to_datetime(values, format=fmt or "ISO8601", utc=True, errors="coerce")
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"dataset.timestamp_format: {fmt!r} is not a usable date format ({exc})."
            ) from exc
        ok = dates.notna().to_numpy()
        expected = f"a date in the format {fmt!r}" if fmt else "an ISO 8601 date or a unix time"
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        seconds = (dates - epoch) // pd.Timedelta(seconds=1)
        result = seconds.to_numpy(dtype=np.float64, na_value=0).astype(np.int64)
        unit = "s"
    for i in np.flatnonzero(~ok & keep):
        value = values.iloc[i]
        if not present[i]:
            problem = f"{column!r} is empty"
        else:
            problem = f"{column!r} value {value!r} is not {expected}"
        bad.problem(str(places[i]), problem)
        keep[i] = False
    return result, unit
