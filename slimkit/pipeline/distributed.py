"""The train stage on several processes: ``slimkit train --nproc N`` prepares the upstream
stages here, then starts ``torchrun`` (``torch.distributed.run``) running ``slimkit
train`` in N processes; each of those runs :func:`run_train_rank`.

Rank 0 goes through the pipeline as a plain run does (the cache, tracking, the train
stage writing its folder); the other ranks read the same upstream outputs and run
:func:`slimkit.stages.train.train_worker`, which trains their share of every batch and
writes nothing. Which of these happens is rank 0's decision, broadcast, so every rank
takes the same path. How the batches are shared: :mod:`slimkit.training.distributed`.
"""

from __future__ import annotations

import subprocess
import sys

from slimkit.cache import StageCache
from slimkit.errors import SlimkitError, StageMissingError
from slimkit.pipeline.keys import uses_text
from slimkit.pipeline.run import run_stage_tracked
from slimkit.pipeline.runner import Pipeline, StageResult
from slimkit.spec import PipelineSpec
from slimkit.stages import train


def upstream_of_train(spec: PipelineSpec) -> list[str]:
    """The stage outputs the train stage reads: the data, and the encode stage's vectors
    when the fusion head reads text."""
    return ["data", "encode"] if uses_text(spec) else ["data"]


def prepare_upstream(spec: PipelineSpec, cache: StageCache | None = None, *,
                     progress: bool = True) -> None:
    """Run (or take from the cache) every stage the train stage reads, in this process."""
    pipeline = Pipeline(spec, cache, progress=progress)
    pipeline.dataset()
    if uses_text(spec):
        pipeline.vectors()


def torchrun_command(nproc: int, slimkit_args: list[str]) -> list[str]:
    """The command that runs ``slimkit <slimkit_args>`` in ``nproc`` local processes
    (torchrun's ``--standalone`` rendezvous on a free port)."""
    if nproc < 1:
        raise SlimkitError(f"--nproc must be 1 or more, got {nproc}.")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "slimkit", *slimkit_args]


def launch_train(spec: PipelineSpec, nproc: int, slimkit_args: list[str], *,
                 progress: bool = True) -> int:
    """``slimkit train`` on ``nproc`` processes of this machine: the upstream stages run
    here first (so the ranks only read them), then torchrun starts the ranks with
    ``slimkit_args`` (the same spec options). Returns torchrun's exit code."""
    command = torchrun_command(nproc, slimkit_args)
    prepare_upstream(spec, progress=progress)
    return subprocess.run(command, check=False).returncode


def run_train_rank(spec: PipelineSpec, cache: StageCache | None = None, *,
                   progress: bool = True) -> StageResult | None:
    """This process's part of a distributed train stage (it must be one rank of a
    torchrun group): rank 0 returns the stage's result (from the cache, or trained now
    with the other ranks), the other ranks None.

    The upstream outputs must be in the cache already (``slimkit train --nproc N`` and
    ``slimkit run --until encode`` put them there): ranks waiting while rank 0 distilled
    for hours would only hit the group's timeout.
    """
    from slimkit.runtime import resolve_device
    from slimkit.training import distributed

    cache = cache or StageCache()
    group = distributed.start(resolve_device(spec.train.device))
    try:
        pipeline = Pipeline(spec, cache, progress=progress and group.main)
        decision = distributed.broadcast_object(
            _decide(pipeline, spec) if group.main else None)
        if decision == "missing":
            needed = ", ".join(upstream_of_train(spec))
            raise StageMissingError(
                f"A distributed train needs the stages it reads ({needed}) in the cache first.",
                hint="Use `slimkit train --nproc N -c <spec>` (it runs them, then torchrun), or "
                "run `slimkit run -c <spec> --until encode` before torchrun.")
        if group.main:
            return run_stage_tracked(spec, "train", cache, progress=progress)
        if decision == "train":
            vectors = pipeline.vectors(run=False) if uses_text(spec) else None
            train.train_worker(spec, pipeline.dataset(), vectors)
        return None
    finally:
        distributed.stop()


def _decide(pipeline: Pipeline, spec: PipelineSpec) -> str:
    """Rank 0's view of the cache: ``cached`` (the train stage is there), ``train`` (its
    inputs are) or ``missing``."""
    if pipeline.cached("train") is not None:
        return "cached"
    if all(pipeline.cached(stage) is not None for stage in upstream_of_train(spec)):
        return "train"
    return "missing"

