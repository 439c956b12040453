"""``slimkit distill --shard I/N``: one shard of the student's generation, run through the
pipeline (data and teach from the cache, or run first), writing into the shared cache.

A shard writes no stage output, so nothing downstream takes it for the distill stage; a
final plain ``slimkit distill`` assembles the stage with every rationale from the cache.
See :mod:`slimkit.stages.distill_shards` and docs/distill-shards.md.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from slimkit.cache import StageCache
from slimkit.pipeline.runner import Pipeline
from slimkit.spec import PipelineSpec
from slimkit.stages import distill
from slimkit.stages.distill_shards import Shard, ShardRun, progress_folder


def shard_progress_folder(cache: StageCache, key: str) -> Path:
    """Where the shards of the distill output ``key`` keep their progress files."""
    return progress_folder(cache.stage_root("distill"), key)


def run_distill_shard(spec: PipelineSpec, shard: Shard, cache: StageCache | None = None, *,
                      progress: bool = True) -> dict[str, Any]:
    """Run shard ``shard`` of the spec's distill stage; returns the shard's summary
    (``stage_complete`` is true, and nothing runs, when the stage output is cached)."""
    cache = cache or StageCache()
    pipeline = Pipeline(spec, cache, progress=progress)
    key = pipeline.keys["distill"]
    found = pipeline.cached("distill")
    if found is not None:
        return {"shard": str(shard), "stage_complete": True, "key": key, "path": str(found),
                "generated": 0}
    dataset = pipeline.dataset()
    teacher_rows = pipeline.teacher_rationales()
    run = ShardRun(shard, shard_progress_folder(cache, key))
    # The adapter folder is scratch here (the adapter itself is kept in the record store);
    # local, not under the shared cache, where another machine could take it for stale.
    with tempfile.TemporaryDirectory(prefix="slimkit-distill-shard-") as scratch:
        summary = distill.distill(spec, dataset, teacher_rows, Path(scratch), records=cache.records,
                                  progress=progress, shard=run)
    return {**summary, "key": key}

