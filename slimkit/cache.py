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
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
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
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class StageCache:
    """Stage outputs and per-item records under one root directory."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else cache_dir()
        self._index = None
        self._records: dict[str, Any] = {}

    # -- plumbing -------------------------------------------------------------------
    @property
    def index(self):
        if self._index is None:
            import diskcache

            self.root.mkdir(parents=True, exist_ok=True)
            self._index = diskcache.Cache(str(self.root / "index"))
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
        return self.index.get(("stage", stage, key))

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

    corruption_reports: list[str] = []

    def _report_corruption(self, stage: str, key: str, problem: str) -> None:
        StageCache.corruption_reports.append(f"{stage}/{key}: {problem}")

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
        tmp = root / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
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
            final = self.path(stage, key)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            self.index.set(("stage", stage, key), manifest)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def delete(self, stage: str, key: str) -> None:
        self.index.delete(("stage", stage, key))
        shutil.rmtree(self.path(stage, key), ignore_errors=True)

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
        """A diskcache for items of one namespace (``"llm"``, ``"rationales"``, ...)."""
        if namespace not in self._records:
            import diskcache

            folder = self.root / "records" / namespace
            folder.mkdir(parents=True, exist_ok=True)
            self._records[namespace] = diskcache.Cache(str(folder), size_limit=2**40)
        return self._records[namespace]

    # -- info / clear -----------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Entries and bytes per stage and per record namespace."""
        stages = {}
        for stage in STAGES:
            entries = self.entries(stage) if self.root.exists() else []
            folder = self.stage_root(stage)
            stages[stage] = {
                "entries": len(entries),
                "bytes": _dir_size(folder) if folder.exists() else 0,
            }
        records = {}
        rec_root = self.root / "records"
        if rec_root.exists():
            for folder in sorted(p for p in rec_root.iterdir() if p.is_dir()):
                records[folder.name] = {
                    "entries": len(self.records(folder.name)),
                    "bytes": _dir_size(folder),
                }
        total = _dir_size(self.root) if self.root.exists() else 0
        return {"path": str(self.root), "bytes": total, "stages": stages, "records": records}

    def clear(self, stage: str | None = None) -> int:
        """Remove one stage's outputs (or everything); returns entries removed."""
        if stage is None:
            count = len(self.entries()) if self.root.exists() else 0
            self.close()
            if self.root.exists():
                for child in self.root.iterdir():
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            return count
        entries = self.entries(stage)
        for manifest in entries:
            self.delete(stage, manifest["key"])
        shutil.rmtree(self.stage_root(stage), ignore_errors=True)
        return len(entries)
