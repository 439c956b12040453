"""``check_dataset``: a dataset loader run on the author's own small files.

The contract (:class:`slimkit.plugins.DatasetLoader`): ``loader(params) -> RawLog`` with
the interactions in source order (string ``user`` and ``item``, int64 ``timestamp`` in
``time_unit``) and an optional item table indexed by raw item id; the same files and
params give the same log; slimkit's shared preparation accepts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slimkit.checks._common import fail, name_of

__all__ = ["check_dataset"]

TIME_UNITS = ("s", "ms", "order")


def check_dataset(
    loader: Callable[[Any], Any], params: Any, *, repeat: bool = True
) -> dict[str, Any]:
    """Run ``loader(params)`` and check what it returns; then prepare it as the data stage does.

    ``params``: an instance of the kind's ``Params`` model (a subclass of
    :class:`slimkit.spec.DatasetParams`) pointing at small files of the format. With
    ``repeat``, the loader runs twice and must return the same log. Returns a report
    (events, users, items after preparation, time unit, item table rows).
    """
    import pandas as pd

    from slimkit.data.raw import RawLog
    from slimkit.errors import SlimkitError
    from slimkit.spec import DatasetParams

    component = f"dataset loader {name_of(loader)}"
    if not isinstance(params, DatasetParams):
        raise fail(
            component,
            f"params is a {type(params).__name__}, not the kind's Params model",
            "subclass slimkit.plugins.DatasetParams and pass an instance, e.g. "
            "MyParams(kind='my-kind', path=...)",
        )
    if not callable(loader):
        raise fail(component, "is not callable", "register a function load(params) -> RawLog")
    before = params.model_dump()
    raw = _load(loader, params, component)
    if params.model_dump() != before:
        raise fail(component, "changed its params", "treat params as read-only")
    _check_raw(raw, component, RawLog, pd)
    if repeat:
        again = _load(loader, params, component)
        same_items = (raw.items is None and again.items is None) or (
            raw.items is not None and again.items is not None and raw.items.equals(again.items)
        )
        if not (raw.interactions.equals(again.interactions) and same_items):
            raise fail(
                component,
                "returned a different log on a second call with the same params",
                "read deterministically (no sampling without a fixed seed, no set order): "
                "the stage cache assumes the same files and params give the same log",
            )
    from slimkit.data.prepare import prepare

    try:
        dataset = prepare(raw, params)
    except SlimkitError as exc:
        raise fail(
            component,
            f"slimkit's preparation rejects its log: {exc.message}",
            "use files with at least one user of 3 or more events; check that the item "
            "table's index holds the interactions' item ids and that item_text_template "
            "names fields of text_fields or of the item table",
        ) from exc
    return {
        "component": component,
        "events": raw.num_events,
        "time_unit": raw.time_unit,
        "item_table_rows": 0 if raw.items is None else len(raw.items),
        "users": dataset.num_users,
        "items": dataset.num_items,
        "interactions": dataset.num_interactions,
    }


def _load(loader: Callable[[Any], Any], params: Any, component: str) -> Any:
    try:
        return loader(params)
    except Exception as exc:
        raise fail(
            component,
            f"raised {type(exc).__name__}: {exc}",
            "for problems in the user's files raise slimkit.errors.DataError naming the "
            "file and line; make sure the check's own files are valid",
        ) from exc


def _check_raw(raw: Any, component: str, raw_log: type, pd: Any) -> None:
    """The returned RawLog: columns, types, no empty ids, a known time unit, an item table."""
    if not isinstance(raw, raw_log):
        raise fail(
            component,
            f"returned a {type(raw).__name__}, not a RawLog",
            "return slimkit.data.raw.RawLog(name=..., interactions=make_interactions(users, "
            "items, timestamps), ...)",
        )
    if raw.time_unit not in TIME_UNITS:
        raise fail(
            component,
            f"time_unit is {raw.time_unit!r}, not one of {TIME_UNITS}",
            "seconds 's', milliseconds 'ms', or 'order' when the file order is the chronology",
        )
    frame = raw.interactions
    if len(frame) == 0:
        raise fail(component, "returned no interactions", "raise DataError for an empty file")
    for column in ("user", "item"):
        values = frame[column]
        if not pd.api.types.is_string_dtype(values.dtype):
            raise fail(
                component,
                f"interactions[{column!r}] has dtype {values.dtype}, not strings",
                "build the frame with slimkit.data.raw.make_interactions",
            )
        empty = values.isna() | (values.astype("string").str.strip() == "")
        if empty.any():
            row = int(empty.to_numpy().nonzero()[0][0])
            raise fail(
                component,
                f"interactions[{column!r}] is empty at row {row}",
                "every event needs a user and an item id: raise DataError (or skip and count "
                "the line when params.skip_bad_lines is set)",
            )
    if frame["timestamp"].dtype.kind != "i":
        raise fail(
            component,
            f"interactions['timestamp'] has dtype {frame['timestamp'].dtype}, not int64",
            "convert times to integers in time_unit (slimkit.data.readers.parse_timestamps)",
        )
    if not all(isinstance(f, str) for f in raw.text_fields):
        raise fail(
            component,
            f"text_fields {raw.text_fields!r} must be field names (strings)",
            "list every field the format can provide, e.g. ('title', 'categories')",
        )
    if raw.items is None:
        return
    if not isinstance(raw.items, pd.DataFrame):
        raise fail(
            component,
            f"items is a {type(raw.items).__name__}, not a DataFrame or None",
            "return the item table as a pandas DataFrame indexed by raw item id",
        )
    if raw.items.index.hasnans:
        raise fail(
            component,
            "the item table's index (raw item ids) has missing values",
            "drop item rows without an id (or raise DataError naming the line)",
        )
    for column in raw.items.columns:
        values = raw.items[column]
        bad = [v for v in values[values.notna()] if not isinstance(v, str)]
        if bad:
            raise fail(
                component,
                f"item table column {column!r} holds {type(bad[0]).__name__} {bad[0]!r}",
                "flatten item fields to strings (lists joined, e.g. with ', '); missing: None",
            )
