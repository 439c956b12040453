"""RecBole atomic files: ``.inter`` (interactions) and ``.item`` (item features).

Both are tab-separated with a typed header, e.g.
``user_id:token	item_id:token	rating:float	timestamp:float`` and
``item_id:token	movie_title:token_seq	release_year:token	class:token_seq``.
``token_seq`` values are tokens separated by a space (RecBole's ``seq_separator``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from slimkit.data.raw import RawLog, make_interactions, skipped_info
from slimkit.data.readers import (
    BadLines,
    RowPlaces,
    check_file,
    check_ids,
    encoding_error,
    open_binary,
    parse_timestamps,
    read_delimited,
)
from slimkit.errors import DataError, did_you_mean

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
TITLE_FIELDS = ("title", "movie_title", "item_title", "name", "item_name")
CATEGORY_FIELDS = ("categories", "category", "class", "genre", "genres")
BRAND_FIELDS = ("brand", "store", "manufacturer")
ALIASES = (("title", TITLE_FIELDS), ("categories", CATEGORY_FIELDS), ("brand", BRAND_FIELDS))
ENCODING_HINT = "Save the file as UTF-8 (RecBole's default) or set `dataset.encoding`."


def read_atomic(
    path: Path,
    *,
    role: str,
    encoding: str,
    skip_bad_lines: bool,
) -> tuple[pd.DataFrame, dict[str, str], np.ndarray, BadLines]:
    """An atomic file as strings with untyped column names, the types and line numbers."""
    expected = "a RecBole atomic file: a tab-separated header of name:type fields, then rows"
    path = check_file(path, role=role, expected=expected)
    with open_binary(path, expected=expected) as handle:
        first = handle.readline()
    try:
        header = first.decode(encoding).rstrip("\r\n").split("\t")
    except UnicodeDecodeError:
        raise encoding_error(path, encoding, hint=ENCODING_HINT) from None
    names: list[str] = []
    types: dict[str, str] = {}
    for column, field in enumerate(header, start=1):
        name, sep, kind = field.strip().partition(":")
        if not sep or kind not in ATOMIC_TYPES or not name:
            raise DataError(
                f"{path}, line 1, column {column}: header field {field!r} is not name:type "
                f"with a type among {', '.join(ATOMIC_TYPES)}.",
                hint="RecBole atomic files start with a typed header such as "
                "'user_id:token<TAB>item_id:token<TAB>timestamp:float'.",
            )
        names.append(name)
        types[name] = kind
    frame, lines, bad = read_delimited(
        path,
        sep="\t",
        expected=expected,
        encoding=encoding,
        skip_bad_lines=skip_bad_lines,
        quoting=False,
        encoding_hint=ENCODING_HINT,
    )
    frame.columns = names
    return frame, types, lines, bad


def _require_field(path: Path, types: dict[str, str], name: str, key: str) -> None:
    if name not in types:
        raise DataError(
            f"{path}: no field {name!r} in the header (dataset.{key}).{did_you_mean(name, types)} "
            f"Fields: {', '.join(types)}.",
            hint=f"Set dataset.{key} to the file's field name.",
        )


def item_table(
    path: Path,
    *,
    id_field: str,
    encoding: str,
    skip_bad_lines: bool,
    title_with_year: bool = False,
) -> tuple[pd.DataFrame, tuple[str, ...], BadLines]:
    """The ``.item`` file as a text table indexed by item id.

    Every field is available under its own name; ``title``, ``categories`` and ``brand``
    are aliases of the first title-like / category-like / brand-like field (categories
    joined by ", "), and always known to templates (empty when the file lacks them).
    ``title_with_year`` appends `` (release_year)`` to the title (MovieLens style).
    """
    frame, types, lines, bad = read_atomic(
        path, role="dataset.item", encoding=encoding, skip_bad_lines=skip_bad_lines
    )
    _require_field(path, types, id_field, "item_field")
    keep = np.ones(len(frame), dtype=bool)
    ids = check_ids(
        frame[id_field],
        [f"line {n}" for n in lines],
        path=path,
        column=id_field,
        bad=bad,
        keep=keep,
    )
    table = frame.loc[keep].drop(columns=[id_field]).fillna("")
    table.index = pd.Index(ids[keep].to_numpy(), name="item")
    fields = list(table.columns)
    for alias, candidates in ALIASES:
        if alias in table.columns:
            continue
        source = next((c for c in candidates if c in table.columns), None)
        if source is None:
            continue
        column = table[source].astype(str)
        if alias == "categories" and types[source] == "token_seq":
            column = column.str.split().str.join(", ")
        table[alias] = column
    if title_with_year and "title" in table.columns and "release_year" in table.columns:
        year = table["release_year"].astype(str).str.strip()
        table["year"] = year
        table["title"] = np.where(
            year != "", table["title"].astype(str) + " (" + year + ")", table["title"]
        )
    text_fields = tuple(dict.fromkeys([*fields, *table.columns, *(a for a, _ in ALIASES)]))
    return table.astype(str), text_fields, bad


def read_inter(
    path: Path,
    *,
    user_field: str,
    item_field: str,
    timestamp_field: str | None,
    encoding: str,
    skip_bad_lines: bool,
) -> tuple[pd.DataFrame, str, BadLines]:
    """The ``.inter`` file as interactions (user, item, timestamp) and the time unit."""
    frame, types, lines, bad = read_atomic(
        path, role="dataset.inter", encoding=encoding, skip_bad_lines=skip_bad_lines
    )
    _require_field(path, types, user_field, "user_field")
    _require_field(path, types, item_field, "item_field")
    if timestamp_field is not None and timestamp_field not in types:
        raise DataError(
            f"{path}: no field {timestamp_field!r} in the header (dataset.timestamp_field)."
            f"{did_you_mean(timestamp_field, types)} Fields: {', '.join(types)}.",
            hint="Set dataset.timestamp_field to the file's time field, or to null to use "
            "the file order as the chronology.",
        )
    places = RowPlaces("line", lines)
    keep = np.ones(len(frame), dtype=bool)
    users = check_ids(frame[user_field], places, path=path, column=user_field, bad=bad, keep=keep)
    items = check_ids(frame[item_field], places, path=path, column=item_field, bad=bad, keep=keep)
    if timestamp_field is None:
        times, unit = np.arange(len(frame), dtype=np.int64), "order"
    else:
        times, unit = parse_timestamps(
            frame[timestamp_field],
            places,
            path=path,
            column=timestamp_field,
            fmt=None,
            bad=bad,
            keep=keep,
        )
    interactions = make_interactions(users[keep].array, items[keep].array, times[keep])
    return interactions, unit, bad


def load_recbole_atomic(params) -> RawLog:
    """``recbole-atomic`` kind: a ``.inter`` file and an optional ``.item`` file."""
    interactions, unit, bad = read_inter(
        Path(params.inter),
        user_field=params.user_field,
        item_field=params.item_field,
        timestamp_field=params.timestamp_field,
        encoding=params.encoding,
        skip_bad_lines=params.skip_bad_lines,
    )
    reports = [bad.report()]
    items = None
    text_fields: tuple[str, ...] = ()
    if params.item is not None:
        items, text_fields, item_bad = item_table(
            Path(params.item),
            id_field=params.item_field,
            encoding=params.encoding,
            skip_bad_lines=params.skip_bad_lines,
        )
        reports.append(item_bad.report())
    return RawLog(
        name=Path(params.inter).stem,
        interactions=interactions,
        items=items,
        time_unit=unit,
        text_fields=text_fields,
        source=str(params.inter),
        item_source=str(params.item) if params.item is not None else None,
        info=skipped_info(reports),
    )
