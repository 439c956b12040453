"""Opening the files dataset loaders read, and counting their bad lines.

Every problem names the file, the line (or row) and what was expected, as a
:class:`~slimkit.errors.DataError`. A malformed line stops the read unless
``skip_bad_lines`` is set; then :class:`BadLines` counts it and the prepared dataset's
``info`` reports it. Plain and gzip data are told apart by content, not by name.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from slimkit.errors import DataError

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
SKIP_HINT = (
    "Fix or remove that line, or set `dataset.skip_bad_lines: true` to skip malformed "
    "lines (they are counted and reported)."
)
MAX_EXAMPLES = 5


class RowPlaces:
    """Where each row of a table sits (``"line 7"``, ``"row 7"``), made only when a message
    asks: a list of one string per row costs ~70 bytes a row (3.5 GB at 50M rows)."""

    def __init__(self, word: str, numbers: Any = None, count: int = 0):
        self.word = word
        self.numbers = numbers  # the number of each row; None: 1 .. count
        self.count = len(numbers) if numbers is not None else int(count)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> str:
        index = int(index)
        if not -self.count <= index < self.count:
            raise IndexError(index)
        index %= self.count
        number = self.numbers[index] if self.numbers is not None else index + 1
        return f"{self.word} {int(number)}"


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


def check_exists(path: Path | str, *, role: str) -> Path:
    """``path`` (``~`` expanded) as a Path when it exists; a DataError naming ``role`` otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            f"{role}: {path} does not exist.",
            hint="Relative paths are read from the current directory.",
        )
    return path


def check_file(path: Path | str, *, role: str, expected: str) -> Path:
    """``path`` as a Path when it is a readable, non-empty file; a DataError otherwise."""
    path = check_exists(path, role=role)
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
