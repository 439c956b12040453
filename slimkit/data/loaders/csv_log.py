"""Your own interaction log: CSV, TSV, Parquet or JSON lines, with a column mapping.

The log needs a user, an item and a time column (names set in the spec). Times may be
unix seconds or milliseconds, ISO 8601 dates, or any form a strftime
``timestamp_format`` describes. An optional item table (same formats) supplies the text
columns named in ``text_columns`` to ``item_text_template``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from slimkit.data.raw import RawLog, make_interactions, skipped_info
from slimkit.data.readers import check_ids, parse_timestamps, read_table
from slimkit.data.text import field_text

log = logging.getLogger(__name__)


def _read_log(params) -> tuple[pd.DataFrame, str, dict]:
    path = Path(params.path).expanduser()
    wanted = {
        "user_column": params.user_column,
        "item_column": params.item_column,
        "timestamp_column": params.timestamp_column,
    }
    expected = (
        f"an interaction log with the columns {params.user_column!r}, {params.item_column!r} "
        f"and {params.timestamp_column!r}"
    )
    frame, places, bad = read_table(
        path,
        wanted,
        role="dataset.path",
        expected=expected,
        encoding=params.encoding,
        separator=params.separator,
        skip_bad_lines=params.skip_bad_lines,
    )
    keep = np.ones(len(frame), dtype=bool)
    users = check_ids(
        frame[params.user_column], places, path=path, column=params.user_column, bad=bad, keep=keep
    )
    items = check_ids(
        frame[params.item_column], places, path=path, column=params.item_column, bad=bad, keep=keep
    )
    times, unit = parse_timestamps(
        frame[params.timestamp_column],
        places,
        path=path,
        column=params.timestamp_column,
        fmt=params.timestamp_format,
        bad=bad,
        keep=keep,
    )
    bad.log()
    interactions = make_interactions(users[keep].array, items[keep].array, times[keep])
    return interactions, unit, bad.report()


def _read_items(params) -> tuple[pd.DataFrame, tuple[str, ...], dict]:
    path = Path(params.items_path).expanduser()
    expected = f"an item table with the id column {params.items_id_column!r}"
    frame, places, bad = read_table(
        path,
        {"items_id_column": params.items_id_column},
        optional=list(params.text_columns),
        role="dataset.items_path",
        expected=expected,
        encoding=params.encoding,
        separator=params.separator,
        skip_bad_lines=params.skip_bad_lines,
    )
    keep = np.ones(len(frame), dtype=bool)
    ids = check_ids(
        frame[params.items_id_column],
        places,
        path=path,
        column=params.items_id_column,
        bad=bad,
        keep=keep,
    )
    present = [c for c in params.text_columns if c in frame.columns]
    absent = [c for c in params.text_columns if c not in frame.columns]
    if absent:
        log.warning(
            "%s has no column(s) %s (dataset.text_columns); they stay empty",
            path,
            ", ".join(absent),
        )
    table = pd.DataFrame(
        {c: [field_text(v) for v in frame.loc[keep, c].tolist()] for c in present},
        index=pd.Index(ids[keep].to_numpy(), name="item"),
    )
    return table, tuple(params.text_columns), bad.report()


def load_csv(params) -> RawLog:
    """``csv`` kind: a log table with a column mapping and an optional item table."""
    interactions, unit, report = _read_log(params)
    reports = [report]
    items = None
    text_fields: tuple[str, ...] = ()
    if params.items_path is not None:
        items, text_fields, item_report = _read_items(params)
        reports.append(item_report)
    path = Path(params.path)
    name = path.name.split(".")[0]
    return RawLog(
        name=name,
        interactions=interactions,
        items=items,
        time_unit=unit,
        text_fields=text_fields,
        source=str(params.path),
        item_source=str(params.items_path) if params.items_path is not None else None,
        info=skipped_info(reports),
    )
