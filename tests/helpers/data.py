"""Helpers shared by the data tests (not a test module itself: no test functions)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers import REPO

FIXTURES = REPO / "tests" / "fixtures" / "data"


def write_spec(folder: Path, dataset: dict, name: str = "spec.yaml") -> Path:
    """A spec file whose dataset section is ``dataset`` (paths made absolute strings)."""
    section = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataset.items()}
    path = folder / name
    path.write_text(yaml.safe_dump({"dataset": section}, sort_keys=False), encoding="utf-8")
    return path


def prepared_dataset(spec_path: Path):
    """The prepared dataset of a spec file's dataset section: its loader, then preparation."""
    from slimkit.data.prepare import prepare
    from slimkit.factories import load_dataset
    from slimkit.spec import load_spec

    params = load_spec(spec_path).dataset
    return prepare(load_dataset(params), params)


def flat(text: str) -> str:
    """Panel output as one line: box characters and line wrapping removed."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─┃━┏┓┗┛]", " ", text)).strip()


def cli(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run ``slimkit ARGS`` through its real entry point in this process.

    Returns (exit code, stdout, stderr flattened to one line).
    """
    from slimkit.cli import main

    monkeypatch.setenv("COLUMNS", "3000")
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, flat(err)
