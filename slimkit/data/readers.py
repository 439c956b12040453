"""Readers for the file formats dataset loaders meet, with errors that say where.

Every problem names the file, the line (or row) and what was expected, as a
:class:`~slimkit.errors.DataError`. A malformed single line stops the read unless
``skip_bad_lines`` is set; then it is counted (:class:`BadLines`) and reported in the
prepared dataset's ``info``.

* :func:`read_json_lines`: JSON lines (plain or gzip, detected by content), optionally
  Python-literal lines (Amazon 2014 metadata). Id/time columns go through pyarrow's
  multi-threaded reader first; on any problem the line-by-line reader finds and names it.
* :func:`read_delimited`: CSV/TSV/``::``-separated text with or without a header.
* :func:`read_table`: ``.csv``/``.tsv``/``.parquet``/``.jsonl`` by suffix, for the ``csv`` kind.
* :func:`parse_timestamps`: numbers (seconds or milliseconds), ISO 8601 or a strftime format.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import logging
import re
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from slimkit.errors import DataError

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
SKIP_HINT = (
    "Fix or remove that line, or set `dataset.skip_bad_lines: true` to skip malformed "
    "lines (they are counted and reported)."
)
MAX_EXAMPLES = 5


# ---------------------------------------------------------------------------------
# Bad lines: raise at the first, or count them all
# ---------------------------------------------------------------------------------
@dataclass
class BadLines:
    """Malformed lines of one file: the first raises, unless skipping is allowed."""

    path: Path
    skip: bool
    expected: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def problem(self, where: str, message: str) -> None:
        """Record (or raise for) a problem at ``where`` (``"line 12"``, ``"row 3"``)."""
        if not self.skip:
            raise DataError(
                f"{self.path}, {where}: {message}. Expected {self.expected}.", hint=SKIP_HINT
            )
        self.count += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {message}")

    def report(self) -> dict[str, Any]:
        return {"file": str(self.path), "skipped": self.count, "examples": list(self.examples)}

    def log(self) -> None:
        if self.count:
            log.warning(
                "%s: skipped %d malformed line(s), e.g. %s",
                self.path,
                self.count,
                "; ".join(self.examples[:3]),
            )


# ---------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------
def check_file(path: Path | str, *, role: str, expected: str) -> Path:
    """``path`` as a Path when it is a readable, non-empty file; a DataError otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            f"{role}: {path} does not exist.",
            hint="Relative paths are read from the current directory.",
        )
    if path.is_dir():
        raise DataError(f"{role}: {path} is a folder; expected a file with {expected}.")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; expected {expected}.")
    return path


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_binary(path: Path, *, expected: str) -> IO[bytes]:
    """Open plain or gzip data (told apart by content); ``.gz`` that is not gzip fails."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[:2] == GZIP_MAGIC:
        return gzip.open(path, "rb")
    if path.name.endswith(".gz"):
        raise DataError(
            f"{path} is named .gz but is not gzip data (it starts with {head[:12]!r}); "
            f"expected gzip-compressed {expected}.",
            hint="If the file is plain text, rename it without .gz; otherwise download it again.",
        )
    return open(path, "rb")


def iter_lines(path: Path, *, expected: str) -> Iterator[tuple[int, bytes]]:
    """``(line number, bytes)`` of each non-blank line; corrupt gzip is a DataError."""
    lineno = 0
    with open_binary(path, expected=expected) as handle:
        try:
            for lineno, raw in enumerate(handle, start=1):
                raw = raw.strip()
                if raw:
                    yield lineno, raw
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            raise DataError(
                f"{path}: the gzip data is corrupt or truncated after line {lineno} ({exc}).",
                hint="Download the file again.",
            ) from exc


def decode_error_line(path: Path, encoding: str) -> tuple[int, str] | None:
    """(line, description) of the first line that is not valid ``encoding``, or None."""
    with open_binary(path, expected="text") as handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                byte = raw[exc.start : exc.start + 1]
                return lineno, f"byte 0x{byte.hex()} at column {exc.start + 1}"
    return None


def encoding_error(path: Path, encoding: str, *, hint: str | None = None) -> DataError:
    found = decode_error_line(path, encoding)
    where = f", line {found[0]}" if found else ""
    what = f" ({found[1]})" if found else ""
    return DataError(
        f"{path}{where}: not valid {encoding} text{what}.",
        hint=hint
        or "Save the file as UTF-8, or set `dataset.encoding` to the file's encoding "
        "(e.g. latin-1).",
    )


# ---------------------------------------------------------------------------------
# JSON lines
# ---------------------------------------------------------------------------------
class Column:
    """How one output column is taken from a JSON record."""

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
    """A JSON (or, when allowed, Python-literal) object from one line."""
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


def first_record(path: Path, *, expected: str, python_literals: bool = False) -> dict[str, Any]:
    """The first non-blank line parsed as an object (used to detect a file's format)."""
    for lineno, raw in iter_lines(path, expected=expected):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}, line {lineno}: not valid UTF-8 text "
                f"(byte 0x{raw[exc.start : exc.start + 1].hex()} at column {exc.start + 1}); "
                f"expected {expected} in UTF-8."
            ) from exc
        record, problem = parse_record(text, python_literals=python_literals)
        if problem or not isinstance(record, dict):
            raise DataError(
                f"{path}, line {lineno}: {problem or 'not a JSON object'}; expected {expected}."
            )
        return record
    raise DataError(f"{path} holds no data (only blank lines); expected {expected}.")


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
    kind is a :class:`DataError` naming it, or is skipped and counted.
    """
    bad = BadLines(path, skip_bad_lines, expected)
    fast_ok = not python_literals and all(
        c.kind in (Column.ID, Column.SECONDS) and c.required for c in columns.values()
    )
    if fast_ok:
        fast = _read_json_fast(path, columns)
        if fast is not None:
            return fast, bad
    out: dict[str, list[Any]] = {name: [] for name in columns}
    items = list(columns.items())
    rows = 0
    for lineno, raw in iter_lines(path, expected=expected):
        rows += 1
        where = f"line {lineno}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte = raw[exc.start : exc.start + 1].hex()
            bad.problem(where, f"not valid UTF-8 text (byte 0x{byte} at column {exc.start + 1})")
            continue
        record, problem = parse_record(text, python_literals=python_literals)
        if problem is None and not isinstance(record, dict):
            problem = f"a JSON {type(record).__name__}, not an object"
        if problem is not None:
            bad.problem(where, problem)
            continue
        values = []
        for name, col in items:
            value = record.get(col.key)
            if value is None:
                if col.required:
                    problem = f"no {col.key!r} field"
                    break
                values.append(None)
                continue
            value, why = _convert(value, col.kind)
            if why is not None:
                problem = f"{col.key!r} {why}"
                break
            values.append(value)
        if problem is not None:
            bad.problem(where, problem)
            continue
        for (name, _), value in zip(items, values):
            out[name].append(value)
    if rows == 0:
        raise DataError(f"{path} holds no data (only blank lines); expected {expected}.")
    kept = len(next(iter(out.values()))) if out else 0
    if kept == 0:
        raise DataError(
            f"{path}: none of its {rows} line(s) could be read ({bad.count} skipped, "
            f"e.g. {'; '.join(bad.examples[:2])}). Expected {expected}."
        )
    result: dict[str, Any] = {}
    for name, col in items:
        if col.kind == Column.SECONDS:
            result[name] = np.asarray(out[name], dtype=np.int64)
        elif col.kind == Column.ID:
            result[name] = pd.Series(out[name], dtype="string")
        else:
            result[name] = out[name]
    bad.log()
    return result, bad


# ---------------------------------------------------------------------------------
# Delimited text
# ---------------------------------------------------------------------------------
_SKIPPING = re.compile(r"Skipping line (\d+): (.*)")


def read_delimited(
    path: Path,
    *,
    sep: str,
    expected: str,
    names: list[str] | None = None,
    usecols: list[str] | None = None,
    encoding: str = "utf-8",
    skip_bad_lines: bool = False,
    quoting: bool = True,
    encoding_hint: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, BadLines]:
    """A delimited file as strings, with the line number of every row.

    ``names``: the file has no header and these are its columns. Rows with fewer fields
    come back with missing values (the caller names the line); rows with more fields are
    errors (or skipped). Blank lines are ignored.
    """
    import csv

    bad = BadLines(path, skip_bad_lines, expected)
    handle: Any = open_binary(path, expected=expected)
    try:
        if len(sep) > 1:  # "::" (MovieLens 1M): the C parser wants one character
            data = handle.read().replace(sep.encode(encoding), b"\x1f")
            handle.close()
            handle, sep = io.BytesIO(data), "\x1f"
        options: dict[str, Any] = {
            "sep": sep,
            "dtype": str,
            "keep_default_na": False,
            "na_values": [""],
            "skip_blank_lines": False,
            "encoding": encoding,
            "engine": "c",
            "quoting": csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE,
        }
        if names is not None:
            options.update(header=None, names=names)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                frame = pd.read_csv(
                    handle, on_bad_lines="warn" if skip_bad_lines else "error", **options
                )
            except UnicodeDecodeError:
                raise encoding_error(path, encoding, hint=encoding_hint) from None
            except pd.errors.EmptyDataError:
                raise DataError(f"{path} holds no data; expected {expected}.") from None
            except pd.errors.ParserError as exc:
                match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
                if match:
                    want, line, saw = match.groups()
                    raise DataError(
                        f"{path}, line {line}: {saw} fields where the file has {want}. "
                        f"Expected {expected}.",
                        hint=SKIP_HINT,
                    ) from None
                raise DataError(f"{path}: cannot parse it ({exc}). Expected {expected}.") from None
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise DataError(f"{path}: the gzip data is corrupt or truncated ({exc}).") from None
    finally:
        handle.close()
    if usecols is not None:  # selected here: the parser would not flag extra fields
        frame = frame[usecols]
    skipped: list[int] = []
    for warning in caught:
        for line in str(warning.message).splitlines():
            match = _SKIPPING.match(line.strip())
            if match:
                skipped.append(int(match.group(1)))
                bad.problem(f"line {match.group(1)}", match.group(2))
    # Line number of every row: count from the first data line, jumping skipped lines.
    first = 1 if names is not None else 2
    total = len(frame) + len(skipped)
    lines = np.arange(first, first + total, dtype=np.int64)
    if skipped:
        lines = lines[~np.isin(lines, skipped)]
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    if len(frame) == 0:
        raise DataError(f"{path} holds no data rows; expected {expected}.")
    bad.log()
    return frame, lines, bad


def read_header(path: Path, *, sep: str, encoding: str, expected: str) -> list[str]:
    """Column names of a delimited file's first line."""
    with open_binary(path, expected=expected) as handle:
        first = handle.readline()
    try:
        text = first.decode(encoding)
    except UnicodeDecodeError:
        raise encoding_error(path, encoding) from None
    return [c.strip().strip('"') for c in text.rstrip("\r\n").split(sep)]


# ---------------------------------------------------------------------------------
# Tables for the csv kind
# ---------------------------------------------------------------------------------
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
) -> tuple[pd.DataFrame, list[str], BadLines]:
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
        places = [f"row {i + 1}" for i in range(len(frame))]
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
        data, bad = _read_json_located(path, cols, expected=expected, skip=skip_bad_lines)
        lines = data.pop("__line__")
        frame = pd.DataFrame(data)
        return frame, [f"line {n}" for n in lines], bad
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
    return frame, [f"line {n}" for n in lines], bad


def _read_json_located(
    path: Path, columns: dict[str, Column], *, expected: str, skip: bool
) -> tuple[dict[str, list[Any]], BadLines]:
    """Like :func:`read_json_lines` (ANY columns) but also returns each row's line number."""
    bad = BadLines(path, skip, expected)
    out: dict[str, list[Any]] = {name: [] for name in columns}
    out["__line__"] = []
    for lineno, raw in iter_lines(path, expected=expected):
        where = f"line {lineno}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            byte = raw[exc.start : exc.start + 1].hex()
            bad.problem(where, f"not valid UTF-8 text (byte 0x{byte} at column {exc.start + 1})")
            continue
        record, problem = parse_record(text, python_literals=False)
        if problem is None and not isinstance(record, dict):
            problem = f"a JSON {type(record).__name__}, not an object"
        if problem is None:
            lacking = [c.key for c in columns.values() if c.required and c.key not in record]
            if lacking:
                problem = f"no {', '.join(map(repr, lacking))} field"
        if problem is not None:
            bad.problem(where, problem)
            continue
        for name, col in columns.items():
            out[name].append(record.get(col.key))
        out["__line__"].append(lineno)
    if not out["__line__"]:
        raise DataError(f"{path}: no readable rows; expected {expected}.")
    bad.log()
    return out, bad


# ---------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------
def check_ids(
    values: pd.Series,
    places: list[str] | np.ndarray,
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
    places: list[str] | np.ndarray,
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
