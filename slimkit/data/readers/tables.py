"""Interaction logs and item tables of the ``csv`` kind: CSV, TSV, Parquet or JSON lines,
chosen by suffix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slimkit.data.readers.delimited import read_delimited, read_header
from slimkit.data.readers.files import BadLines, RowPlaces, check_file
from slimkit.data.readers.json_lines import Column, first_record, read_json_lines_located
from slimkit.errors import DataError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".jsonl", ".ndjson", ".json")


def table_format(path: Path) -> str:
    name = path.name.lower()
    name = name.removesuffix(".gz")
    for suffix, fmt in (
        (".csv", "csv"),
        (".tsv", "tsv"),
        (".txt", "tsv"),
        (".parquet", "parquet"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".json", "jsonl"),
    ):
        if name.endswith(suffix):
            return fmt
    raise DataError(
        f"{path}: unknown table format; expected one of {', '.join(TABLE_SUFFIXES)} "
        "(optionally .gz, except parquet)."
    )


def _missing_columns(path: Path, have: list[str], wanted: dict[str, str]) -> None:
    """``wanted`` maps a column name to the spec key that names it."""
    from slimkit.errors import did_you_mean

    missing = [(col, key) for key, col in wanted.items() if col not in have]
    if not missing:
        return
    problems = [
        f"no column {col!r} (dataset.{key}).{did_you_mean(col, have)}" for col, key in missing
    ]
    hint = "Set the dataset.*_column keys to the file's column names."
    if len(have) == 1 and any(s in have[0] for s in (";", "\t", ",", "|")):
        hint = (
            f"The header is one column ({have[0]!r}): the file seems to use another "
            "separator; set `dataset.separator`. " + hint
        )
    raise DataError(
        f"{path}: the table lacks required column(s). Columns found: {', '.join(have)}.",
        problems=problems,
        hint=hint,
    )


def read_table(
    path: Path,
    wanted: dict[str, str],
    *,
    optional: list[str] = (),
    role: str,
    expected: str,
    encoding: str = "utf-8",
    separator: str | None = None,
    skip_bad_lines: bool = False,
) -> tuple[pd.DataFrame, RowPlaces, BadLines]:
    """Columns of a CSV/TSV/Parquet/JSONL table and a locator per row.

    ``wanted`` maps a spec key (``user_column``) to a required column name; ``optional``
    lists columns read when present. Returns the frame (required + present optional
    columns, all as read), a description of each row's place (``"line 7"``/``"row 7"``)
    and the bad-line record (rows of Parquet, lines of text files).
    """
    path = check_file(path, role=role, expected=expected)
    fmt = table_format(path)
    required = list(dict.fromkeys(wanted.values()))
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except Exception as exc:
            raise DataError(f"{path}: not a readable Parquet file ({exc}).") from exc
        _missing_columns(path, names, wanted)
        cols = required + [c for c in optional if c in names and c not in required]
        frame = pq.read_table(path, columns=cols).to_pandas()
        places = RowPlaces("row", count=len(frame))
        if len(frame) == 0:
            raise DataError(f"{path} holds no rows; expected {expected}.")
        return frame, places, BadLines(path, skip_bad_lines, expected)
    if fmt == "jsonl":
        first = first_record(path, expected=expected)
        have = list(first)
        _missing_columns(path, have, wanted)
        cols = {c: Column(c, Column.ANY, required=True) for c in required}
        for c in optional:
            if c not in cols:
                cols[c] = Column(c, Column.ANY, required=False)
        data, lines, bad = read_json_lines_located(
            path, cols, expected=expected, skip_bad_lines=skip_bad_lines
        )
        frame = pd.DataFrame(data)
        return frame, RowPlaces("line", lines), bad
    sep = separator or ("," if fmt == "csv" else "\t")
    have = read_header(path, sep=sep, encoding=encoding, expected=expected)
    _missing_columns(path, have, wanted)
    cols = required + [c for c in optional if c in have and c not in required]
    frame, lines, bad = read_delimited(
        path,
        sep=sep,
        expected=expected,
        usecols=cols,
        encoding=encoding,
        skip_bad_lines=skip_bad_lines,
    )
    return frame, RowPlaces("line", lines), bad
