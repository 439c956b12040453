"""JSON lines (plain or gzip), optionally Python-literal lines (Amazon 2014 metadata).

One parser: every output column comes from one key per record (:class:`Column`). Id and
time columns first go through pyarrow's multi-threaded reader; on any problem, and for
every other case, the line-by-line reader reads the file and names the line at fault.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slimkit.data.readers.files import BadLines, is_gzip, iter_lines
from slimkit.errors import DataError


class Column:
    """How one output column is taken from a JSON record.

    ``required``: a record lacking ``key`` is a bad line. An ``ID`` or ``SECONDS`` value of
    ``null`` counts as lacking; an ``ANY`` value of ``null`` is kept as ``None``.
    """

    ID = "id"  # string or integer, non-empty -> str
    SECONDS = "seconds"  # integer, float or numeric string -> int
    ANY = "any"  # any value, kept as is (metadata text)

    def __init__(self, key: str, kind: str = ANY, required: bool = True):
        self.key = key
        self.kind = kind
        self.required = required


def _convert(value: Any, kind: str) -> tuple[Any, str | None]:
    if kind == Column.ANY:
        return value, None
    if kind == Column.ID:
        if isinstance(value, str):
            value = value.strip()
            return (value, None) if value else (None, "is empty")
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value), None
        return None, f"is {type(value).__name__} {value!r}, not an id string"
    # seconds
    if isinstance(value, bool):
        return None, f"is {value!r}, not a number"
    if isinstance(value, int):
        return value, None
    if isinstance(value, float) and np.isfinite(value):
        return int(value), None
    if isinstance(value, str):
        try:
            return int(float(value.strip())), None
        except ValueError:
            pass
    return None, f"is {value!r}, not a unix time number"


def parse_record(text: str, *, python_literals: bool) -> tuple[Any, str | None]:
    """A JSON (or, when allowed, Python-literal) value from one line, or a problem."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        if not python_literals:
            return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
        json_problem = f"{exc.msg} at column {exc.colno}"
    try:
        return ast.literal_eval(text), None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None, f"neither JSON ({json_problem}) nor a Python dict literal"


def _object_from_line(raw: bytes, *, python_literals: bool) -> tuple[Any, str | None]:
    """The object one raw line holds, or why it holds none (bad UTF-8, bad JSON, no object)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        byte = raw[exc.start : exc.start + 1].hex()
        return None, f"not valid UTF-8 text (byte 0x{byte} at column {exc.start + 1})"
    record, problem = parse_record(text, python_literals=python_literals)
    if problem is None and not isinstance(record, dict):
        problem = f"a JSON {type(record).__name__}, not an object"
    return record, problem


def first_record(path: Path, *, expected: str, python_literals: bool = False) -> dict[str, Any]:
    """The first non-blank line parsed as an object (used to detect a file's format)."""
    for lineno, raw in iter_lines(path, expected=expected):
        record, problem = _object_from_line(raw, python_literals=python_literals)
        if problem is not None:
            raise DataError(f"{path}, line {lineno}: {problem}; expected {expected}.")
        return record
    raise DataError(f"{path} holds no data (only blank lines); expected {expected}.")


def _values(record: dict[str, Any], columns: list[Column]) -> tuple[list[Any], str | None]:
    """One record's value per column, or the problem that makes the line bad."""
    lacking = [
        c.key
        for c in columns
        if c.required and (c.key not in record or (record[c.key] is None and c.kind != Column.ANY))
    ]
    if lacking:
        return [], f"no {', '.join(map(repr, lacking))} field"
    values = []
    for col in columns:
        value = record.get(col.key)
        if value is not None:
            value, why = _convert(value, col.kind)
            if why is not None:
                return [], f"{col.key!r} {why}"
        values.append(value)
    return values, None


def _read_lines(
    path: Path,
    columns: dict[str, Column],
    *,
    expected: str,
    skip_bad_lines: bool,
    python_literals: bool,
) -> tuple[dict[str, Any], np.ndarray, BadLines]:
    """The line-by-line reader: typed columns, the line number of every row kept, bad lines."""
    bad = BadLines(path, skip_bad_lines, expected)
    names, cols = list(columns), list(columns.values())
    rows: list[list[Any]] = []
    lines: list[int] = []
    seen = 0
    for lineno, raw in iter_lines(path, expected=expected):
        seen += 1
        record, problem = _object_from_line(raw, python_literals=python_literals)
        if problem is None:
            values, problem = _values(record, cols)
        if problem is not None:
            bad.problem(f"line {lineno}", problem)
            continue
        rows.append(values)
        lines.append(lineno)
    if seen == 0:
        raise DataError(f"{path} holds no data (only blank lines); expected {expected}.")
    if not rows:
        raise DataError(
            f"{path}: none of its {seen} line(s) could be read ({bad.count} skipped, "
            f"e.g. {'; '.join(bad.examples[:2])}). Expected {expected}."
        )
    result: dict[str, Any] = {}
    for index, (name, col) in enumerate(zip(names, cols)):
        values = [row[index] for row in rows]
        if col.kind == Column.SECONDS:
            result[name] = np.asarray(values, dtype=np.int64)
        elif col.kind == Column.ID:
            result[name] = pd.Series(values, dtype="string")
        else:
            result[name] = values
    bad.log()
    return result, np.asarray(lines, dtype=np.int64), bad


def _read_json_fast(path: Path, columns: dict[str, Column]) -> dict[str, Any] | None:
    """Id/time columns through pyarrow, or None when anything needs a closer look."""
    try:
        import pyarrow as pa
        import pyarrow.json as pj

        types = {Column.ID: pa.string(), Column.SECONDS: pa.int64()}
        schema = pa.schema([(c.key, types[c.kind]) for c in columns.values()])
        compression = "gzip" if is_gzip(path) else None
        with pa.input_stream(str(path), compression=compression) as stream:
            table = pj.read_json(
                stream,
                read_options=pj.ReadOptions(block_size=8 << 20),
                parse_options=pj.ParseOptions(
                    explicit_schema=schema, unexpected_field_behavior="ignore"
                ),
            )
    except Exception:  # noqa: BLE001 - the line-by-line reader reports the actual problem
        return None
    if table.num_rows == 0:
        return None
    out: dict[str, Any] = {}
    try:
        for name, col in columns.items():
            array = table.column(col.key)
            if array.null_count:
                return None
            if col.kind == Column.ID:
                values = array.to_pandas()
                if (values.str.strip() == "").any():
                    return None
                out[name] = values
            else:
                out[name] = array.to_numpy()
    except Exception:  # noqa: BLE001 - e.g. invalid UTF-8 the reader let through
        return None
    return out


def read_json_lines(
    path: Path,
    columns: dict[str, Column],
    *,
    expected: str,
    skip_bad_lines: bool,
    python_literals: bool = False,
) -> tuple[dict[str, Any], BadLines]:
    """Columns of a JSON-lines file; each output column comes from one key per record.

    A line that is not an object, lacks a required key or holds a value of the wrong
    kind is a :class:`DataError` naming it, or is skipped and counted. ``ID`` columns come
    back as string Series, ``SECONDS`` as int64 arrays, ``ANY`` as lists.
    """
    fast_ok = not python_literals and all(
        c.kind in (Column.ID, Column.SECONDS) and c.required for c in columns.values()
    )
    if fast_ok:
        fast = _read_json_fast(path, columns)
        if fast is not None:
            return fast, BadLines(path, skip_bad_lines, expected)
    result, _, bad = _read_lines(
        path,
        columns,
        expected=expected,
        skip_bad_lines=skip_bad_lines,
        python_literals=python_literals,
    )
    return result, bad


def read_json_lines_located(
    path: Path, columns: dict[str, Column], *, expected: str, skip_bad_lines: bool
) -> tuple[dict[str, Any], np.ndarray, BadLines]:
    """Like :func:`read_json_lines`, plus the line number of every row (for later messages)."""
    return _read_lines(
        path, columns, expected=expected, skip_bad_lines=skip_bad_lines, python_literals=False
    )
