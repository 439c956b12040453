"""Sharded student generation: ``slimkit distill --shard I/N``.

Shard ``I`` of ``N`` runs the distill stage for the users whose index ``u`` has
``u % N == I - 1`` (the fine-tuned student's rationales, and the base student's on its
share of the held-out users), writing each rationale to the shared ``rationales`` record
store as it finishes, exactly as a whole run would (same store keys). It writes no stage
output: a final plain run assembles the stage, and finds every rationale in the store.

The LoRA adapter is trained once: the first process to reach training takes a file lock
on the adapter's store key (:func:`slimkit.stages.distill.train_or_restore_once`); the
others wait on it and then restore the stored adapter, so every shard generates with the
same adapter weights (and the same rationale keys).

Each shard keeps a small progress file (``shard-I-of-N.json``) in a folder the pipeline
gives per stage key; :func:`shard_status` sums them for ``slimkit status``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slimkit.errors import SlimkitError

PROGRESS_FOLDER = ".shards"
"""Folder (under the stage's cache folder) holding one progress folder per stage key."""

WRITE_EVERY_S = 2.0
"""Progress files are rewritten at most this often while a shard generates."""

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_FILE = re.compile(r"^shard-(\d+)-of-(\d+)\.json$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``: the users whose index ``% count == index - 1``
    (:data:`ADAPTER_ONLY`, index 0, owns none)."""

    index: int
    count: int

    def owns(self, user: int) -> bool:
        return self.index > 0 and int(user) % self.count == self.index - 1

    def take(self, users: Sequence[int]) -> list[int]:
        """The users of ``users`` this shard owns, in their order."""
        return [u for u in users if self.owns(u)]

    @property
    def file_name(self) -> str:
        return f"shard-{self.index}-of-{self.count}.json"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}" if self.index else "adapter-only"


ADAPTER_ONLY = Shard(0, 1)
"""A run that trains (or restores) the adapter and generates nothing (``--adapter-only``):
the step to finish before copying the cache to machines that share no cache folder."""


def parse_shard(text: str, option: str = "--shard") -> Shard:
    """``"2/4"`` -> ``Shard(2, 4)``; a SlimkitError naming ``option`` for anything else."""
    match = _SHARD.match(str(text))
    if match is None:
        raise SlimkitError(f"{option}: expected I/N (e.g. 1/4), got {text!r}.",
                           hint="Shards are numbered from 1: run 1/N, 2/N, ... N/N.")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise SlimkitError(f"{option}: shard {index} of {count} does not exist.",
                           hint=f"Use 1/{max(count, 1)} ... {max(count, 1)}/{max(count, 1)}.")
    return Shard(index, count)


def progress_folder(stage_folder: Path, key: str) -> Path:
    """Where the shards of the stage output ``key`` keep their progress files."""
    return stage_folder / PROGRESS_FOLDER / key


class _CountingStore:
    """A record store that reports every rationale found or written (``tick(generated)``)."""

    def __init__(self, store: Any, tick):
        self._store = store
        self._tick = tick

    def get(self, key: str, default: Any = None) -> Any:
        found = self._store.get(key, default)
        if found is not None:
            self._tick(False)
        return found

    def set(self, key: str, value: Any) -> Any:
        result = self._store.set(key, value)
        self._tick(True)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class ShardRun:
    """One shard's run of the distill stage: which users it owns, and its progress file
    (``folder/shard-I-of-N.json``; no file when ``folder`` is None)."""

    def __init__(self, shard: Shard, folder: Path | None = None):
        self.shard = shard
        self.file = folder / shard.file_name if folder is not None else None
        self.started = time.time()
        self._clock = time.perf_counter()
        self._written = 0.0
        self.info: dict[str, Any] = {
            "shard": shard.index, "of": shard.count, "state": "preparing", "users": None,
            "total_users": None, "done": 0, "generated": 0, "host": socket.gethostname(),
            "pid": os.getpid(), "started": self.started,
        }
        self.write(force=True)

    def take(self, users: Sequence[int]) -> list[int]:
        return self.shard.take(users)

    def generate(self, generator: Any, users: Sequence[int], *, progress: bool,
                 description: str) -> dict[int, dict]:
        """``generator`` (a :class:`~slimkit.stages.distill.RationaleGenerator`) on this
        shard's share of ``users``, counting what is done into the progress file."""
        mine = self.take(users)
        self.info.update(state="generating", users=len(mine), total_users=len(users), done=0,
                         generated=0)
        self.write(force=True)
        store = generator.store
        generator.store = _CountingStore(store, self._tick)
        try:
            return generator(mine, progress=progress, description=f"{description} (shard {self.shard})")
        finally:
            generator.store = store
            self.write(force=True)

    def _tick(self, generated: bool) -> None:
        self.info["done"] += 1
        self.info["generated"] += int(generated)
        self.write()

    def finish(self, generators: Sequence[Any], training: dict[str, Any], backend: Any) -> dict[str, Any]:
        """The shard's summary (also its final progress file)."""
        stats = [s for g in generators for s in g.stats]
        seconds = sum(s["seconds"] for s in stats)
        tokens = sum(s["new_tokens"] for s in stats)
        summary = {
            "shard": str(self.shard),
            "stage_complete": False,
            "users": self.info["users"],
            "total_users": self.info["total_users"],
            "generated": sum(g.generated for g in generators),
            "cached": sum(g.cached for g in generators),
            "base_generated": sum(g.generated for g in generators if not g.adapter),
            "new_tokens": tokens,
            "generation_seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 2) if seconds > 0 else None,
            "adapter": training.get("adapter"),
            "backend": backend,
            "seconds": round(time.perf_counter() - self._clock, 2),
            "progress_file": str(self.file) if self.file else None,
        }
        self.info.update(state="finished", done=self.info["users"], summary=summary)
        self.write(force=True)
        return summary

    def write(self, *, force: bool = False) -> None:
        """Rewrite the progress file (atomically; at most every WRITE_EVERY_S unless forced)."""
        now = time.time()
        if self.file is None or (not force and now - self._written < WRITE_EVERY_S):
            return
        self._written = now
        self.info["updated"] = now
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(f".{self.file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.info, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, self.file)


def read_progress(folder: Path) -> list[dict[str, Any]]:
    """Every readable progress file in ``folder``, by shard count then index."""
    rows = []
    if not folder.is_dir():
        return rows
    for path in folder.iterdir():
        if not _FILE.match(path.name):
            continue
        try:
            rows.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # being replaced this instant, or damaged: left out of the count
    return sorted(rows, key=lambda r: (r.get("of", 0), r.get("shard", 0)))


def _alive(row: dict[str, Any]) -> bool | None:
    """Whether the process of a progress row runs (None: on another host, cannot tell)."""
    if row.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(row["pid"]), 0)
    except ProcessLookupError:
        return False
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return True


def shard_status(folder: Path) -> dict[str, Any] | None:
    """What the shards of one stage key did (None when no shard ran): ``count`` (N, the
    most recent split when several were used), ``done`` (users with their fine-tuned
    rationale, at most WRITE_EVERY_S behind), ``total`` users, per-shard ``shards`` rows
    and a one-line ``line`` for ``slimkit status``."""
    rows = read_progress(folder)
    if not rows:
        return None
    count = max(rows, key=lambda r: r.get("updated", 0)).get("of")
    rows = [r for r in rows if r.get("of") == count]
    shards = []
    for row in rows:
        state = row.get("state", "?")
        if state != "finished" and _alive(row) is False:
            state = "stopped"
        shards.append({"shard": f"{row.get('shard')}/{count}", "state": state,
                       "users": row.get("users"), "done": row.get("done", 0),
                       "host": row.get("host"), "pid": row.get("pid"), "updated": row.get("updated")})
    done = sum(int(s["done"] or 0) for s in shards)
    totals = [r.get("total_users") for r in rows if r.get("total_users") is not None]
    total = max(totals) if totals else None
    finished = sum(s["state"] == "finished" for s in shards)
    states = ", ".join(f"{s['shard']} {s['state']}" for s in shards)
    missing = count - len(shards)
    line = (f"{count} shards: {done:,}/{f'{total:,}' if total is not None else '?'} users done; "
            f"{states}" + (f"; {missing} not started" if missing > 0 else ""))
    line += ("; `slimkit distill` (no --shard) assembles the stage from the cache"
             if finished == count else "")
    return {"count": count, "done": done, "total": total, "finished": finished,
            "shards": shards, "line": line}
