"""Delimited text (CSV, TSV, MovieLens ``::``) read with pandas' C parser, every row
with its line number."""

from __future__ import annotations

import gzip
import io
import re
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slimkit.data.readers.files import SKIP_HINT, BadLines, encoding_error, open_binary
from slimkit.errors import DataError

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
