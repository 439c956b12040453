"""``slimkit distill --shard I/N``: one shard of the student's generation, run through the
pipeline (data and teach from the cache, or run first), writing into the shared cache.

A shard writes no stage output, so nothing downstream takes it for the distill stage; a
final plain ``slimkit distill`` assembles the stage with every rationale from the cache.
See :mod:`slimkit.stages.distill_shards` and docs/distill-shards.md.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache
from slimkit.pipeline.runner import Pipeline
from slimkit.spec import PipelineSpec
from slimkit.stages import distill
from slimkit.stages.distill_shards import PROGRESS_FOLDER, Shard, ShardRun, progress_folder


def shard_progress_folder(cache: StageCache, key: str) -> Path:
    """Where the shards of the distill output ``key`` keep their progress files."""
    return progress_folder(cache.stage_root("distill"), key)


def run_distill_shard(spec: PipelineSpec, shard: Shard, cache: StageCache | None = None, *,
                      progress: bool = True) -> dict[str, Any]:
    """Run shard ``shard`` of the spec's distill stage (:data:`ADAPTER_ONLY`: only train
    or restore the adapter); returns the shard's summary (``stage_complete`` is true, and
    nothing runs, when the stage output is cached)."""
    cache = cache or StageCache()
    pipeline = Pipeline(spec, cache, progress=progress)
    key = pipeline.keys["distill"]
    found = pipeline.cached("distill")
    if found is not None:
        return {"shard": str(shard), "stage_complete": True, "key": key, "path": str(found),
                "generated": 0}
    dataset = pipeline.dataset()
    teacher_rows = pipeline.teacher_rationales()
    separate = spec.prompt.rationale_cut == "separate"
    cut_teacher = pipeline.cut_rationales("teach") if separate else None
    run = ShardRun(shard, shard_progress_folder(cache, key) if shard.index else None)
    # The adapter folder is scratch here (the adapter itself is kept in the record store);
    # local, not under the shared cache, where another machine could take it for stale.
    try:
        with tempfile.TemporaryDirectory(prefix="slimkit-distill-shard-") as scratch:
            summary = distill.distill(spec, dataset, teacher_rows, Path(scratch), records=cache.records,
                                      progress=progress, shard=run, cut_teacher_records=cut_teacher)
    except BaseException as exc:  # Ctrl-C included: status then says it stopped, and why
        run.info.update(state="stopped", error=f"{type(exc).__name__}: {exc}"[:300])
        run.write(force=True)
        raise
    return {**summary, "key": key}



def merge_shard_progress(source: StageCache, target: StageCache) -> int:
    """Copy the distill shards' progress files of ``source`` into ``target`` (a file
    already there is replaced only by a more recent one); returns the files copied."""
    from_root = source.stage_root("distill") / PROGRESS_FOLDER
    if not from_root.is_dir():
        return 0
    copied = 0
    for file in sorted(from_root.glob("*/shard-*-of-*.json")):
        dest = target.stage_root("distill") / PROGRESS_FOLDER / file.parent.name / file.name
        if dest.is_file() and _updated(dest) >= _updated(file):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.merge.tmp")
        shutil.copyfile(file, tmp)
        os.replace(tmp, dest)
        copied += 1
    return copied


def _updated(file: Path) -> float:
    try:
        return float(json.loads(file.read_text(encoding="utf-8")).get("updated", 0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0.0
