"""The stage cache: every stage's output, keyed by everything that determines it.

A stage output is a folder under ``<cache>/stages/<stage>/<key>/`` holding the stage's
files plus ``spec.yaml`` (the resolved spec parts that made it), ``versions.json`` and
``manifest.json`` (sha256 of every file). A diskcache index maps (stage, key) to the
manifest. Outputs are written to a temporary folder and renamed into place only when
the stage finished, so a crash or Ctrl-C never leaves a half-written entry that looks
complete. A corrupted entry (missing file, checksum mismatch) is reported and dropped,
so the stage is recomputed rather than silently used.

Per-item caches (one LLM response, one user's rationale, one text vector) live in
:meth:`StageCache.records`, a diskcache per namespace, written as each item finishes.
The ``llm`` namespace holds paid answers: :meth:`StageCache.clear` keeps it unless asked
by name.

Several processes may share one cache. A stage output is committed under a file lock,
and a second writer that finds a complete output already there keeps it; a run killed
mid-stage leaves a temporary folder that the next writer removes once its process is
gone. A record store (or the index) whose SQLite file is damaged is reported in one
line, moved aside as ``cache.db.corrupt-<time>``, and replaced by a fresh store holding
every entry that could still be read (:func:`open_store`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from slimkit._version import __version__
from slimkit.paths import cache_dir

log = logging.getLogger(__name__)

STAGES = ("data", "teach", "distill", "encode", "train", "compare")
"""Stage names, in pipeline order."""

_META_FILES = ("spec.yaml", "versions.json", "manifest.json")

PAID_NAMESPACES = ("llm",)
"""Record namespaces holding paid LLM answers: never cleared unless asked by name."""

CORRUPT_MARK = ".corrupt-"
"""A damaged SQLite file is renamed ``<name>.corrupt-<YYYYmmdd-HHMMSS>``."""

CORRUPTION_REPORTS: list[str] = []
"""One line per damaged entry or store found in this process (``slimkit run`` reports them)."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hash_key(*parts: Any) -> str:
    """A short stable hex digest of JSON-serialisable parts."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:24]


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:  # removed meanwhile by another run
            continue
    return total


# -- SQLite stores: damage detection, salvage ----------------------------------------------
def _report(line: str) -> None:
    log.warning("%s", line)
    CORRUPTION_REPORTS.append(line)


def sqlite_problem(db: Path) -> str | None:
    """Why the SQLite file ``db`` is damaged (``PRAGMA quick_check``), or None when it is
    fine or absent. A locked or busy file is not damage: that error propagates."""
    if not db.is_file() or db.stat().st_size == 0:
        return None
    try:
        con = sqlite3.connect(str(db), timeout=60)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise
        return str(exc)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if rows != [("ok",)]:
        return "; ".join(str(r[0]) for r in rows[:2])
    return None


def _move_aside(db: Path) -> Path:
    """Rename a damaged SQLite file (and its -wal/-shm) to ``<name>.corrupt-<time>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = db.with_name(f"{db.name}{CORRUPT_MARK}{stamp}")
    n = 1
    while aside.exists():
        aside = db.with_name(f"{db.name}{CORRUPT_MARK}{stamp}-{n}")
        n += 1
    os.replace(db, aside)
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    return aside


def _salvage(aside: Path, cache: Any) -> tuple[int, int]:
    """Copy every entry of the damaged diskcache database ``aside`` that can still be read
    into ``cache``; returns (entries kept, rows that failed). Rows are read in rowid
    order, stepping over damaged pages."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "salvage.db"
        shutil.copyfile(aside, copy)
        _pad_to_header_size(copy)
        try:
            con = sqlite3.connect(str(copy))
        except sqlite3.DatabaseError:
            return 0, 0
        try:
            return _copy_rows(con, cache)
        finally:
            con.close()


def _pad_to_header_size(db: Path) -> None:
    """Pad a truncated SQLite file with zero pages up to the size its header gives, so
    SQLite reads the pages that are left instead of refusing the whole file."""
    import struct

    with open(db, "r+b") as handle:
        header = handle.read(100)
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            return
        page_size = struct.unpack(">H", header[16:18])[0]
        page_size = 65536 if page_size == 1 else page_size
        pages = struct.unpack(">I", header[28:32])[0]
        size = handle.seek(0, os.SEEK_END)
        if page_size and pages * page_size > size:
            handle.truncate(pages * page_size)


def _copy_rows(con: sqlite3.Connection, cache: Any) -> tuple[int, int]:
    kept = failed = 0
    disk = cache.disk
    last, misses, limit = -1, 0, 256
    try:
        while misses < 2000:
            try:
                rows = con.execute(
                    "SELECT rowid, key, raw, mode, filename, value FROM Cache "
                    "WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, limit)).fetchall()
            except sqlite3.DatabaseError:
                if limit > 1:
                    limit = 1  # find the damaged row, then step over it
                else:
                    last, misses = last + 1, misses + 1
                continue
            if not rows:
                break
            rows = [row for row in rows if row[0] > last]  # a damaged tree can point back
            if not rows:
                last, misses = last + 1, misses + 1
                continue
            misses, limit = 0, 256
            for rowid, db_key, raw, mode, filename, db_value in rows:
                last = rowid
                try:
                    key = disk.get(db_key, raw)
                    value = disk.fetch(mode, filename, db_value, False)
                    cache.set(key, value)
                    kept += 1
                except Exception:  # noqa: BLE001 - an unreadable row is counted, not fatal
                    failed += 1
    except sqlite3.DatabaseError:
        pass
    return kept, failed


_STORE_CLASS: Any = None


def _store_class() -> Any:
    """``diskcache.Cache`` whose ``get`` survives an entry that cannot be read back (a page
    of a damaged file that passed SQLite's quick check, e.g. zeros a write-ahead log
    replayed over a truncated file): the entry is reported in one line, dropped, and
    read as missing, so it is recomputed (or asked again) instead of a traceback."""
    global _STORE_CLASS
    if _STORE_CLASS is None:
        import diskcache

        class GuardedCache(diskcache.Cache):
            def get(self, key, default=None, *args, **kwargs):
                try:
                    return super().get(key, default, *args, **kwargs)
                except sqlite3.OperationalError:
                    raise  # locked or busy: not damage
                except Exception as exc:  # unpickling garbage raises anything
                    _report(f"{Path(self.directory) / 'cache.db'}: an unreadable entry was "
                            f"dropped ({type(exc).__name__}); it will be recomputed.")
                    try:
                        self.delete(key)
                    except Exception:  # noqa: BLE001 - best effort: the read already failed
                        log.debug("could not drop the unreadable entry", exc_info=True)
                    return default

        _STORE_CLASS = GuardedCache
    return _STORE_CLASS


def open_store(folder: Path, *, size_limit: int = 2**40) -> Any:
    """A ``diskcache.Cache`` over ``folder``; a damaged ``cache.db`` is reported in one
    line naming the file, moved aside, and replaced by a store holding every entry of it
    that can still be read."""
    from filelock import FileLock

    store = _store_class()
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "cache.db"
    problem = sqlite_problem(db)
    if problem is None:
        try:
            return store(str(folder), size_limit=size_limit)
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:
            problem = str(exc)
    with FileLock(str(folder / ".recover.lock"), timeout=300):
        problem = sqlite_problem(db)  # another process may have recovered it meanwhile
        if problem is None:
            return store(str(folder), size_limit=size_limit)
        aside = _move_aside(db)
        cache = store(str(folder), size_limit=size_limit)
        kept, failed = _salvage(aside, cache)
    lost = f", {failed} unreadable" if failed else ""
    _report(f"{db} was damaged ({problem}): moved aside to {aside.name}; "
            f"{kept} entries recovered{lost}.")
    return cache


def _process_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap check; stale folders are removed by age instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


_TMP_NAME = re.compile(r"^\.tmp-(?P<key>[^-]+)-(?P<pid>\d+)-[0-9a-f]+$")


def request_lock_path(store: Any, key: str) -> Path:
    """The lock file that serialises asking for record ``key`` of ``store`` across
    processes (see :class:`RequestLock`)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    return Path(store.directory) / "locks" / f"{safe}.lock"


class RequestLock:
    """A non-blocking cross-process lock on one record key (an OS file lock, so a killed
    holder releases it at once). Whoever holds it checks the store, asks the model only
    when the answer is not there, and stores it before :meth:`release`."""

    def __init__(self, store: Any, key: str):
        from filelock import FileLock

        self.path = request_lock_path(store, key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path), timeout=0)

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    def release(self, *, answered: bool) -> None:
        """Release; once the answer is stored the lock file is removed (a waiter that
        still holds it open finds the answer when it gets the lock)."""
        if answered:
            self.path.unlink(missing_ok=True)
        self._lock.release()


class StageCache:
    """Stage outputs and per-item records under one root directory."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir()
        self._index = None
        self._records: dict[str, Any] = {}

    # -- plumbing -------------------------------------------------------------------
    @property
    def index(self):
        """Stage -> manifest index (an accelerator: each output folder also holds its
        ``manifest.json``, which :meth:`manifest` falls back to)."""
        if self._index is None:
            self.root.mkdir(parents=True, exist_ok=True)
            self._index = open_store(self.root / "index")
        return self._index

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None
        for rec in self._records.values():
            rec.close()
        self._records.clear()

    def stage_root(self, stage: str) -> Path:
        return self.root / "stages" / stage

    # -- keys -----------------------------------------------------------------------
    def key(
        self,
        stage: str,
        spec_parts: Mapping[str, Any],
        upstream: Sequence[str] = (),
        versions: Mapping[str, str] | None = None,
    ) -> str:
        """Key of a stage: its name, its resolved spec parts, upstream keys, code versions.

        ``spec_parts`` holds the resolved sections the stage reads (e.g.
        ``{"dataset": {...}}``); ``upstream`` the keys of the stages whose outputs it
        reads, so any upstream change gives a new key; ``versions`` the distributions of
        the components involved (slimkit's own version is always included).
        """
        all_versions = {"slimkit": __version__, **(versions or {})}
        return hash_key(stage, dict(spec_parts), list(upstream), all_versions)

    # -- stage outputs --------------------------------------------------------------
    def path(self, stage: str, key: str) -> Path:
        return self.stage_root(stage) / key

    def manifest(self, stage: str, key: str) -> dict[str, Any] | None:
        """The manifest of a committed output: from the index, else from the output
        folder's own ``manifest.json`` (an index lost to damage, or a run killed between
        the rename and the index write), which is then indexed again."""
        manifest = self.index.get(("stage", stage, key))
        if manifest is not None:
            return manifest
        file = self.path(stage, key) / "manifest.json"
        if not file.is_file():
            return None
        try:
            manifest = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("key") != key:
            return None
        self.index.set(("stage", stage, key), manifest)
        return manifest

    def get(self, stage: str, key: str, *, verify: bool = True) -> Path | None:
        """The folder of a finished stage output, or ``None`` when absent or corrupted."""
        manifest = self.manifest(stage, key)
        folder = self.path(stage, key)
        if manifest is None:
            return None
        problem = self._check(folder, manifest) if verify else None
        if problem:
            log.warning(
                "cache entry %s/%s is corrupted (%s); it will be recomputed", stage, key, problem
            )
            self._report_corruption(stage, key, problem)
            self.delete(stage, key)
            return None
        return folder

    def _check(self, folder: Path, manifest: Mapping[str, Any]) -> str | None:
        if not folder.is_dir():
            return "its folder is missing"
        for name, meta in manifest.get("files", {}).items():
            file = folder / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != meta["size"]:
                return f"{name} has the wrong size"
            if file_sha256(file) != meta["sha256"]:
                return f"{name} fails its checksum"
        return None

    corruption_reports = CORRUPTION_REPORTS

    def _report_corruption(self, stage: str, key: str, problem: str) -> None:
        CORRUPTION_REPORTS.append(f"{stage}/{key}: {problem}")

    def invalidate(self, stage: str, key: str, reason: str) -> None:
        """Drop an entry whose files loaded badly, reporting why."""
        log.warning("cache entry %s/%s failed to load (%s); recomputing", stage, key, reason)
        self._report_corruption(stage, key, reason)
        self.delete(stage, key)

    @contextmanager
    def write(
        self,
        stage: str,
        key: str,
        spec: Mapping[str, Any],
        versions: Mapping[str, str] | None = None,
        summary: Mapping[str, Any] | None = None,
    ) -> Iterator[Path]:
        """Yield a fresh folder to write a stage's output into; commit it on success.

        On an exception (Ctrl-C included) the temporary folder is removed and nothing is
        recorded. ``summary`` (default: the folder's ``summary.json`` once written) is
        stored in the index for ``slimkit cache info`` / ``status``.
        """
        root = self.stage_root(stage)
        root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_tmp(root)
        started = time.time()
        tmp = root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
            if summary is None and (tmp / "summary.json").is_file():
                summary = json.loads((tmp / "summary.json").read_text(encoding="utf-8"))
            (tmp / "spec.yaml").write_text(yaml.safe_dump(dict(spec), sort_keys=False))
            all_versions = {
                "slimkit": __version__,
                "python": platform.python_version(),
                **(versions or {}),
            }
            (tmp / "versions.json").write_text(json.dumps(all_versions, indent=2))
            files = {}
            for file in sorted(tmp.rglob("*")):
                rel = file.relative_to(tmp).as_posix()
                if file.is_file() and rel != "manifest.json":
                    files[rel] = {"size": file.stat().st_size, "sha256": file_sha256(file)}
            manifest = {
                "stage": stage,
                "key": key,
                "created": time.time(),
                "files": files,
                "summary": dict(summary or {}),
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            self._commit(stage, key, tmp, manifest, started)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _commit(self, stage: str, key: str, tmp: Path, manifest: dict[str, Any],
                started: float) -> None:
        """Rename ``tmp`` into place under a lock. When another run committed an output of
        the same key while this one was computing (same key, same inputs), that one is
        kept, unless it has failed items and this one has none."""
        from filelock import FileLock

        final = self.path(stage, key)
        with FileLock(str(self.stage_root(stage) / f".{key}.lock"), timeout=600):
            existing = self.manifest(stage, key)
            if existing is not None and existing.get("created", 0) >= started \
                    and not (existing.get("summary", {}).get("failed")
                             and not manifest["summary"].get("failed")) \
                    and self._check(final, existing) is None:
                log.info("%s/%s was committed by another run meanwhile; keeping it", stage, key)
                return
            if final.exists():
                aside = final.with_name(f".old-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
                os.replace(final, aside)  # renamed first: readers never see a half-deleted folder
                shutil.rmtree(aside, ignore_errors=True)
            os.replace(tmp, final)
            self.index.set(("stage", stage, key), manifest)

    @staticmethod
    def _remove_stale_tmp(root: Path) -> None:
        """Remove temporary folders left by runs that were killed (their process is gone;
        without a process check, after a day)."""
        for child in root.glob(".tmp-*"):
            match = _TMP_NAME.match(child.name)
            try:
                stale = (not _process_alive(int(match["pid"]))) if match else \
                    time.time() - child.stat().st_mtime > 86400
            except OSError:
                continue
            if stale:
                shutil.rmtree(child, ignore_errors=True)
        for child in root.glob(".old-*"):
            shutil.rmtree(child, ignore_errors=True)

    def delete(self, stage: str, key: str) -> None:
        self.index.delete(("stage", stage, key))
        folder = self.path(stage, key)
        if folder.exists():
            aside = folder.with_name(f".old-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                os.replace(folder, aside)
            except OSError:
                aside = folder
            shutil.rmtree(aside, ignore_errors=True)

    def entries(self, stage: str | None = None) -> list[dict[str, Any]]:
        out = []
        for index_key in list(self.index.iterkeys()):
            if isinstance(index_key, tuple) and index_key[0] == "stage":
                if stage is None or index_key[1] == stage:
                    manifest = self.index.get(index_key)
                    if manifest is not None:
                        out.append(manifest)
        return out

    # -- per-item records -------------------------------------------------------------
    def records(self, namespace: str):
        """A diskcache for items of one namespace (``"llm"``, ``"rationales"``, ...); a
        damaged store is recovered on opening (:func:`open_store`)."""
        if namespace not in self._records:
            self._records[namespace] = open_store(self.root / "records" / namespace)
        return self._records[namespace]

    def merge_records(self, other: StageCache) -> dict[str, dict[str, int]]:
        """Copy into this cache every per-item record of ``other`` (another cache folder,
        e.g. one a ``distill --shard`` ran into on another machine) that this one lacks;
        records already here are kept. Returns ``{namespace: {"copied": n, "kept": m}}``."""
        out = {}
        for name in other._record_namespaces():
            source, target = other.records(name), self.records(name)
            copied = kept = 0
            for key in source.iterkeys():
                value = source.get(key)
                if value is None:
                    continue  # unreadable (reported by the guarded store) or removed meanwhile
                if target.add(key, value):  # only when absent, atomically
                    copied += 1
                else:
                    kept += 1
            out[name] = {"copied": copied, "kept": kept}
        return out

    def _record_namespaces(self) -> list[str]:
        rec_root = self.root / "records"
        if not rec_root.exists():
            return []
        return sorted(p.name for p in rec_root.iterdir() if p.is_dir())

    # -- info / clear -----------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Entries and bytes per stage and per record namespace (``paid``: LLM answers,
        with what they cost), and damaged files moved aside."""
        stages = {}
        for stage in STAGES:
            entries = self.entries(stage) if self.root.exists() else []
            folder = self.stage_root(stage)
            stages[stage] = {
                "entries": len(entries),
                "bytes": _dir_size(folder) if folder.exists() else 0,
            }
        records = {}
        for name in self._record_namespaces():
            store = self.records(name)
            row = {"entries": len(store), "bytes": _dir_size(self.root / "records" / name),
                   "paid": name in PAID_NAMESPACES}
            if row["paid"]:
                row["cost_usd"] = _paid_usd(store)
            records[name] = row
        moved_aside = sorted(str(p.relative_to(self.root)) for p in self.root.rglob(f"*{CORRUPT_MARK}*")
                             if p.is_file()) if self.root.exists() else []
        total = _dir_size(self.root) if self.root.exists() else 0
        return {"path": str(self.root), "bytes": total, "stages": stages, "records": records,
                "moved_aside": moved_aside}

    def clear_plan(self, stage: str | None = None, *, llm: bool = False) -> list[dict[str, Any]]:
        """What :meth:`clear` with the same arguments removes: one row per stage or record
        store (``what``, ``entries``, ``bytes``, ``paid``), nothing removed yet."""
        info = self.info()
        rows = []
        for name, row in info["stages"].items():
            if (stage is None or name == stage) and (row["entries"] or row["bytes"]):
                rows.append({"what": f"stage outputs: {name}", "entries": row["entries"],
                             "bytes": row["bytes"], "paid": False})
        if stage is None:
            for name, row in info["records"].items():
                if row["paid"] and not llm:
                    continue
                rows.append({"what": f"records: {name}", "entries": row["entries"],
                             "bytes": row["bytes"], "paid": row["paid"],
                             "cost_usd": row.get("cost_usd")})
        elif llm:
            for name in PAID_NAMESPACES:
                row = info["records"].get(name)
                if row:
                    rows.append({"what": f"records: {name}", "entries": row["entries"],
                                 "bytes": row["bytes"], "paid": True, "cost_usd": row.get("cost_usd")})
        return rows

    def clear(self, stage: str | None = None, *, llm: bool = False) -> int:
        """Remove one stage's outputs, or every stage output and local record store; paid
        LLM answers (:data:`PAID_NAMESPACES`) only with ``llm=True``. Returns the stage
        entries removed."""
        if stage is None:
            count = len(self.entries()) if self.root.exists() else 0
            keep = set() if llm else set(PAID_NAMESPACES)
            self.close()
            if self.root.exists():
                for child in self.root.iterdir():
                    if child.name == "records":
                        for store in child.iterdir():
                            if store.name not in keep:
                                _remove(store)
                    else:
                        _remove(child)
            return count
        entries = self.entries(stage)
        for manifest in entries:
            self.delete(stage, manifest["key"])
        shutil.rmtree(self.stage_root(stage), ignore_errors=True)
        if llm:
            self.close()
            for name in PAID_NAMESPACES:
                _remove(self.root / "records" / name)
        return len(entries)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _paid_usd(store: Any) -> float | None:
    """What the answers of a paid store cost, summed (None when no price is known)."""
    total, known = 0.0, False
    for key in store.iterkeys():
        value = store.get(key)
        cost = value.get("cost_usd") if isinstance(value, dict) else None
        if isinstance(cost, (int, float)):
            total += cost
            known = True
    return round(total, 6) if known else None
