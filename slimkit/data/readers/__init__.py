"""Readers for the file formats dataset loaders meet, with errors that say where.

Every problem names the file, the line (or row) and what was expected, as a
:class:`~slimkit.errors.DataError`; with ``skip_bad_lines`` a malformed line is counted
(:class:`BadLines`) instead and reported in the prepared dataset's ``info``.

* :mod:`~slimkit.data.readers.files`: checking and opening files (plain or gzip, told
  apart by content), non-blank lines, encoding errors, :class:`BadLines`;
* :mod:`~slimkit.data.readers.json_lines`: :func:`read_json_lines` (one parser: pyarrow
  first, the line-by-line reader when anything needs naming);
* :mod:`~slimkit.data.readers.delimited`: :func:`read_delimited` for CSV/TSV/``::`` text;
* :mod:`~slimkit.data.readers.tables`: :func:`read_table`, ``.csv``/``.tsv``/``.parquet``/
  ``.jsonl`` by suffix, for the ``csv`` kind;
* :mod:`~slimkit.data.readers.values`: :func:`check_ids` and :func:`parse_timestamps`
  (numbers in seconds or milliseconds, ISO 8601, or a strftime format).
"""

from slimkit.data.readers.delimited import read_delimited, read_header
from slimkit.data.readers.files import (
    SKIP_HINT,
    BadLines,
    RowPlaces,
    check_exists,
    check_file,
    encoding_error,
    is_gzip,
    iter_lines,
    open_binary,
)
from slimkit.data.readers.json_lines import (
    Column,
    first_record,
    parse_record,
    read_json_lines,
    read_json_lines_located,
)
from slimkit.data.readers.tables import read_table, table_format
from slimkit.data.readers.values import check_ids, parse_timestamps

__all__ = [
    "SKIP_HINT",
    "BadLines",
    "Column",
    "RowPlaces",
    "check_exists",
    "check_file",
    "check_ids",
    "encoding_error",
    "first_record",
    "is_gzip",
    "iter_lines",
    "open_binary",
    "parse_record",
    "parse_timestamps",
    "read_delimited",
    "read_header",
    "read_json_lines",
    "read_json_lines_located",
    "read_table",
    "table_format",
]
