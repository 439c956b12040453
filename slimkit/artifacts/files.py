"""JSON and JSON-lines files of stage outputs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"
"""Every stage folder's summary: what ``slimkit run`` prints and ``--json`` returns."""


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented UTF-8 JSON (values JSON cannot hold are written as strings)."""
    Path(path).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")


def read_json(path: Path) -> Any:
    """The JSON document at ``path``; OSError / ValueError when missing or broken."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line (non-ASCII text kept as it is)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every object of a JSON-lines file (blank lines skipped)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_summary(folder: Path) -> dict[str, Any]:
    """A stage folder's ``summary.json``."""
    return read_json(Path(folder) / SUMMARY_FILE)


def write_summary(folder: Path, summary: dict[str, Any]) -> None:
    write_json(Path(folder) / SUMMARY_FILE, summary)
