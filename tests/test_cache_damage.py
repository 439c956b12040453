"""A damaged SQLite file in the cache: reported in one line, moved aside, readable
entries kept, never a traceback (library and CLI)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slimkit.cache import CORRUPT_MARK, CORRUPTION_REPORTS, StageCache


def _fill(root, n=300) -> StageCache:
    cache = StageCache(root)
    store = cache.records("llm")
    for i in range(n):
        store[f"chat:{i}"] = {"text": f"Step 1: answer {i} " + "x" * 400, "cost_usd": 0.001}
    with cache.write("teach", "k1", {}) as out:
        (out / "rationales.jsonl").write_text("{}\n")
    cache.close()
    return cache


def _truncate(path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep else b"this is not a database" * 4)


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_damaged_record_store_is_moved_aside_and_readable_answers_kept(tmp_path, keep):
    root = tmp_path / "c"
    _fill(root)
    db = root / "records" / "llm" / "cache.db"
    _truncate(db, keep)
    before = len(CORRUPTION_REPORTS)
    store = StageCache(root).records("llm")
    reports = CORRUPTION_REPORTS[before:]
    assert len(reports) == 1 and str(db) in reports[0] and "moved aside" in reports[0]
    aside = [p for p in db.parent.iterdir() if CORRUPT_MARK in p.name]
    assert len(aside) == 1
    if keep:  # half a file: the rows on the pages that are left come back
        assert 0 < len(store) < 300
        key = next(iter(store))
        assert store[key]["text"].startswith("Step 1: answer")
    else:
        assert len(store) == 0
    store["chat:new"] = {"text": "works"}  # the fresh store is usable
    assert store["chat:new"]["text"] == "works"


def test_damaged_index_falls_back_to_the_output_manifests(tmp_path):
    root = tmp_path / "c"
    _fill(root)
    _truncate(root / "index" / "cache.db", 0.0)
    cache = StageCache(root)
    folder = cache.get("teach", "k1")
    assert folder is not None and (folder / "rationales.jsonl").is_file()
    assert cache.info()["stages"]["teach"]["entries"] == 1


def test_cache_info_on_a_damaged_store_is_one_line_not_a_traceback(tmp_path):
    root = tmp_path / "c"
    _fill(root)
    db = root / "records" / "llm" / "cache.db"
    _truncate(db, 0.5)
    result = subprocess.run([sys.executable, "-m", "slimkit", "--cache-dir", str(root), "cache", "info"],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "damaged" in line]
    assert len(lines) == 1 and str(db) in lines[0]
    assert "moved aside" in result.stdout.lower() or CORRUPT_MARK in result.stdout


def test_an_entry_that_cannot_be_read_back_is_dropped_not_a_traceback(tmp_path):
    """A row whose stored bytes are garbage (what a write-ahead log replayed over a
    truncated file can leave, while SQLite's own check passes): the stage index falls back
    to the output's manifest.json, a record reads as missing; one line each."""
    import sqlite3

    root = tmp_path / "c"
    cache = _fill(root, n=3)
    for db in (root / "index" / "cache.db", root / "records" / "llm" / "cache.db"):
        con = sqlite3.connect(str(db))
        con.execute("UPDATE Cache SET value = ?", (b"\x00" * 40,))  # every pickled value
        con.commit()
        con.close()
    before = len(CORRUPTION_REPORTS)
    cache = StageCache(root)
    assert cache.get("teach", "k1") is not None  # from the folder's own manifest.json
    assert cache.records("llm").get("chat:1") is None
    reports = CORRUPTION_REPORTS[before:]
    assert len(reports) == 2 and all("unreadable entry was dropped" in r for r in reports)
    assert cache.get("teach", "k1") is not None  # indexed again: no new report
    assert len(CORRUPTION_REPORTS[before:]) == 2
